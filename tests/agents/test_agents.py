"""The built-in agents: fixed skill signatures, typed errors, and the oracle's plans replayed on the test split."""

from pathlib import Path

import pytest

from netgpt import radio
from netgpt.agents import AGENT_CLASSES, build_agent, default_agents
from netgpt.protocol.agent import AgentError
from netgpt.protocol.messages import ErrorCode
from netgpt.tasks import family, load_tasks
from netgpt.tasks.io import read_tasks

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
AGENTS = {a.name: a for a in default_agents()}


def test_at_least_seven_agents_with_cards_and_schemas():
    assert len(AGENTS) >= 7
    for agent in AGENTS.values():
        assert agent.card.name == agent.name and agent.card.skills
        for s in agent.card.skills:
            assert s.args_schema["type"] == "object" and s.args_schema.get("additionalProperties") is False


def test_fixed_stateless_skills():
    # TR 38.901 UMa LOS PL1 at d2D = 100 m, 3.5 GHz, hBS 25 m, hUT 1.5 m: 28 + 22·log10(102.724) + 20·log10(3.5)
    pl = AGENTS["channel"].handle("pathloss", {"scenario": "uma", "d2d_m": 100, "fc_ghz": 3.5, "los": True}, None)
    assert pl == {"pathloss_db": pytest.approx(28 + 44.25681 + 10.88136, abs=1e-4)}  # 83.13817 dB
    # TS 38.214 §5.1.3.2: 64QAM R = 772/1024, 76 PRB, 14 symbols, 18 DMRS, 12 overhead, 1 layer → 47112 bits
    tbs = AGENTS["phy"].handle("tbs", {"qm": 6, "code_rate_x1024": 772, "layers": 1, "n_prb": 76, "n_symb": 14,
                                       "n_dmrs_per_prb": 18, "n_oh_per_prb": 12}, None)
    assert tbs == {"tbs_bits": 47112}
    # TS 38.306: 4 layers, 256QAM, f = 1, FR1 100 MHz at 30 kHz downlink → 273 PRB, mu = 1, OH 0.14 → 2337.00 Mbps
    rate = AGENTS["phy"].handle("peak_rate", {"layers": 4, "qm": 8, "scaling": 1.0, "fr": 1, "scs_khz": 30,
                                              "bandwidth_mhz": 100, "direction": "dl"}, None)
    assert rate == {"rate_mbps": pytest.approx(2337.00012, abs=1e-4), "n_prb": 273, "mu": 1, "overhead": 0.14}


def test_throughput_checks_a_target_when_given_one():
    # the target check must agree with the rate it reports, on both sides of it (the SINR → MCS → rate chain is
    # pinned in tests/world/test_analytics.py)
    args = {"sinr_db": 20.0, "n_prb": 50, "layers": 2, "mu": 1, "fr": 1}
    plain = AGENTS["phy"].handle("throughput", args, None)
    assert "meets_target" not in plain or plain["meets_target"] is None
    rate = plain["rate_mbps"]
    assert AGENTS["phy"].handle("throughput", {**args, "target_mbps": rate}, None)["meets_target"] is True
    assert AGENTS["phy"].handle("throughput", {**args, "target_mbps": rate + 0.01}, None)["meets_target"] is False
    with pytest.raises(AgentError) as info:
        AGENTS["phy"].handle("throughput", {**args, "target_mbps": -1}, None)
    assert info.value.code == ErrorCode.INVALID_ARGS


@pytest.mark.parametrize("args, needle", [
    ({"scs_khz": 45}, "45"),              # not an NR numerology
    ({"direction": "sidelink"}, "direction"),
    ({"bandwidth_mhz": 7}, "7"),          # no such channel bandwidth in TS 38.101-1 Table 5.3.2-1
])
def test_peak_rate_rejects_a_carrier_the_spec_does_not_define(args, needle):
    base = {"layers": 2, "qm": 6, "scaling": 1.0, "fr": 1, "scs_khz": 30, "bandwidth_mhz": 100, "direction": "dl"}
    with pytest.raises(AgentError) as info:
        AGENTS["phy"].handle("peak_rate", {**base, **args}, None)
    assert info.value.code == ErrorCode.INVALID_ARGS and needle in info.value.message


@pytest.mark.parametrize("skill, args, needle", [
    ("pathloss", {"scenario": "uma", "d2d_m": 100, "fc_ghz": 3.5}, "los"),                        # missing
    ("pathloss", {"scenario": "xyz", "d2d_m": 100, "fc_ghz": 3.5, "los": True}, "scenario"),       # enum
    ("pathloss", {"scenario": "uma", "d2d_m": 100, "fc_ghz": 3.5, "los": True, "x": 1}, "x"),     # extra
    ("pathloss", {"scenario": "uma", "d2d_m": 9000, "fc_ghz": 3.5, "los": True}, "d2d"),          # 38.901 range
    ("sinr", {"ue_id": "ue-1"}, "session"),                                                       # needs state
])
def test_bad_arguments_are_typed_invalid_args(skill, args, needle):
    with pytest.raises(AgentError) as info:
        AGENTS["channel"].handle(skill, args, None)
    assert info.value.code == ErrorCode.INVALID_ARGS and needle in info.value.message


def test_unknown_skill_and_unknown_ids():
    tasks = load_tasks(BENCH / "dev.jsonl")
    state = tasks[0].state
    with pytest.raises(AgentError) as info:
        AGENTS["phy"].handle("nope", {}, None)
    assert info.value.code == ErrorCode.UNKNOWN_SKILL
    with pytest.raises(AgentError) as info:
        AGENTS["traffic"].handle("forecast", {"cell_id": "cell-99", "horizon_h": 3}, state)
    assert info.value.code == ErrorCode.INVALID_ARGS and "cell-99" in info.value.message
    with pytest.raises(KeyError, match="unknown built-in agent"):
        build_agent("oracle")


@pytest.mark.parametrize("split", ["test", "ood"])
@pytest.mark.slow
def test_reference_plans_replayed_on_the_agents_give_the_answers(split):
    from netgpt.tasks import score_answer

    for line, task in read_tasks(BENCH / f"{split}.jsonl")[0]:
        results = [AGENTS[c.agent].handle(c.skill, c.args, task.state) for c in task.reference_plan
                   if c.expect_error is None]
        if not results:
            continue  # answered from the observation
        answer = family(task.family).answer_from_results(task.params, results)  # what the oracle writes
        assert score_answer(task.answer, str(answer)) == 1.0, (line, task.family, answer, task.answer)
        if task.family == "tbs" and len(results) == 2:
            assert results[0]["qm"] == task.reference_plan[1].args["qm"]
            assert results[0]["code_rate_x1024"] == task.reference_plan[1].args["code_rate_x1024"]
        if task.family == "sla_check":
            assert round(results[0]["sinr_db"], 2) == task.reference_plan[1].args["sinr_db"]
            assert results[1]["meets_target"] == (results[1]["rate_mbps"] >= task.params.target_mbps)


def test_channel_lite_is_coarse_but_close():
    tasks = [t for t in load_tasks(BENCH / "dev.jsonl") if t.family == "link_budget"]
    for task in tasks:
        ue = task.params.ue_id
        exact = AGENTS["channel"].handle("sinr", {"ue_id": ue}, task.state)["sinr_db"]
        coarse = AGENTS["channel_lite"].handle("sinr", {"ue_id": ue}, task.state)["sinr_db"]
        assert coarse == round(coarse) and abs(coarse - exact) <= 0.5


def test_ran_sleep_decision_and_traffic_threshold():
    task = next(t for t in load_tasks(BENCH / "dev.jsonl") if t.family == "load_forecast")
    decision = AGENTS["ran"].handle("sleep_decision", {"sleep_below_pct": 99.0, "max_load_pct": 100.0}, task.state)
    forecasts = [AGENTS["traffic"].handle("forecast", {"cell_id": c.id, "horizon_h": 1}, task.state)["mean_pct"]
                 for c in task.state.cells]
    assert decision["sleep"]  # at these thresholds the lightest cell always fits elsewhere
    assert sum(decision["awake_load_pct"].values()) == pytest.approx(sum(forecasts))  # load moves, never vanishes
    assert max(decision["awake_load_pct"].values()) <= 100.0
    assert AGENTS["ran"].handle("sleep_decision", {"sleep_below_pct": 0.001}, task.state)["sleep"] == []
    cell = task.params.cell_id
    never = AGENTS["traffic"].handle("time_to_threshold", {"cell_id": cell, "threshold_pct": 100}, task.state)
    assert never["hours"] is None


def test_knowledge_cites_sources_and_n_rb_matches_radio():
    k = AGENTS["knowledge"]
    hit = k.handle("search", {"query": "packet delay budget of 5QI 85"}, None)["passages"][0]
    assert hit["source"] == "TS 23.501 Table 5.7.4-1" and "5QI 85" in hit["text"] and "5 ms" in hit["text"]
    band = k.handle("search", {"query": "band n78 frequency range", "k": 1}, None)["passages"]
    assert "n78" in band[0]["text"] and "3300-3800" in band[0]["text"]
    assert k.handle("n_rb", {"fr": 1, "scs_khz": 30, "bandwidth_mhz": 100}, None)["n_rb"] == radio.n_rb(1, 30, 100)


def test_every_agent_class_is_buildable_by_name():
    for name in AGENT_CLASSES:
        assert build_agent(name).name == name


def test_traffic_lite_is_cheap_and_close_to_the_seasonal_pattern():
    assert AGENTS["traffic_lite"].card.cost.latency.median_ms < AGENTS["traffic"].card.cost.latency.median_ms
    task = next(t for t in load_tasks(BENCH / "dev.jsonl") if t.family == "load_forecast")
    history = task.state.cell_series(task.params.cell_id).load_pct
    lite = AGENTS["traffic_lite"].handle("forecast", {"cell_id": task.params.cell_id, "horizon_h": 1}, task.state)
    # horizon 1 = the next hour: the same hour one and two weeks before it is history[-168] and history[-336]
    assert lite["mean_pct"] == pytest.approx((history[-168] + history[-336]) / 2)
    assert lite["low_pct"] <= lite["mean_pct"] <= lite["high_pct"]


def test_protocol_default_config_hosts_every_built_in_agent():
    from netgpt.protocol.config import BUILTIN_AGENTS, load_config

    assert set(BUILTIN_AGENTS) == set(AGENT_CLASSES)
    assert {a.name for a in load_config(Path(__file__).resolve().parents[2] / "configs" / "agents.yaml").agents
            if getattr(a, "name", None)} == set(AGENT_CLASSES)
