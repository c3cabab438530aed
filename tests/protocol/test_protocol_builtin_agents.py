"""The real agents of ``netgpt.agents`` behind the protocol: reference plans of the committed dev split run
through the registry in-process and over HTTP, with the tasks' injected faults."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from protocol_testkit import uvicorn_thread

from netgpt.protocol import AgentFaultConfig, AgentRegistry, FaultConfig, Reply, Request
from netgpt.protocol.config import BUILTIN_AGENTS, builtin_faults
from netgpt.protocol.mcp_server import build_mcp_server

if importlib.util.find_spec("netgpt.agents") is None:
    pytest.skip("netgpt.agents is not there yet", allow_module_level=True)

from netgpt.tasks import Task, load_tasks  # noqa: E402  (after the skip: the agents read tasks' worlds)

DEV = Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl"


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    """The dev split, keeping one traffic forecast task: a forecast takes about a second of CPU."""
    all_tasks = load_tasks(DEV)
    forecasts = [t for t in all_tasks if any(c.agent == "traffic" for c in t.reference_plan)]
    return [t for t in all_tasks if t not in forecasts[1:]]


def run_plan(reg: AgentRegistry, task: Task, session: str) -> list[Reply]:
    reg.open_session(session, task.state, task.faults)
    replies = [reg.call(Request(id=f"{session}-{i}", agent=c.agent, skill=c.skill, args=c.args, session=session))
               for i, c in enumerate(task.reference_plan)]
    reg.close_session(session)
    return replies


def check(task: Task, replies: list[Reply]) -> None:
    for call, reply in zip(task.reference_plan, replies, strict=True):
        if call.expect_error:
            assert reply.error is not None and reply.error.code == call.expect_error, (task.id, reply)
        else:
            assert reply.ok, (task.id, call, reply.error)


def test_builtin_registry_and_mcp_tools() -> None:
    with AgentRegistry.from_config() as reg:
        assert [c.name for c in reg.cards()] == list(BUILTIN_AGENTS)
        assert reg.faults.config == builtin_faults()
        server = build_mcp_server(reg)
        assert server.name == "netgpt-agents"


def test_dev_reference_plans_run_in_process(tasks: list[Task]) -> None:
    with AgentRegistry.from_config(faults=FaultConfig(simulate=False)) as reg:
        for task in tasks:
            check(task, run_plan(reg, task, task.id))


@pytest.fixture(scope="module")
def builtin_server() -> Iterator[str]:
    from netgpt.protocol.http_server import create_app

    hosted = AgentRegistry.from_config(faults=FaultConfig(simulate=False), offload_local=True)
    with uvicorn_thread(create_app(hosted, mcp=False)) as url:
        yield url
    hosted.close()


def reliable() -> FaultConfig:
    """The benchmark's fault model without random failures, so that only the tasks' injected faults fail."""
    faults = builtin_faults()
    agents = {name: (faults.agents.get(name) or AgentFaultConfig()).model_copy(update={"failure_prob": 0.0})
              for name in BUILTIN_AGENTS}
    return faults.model_copy(update={"agents": agents})


def test_http_gives_the_same_replies_as_in_process(tasks: list[Task], builtin_server: str, tmp_path: Path) -> None:
    sample = [t for i, t in enumerate(tasks) if i % 8 == 0]
    config = tmp_path / "agents.yaml"
    config.write_text(f"agents:\n  - {{kind: http, url: '{builtin_server}'}}\n")
    with AgentRegistry.from_config(faults=reliable()) as local, \
            AgentRegistry.from_config(config, faults=reliable()) as remote:
        for task in sample:
            here, there = run_plan(local, task, task.id), run_plan(remote, task, task.id)
            check(task, here)
            assert there == here, task.id  # same seeds, same bytes: the transport does not show


def test_cheap_sinr_is_noisy_precise_sinr_is_not(tasks: list[Task]) -> None:
    task = next(t for t in tasks if any(c.skill == "sinr" for c in t.reference_plan))
    ue = next(c.args["ue_id"] for c in task.reference_plan if c.skill == "sinr")
    with AgentRegistry.from_config() as reg:
        reg.open_session("s", task.state)
        sinr = {agent: [r.result["sinr_db"] for r in (reg.call(Request(
            id=str(i), agent=agent, skill="sinr", args={"ue_id": ue}, session="s", deadline_ms=1e6))
            for i in range(60)) if r.ok] for agent in ("channel", "channel_lite")}
    exact = sinr["channel"][0]
    assert len(set(sinr["channel"])) == 1
    errors = np.array(sinr["channel_lite"]) - exact
    assert 0.6 < errors.std() < 1.5 and abs(errors.mean()) < 0.8
