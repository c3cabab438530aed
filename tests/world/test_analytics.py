"""Network computations on hand-built worlds, with expected values worked out from the formulas."""

import math

import numpy as np
import pytest

from netgpt import analytics
from netgpt.world import (
    UE,
    Carrier,
    Cell,
    CellSeries,
    Link,
    Slice,
    SliceSla,
    Topology,
    TopologyLink,
    TopologyNode,
    World,
)


def _series(cell_id, n_kpi=48, seed=0):
    rng = np.random.default_rng(seed)
    kpi = {m: list(10 + rng.normal(0, 0.5, n_kpi)) for m in
           ("throughput_mbps", "prb_util_pct", "bler_pct", "latency_ms")}
    return CellSeries(cell_id=cell_id, load_pct=[50.0] * 336, kpi=kpi)


def _world(slices=(), topology=None, series=None):
    carrier = Carrier(fr=1, fc_ghz=3.5, bandwidth_mhz=20, scs_khz=30, mu=1, n_rb=51)
    cells = [Cell(id="cell-1", x_m=0, y_m=0, h_bs_m=25, tx_power_dbm=46, max_layers=2),
             Cell(id="cell-2", x_m=500, y_m=0, h_bs_m=25, tx_power_dbm=46, max_layers=2)]
    ue = UE(id="ue-1", x_m=100, y_m=0, h_ut_m=1.5, serving_cell="cell-1", slice_id="cell-1/embb", noise_figure_db=9,
            links=[Link(cell_id="cell-1", d2d_m=100, los=True, shadow_fading_db=0.0),
                   Link(cell_id="cell-2", d2d_m=400, los=False, shadow_fading_db=0.0)])
    topo = topology or Topology(nodes=[TopologyNode(id="upf-1", kind="core")], links=[])
    return World(seed=0, scenario="uma", now_h=400, carrier=carrier, cells=cells, ues=[ue], slices=list(slices),
                 topology=topo, series=series or [_series("cell-1"), _series("cell-2", seed=1)])


def test_link_budget_uma_two_cells():
    # TR 38.901 Table 7.4.1-1, UMa, fc = 3.5 GHz, hBS = 25 m, hUT = 1.5 m, d'BP = 4·24·0.5·3.5e9/3e8 = 560 m.
    d3d_serving = math.sqrt(100**2 + 23.5**2)                                   # 102.724 m
    pl_serving = 28 + 22 * math.log10(d3d_serving) + 20 * math.log10(3.5)       # LOS PL1 = 83.137 dB
    d3d_int = math.sqrt(400**2 + 23.5**2)
    pl_int_los = 28 + 22 * math.log10(d3d_int) + 20 * math.log10(3.5)           # 96.142 dB
    pl_int_nlos = 13.54 + 39.08 * math.log10(d3d_int) + 20 * math.log10(3.5)    # 126.138 dB
    pl_int = max(pl_int_los, pl_int_nlos)
    noise = -174 + 10 * math.log10(20e6) + 9                                     # -91.990 dBm
    i_plus_n = 10 * math.log10(10 ** ((46 - pl_int) / 10) + 10 ** (noise / 10))
    expected_sinr = (46 - pl_serving) - i_plus_n
    assert expected_sinr == pytest.approx(42.726, abs=1e-3)
    budget = analytics.link_budget(_world(), "ue-1")
    assert budget.pathloss_db == pytest.approx(pl_serving, abs=1e-9)
    assert budget.noise_dbm == pytest.approx(noise, abs=1e-9)
    assert budget.sinr_db == pytest.approx(expected_sinr, abs=1e-9)


def test_link_budget_finds_the_serving_link_wherever_it_is_listed():
    world = _world()
    ue = world.ues[0]
    swapped = world.model_copy(update={"ues": [ue.model_copy(update={"links": ue.links[::-1]})]})
    assert analytics.link_budget(swapped, "ue-1") == analytics.link_budget(world, "ue-1")


@pytest.mark.parametrize("links, message", [
    ([Link(cell_id="cell-2", d2d_m=400, los=False, shadow_fading_db=0.0)], "serving cell cell-1 is not among"),
    ([Link(cell_id="cell-1", d2d_m=100, los=True, shadow_fading_db=0.0)] * 2, "more than one link to the same cell"),
])
def test_a_ue_without_exactly_one_link_per_cell_is_refused(links, message):
    with pytest.raises(ValueError, match=message):
        UE(id="ue-1", x_m=100, y_m=0, h_ut_m=1.5, serving_cell="cell-1", slice_id="cell-1/embb", noise_figure_db=9,
           links=links)


def _slice(kind, mcs, layers, sla, demand, prio):
    return Slice(id=f"cell-1/{kind}", type=kind, cell_id="cell-1", layers=layers, priority=prio, mcs_index=mcs,
                 sla=SliceSla(min_throughput_mbps=sla, max_latency_ms=10), demand_mbps=demand)


def test_prb_allocation_sla_first_then_priority():
    # per-PRB rate = v·Qm·(R/1024)·12·14·2^mu·1e3·(1 − 0.14) / 1e6 Mbps (TS 38.306 §4.1.2 with the MCS rate), mu = 1:
    #   urllc MCS 5 (2, 379): 0.21390 Mbps → SLA 4 Mbps needs 19 PRBs, demand 6 Mbps caps at 29
    #   embb MCS 20 (6, 567), 2 layers: 1.92000 Mbps → SLA 40 needs 21, demand 100 caps at 53
    #   mmtc MCS 0 (2, 120): 0.06773 Mbps → SLA 0.5 needs 8, demand 1 caps at 15
    # 19 + 21 + 8 = 48 of 51 PRBs; the 3 spare go to the highest priority-weighted rate: embb (1.92·2 > 0.214·4).
    slices = [_slice("urllc", 5, 1, 4.0, 6.0, 1), _slice("embb", 20, 2, 40.0, 100.0, 2),
              _slice("mmtc", 0, 1, 0.5, 1.0, 3)]
    alloc = analytics.allocate_prbs(_world(slices), "cell-1")
    assert alloc.feasible
    assert alloc.prbs == {"cell-1/urllc": 19, "cell-1/embb": 24, "cell-1/mmtc": 8}
    assert alloc.throughput_mbps["cell-1/embb"] == pytest.approx(24 * 2 * 6 * 567 / 1024 * 0.28896, rel=1e-6)


def test_prb_allocation_infeasible_when_sla_minimums_exceed_n_rb():
    slices = [_slice("urllc", 5, 1, 5.0, 6.0, 1), _slice("embb", 20, 2, 40.0, 100.0, 2),
              _slice("mmtc", 0, 1, 0.5, 1.0, 3)]  # 24 + 21 + 8 = 53 > 51
    alloc = analytics.allocate_prbs(_world(slices), "cell-1")
    assert not alloc.feasible and alloc.prbs == {}


def _topology():
    nodes = [TopologyNode(id=i, kind=k) for i, k in
             (("gnb-1", "gnb"), ("agg-1", "aggregation"), ("agg-2", "aggregation"), ("upf-1", "core"))]
    links = [TopologyLink(id=f"{a}~{b}", a=a, b=b, latency_ms=lat, capacity_gbps=cap) for a, b, lat, cap in (
        ("gnb-1", "agg-1", 1.0, 10), ("agg-1", "upf-1", 2.0, 100), ("gnb-1", "agg-2", 0.5, 25),
        ("agg-2", "agg-1", 0.4, 100), ("agg-2", "upf-1", 3.0, 400))]
    return Topology(nodes=nodes, links=links)


def test_shortest_path_and_failover():
    topo = _topology()
    best = analytics.shortest_path(topo, "gnb-1", "upf-1")
    assert best.path == ["gnb-1", "agg-2", "agg-1", "upf-1"]  # 0.5 + 0.4 + 2.0 = 2.9 ms beats 1.0 + 2.0
    assert best.latency_ms == pytest.approx(2.9)
    assert best.bottleneck_gbps == 25
    failover = analytics.shortest_path(topo, "gnb-1", "upf-1", ["agg-2~agg-1"])
    assert failover.path == ["gnb-1", "agg-1", "upf-1"] and failover.latency_ms == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no path"):
        analytics.shortest_path(topo, "gnb-1", "upf-1", ["gnb-1~agg-1", "gnb-1~agg-2"])
    with pytest.raises(KeyError, match="unknown link"):
        analytics.shortest_path(topo, "gnb-1", "upf-1", ["nope"])
    with pytest.raises(KeyError, match="unknown node"):
        analytics.shortest_path(topo, "gnb-9", "upf-1")


def test_forecast_recovers_a_clean_weekly_pattern():
    hours = np.arange(336 + 24)
    pattern = 40 + 20 * np.sin(2 * np.pi * hours / 24) + 10 * (hours % 168 >= 120)
    forecast = analytics.forecast_load(pattern[:336], 6)
    assert forecast.mean_pct == pytest.approx(pattern[336 + 5], abs=1.0)
    assert forecast.low_pct <= forecast.mean_pct <= forecast.high_pct
    with pytest.raises(ValueError, match="two weeks"):
        analytics.forecast_load(pattern[:100], 6)
    with pytest.raises(ValueError, match="horizon_h"):
        analytics.forecast_load(pattern[:336], 0)



@pytest.mark.slow
def test_the_fast_forecast_fit_is_statsmodels_default_fit_bit_for_bit():
    # The committed splits' load_forecast answers come from statsmodels' default fit: the exact gradient must leave
    # every forecast where it was (also the guard against a scipy or statsmodels upgrade changing either side).
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from netgpt.eval.harness import split_file
    from netgpt.tasks import load_tasks

    tasks = [t for t in load_tasks(split_file("dev")) if t.family == "load_forecast"][:2]
    for task in tasks:
        history = tuple(task.state.cell_series(task.params.cell_id).load_pct)
        path, resid_std = analytics._load_forecast_path.__wrapped__(history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = ExponentialSmoothing(np.asarray(history), seasonal="add", seasonal_periods=168,
                                             initialization_method="estimated").fit()
        np.testing.assert_array_equal(path, reference.forecast(168))
        assert resid_std == float(np.std(reference.resid))

def test_hours_until_threshold():
    hours = np.arange(336)
    pattern = 40 + 20 * np.sin(2 * np.pi * hours / 24)  # next hour 336 ≡ 0 mod 24 → rises to 60 at +6 h
    assert analytics.hours_until_threshold(pattern, 55.0) in (4, 5)
    assert analytics.hours_until_threshold(pattern, 95.0) is None


def test_anomaly_detector_finds_the_single_spike():
    spiky = _series("cell-2", seed=1)
    latency = list(spiky.kpi["latency_ms"])
    latency[20] = 60.0
    spiky = spiky.model_copy(update={"kpi": {**spiky.kpi, "latency_ms": latency}})
    found = analytics.detect_anomalies([_series("cell-1"), spiky])
    assert [(a.cell_id, a.metric, a.hours_ago) for a in found] == [("cell-2", "latency_ms", 27)]
    assert analytics.detect_anomalies([_series("cell-1")]) == []


def test_achievable_rate_outage_and_mcs():
    assert analytics.achievable_rate(-20.0, 51, 1, mu=1, fr=1).rate_mbps == 0.0
    high = analytics.achievable_rate(30.0, 51, 2, mu=1, fr=1)
    assert high.mcs_index == 28 and high.qm == 6  # top of Table 5.1.3.1-1 at high SINR
    assert high.rate_mbps == pytest.approx(51 * 2 * 6 * 948 / 1024 * 0.28896, rel=1e-9)
