"""An agent server that dies in the middle of a request: the client still gets a 200 with an answer, and the
failure is in the trace (never a 500 or a hang)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import openai
import pytest
from serve_testkit import MODEL, TBS_QUESTION, TOKEN, free_port, serving

from netgpt.core.episode import EpisodeConfig
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry, FaultConfig
from netgpt.protocol.http_client import HttpAgentClient
from netgpt.reward import Budget


def _agent_server() -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
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


class KillAfterFirstReply(OraclePolicy):
    """The oracle, killing the agent server as soon as the first reply of the batch is back."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def observe(self, index, reply_text):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        super().observe(index, reply_text)


@pytest.mark.slow
def test_agent_server_dies_mid_request() -> None:
    url, proc = _agent_server()
    # refused connections are charged like calls; a roomy latency budget lets the oracle's retries play out
    roomy = EpisodeConfig(max_turns=6, budget=Budget(latency_ms=60_000))
    try:
        with AgentRegistry(FaultConfig(simulate=False)) as registry:
            registry.add_endpoint(HttpAgentClient(url, timeout=5.0))
            with serving(KillAfterFirstReply(proc), registry, episode=roomy) as base:
                client = openai.OpenAI(api_key=TOKEN, base_url=f"{base}/v1", max_retries=0, timeout=60)
                start = time.monotonic()
                reply = client.chat.completions.create(model=MODEL,
                                                       messages=[{"role": "user", "content": TBS_QUESTION}])
                assert time.monotonic() - start < 30
                calls = [e for e in reply.netgpt["events"] if e["kind"] == "call"]
                assert calls[0]["skill"] == "mcs" and calls[0]["ok"]           # answered before the server died
                assert [c["error_code"] for c in calls[1:]] == ["unavailable"] * 3  # tbs, then two retries
                assert reply.choices[0].message.content == "unknown" and reply.choices[0].finish_reason == "stop"
                # the agent stays dead: the next request fails at its first call, still with a 200
                again = client.chat.completions.create(model=MODEL,
                                                       messages=[{"role": "user", "content": TBS_QUESTION}])
                assert again.netgpt["events"][0]["error_code"] == "unavailable"
    finally:
        if proc.poll() is None:
            proc.kill()
