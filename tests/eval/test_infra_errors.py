"""The agent server killed in the middle of an evaluation: the episodes after the kill are ``infra_error``, kept out
of the score and counted; past the threshold the run is refused; after a restart, re-running only those episodes
gives the clean run's episodes and aggregate bit for bit (scripted policy, simulated latency)."""

import subprocess
import sys
from pathlib import Path

import pytest
from loopback import free_port, wait_until_healthy

from netgpt.core.episode import EpisodeConfig
from netgpt.core.factory import PolicySpec
from netgpt.core.policies import AlwaysPolicy
from netgpt.distributed.worker import RolloutWorker, WorkerSpec
from netgpt.eval.harness import (
    EpisodeLog,
    InfraErrorThresholdExceeded,
    aggregate,
    check_infra_errors,
    episodes_to_run,
    evaluate,
    finished_episodes,
    infra_error_episodes,
    task_order,
)
from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import HttpAgentEntry, RegistryConfig, builtin_faults
from netgpt.tasks import load_tasks

TASKS = load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")[:12]
BATCH = 4  # the kill lands between the first batch and the second
# the deadline is also the HTTP read timeout, in wall time: on a loaded machine the server's first forecast (which
# imports the fit's libraries) can pass the default 2 s, a real timeout in one run and not in the other
CONFIG = EpisodeConfig(deadline_ms=30_000)
SETTINGS = {"policy": "always", "split": "dev", "seed": 0}


def count_tokens(text: str) -> int:
    return len(text) // 4


def start_agent_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "netgpt.protocol.cli", "serve", "--port", str(port),
                             "--log-level", "warning", "--no-mcp", "--no-auth"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_healthy(f"http://127.0.0.1:{port}", proc, 60, "agent server")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def run_eval(port: int, tasks, on_result=lambda r: None):
    """What ``netgpt eval --policy always --agents <http>`` runs: the agents behind HTTP, the benchmark's simulated
    faults and latency in the core's registry (so the episodes do not depend on the wall clock)."""
    config = RegistryConfig(agents=[HttpAgentEntry(kind="http", url=f"http://127.0.0.1:{port}")],
                            faults=builtin_faults())
    policy = AlwaysPolicy()
    policy.batch_size = BATCH
    with AgentRegistry.from_config(config) as registry:
        return evaluate(tasks, policy, registry, CONFIG, count_tokens, on_result)


@pytest.mark.slow
def test_a_killed_agent_server_is_infra_error_and_resume_repairs_the_run(tmp_path):
    port = free_port()
    server = start_agent_server(port)
    try:
        clean, clean_agg = run_eval(port, TASKS)
        seen: list = []

        def kill_after_first_batch(result) -> None:
            seen.append(result)
            if len(seen) == BATCH:
                stop(server)

        broken, broken_agg = run_eval(port, TASKS, kill_after_first_batch)
    finally:
        stop(server)
    assert server.returncode is not None and len(seen) == len(TASKS)

    # the always policy never retries: an episode reaches the server iff one of its calls succeeded in the clean run
    first_batch = {r.task_id for r in seen[:BATCH]}
    reached = {r.task_id for r in clean if any(e.kind == "call" and e.ok for e in r.events)}
    expected = [t.id for t in TASKS if t.id in reached - first_batch]
    assert len(expected) >= 4, "too few tasks reach the agent server to test anything"
    assert infra_error_episodes(broken) == expected
    by_id = {r.task_id: r for r in broken}
    for task_id in expected:
        result = by_id[task_id]
        assert result.finish_reason == "infra_error" and result.reward.total == 0.0
        assert f"127.0.0.1:{port}" in result.infra_error and "ConnectError" in result.infra_error
        assert "\n" not in result.infra_error
        assert result.events[-1].error_code == "unavailable" and result.events[-1].reply is None
    assert [r for r in broken if r.task_id not in expected] == [r for r in clean if r.task_id not in expected]
    assert clean_agg.infra_errors == 0 and not infra_error_episodes(clean)

    # the score is the other episodes' score, with the failures counted beside it
    scored = aggregate("always", [r for r in clean if r.task_id not in expected])
    assert broken_agg == scored.model_copy(update={"infra_errors": len(expected)})
    assert broken_agg.n == len(TASKS) - len(expected) and broken_agg.score != clean_agg.score

    check_infra_errors(clean)
    with pytest.raises(InfraErrorThresholdExceeded) as refused:
        check_infra_errors(broken)
    assert refused.value.count == len(expected) and refused.value.total == len(TASKS)
    assert f"{len(expected)} of {len(TASKS)} episodes" in str(refused.value)
    assert f"task {expected[0]}: {by_id[expected[0]].infra_error}" in str(refused.value)
    check_infra_errors(broken, max_fraction=len(expected) / len(TASKS))  # at the threshold is still allowed

    # the killed run's episode log, as `netgpt eval` leaves it; resuming keeps all but the infra_error episodes
    out = tmp_path / "run"
    log = EpisodeLog(out, SETTINGS, "netgpt eval --policy always")
    for result in broken:
        log.write(result)
    log.close(remove=False)
    kept, _ = finished_episodes(out, SETTINGS)
    assert sorted(kept) == sorted(t.id for t in TASKS if t.id not in expected)
    todo = episodes_to_run(TASKS, kept)
    assert [t.id for t in todo] == expected

    server = start_agent_server(port)  # restarted where the run expects it
    try:
        rerun, _ = run_eval(port, todo)
    finally:
        stop(server)
    repaired = task_order(TASKS, [*kept.values(), *rerun])
    assert [r.model_dump() for r in repaired] == [r.model_dump() for r in clean]
    assert aggregate("always", repaired).model_dump() == clean_agg.model_dump()
    check_infra_errors(repaired)


@pytest.mark.slow
def test_a_worker_process_marks_a_dead_agent_server_as_infra_error(tmp_path):
    """The process and Ray backends run episodes in a ``RolloutWorker``: it ends them as a local eval does."""
    port = free_port()
    agents = tmp_path / "agents.yaml"
    agents.write_text(f"agents:\n  - {{kind: http, url: 'http://127.0.0.1:{port}'}}\n")
    server = start_agent_server(port)
    try:
        worker = RolloutWorker(WorkerSpec(policy=PolicySpec(name="always"), agents=str(agents),
                                          faults=builtin_faults(), episode=CONFIG))
    finally:
        stop(server)
    results = worker.run(TASKS[:3])
    assert [r.finish_reason for r in results] == ["infra_error"] * 3
    assert all(r.infra_error for r in results)
