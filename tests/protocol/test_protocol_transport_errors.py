"""Transport failures are told apart from the agents' own failures: ``Endpoint.deliver`` raises ``TransportError``
(connection refused, a server gone, a gateway's 5xx, a dead MCP server), the registry turns it into an
``unavailable`` reply unless asked to raise, and an agent's own errors (a crash, a timeout) stay replies."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from mcp import StdioServerParameters
from protocol_testkit import TOKEN, ProbeAgent, free_port, request, subprocess_env, uvicorn_thread
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from netgpt.protocol import AgentRegistry, ErrorCode, FaultConfig, TransportError
from netgpt.protocol.http_client import HttpAgentClient, not_an_agent_answer
from netgpt.protocol.mcp_client import McpAgentClient


def test_statuses_that_are_not_an_agent_answer() -> None:
    assert [s for s in (200, 400, 401, 403, 404, 408, 413, 422, 500, 502, 503, 504) if not_an_agent_answer(s)] == [
        401, 403, 404, 500, 502, 503]


@pytest.mark.anyio
async def test_deliver_raises_on_transport_failure_and_send_still_answers(server: tuple[str, AgentRegistry]) -> None:
    async with HttpAgentClient(server[0], token=TOKEN) as client:
        assert (await client.deliver(request("echo", {"text": "a"}))).ok
        crashed = await client.deliver(request("crash"))  # the agent's own failure: a reply, not a transport error
        assert crashed.error.code == ErrorCode.INTERNAL
        late = await client.deliver(request("sleep", {"ms": 500}, deadline_ms=100.0))
        assert late.error.code == ErrorCode.TIMEOUT
    async with HttpAgentClient(server[0], token="wrong") as client:
        with pytest.raises(TransportError, match="401"):
            await client.deliver(request("echo", {"text": "a"}))
    async with HttpAgentClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError, match="unreachable"):
            await client.deliver(request("echo", {"text": "a"}))
        assert (await client.send(request("echo", {"text": "a"}))).error.code == ErrorCode.UNAVAILABLE


async def _cards(_request) -> JSONResponse:
    return JSONResponse([ProbeAgent.card.model_dump(mode="json")])


async def _bad_gateway(_request) -> JSONResponse:
    return JSONResponse({"message": "upstream agent server is down"}, status_code=502)


def test_a_gateway_error_is_a_transport_error() -> None:
    """A reverse proxy in front of an agent server: the cards are cached, the upstream is down (502)."""
    gateway = Starlette(routes=[Route("/agents", _cards), Route("/call", _bad_gateway, methods=["POST"])])
    with AgentRegistry(FaultConfig(simulate=False)) as reg, uvicorn_thread(gateway) as url:
        reg.add_endpoint(HttpAgentClient(url))
        with pytest.raises(TransportError, match="502.*upstream agent server is down"):
            reg.call(request("echo", {"text": "a"}), raise_transport_errors=True)
        relayed = reg.call(request("echo", {"text": "a"}))  # what a server relaying the call answers its caller
        assert relayed.error.code == ErrorCode.UNAVAILABLE and "502" in relayed.error.message and relayed.cost == 0


@pytest.mark.slow
def test_a_dead_mcp_server_is_a_transport_error(tmp_path: Path) -> None:
    pidfile = tmp_path / "server.pid"
    config = tmp_path / "agents.yaml"
    config.write_text(f"agents:\n  - factory: protocol_testkit:ProbeAgent\n    options: {{pidfile: '{pidfile}'}}\n")
    params = StdioServerParameters(command=sys.executable, env=subprocess_env(),
                                   args=["-m", "netgpt.protocol.cli", "mcp", "--config", str(config)])
    with AgentRegistry(FaultConfig(simulate=False)) as reg:
        reg.add_endpoint(McpAgentClient("ext", params, timeout=20))
        crashed = reg.call(request("probe__crash", agent="ext"), raise_transport_errors=True)
        assert crashed.error.code == ErrorCode.INTERNAL  # the tool's own failure
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        with pytest.raises(TransportError, match="unreachable"):
            reg.call(request("probe__echo", {"text": "a"}, agent="ext"), raise_transport_errors=True)
        assert reg.call(request("probe__echo", {"text": "back"}, agent="ext")).result == {"text": "back"}


def test_in_process_agents_never_raise_transport_errors() -> None:
    with AgentRegistry(FaultConfig(simulate=False)) as reg:
        reg.register(ProbeAgent())
        assert reg.call(request("crash"), raise_transport_errors=True).error.code == ErrorCode.INTERNAL
