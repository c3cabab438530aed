"""Network computations over a :class:`~netgpt.world.World`: link budgets, rates, forecasts, PRB allocation,
routing and KPI anomaly detection.

These are the single source of truth for every benchmark answer: the task generator, ``netgpt tasks check`` and
the agents all call them, so an agent's reply and a task's answer can never drift apart.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence

import networkx as nx
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel
from scipy import optimize

from netgpt import radio
from netgpt.world.schema import KPI_METRICS, CellSeries, KpiMetric, Topology, World


class LinkBudget(BaseModel):
    ue_id: str
    serving_cell: str
    pathloss_db: float
    rx_power_dbm: float
    interference_dbm: float | None
    noise_dbm: float
    sinr_db: float


def link_budget(world: World, ue_id: str) -> LinkBudget:
    """Downlink SINR of a UE: TR 38.901 path loss + frozen shadow fading per link, every other cell a full-buffer
    co-channel interferer, thermal noise over the carrier bandwidth plus the UE noise figure. Isotropic antennas."""
    ue = world.ue(ue_id)
    interferers = []
    for link in ue.links:
        cell = world.cell(link.cell_id)
        pl = radio.pathloss(world.scenario, link.d2d_m, world.carrier.fc_ghz, link.los,
                            h_bs_m=cell.h_bs_m, h_ut_m=ue.h_ut_m)
        rx_dbm = radio.received_power_dbm(cell.tx_power_dbm, pl + link.shadow_fading_db)
        if link.cell_id == ue.serving_cell:  # the UE schema guarantees exactly one serving link
            serving_pl, serving_rx = pl, rx_dbm
        else:
            interferers.append(rx_dbm)
    noise = radio.thermal_noise_dbm(world.carrier.bandwidth_mhz * 1e6, ue.noise_figure_db)
    interference = 10 * math.log10(sum(10 ** (p / 10) for p in interferers)) if interferers else None
    return LinkBudget(ue_id=ue_id, serving_cell=ue.serving_cell, pathloss_db=serving_pl, rx_power_dbm=serving_rx,
                      interference_dbm=interference, noise_dbm=noise,
                      sinr_db=radio.sinr_db(serving_rx, interferers, noise))


class RateEstimate(BaseModel):
    mcs_index: int | None
    qm: int | None
    code_rate_x1024: float | None
    rate_mbps: float


def rate_per_prb_mbps(qm: int, code_rate_x1024: float, layers: int, mu: int, overhead: float) -> float:
    """TS 38.306 §4.1.2 rate of one PRB, with the MCS code rate R in place of R_max = 948/1024."""
    return radio.max_data_rate_mbps(layers, qm, 1.0, 1, mu, overhead) * code_rate_x1024 / 948.0


def achievable_rate(sinr_db: float, n_prb: int, layers: int, mu: int, fr: int, mcs_table: int = 1) -> RateEstimate:
    """SINR → MCS (:func:`netgpt.radio.sinr_to_mcs`) → throughput over ``n_prb`` PRBs. Below the lowest CQI the
    link is out of range and carries nothing."""
    if radio.sinr_to_cqi(sinr_db, table=mcs_table) == 0:
        return RateEstimate(mcs_index=None, qm=None, code_rate_x1024=None, rate_mbps=0.0)
    index = radio.sinr_to_mcs(sinr_db, table=mcs_table)
    qm, rate = radio.mcs(mcs_table, index)
    overhead = radio.default_overhead(fr, "dl")
    return RateEstimate(mcs_index=index, qm=qm, code_rate_x1024=rate,
                        rate_mbps=rate_per_prb_mbps(qm, rate, layers, mu, overhead) * n_prb)


class Forecast(BaseModel):
    horizon_h: int
    mean_pct: float
    low_pct: float
    high_pct: float


SEASON_H = 168  # weekly season of hourly load
_LBFGSB_MAXFUN = 15000  # scipy's default evaluation budget for L-BFGS-B


def _scipy_forward_difference_gradient(smoother, lower: np.ndarray, upper: np.ndarray):
    """The gradient L-BFGS-B estimates for a statsmodels Holt-Winters fit, bit for bit, without scipy's overhead.

    Why: statsmodels leaves the gradient of its squared-error objective to scipy's 2-point finite differences, and
    scipy's per-evaluation bookkeeping (copies, wrappers, dtype checks) costs more than the smoother itself: the
    fits were 9.5 s of the oracle's 12.9 s over the test split. This computes the same forward differences as
    ``scipy.optimize._numdiff.approx_derivative`` does there (absolute step 1e-8, flipped at a bound, the same
    floating-point operations in the same order), so the optimiser takes the identical path and the forecasts,
    which the committed splits' answers come from, do not move (``tests/world/test_analytics.py``).
    """
    def objective(x: np.ndarray, hw_args) -> float:
        err = smoother(x, hw_args)
        return float(err.T @ err)

    def gradient(x: np.ndarray, hw_args) -> np.ndarray:
        step = np.full_like(x, 1e-8)
        sign = (x >= 0).astype(float) * 2 - 1
        step = np.where((x + step) - x == 0, np.finfo(float).eps ** 0.5 * sign * np.maximum(1.0, np.abs(x)), step)
        step = np.where((x + step < lower) | (x + step > upper), -step, step)  # the bounds are 1 wide: a flip fits
        f0 = objective(x, hw_args)
        probe, xs, steps = x.copy(), x.tolist(), step.tolist()
        grad = np.empty_like(x)
        for i, (xi, hi) in enumerate(zip(xs, steps, strict=True)):
            probe[i] = xi + hi
            grad[i] = (objective(probe, hw_args) - f0) / ((xi + hi) - xi)
            probe[i] = xi
        return grad

    return gradient


@functools.lru_cache(maxsize=256)
def _load_forecast_path(history: tuple[float, ...]) -> tuple[np.ndarray, float]:
    """Fit once per history (the fit dominates the cost): the 168-hour forecast path and the residual spread.

    Additive Holt-Winters with estimated initial states: 171 free parameters (alpha, gamma, the level and 168
    seasonal states) by L-BFGS-B. Its stopping point is the evaluation budget, not convergence: with numerical
    gradients each new point costs 1 + 171 evaluations and every fit of two weeks of history stops after 88 points
    (15 000 evaluations). With :func:`_scipy_forward_difference_gradient` a point costs one counted evaluation, so the
    budget is divided by 172 to stop at the same point."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.holtwinters.model import SMOOTHERS

    n_free = 3 + SEASON_H
    lower = np.array([0.0, 0.0] + [-np.inf] * (n_free - 2))  # alpha and gamma are fitted on [0, 1]
    upper = np.array([1.0, 1.0] + [np.inf] * (n_free - 2))
    gradient = _scipy_forward_difference_gradient(SMOOTHERS[("add", None)], lower, upper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter from the optimiser
        fit = ExponentialSmoothing(np.asarray(history, dtype=float), seasonal="add", seasonal_periods=SEASON_H,
                                   initialization_method="estimated").fit(
            minimize_kwargs={"jac": gradient, "options": {"maxfun": _LBFGSB_MAXFUN // (n_free + 1)}})
    path = fit.forecast(SEASON_H)
    path.setflags(write=False)
    return path, float(np.std(fit.resid))


def forecast_load(history: Sequence[float], horizon_h: int) -> Forecast:
    """Holt-Winters (additive, weekly season of 168 h) forecast of the PRB load ``horizon_h`` hours ahead, with
    a 95 % band from the in-sample residual spread."""
    if not 1 <= horizon_h <= SEASON_H:
        raise ValueError(f"horizon_h must be within 1..{SEASON_H} hours, got {horizon_h}")
    if len(history) < 2 * SEASON_H:
        raise ValueError(f"need at least two weeks (336 h) of history, got {len(history)} h")
    path, resid_std = _load_forecast_path(tuple(history))
    mean = float(np.clip(path[horizon_h - 1], 0.0, 100.0))
    spread = 1.96 * resid_std * math.sqrt(1 + horizon_h / 24)
    return Forecast(horizon_h=horizon_h, mean_pct=mean, low_pct=max(0.0, mean - spread),
                    high_pct=min(100.0, mean + spread))


def hours_until_threshold(history: Sequence[float], threshold_pct: float, max_h: int = 48) -> int | None:
    """First hour ahead (1..max_h) at which the forecast load reaches ``threshold_pct``; None if it never does."""
    if len(history) < 2 * SEASON_H:
        raise ValueError(f"need at least two weeks (336 h) of history, got {len(history)} h")
    path, _ = _load_forecast_path(tuple(history))
    crossing = np.nonzero(path[:max_h] >= threshold_pct)[0]
    return int(crossing[0]) + 1 if len(crossing) else None


class Allocation(BaseModel):
    cell_id: str
    feasible: bool
    n_rb: int
    prbs: dict[str, int]
    throughput_mbps: dict[str, float]


def allocate_prbs(world: World, cell_id: str) -> Allocation:
    """Split a cell's PRBs among its slices: every slice gets at least the PRBs its SLA throughput needs, then
    spare PRBs maximise priority-weighted served throughput, capped at each slice's demand (scipy MILP).
    Infeasible when the SLA minimums alone exceed the carrier's N_RB; then no allocation is returned."""
    slices = [s for s in world.slices if s.cell_id == cell_id]
    if not slices:
        world.cell(cell_id)  # raises for an unknown cell
        raise KeyError(f"cell {cell_id!r} has no slices")
    overhead = radio.default_overhead(world.carrier.fr, "dl")
    per_prb = []
    for s in slices:
        qm, rate = radio.mcs(1, s.mcs_index)
        per_prb.append(rate_per_prb_mbps(qm, rate, s.layers, world.carrier.mu, overhead))
    need = [math.ceil(s.sla.min_throughput_mbps / r) for s, r in zip(slices, per_prb)]
    cap = [max(n, math.ceil(s.demand_mbps / r)) for s, n, r in zip(slices, need, per_prb)]
    n_rb = world.carrier.n_rb
    if sum(need) > n_rb:
        return Allocation(cell_id=cell_id, feasible=False, n_rb=n_rb, prbs={}, throughput_mbps={})
    weight = [r * 2.0 ** (3 - s.priority) for s, r in zip(slices, per_prb)]
    result = optimize.milp(
        c=-np.asarray(weight),
        constraints=optimize.LinearConstraint(np.ones((1, len(slices))), 0, n_rb),
        integrality=np.ones(len(slices)),
        bounds=optimize.Bounds(need, cap),
    )
    if not result.success:  # bounds are consistent by construction, so this is a solver failure
        raise RuntimeError(f"PRB allocation MILP failed for {cell_id}: {result.message}")
    prbs = [int(round(x)) for x in result.x]
    return Allocation(cell_id=cell_id, feasible=True, n_rb=n_rb, prbs={s.id: p for s, p in zip(slices, prbs)},
                      throughput_mbps={s.id: p * r for s, p, r in zip(slices, prbs, per_prb)})


class PathResult(BaseModel):
    path: list[str]
    latency_ms: float
    bottleneck_gbps: float


def topology_graph(topology: Topology, failed_links: Iterable[str] = ()) -> nx.Graph:
    failed = set(failed_links)
    known = {link.id for link in topology.links}
    unknown = failed - known
    if unknown:
        raise KeyError(f"unknown link(s) {sorted(unknown)}")
    graph = nx.Graph()
    graph.add_nodes_from(n.id for n in topology.nodes)
    for link in topology.links:
        if link.id not in failed:
            graph.add_edge(link.a, link.b, id=link.id, latency_ms=link.latency_ms, capacity_gbps=link.capacity_gbps)
    return graph


def shortest_path(topology: Topology, src: str, dst: str, failed_links: Iterable[str] = ()) -> PathResult:
    """Minimum one-way latency path (Dijkstra) avoiding ``failed_links``; its latency and bottleneck capacity."""
    graph = topology_graph(topology, failed_links)
    for node in (src, dst):
        if node not in graph:
            raise KeyError(f"unknown node {node!r}")
    try:
        path = nx.shortest_path(graph, src, dst, weight="latency_ms")
    except nx.NetworkXNoPath as exc:
        raise ValueError(f"no path from {src} to {dst} with links {sorted(failed_links)} down") from exc
    edges = [graph.edges[a, b] for a, b in zip(path, path[1:])]
    return PathResult(path=path, latency_ms=round(sum(e["latency_ms"] for e in edges), 4),
                      bottleneck_gbps=min(e["capacity_gbps"] for e in edges))


class Anomaly(BaseModel):
    cell_id: str
    metric: KpiMetric
    hours_ago: int
    value: float
    score: float


def _neighbour_median(values: np.ndarray, half: int) -> np.ndarray:
    """Median of the ``half`` samples on each side of every point (the point itself excluded, edges padded)."""
    padded = np.pad(values, half, mode="edge")
    windows = np.delete(sliding_window_view(padded, 2 * half + 1), half, axis=1)
    return np.median(windows, axis=1)


def detect_anomalies(series: Sequence[CellSeries], threshold: float = 8.0,
                     metrics: Sequence[KpiMetric] = KPI_METRICS) -> list[Anomaly]:
    """Robust outliers in the KPI windows: each sample's residual from the median of its 2 + 2 neighbours, scored
    as a MAD z-score (0.6745·(r − median r)/MAD); |z| ≥ ``threshold`` is an anomaly. Strongest first."""
    found = []
    for cell_series in series:
        for metric in metrics:
            values = np.asarray(cell_series.kpi[metric], dtype=float)
            residual = values - _neighbour_median(values, 2)
            centre = float(np.median(residual))
            mad = float(np.median(np.abs(residual - centre)))
            if mad == 0:
                continue
            z = 0.6745 * (residual - centre) / mad
            for t in np.nonzero(np.abs(z) >= threshold)[0]:
                found.append(Anomaly(cell_id=cell_series.cell_id, metric=metric, hours_ago=len(values) - 1 - int(t),
                                     value=float(values[t]), score=round(float(abs(z[t])), 2)))
    return sorted(found, key=lambda a: -a.score)
