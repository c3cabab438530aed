"""The registry's fault model: seeded failures, latency, noise, link delay, deadlines and injected faults."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from protocol_testkit import ProbeAgent, request

from netgpt.protocol import (
    AgentFaultConfig,
    AgentRegistry,
    ErrorCode,
    FaultConfig,
    FaultInjection,
    LatencyModel,
    LinkConfig,
)
from netgpt.protocol.config import builtin_faults, load_config
from netgpt.world import World

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def make(config: FaultConfig | None = None) -> AgentRegistry:
    reg = AgentRegistry(config)
    reg.register(ProbeAgent())
    return reg


def trace(reg: AgentRegistry, session: str, n: int = 20) -> list[tuple[bool, float, dict | None]]:
    return [(r.ok, r.latency_ms, r.result) for r in
            (reg.call(request("measure", {"value": 10.0}, id=f"{session}-{i}", session=session)) for i in range(n))]


FLAKY = FaultConfig(seed=7, agents={"probe": AgentFaultConfig(failure_prob=0.3, noise={"value": 1.0})})


def test_same_seed_same_fate_other_seed_differs() -> None:
    a, b = trace(make(FLAKY), "ep"), trace(make(FLAKY), "ep")
    assert a == b
    assert any(not ok for ok, _, _ in a) and any(ok for ok, _, _ in a)
    assert trace(make(FLAKY.model_copy(update={"seed": 8})), "ep") != a
    assert trace(make(FLAKY), "other-episode") != a


def test_fate_does_not_depend_on_how_episodes_interleave() -> None:
    alone = {s: trace(make(FLAKY), s, 8) for s in ("e1", "e2")}
    reg = make(FLAKY)
    mixed: dict[str, list] = {"e1": [], "e2": []}
    for s in ["e2", "e1", "e1", "e2", "e2", "e1"] * 3 + ["e1", "e2"] * 2:
        if len(mixed[s]) < 8:
            r = reg.call(request("measure", {"value": 10.0}, id=f"{s}-{len(mixed[s])}", session=s))
            mixed[s].append((r.ok, r.latency_ms, r.result))
    assert mixed == alone


def test_failure_rate_and_latency_follow_the_models() -> None:
    model = LatencyModel(median_ms=50.0, sigma=0.5, floor_ms=5.0)
    config = FaultConfig(seed=1, default_link=LinkConfig(rtt_ms=0.0, bandwidth_mbps=1e9),
                         agents={"probe": AgentFaultConfig(failure_prob=0.2, latency=model)})
    reg = make(config)
    replies = [reg.call(request("echo", {"text": "a"}, id=str(i), session="s")) for i in range(2000)]
    failures = [r for r in replies if not r.ok]
    assert all(r.error.code == ErrorCode.UNAVAILABLE and r.cost == 0 for r in failures)
    assert abs(len(failures) / len(replies) - 0.2) < 0.03
    service = np.array([r.latency_ms for r in replies if r.ok]) - model.floor_ms
    assert abs(np.median(service) / model.median_ms - 1) < 0.06
    assert abs(np.std(np.log(service)) - model.sigma) < 0.03


def test_card_defaults_apply_without_overrides(registry: AgentRegistry) -> None:
    reply = registry.call(request("echo", {"text": "a"}))
    card = ProbeAgent.card
    link = LinkConfig()
    assert reply.ok and reply.cost == card.cost.per_call_cost
    assert reply.latency_ms > card.cost.latency.floor_ms + link.delay_ms(reply.bytes_sent + reply.bytes_received)


def test_latency_is_service_plus_link_delay() -> None:
    fixed = LatencyModel(median_ms=30.0, sigma=0.0)
    link = LinkConfig(rtt_ms=12.0, bandwidth_mbps=0.5)
    reg = make(FaultConfig(links={"probe": link}, agents={"probe": AgentFaultConfig(latency=fixed, per_call_cost=4)}))
    reply = reg.call(request("echo", {"text": "x" * 100, "times": 5}))
    n = reply.bytes_sent + reply.bytes_received
    assert reply.latency_ms == pytest.approx(30.0 + 12.0 + n * 8 / 500.0)
    assert reply.cost == 4


def test_a_reply_past_the_deadline_is_a_timeout_charged_at_the_deadline() -> None:
    slow = FaultConfig(agents={"probe": AgentFaultConfig(latency=LatencyModel(median_ms=400.0, sigma=0.0))})
    reg = make(slow)
    late = reg.call(request("echo", {"text": "a"}, deadline_ms=300.0))
    assert not late.ok and late.error.code == ErrorCode.TIMEOUT and late.result is None
    assert late.latency_ms == 300.0 and late.cost == ProbeAgent.card.cost.per_call_cost
    assert "300 ms" in late.error.message
    on_time = reg.call(request("echo", {"text": "a"}, deadline_ms=500.0))
    assert on_time.ok and 400.0 < on_time.latency_ms < 500.0


def test_noise_on_configured_fields_only() -> None:
    config = FaultConfig(agents={"probe": AgentFaultConfig(noise={"value": 2.0, "series": 1.0, "nested.value": 0.5,
                                                                  "label": 3.0, "absent": 1.0})})
    reg = make(config)
    results = [reg.call(request("measure", {"value": 10.0}, id=str(i))).result for i in range(400)]
    values = np.array([r["value"] for r in results])
    assert abs(values.mean() - 10.0) < 0.3 and abs(values.std() - 2.0) < 0.25
    assert abs(np.std([r["nested"]["value"] for r in results]) - 0.5) < 0.07
    assert all(len(r["series"]) == 2 and r["series"][1] != 20.0 for r in results)
    assert all(r["label"] == "x" for r in results)
    exact = make().call(request("measure", {"value": 10.0})).result
    assert exact == {"value": 10.0, "series": [10.0, 20.0], "label": "x", "nested": {"value": 10.0}}


def test_noise_config_does_not_change_which_calls_fail() -> None:
    quiet = FaultConfig(seed=3, agents={"probe": AgentFaultConfig(failure_prob=0.4)})
    noisy = FaultConfig(seed=3, agents={"probe": AgentFaultConfig(failure_prob=0.4, noise={"value": 5.0})})
    plain, perturbed = trace(make(quiet), "e"), trace(make(noisy), "e")
    assert [ok for ok, _, _ in plain] == [ok for ok, _, _ in perturbed]
    # latencies differ only by the link time of the few extra bytes that noisy floats take
    assert [lat for _, lat, _ in plain] == pytest.approx([lat for _, lat, _ in perturbed], abs=0.01)


def test_injected_faults_hit_the_first_calls_of_their_agent(state: World) -> None:
    reg = make(FaultConfig(agents={"probe": AgentFaultConfig(failure_prob=0.0)}))
    reg.open_session("ep", state, faults=[FaultInjection(agent="probe", calls=2, code="unavailable"),
                                          {"agent": "probe", "calls": 1, "code": "timeout"},
                                          {"agent": "other", "calls": 5, "code": "internal"}])
    invalid = reg.call(request("echo", {"text": 1}, session="ep"))
    assert invalid.error.code == ErrorCode.INVALID_ARGS  # rejected calls never reach the agent: not counted
    codes = [r.error.code if r.error else "ok" for r in
             (reg.call(request("cell_count", session="ep", deadline_ms=900.0)) for _ in range(5))]
    assert codes == [ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, "ok", "ok"]
    assert reg.call(request("echo", {"text": "a"}, session="ep")).ok
    reg.open_session("ep", state, faults=[{"agent": "probe", "code": "internal"}])  # replacing resets the counts
    crashed = reg.call(request("echo", {"text": "a"}, session="ep"))
    assert crashed.error.code == ErrorCode.INTERNAL and crashed.cost > 0 and crashed.latency_ms > 0
    assert reg.call(request("echo", {"text": "a"}, session="ep")).ok


def test_injected_faults_from_task_objects(state: World) -> None:
    from netgpt.tasks import InjectedFault

    reg = make(FaultConfig(simulate=False))
    reg.open_session("t", state, faults=[InjectedFault(agent="probe", calls=1, code="timeout")])
    first = reg.call(request("cell_count", session="t", deadline_ms=250.0))
    assert first.error.code == ErrorCode.TIMEOUT and first.latency_ms == 250.0
    assert reg.call(request("cell_count", session="t")).ok


def test_sessions_gate_stateful_skills(registry: AgentRegistry, state: World) -> None:
    for session, why in [(None, "no session id"), ("nope", "'nope' is not open")]:
        reply = registry.call(request("cell_count", session=session))
        assert reply.error.code == ErrorCode.INVALID_ARGS and why in reply.error.message and reply.cost == 0
    registry.open_session("ep", state)
    assert registry.has_session("ep")
    assert registry.call(request("cell_count", session="ep")).result["cells"] == len(state.cells)
    assert registry.close_session("ep") and not registry.close_session("ep")
    assert registry.call(request("cell_count", session="ep")).error.code == ErrorCode.INVALID_ARGS


def test_session_ids_must_fit_in_a_url(registry: AgentRegistry, state: World) -> None:
    registry.open_session("dev-00001:sample#3", state)
    for bad in ["", "a/b", "a b", "x" * 129]:
        with pytest.raises(ValueError, match="session id"):
            registry.open_session(bad, state)


def test_unknown_agent_costs_nothing(registry: AgentRegistry) -> None:
    reply = registry.call(request("echo", {"text": "a"}, agent="ghost"))
    assert reply.error.code == ErrorCode.UNKNOWN_AGENT and reply.latency_ms == 0 and reply.cost == 0
    assert reply.bytes_sent > 0 and reply.bytes_received > 0


def test_measured_mode_reports_wall_time_without_random_faults() -> None:
    reg = make(FaultConfig(simulate=False, agents={"probe": AgentFaultConfig(failure_prob=1.0)}))
    reply = reg.call(request("sleep", {"ms": 30}))
    assert reply.ok and 30 <= reply.latency_ms < 1000
    late = reg.call(request("sleep", {"ms": 60}, deadline_ms=20.0))
    assert late.error.code == ErrorCode.TIMEOUT and late.latency_ms == 20.0


def test_realtime_sleeps_the_simulated_latency() -> None:
    reg = make(FaultConfig(realtime=True, default_link=LinkConfig(rtt_ms=0.0),
                           agents={"probe": AgentFaultConfig(latency=LatencyModel(median_ms=80.0, sigma=0.0))}))
    start = time.perf_counter()
    reply = reg.call(request("echo", {"text": "a"}))
    assert (time.perf_counter() - start) * 1e3 >= reply.latency_ms - 1 > 79


@pytest.mark.anyio
async def test_async_and_sync_calls_agree(state: World) -> None:
    sync_reg, async_reg = make(FLAKY), make(FLAKY)
    for reg in (sync_reg, async_reg):
        reg.open_session("ep", state)
    reqs = [request("cell_count", id=str(i), session="ep") for i in range(10)]
    assert [await async_reg.acall(r) for r in reqs] == [sync_reg.call(r) for r in reqs]


@pytest.mark.anyio
async def test_concurrent_episodes_get_the_same_fate_as_sequential_ones(state: World) -> None:
    def episode_requests(session: str) -> list:
        return [request("measure", {"value": 1.0}, id=f"{session}-{i}", session=session) for i in range(6)]

    sequential, concurrent = make(FLAKY), make(FLAKY)
    expected = {s: [sequential.call(r) for r in episode_requests(s)] for s in ("a", "b", "c")}

    async def run(session: str) -> list:
        return [await concurrent.acall(r) for r in episode_requests(session)]

    results = await asyncio.gather(*(run(s) for s in ("c", "a", "b")))
    assert dict(zip(("c", "a", "b"), results, strict=True)) == expected


def test_example_configs_load_and_match_the_builtin_defaults() -> None:
    assert FaultConfig.load(CONFIGS / "faults.yaml") == builtin_faults()
    config = load_config(CONFIGS / "agents.yaml")
    assert config.fault_config() == builtin_faults()
    assert [e.name for e in config.agents] == ["channel", "channel_lite", "phy", "knowledge", "traffic",
                                               "traffic_lite", "ran", "topology", "kpi"]


def test_bad_fault_configs_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    for text in ["agents: {probe: {failure_prob: 1.5}}", "default_link: {bandwidth_mbps: 0}", "sede: 1",
                 "agents: {probe: {noise: {x: -1}}}"]:
        path.write_text(text)
        with pytest.raises(ValueError):
            FaultConfig.load(path)
