"""Seeded generator of :class:`World` instances.

Deployment geometry follows the TR 38.901 Table 7.2-1 evaluation layouts in spirit (hexagonal sites with the
scenario's inter-site distance and antenna heights), scaled down to a handful of cells so a world stays small
enough to ship inside every task. Everything random is drawn from one ``numpy.random.Generator`` seeded by
``WorldConfig.seed``, so the same config always yields the same world.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from netgpt import radio
from netgpt.world.schema import (
    KPI_METRICS,
    UE,
    Carrier,
    Cell,
    CellSeries,
    Link,
    Scenario,
    Slice,
    SliceSla,
    Topology,
    TopologyLink,
    TopologyNode,
    World,
)

HOURS_PER_WEEK = 168


class ScenarioProfile(BaseModel):
    """Deployment constants of one TR 38.901 scenario."""

    model_config = ConfigDict(frozen=True)
    isd_m: float
    h_bs_m: float
    h_ut_m: float
    tx_power_dbm: float
    ue_distance_m: tuple[float, float]
    # (fr, fc_ghz, scs_khz, bandwidths) carriers a deployment of this scenario may use
    carriers: tuple[tuple[int, float, int, tuple[int, ...]], ...]


_FR1_LOW = (1, 0.7, 15, (10, 20))
_FR1_MID = (1, 2.1, 15, (10, 20))
_FR1_C = (1, 3.5, 30, (40, 50, 100))
_FR2 = (2, 28.0, 120, (100, 200))

PROFILES: dict[Scenario, ScenarioProfile] = {
    "uma": ScenarioProfile(isd_m=500, h_bs_m=25, h_ut_m=1.5, tx_power_dbm=46, ue_distance_m=(35, 300),
                           carriers=(_FR1_LOW, _FR1_MID, _FR1_C)),
    "umi": ScenarioProfile(isd_m=200, h_bs_m=10, h_ut_m=1.5, tx_power_dbm=44, ue_distance_m=(15, 120),
                           carriers=(_FR1_MID, _FR1_C, _FR2)),
    "rma": ScenarioProfile(isd_m=1732, h_bs_m=35, h_ut_m=1.5, tx_power_dbm=46, ue_distance_m=(50, 1200),
                           carriers=(_FR1_LOW, _FR1_MID, _FR1_C)),
    "inh": ScenarioProfile(isd_m=20, h_bs_m=3, h_ut_m=1.0, tx_power_dbm=24, ue_distance_m=(2, 15),
                           carriers=(_FR1_C, _FR2)),
}


class WorldConfig(BaseModel):
    """Knobs of the generator. ``ue_distance_scale`` > 1 pushes UEs towards the cell edge (used by the ood split)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int
    scenario: Scenario | None = None
    n_cells: tuple[int, int] = (3, 5)
    ues_per_cell: tuple[int, int] = (1, 3)
    history_h: int = Field(336, description="load history length (two weeks of hours)")
    kpi_window_h: int = 48
    ue_distance_scale: float = 1.0
    anomaly_metric: str | None = None


def generate_world(config: WorldConfig) -> World:
    """Draw one world; deterministic in ``config``."""
    rng = np.random.default_rng(config.seed)
    scenario: Scenario = config.scenario or rng.choice(list(PROFILES))
    profile = PROFILES[scenario]
    carrier = _draw_carrier(rng, profile)
    n_cells = int(rng.integers(config.n_cells[0], config.n_cells[1] + 1))
    cells = _place_cells(rng, profile, n_cells)
    ues = _place_ues(rng, scenario, profile, cells, carrier, config)
    slices = _draw_slices(rng, cells, carrier)
    topology = _draw_topology(rng, cells)
    now_h = int(2 * HOURS_PER_WEEK + rng.integers(0, HOURS_PER_WEEK))
    series = [_draw_series(rng, cell, carrier, now_h, config) for cell in cells]
    _inject_anomaly(rng, series, config)
    return World(seed=config.seed, scenario=scenario, now_h=now_h, carrier=carrier, cells=cells, ues=ues,
                 slices=slices, topology=topology, series=series)


def _draw_carrier(rng: np.random.Generator, profile: ScenarioProfile) -> Carrier:
    fr, fc, scs, bandwidths = profile.carriers[int(rng.integers(len(profile.carriers)))]
    bw = int(bandwidths[int(rng.integers(len(bandwidths)))])
    mu = radio.mu_for_scs(scs)
    return Carrier(fr=fr, fc_ghz=fc, bandwidth_mhz=bw, scs_khz=scs, mu=mu, n_rb=radio.n_rb(fr, scs, bw))


def _hex_sites(isd: float, n: int) -> list[tuple[float, float]]:
    """Centre site then the first ring of a hexagonal grid."""
    sites = [(0.0, 0.0)]
    for k in range(6):
        angle = math.pi / 3 * k
        sites.append((isd * math.cos(angle), isd * math.sin(angle)))
    return sites[:n]


def _place_cells(rng: np.random.Generator, profile: ScenarioProfile, n: int) -> list[Cell]:
    cells = []
    for i, (x, y) in enumerate(_hex_sites(profile.isd_m, n), start=1):
        tx = profile.tx_power_dbm - float(rng.choice([0.0, 0.0, 3.0]))  # a few cells run 3 dB backed off
        cells.append(Cell(id=f"cell-{i}", x_m=round(x, 1), y_m=round(y, 1), h_bs_m=profile.h_bs_m,
                          tx_power_dbm=tx, max_layers=int(rng.choice([2, 4]))))
    return cells


def _place_ues(rng, scenario: Scenario, profile: ScenarioProfile, cells: list[Cell], carrier: Carrier,
               config: WorldConfig) -> list[UE]:
    lo, hi = profile.ue_distance_m
    lo, hi = lo * config.ue_distance_scale, hi * config.ue_distance_scale
    ues: list[UE] = []
    for cell in cells:
        for _ in range(int(rng.integers(config.ues_per_cell[0], config.ues_per_cell[1] + 1))):
            ue_id = f"ue-{len(ues) + 1}"
            while True:  # rejection-sample a position that is in every link's validity range
                d = float(rng.uniform(lo, hi))
                angle = float(rng.uniform(0, 2 * math.pi))
                x, y = cell.x_m + d * math.cos(angle), cell.y_m + d * math.sin(angle)
                dists = [math.hypot(x - c.x_m, y - c.y_m) for c in cells]
                if all(_in_validity(scenario, di, cell.h_bs_m, profile.h_ut_m, carrier.fc_ghz) for di in dists):
                    break
            order = [cell] + [c for c in cells if c.id != cell.id]
            links = []
            for c in order:
                d2d = round(math.hypot(x - c.x_m, y - c.y_m), 1)
                los = bool(rng.random() < radio.los_probability(scenario, d2d, h_ut_m=profile.h_ut_m))
                sigma = radio.shadow_fading_std_db(scenario, los, d2d, h_bs_m=c.h_bs_m, h_ut_m=profile.h_ut_m,
                                                   fc_ghz=carrier.fc_ghz)
                links.append(Link(cell_id=c.id, d2d_m=d2d, los=los,
                                  shadow_fading_db=round(float(rng.normal(0.0, sigma)), 2)))
            ues.append(UE(id=ue_id, x_m=round(x, 1), y_m=round(y, 1), h_ut_m=profile.h_ut_m, serving_cell=cell.id,
                          slice_id=f"{cell.id}/{rng.choice(list(_SLICE_TEMPLATES))}", noise_figure_db=9.0, links=links))
    return ues


def _in_validity(scenario: Scenario, d2d: float, h_bs: float, h_ut: float, fc: float) -> bool:
    try:
        for los in (True, False):
            radio.pathloss(scenario, round(d2d, 1), fc, los, h_bs_m=h_bs, h_ut_m=h_ut)
    except radio.RadioRangeError:
        return False
    return True


_SLICE_TEMPLATES = {
    # type: (SLA throughput as a fraction of the cell's peak, demand multiplier, MCS range, layers, latency, prio)
    "urllc": ((0.01, 0.04), (1.0, 1.5), (3, 9), 1, (1.0, 5.0), 1),
    "embb": ((0.15, 0.45), (1.2, 3.0), (15, 27), 2, (20.0, 50.0), 2),
    "mmtc": ((0.005, 0.02), (1.0, 2.0), (0, 5), 1, (100.0, 1000.0), 3),
}


def _draw_slices(rng: np.random.Generator, cells: list[Cell], carrier: Carrier) -> list[Slice]:
    peak = radio.max_data_rate_mbps(2, 6, 1.0, carrier.n_rb, carrier.mu, radio.default_overhead(carrier.fr, "dl"))
    slices = []
    for cell in cells:
        for kind, (frac, demand_mult, mcs_range, layers, latency, prio) in _SLICE_TEMPLATES.items():
            sla = round(peak * float(rng.uniform(*frac)), 1)
            slices.append(Slice(
                id=f"{cell.id}/{kind}", type=kind, cell_id=cell.id,
                sla=SliceSla(min_throughput_mbps=sla, max_latency_ms=round(float(rng.uniform(*latency)), 1)),
                demand_mbps=round(sla * float(rng.uniform(*demand_mult)), 1),
                mcs_index=int(rng.integers(mcs_range[0], mcs_range[1] + 1)),
                layers=min(layers, cell.max_layers), priority=prio))
    return slices


def _draw_topology(rng: np.random.Generator, cells: list[Cell]) -> Topology:
    """Aggregation ring, a dual-homed core (UPF) and gNBs single- or dual-homed to the ring."""
    n_agg = int(rng.integers(3, 5))
    aggs = [f"agg-{i}" for i in range(1, n_agg + 1)]
    nodes = [TopologyNode(id=f"gnb-{c.id.split('-')[1]}", kind="gnb") for c in cells]
    nodes += [TopologyNode(id=a, kind="aggregation") for a in aggs] + [TopologyNode(id="upf-1", kind="core")]
    links: list[TopologyLink] = []

    def add(a: str, b: str, latency: tuple[float, float], capacities: tuple[int, ...]) -> None:
        links.append(TopologyLink(id=f"{a}~{b}", a=a, b=b, latency_ms=round(float(rng.uniform(*latency)), 2),
                                  capacity_gbps=float(rng.choice(capacities))))

    for i, a in enumerate(aggs):
        add(a, aggs[(i + 1) % n_agg], (0.5, 3.0), (100, 200))
    add(aggs[0], "upf-1", (0.3, 2.0), (100, 400))
    add(aggs[1], "upf-1", (0.3, 2.0), (100, 400))
    for node in nodes:
        if node.kind != "gnb":
            continue
        homes = rng.choice(n_agg, size=2, replace=False)
        add(node.id, aggs[int(homes[0])], (0.2, 1.5), (10, 25))
        if rng.random() < 0.6:
            add(node.id, aggs[int(homes[1])], (0.2, 1.5), (10, 25))
    return Topology(nodes=nodes, links=links)


def _draw_series(rng: np.random.Generator, cell: Cell, carrier: Carrier, now_h: int,
                 config: WorldConfig) -> CellSeries:
    """Hourly PRB load with a diurnal and a weekly pattern plus AR(1) noise; KPIs derived from it."""
    hours = np.arange(now_h - config.history_h + 1, now_h + 1)
    base = rng.uniform(15, 40)
    amplitude = rng.uniform(15, 35)
    weekend = rng.uniform(0.5, 0.85)
    peak_hour = rng.uniform(18, 21)
    hour_of_day = hours % 24
    daily = np.exp(-0.5 * ((hour_of_day - peak_hour) / 4.0) ** 2) + 0.6 * np.exp(-0.5 * ((hour_of_day - 12) / 3.0) ** 2)
    is_weekend = (hours % HOURS_PER_WEEK) >= 5 * 24
    noise = np.zeros(len(hours))
    for t in range(1, len(hours)):
        noise[t] = 0.6 * noise[t - 1] + rng.normal(0, 2.5)
    load = base + amplitude * daily * np.where(is_weekend, weekend, 1.0) + noise
    load = np.clip(load, 1.0, 99.0)

    window = load[-config.kpi_window_h:]
    peak = radio.max_data_rate_mbps(cell.max_layers, 6, 1.0, carrier.n_rb, carrier.mu,
                                    radio.default_overhead(carrier.fr, "dl"))
    prb = np.clip(window + rng.normal(0, 1.0, len(window)), 0.5, 100.0)
    throughput = prb / 100 * peak * rng.uniform(0.35, 0.5, len(window))
    bler = np.clip(rng.normal(8.0, 1.0, len(window)) + prb / 40, 0.5, 100.0)
    latency = 4.0 + 6.0 * prb / (105.0 - prb) + rng.normal(0, 0.3, len(window))
    kpi = {"throughput_mbps": throughput, "prb_util_pct": prb, "bler_pct": bler, "latency_ms": np.abs(latency)}
    return CellSeries(cell_id=cell.id, load_pct=[round(float(v), 2) for v in load],
                      kpi={m: [round(float(v), 2) for v in kpi[m]] for m in KPI_METRICS})


_ANOMALY = {  # how an injected fault distorts one sample of a metric
    "throughput_mbps": lambda v: v * 0.15,
    "prb_util_pct": lambda v: min(100.0, v + 60.0) if v < 40 else v * 0.1,
    "bler_pct": lambda v: v + 35.0,
    "latency_ms": lambda v: v * 5.0 + 20.0,
}


def _inject_anomaly(rng: np.random.Generator, series: list[CellSeries], config: WorldConfig) -> None:
    """Distort one sample of one metric of one cell (series are rebuilt in place; models are frozen)."""
    target = int(rng.integers(len(series)))
    metric = config.anomaly_metric or KPI_METRICS[int(rng.integers(len(KPI_METRICS)))]
    hour = int(rng.integers(3, config.kpi_window_h - 3))
    values = list(series[target].kpi[metric])
    values[hour] = round(float(_ANOMALY[metric](values[hour])), 2)
    kpi = dict(series[target].kpi)
    kpi[metric] = values
    series[target] = series[target].model_copy(update={"kpi": kpi})
