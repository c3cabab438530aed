"""An agent server killed in the middle of an episode, never an exception or a hang: a deployed core gets an
`unavailable` reply and the episode ends normally (scored, session released); a measured episode (evaluation, RL)
ends at once as `infra_error`, unscored."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from netgpt.core.episode import EpisodeConfig, run_episodes
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry, FaultConfig
from netgpt.protocol.http_client import HttpAgentClient
from netgpt.reward import Budget
from netgpt.tasks import load_tasks

TASK = next(t for t in load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")
            if t.family == "tbs" and len(t.reference_plan) == 2)


def _serve():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "netgpt.protocol.cli", "serve", "--port", str(port),
                             "--log-level", "warning", "--no-auth"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "agent server did not come up"
            time.sleep(0.1)


# failed connections are charged like any call; a roomy latency budget lets the oracle's retries play out
ROOMY = EpisodeConfig(max_turns=6, budget=Budget(latency_ms=60_000))


class KillAfterFirstReply(OraclePolicy):
    def __init__(self, proc):
        self.proc = proc

    def observe(self, index, reply_text):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        super().observe(index, reply_text)


@pytest.mark.slow
def test_agent_server_dies_mid_episode():
    url, proc = _serve()
    try:
        with AgentRegistry(FaultConfig(simulate=False)) as registry:
            registry.add_endpoint(HttpAgentClient(url, timeout=5.0))
            start = time.monotonic()
            [result] = run_episodes([TASK], KillAfterFirstReply(proc), registry, ROOMY, lambda s: len(s) // 4)
            assert time.monotonic() - start < 30
    finally:
        if proc.poll() is None:
            proc.kill()
    first, *rest = result.events
    assert first.ok                                              # phy.mcs answered before the server died
    assert [e.error_code for e in rest if e.kind == "call"] == ["unavailable"] * 3  # tbs, then two retries
    assert result.finish_reason == "answer" and result.answer == "unknown" and result.reward.total == 0.0


def test_agent_server_death_ends_a_measured_episode_as_infra_error():
    url, proc = _serve()
    try:
        with AgentRegistry(FaultConfig(simulate=False)) as registry:
            registry.add_endpoint(HttpAgentClient(url, timeout=5.0))
            [result] = run_episodes([TASK], KillAfterFirstReply(proc), registry, ROOMY, lambda s: len(s) // 4,
                                    end_on_infra_error=True)
            assert not registry.has_session("ep-" + TASK.id + "-0")  # released all the same
    finally:
        if proc.poll() is None:
            proc.kill()
    first, second = result.events
    assert first.ok and second.kind == "call" and second.error_code == "unavailable" and second.reply is None
    assert result.finish_reason == "infra_error" and result.answer is None and result.turns == 2
    assert "unreachable" in result.infra_error and second.error == result.infra_error
    assert result.reward.model_dump() == {"quality": 0.0, "coordination": 0.0, "resource": 0.0, "total": 0.0}
