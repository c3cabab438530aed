"""The domain agents. Each skill is a thin typed wrapper over :mod:`netgpt.radio` or :mod:`netgpt.analytics`,
the same code that computes the benchmark's answers, so an agent is right exactly when the oracle is."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netgpt import analytics, radio
from netgpt.agents.base import Args, Result, SkillAgent, skill
from netgpt.protocol.messages import CostModel, LatencyModel
from netgpt.world import KPI_METRICS, World
from netgpt.world.schema import KpiMetric

# ---------------------------------------------------------------- channel (precise) and channel_lite (cheap)


class PathlossArgs(Args):
    scenario: Literal["uma", "umi", "rma", "inh"]
    d2d_m: float = Field(gt=0)
    fc_ghz: float = Field(gt=0)
    los: bool
    h_bs_m: float | None = None
    h_ut_m: float | None = None


class PathlossResult(Result):
    pathloss_db: float


class LosProbabilityArgs(Args):
    scenario: Literal["uma", "umi", "rma", "inh"]
    d2d_m: float = Field(ge=0)
    h_ut_m: float = 1.5


class LosProbabilityResult(Result):
    los_probability: float


class UeArgs(Args):
    ue_id: str


class ChannelAgent(SkillAgent):
    agent_name = "channel"
    description = ("Precise propagation digital twin: TR 38.901 path loss and LOS probability, and the full "
                   "downlink link budget (SINR with every interferer) of a UE. Exact but slow.")
    cost = CostModel(latency=LatencyModel(median_ms=400.0, sigma=0.4, floor_ms=50.0), per_call_cost=5.0,
                     reliability=0.97)

    @skill("pathloss", "TR 38.901 §7.4.1 path loss in dB (NLOS = max(LOS, NLOS')).", PathlossArgs, PathlossResult)
    def pathloss(self, a: PathlossArgs) -> PathlossResult:
        return PathlossResult(pathloss_db=radio.pathloss(a.scenario, a.d2d_m, a.fc_ghz, a.los, a.h_bs_m, a.h_ut_m))

    @skill("los_probability", "TR 38.901 §7.4.2 LOS probability.", LosProbabilityArgs, LosProbabilityResult)
    def los_probability(self, a: LosProbabilityArgs) -> LosProbabilityResult:
        return LosProbabilityResult(los_probability=radio.los_probability(a.scenario, a.d2d_m, a.h_ut_m))

    @skill("sinr", "Downlink SINR and link budget of a UE in the current network.", UeArgs, analytics.LinkBudget,
           needs_state=True)
    def sinr(self, a: UeArgs, state: World) -> analytics.LinkBudget:
        return analytics.link_budget(state, a.ue_id)


class CoarseSinrResult(Result):
    ue_id: str
    sinr_db: float


class ChannelLiteAgent(SkillAgent):
    """SINR from the UE's last CQI-style report: rounded to ``step_db`` (real CQI reports are coarse). The fault
    model adds the estimator's random error on top (``noise`` in the fault config)."""

    agent_name = "channel_lite"
    description = ("Cheap SINR estimator from UE reports: fast, but coarse (1 dB steps) and noisy "
                   "(about ±1 dB). Good enough when a few dB of error is acceptable.")
    cost = CostModel(latency=LatencyModel(median_ms=20.0, sigma=0.3, floor_ms=5.0), per_call_cost=0.5,
                     reliability=0.99)

    def __init__(self, step_db: float = 1.0) -> None:
        super().__init__()
        self.step_db = step_db

    @skill("sinr", "Approximate downlink SINR of a UE (coarse and noisy).", UeArgs, CoarseSinrResult,
           needs_state=True)
    def sinr(self, a: UeArgs, state: World) -> CoarseSinrResult:
        exact = analytics.link_budget(state, a.ue_id).sinr_db
        return CoarseSinrResult(ue_id=a.ue_id, sinr_db=round(exact / self.step_db) * self.step_db)


# ---------------------------------------------------------------- phy


class McsArgs(Args):
    table: Literal[1, 2, 3] = Field(description="1 = Table 5.1.3.1-1 (64QAM), 2 = -2 (256QAM), 3 = -3 (low SE)")
    index: int = Field(ge=0, le=31)


class McsResult(Result):
    qm: int
    code_rate_x1024: float
    spectral_efficiency: float


class TbsArgs(Args):
    qm: int
    code_rate_x1024: float
    layers: int
    n_prb: int
    n_symb: int
    n_dmrs_per_prb: int
    n_oh_per_prb: int = 0
    scaling: float = 1.0


class TbsResult(Result):
    tbs_bits: int


class PeakRateArgs(Args):
    layers: int
    qm: int
    scaling: float
    fr: Literal[1, 2]
    scs_khz: int
    bandwidth_mhz: float
    direction: Literal["dl", "ul"]


class PeakRateResult(Result):
    rate_mbps: float
    n_prb: int
    mu: int
    overhead: float


class ThroughputArgs(Args):
    sinr_db: float
    n_prb: int = Field(ge=1, le=275)
    layers: int = Field(ge=1, le=8)
    mu: int = Field(ge=0, le=6)
    fr: Literal[1, 2]
    mcs_table: Literal[1, 2] = 1
    target_mbps: float | None = Field(None, ge=0, description="a rate to check the estimate against")


class ThroughputResult(analytics.RateEstimate):
    meets_target: bool | None = Field(None, description="rate_mbps >= target_mbps, when a target was given")


class PhyAgent(SkillAgent):
    agent_name = "phy"
    description = ("NR physical layer calculator: TS 38.214 MCS tables and transport block size, TS 38.306 peak "
                   "data rate, and SINR → MCS → throughput.")
    cost = CostModel(latency=LatencyModel(median_ms=15.0, sigma=0.3, floor_ms=2.0), per_call_cost=0.5,
                     reliability=0.99)

    @skill("mcs", "Q_m and target code rate of an MCS index (TS 38.214 Tables 5.1.3.1-1/-2/-3).", McsArgs,
           McsResult)
    def mcs(self, a: McsArgs) -> McsResult:
        qm, rate = radio.mcs(a.table, a.index)
        return McsResult(qm=qm, code_rate_x1024=rate, spectral_efficiency=qm * rate / 1024)

    @skill("tbs", "Transport block size in bits (TS 38.214 §5.1.3.2).", TbsArgs, TbsResult)
    def tbs(self, a: TbsArgs) -> TbsResult:
        return TbsResult(tbs_bits=radio.tbs(**a.model_dump()))

    @skill("peak_rate", "Approximate maximum data rate of one carrier in Mbps (TS 38.306 §4.1.2).", PeakRateArgs,
           PeakRateResult)
    def peak_rate(self, a: PeakRateArgs) -> PeakRateResult:
        # the reply echoes the three values the spec's tables gave, so a reader can check the rate by hand
        return PeakRateResult(rate_mbps=radio.carrier_max_data_rate_mbps(**a.model_dump()),
                              n_prb=radio.n_rb(a.fr, a.scs_khz, a.bandwidth_mhz), mu=radio.mu_for_scs(a.scs_khz),
                              overhead=radio.default_overhead(a.fr, a.direction))

    @skill("throughput", "Achievable throughput for a SINR over n_prb PRBs: SINR → CQI → MCS → rate; with "
           "target_mbps, also whether the rate meets it.", ThroughputArgs, ThroughputResult)
    def throughput(self, a: ThroughputArgs) -> ThroughputResult:
        estimate = analytics.achievable_rate(a.sinr_db, a.n_prb, a.layers, a.mu, a.fr, a.mcs_table)
        meets = None if a.target_mbps is None else estimate.rate_mbps >= a.target_mbps
        return ThroughputResult(**estimate.model_dump(), meets_target=meets)


# ---------------------------------------------------------------- traffic


class ForecastArgs(Args):
    cell_id: str
    horizon_h: int = Field(ge=1, le=168)


class ForecastResult(Result):
    cell_id: str
    horizon_h: int
    mean_pct: float
    low_pct: float
    high_pct: float


class ThresholdArgs(Args):
    cell_id: str
    threshold_pct: float = Field(gt=0, le=100)
    max_h: int = Field(48, ge=1, le=168)


class ThresholdResult(Result):
    cell_id: str
    hours: int | None = Field(description="hours until the forecast first reaches the threshold; null: not in max_h")


class TrafficAgent(SkillAgent):
    agent_name = "traffic"
    description = ("Traffic forecaster: Holt-Winters (weekly season) forecasts of a cell's PRB load from its hourly "
                   "history, with a 95 % band, and the time until a load threshold is crossed.")
    cost = CostModel(latency=LatencyModel(median_ms=120.0, sigma=0.4, floor_ms=20.0), per_call_cost=2.0,
                     reliability=0.98)

    @skill("forecast", "PRB load forecast of a cell horizon_h hours ahead (percent).", ForecastArgs, ForecastResult,
           needs_state=True)
    def forecast(self, a: ForecastArgs, state: World) -> ForecastResult:
        f = analytics.forecast_load(state.cell_series(a.cell_id).load_pct, a.horizon_h)
        return ForecastResult(cell_id=a.cell_id, **f.model_dump())

    @skill("time_to_threshold", "Hours until a cell's forecast load first reaches threshold_pct.", ThresholdArgs,
           ThresholdResult, needs_state=True)
    def time_to_threshold(self, a: ThresholdArgs, state: World) -> ThresholdResult:
        hours = analytics.hours_until_threshold(state.cell_series(a.cell_id).load_pct, a.threshold_pct, a.max_h)
        return ThresholdResult(cell_id=a.cell_id, hours=hours)


class TrafficLiteAgent(SkillAgent):
    """Seasonal-naive forecaster: the load at the same hour of the week, averaged over the weeks of history.
    No model fit, so it answers in milliseconds, but it ignores trend and recent level shifts."""

    agent_name = "traffic_lite"
    description = ("Cheap load forecaster (seasonal naive: same hour of the previous weeks). Fast, but misses "
                   "trends and recent level shifts; fine when ±10 % is enough.")
    cost = CostModel(latency=LatencyModel(median_ms=10.0, sigma=0.3, floor_ms=2.0), per_call_cost=0.2,
                     reliability=0.99)

    @skill("forecast", "Seasonal-naive PRB load forecast of a cell horizon_h hours ahead (percent).", ForecastArgs,
           ForecastResult, needs_state=True)
    def forecast(self, a: ForecastArgs, state: World) -> ForecastResult:
        history = state.cell_series(a.cell_id).load_pct
        same_hour = history[len(history) - 168 + a.horizon_h - 1::-168]  # same hour of the week, newest first
        mean = sum(same_hour) / len(same_hour)
        spread = max(same_hour) - min(same_hour)
        return ForecastResult(cell_id=a.cell_id, horizon_h=a.horizon_h, mean_pct=mean,
                              low_pct=max(0.0, mean - spread), high_pct=min(100.0, mean + spread))


# ---------------------------------------------------------------- ran


class CellArgs(Args):
    cell_id: str


class SleepArgs(Args):
    sleep_below_pct: float = Field(15.0, gt=0, lt=100, description="a cell may sleep if its next-hour load is below")
    max_load_pct: float = Field(80.0, gt=0, le=100, description="no awake cell may exceed this after absorbing load")


class SleepResult(Result):
    sleep: list[str]
    awake_load_pct: dict[str, float]


class RanAgent(SkillAgent):
    agent_name = "ran"
    description = ("RAN resource optimiser: SLA-first, priority-weighted PRB allocation across a cell's network "
                   "slices (MILP), and cell-sleep decisions for energy saving.")
    cost = CostModel(latency=LatencyModel(median_ms=60.0, sigma=0.4, floor_ms=10.0), per_call_cost=1.0,
                     reliability=0.98)

    @skill("allocate_prbs", "PRBs per slice of a cell meeting every SLA minimum, spare PRBs by priority.",
           CellArgs, analytics.Allocation, needs_state=True)
    def allocate_prbs(self, a: CellArgs, state: World) -> analytics.Allocation:
        return analytics.allocate_prbs(state, a.cell_id)

    @skill("sleep_decision", "Cells that can sleep next hour: lowest forecast load first, while the others can "
           "absorb their load.", SleepArgs, SleepResult, needs_state=True)
    def sleep_decision(self, a: SleepArgs, state: World) -> SleepResult:
        load = {s.cell_id: analytics.forecast_load(s.load_pct, 1).mean_pct for s in state.series}
        asleep: list[str] = []
        for cell_id in sorted(load, key=load.get):
            awake = [c for c in load if c not in asleep and c != cell_id]
            if load[cell_id] >= a.sleep_below_pct or not awake:
                break
            shifted = {c: load[c] + load[cell_id] / len(awake) for c in awake}
            if max(shifted.values()) > a.max_load_pct:
                break
            asleep.append(cell_id)
            load.update(shifted)
            load[cell_id] = 0.0
        return SleepResult(sleep=asleep, awake_load_pct={c: v for c, v in load.items() if c not in asleep})


# ---------------------------------------------------------------- topology


class PathArgs(Args):
    src: str
    dst: str
    failed_links: list[str] = Field(default_factory=list)


class TopologyAgent(SkillAgent):
    agent_name = "topology"
    description = ("Transport network controller: lowest-latency path between two nodes, its bottleneck capacity, "
                   "and the failover path when links fail.")
    cost = CostModel(latency=LatencyModel(median_ms=30.0, sigma=0.3, floor_ms=5.0), per_call_cost=1.0,
                     reliability=0.98)

    @skill("shortest_path", "Lowest one-way latency path from src to dst avoiding failed_links.", PathArgs,
           analytics.PathResult, needs_state=True)
    def shortest_path(self, a: PathArgs, state: World) -> analytics.PathResult:
        return analytics.shortest_path(state.topology, a.src, a.dst, a.failed_links)


# ---------------------------------------------------------------- kpi


class AnomalyArgs(Args):
    metric: KpiMetric | None = None
    cell_id: str | None = None
    threshold: float = Field(8.0, gt=0)


class AnomalyResult(Result):
    anomalies: list[analytics.Anomaly]


class LatestResult(Result):
    cell_id: str
    values: dict[str, float]


class KpiAgent(SkillAgent):
    agent_name = "kpi"
    description = ("KPI monitor: the latest KPI values of a cell, and robust (median/MAD) anomaly detection over the "
                   "last 48 h of throughput, PRB utilisation, BLER and latency, for one metric or one cell.")
    cost = CostModel(latency=LatencyModel(median_ms=80.0, sigma=0.4, floor_ms=10.0), per_call_cost=1.0,
                     reliability=0.98)

    @skill("detect_anomalies", "Anomalous KPI samples, strongest first.", AnomalyArgs, AnomalyResult,
           needs_state=True)
    def detect_anomalies(self, a: AnomalyArgs, state: World) -> AnomalyResult:
        series = [state.cell_series(a.cell_id)] if a.cell_id else state.series
        metrics = (a.metric,) if a.metric else KPI_METRICS
        found = analytics.detect_anomalies(series, a.threshold, metrics)
        return AnomalyResult(anomalies=found)

    @skill("latest", "The latest hourly value of every KPI of a cell.", CellArgs, LatestResult, needs_state=True)
    def latest(self, a: CellArgs, state: World) -> LatestResult:
        series = state.cell_series(a.cell_id)
        return LatestResult(cell_id=a.cell_id, values={m: series.kpi[m][-1] for m in KPI_METRICS})

