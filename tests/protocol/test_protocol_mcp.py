"""MCP: skills as tools (in memory, over stdio and streamable HTTP) and external MCP servers as agents."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters
from protocol_testkit import TOKEN, ProbeAgent, request, subprocess_env

from netgpt.protocol import AgentRegistry, ErrorCode, FaultConfig, TransportError
from netgpt.protocol.mcp_client import McpAgentClient, reply_from_tool_result
from netgpt.protocol.mcp_server import REPLY_META_KEY, SESSION_META_KEY, build_mcp_server, tool_name
from netgpt.world import World


@pytest.fixture
async def client(state: World) -> AsyncIterator[Client]:
    reg = AgentRegistry(FaultConfig(simulate=False))
    reg.register(ProbeAgent())
    reg.open_session("ep", state)
    async with Client(build_mcp_server(reg)) as connected:
        yield connected


pytestmark = pytest.mark.anyio


async def test_every_skill_is_a_tool_with_its_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    card = ProbeAgent.card
    assert list(tools) == [f"probe__{s.name}" for s in card.skills]
    for skill in card.skills:
        tool = tools[tool_name("probe", skill.name)]
        assert tool.input_schema == skill.args_schema and tool.title == f"probe.{skill.name}"
        assert tool.annotations.read_only_hint
        assert ("_meta['netgpt/session']" in tool.description) == skill.needs_state
    assert tools["probe__echo"].output_schema == card.skill("echo").result_schema


async def test_calls_return_structured_results_and_typed_errors(client: Client) -> None:
    ok = await client.call_tool("probe__echo", {"text": "ab", "times": 2})
    assert not ok.is_error and ok.structured_content == {"text": "abab"}
    assert ok.content[0].text == '{"text": "abab"}'
    assert ok.meta[REPLY_META_KEY]["bytes_sent"] > 0
    for name, args, code in [("probe__crash", {}, ErrorCode.INTERNAL),
                             ("probe__echo", {"text": 1}, ErrorCode.INVALID_ARGS),
                             ("probe__echo", {"text": "a", "x": 1}, ErrorCode.INVALID_ARGS),
                             ("probe__cell_count", {}, ErrorCode.INVALID_ARGS)]:
        failed = await client.call_tool(name, args)
        assert failed.is_error and failed.structured_content["error"]["code"] == code
        assert failed.content[0].text.startswith(f"{code}: ")
    with pytest.raises(MCPError, match="unknown tool"):
        await client.call_tool("probe__fly", {})
    assert not (await client.call_tool("probe__echo", {"text": "still serving"})).is_error


async def test_stateful_tools_read_the_session_named_in_meta(client: Client, state: World) -> None:
    counted = await client.call_tool("probe__cell_count", {}, meta={SESSION_META_KEY: "ep"})
    assert counted.structured_content == {"cells": len(state.cells), "scenario": state.scenario}
    missing = await client.call_tool("probe__cell_count", {}, meta={SESSION_META_KEY: "nope"})
    assert missing.is_error and "'nope' is not open" in missing.content[0].text


async def test_legacy_handshake_clients_work_too(state: World) -> None:
    reg = AgentRegistry()
    reg.register(ProbeAgent())
    async with Client(build_mcp_server(reg), mode="legacy") as legacy:
        assert (await legacy.call_tool("probe__echo", {"text": "a"})).structured_content == {"text": "a"}


def test_tool_names_stay_portable() -> None:
    assert tool_name("channel_lite", "sinr") == "channel_lite__sinr"
    for agent in ["a.b", "a b", "x" * 130]:
        with pytest.raises(ValueError):
            tool_name(agent, "s")


def test_foreign_tool_results_become_replies() -> None:
    req = request("t", agent="ext")
    text = types.TextContent(text='{"a": 1}')
    assert reply_from_tool_result(req, types.CallToolResult(content=[text])).result == {"a": 1}
    plain = types.CallToolResult(content=[types.TextContent(text="hello")])
    assert reply_from_tool_result(req, plain).result == {"text": "hello"}
    structured = types.CallToolResult(content=[text], structured_content={"b": 2})
    assert reply_from_tool_result(req, structured).result == {"b": 2}
    failed = reply_from_tool_result(req, types.CallToolResult(content=[types.TextContent(text="nope")], is_error=True))
    assert failed.error.code == ErrorCode.INTERNAL and failed.error.message == "nope"
    coded = types.CallToolResult(content=[], is_error=True,
                                 structured_content={"error": {"code": "timeout", "message": "slow"}})
    assert reply_from_tool_result(req, coded).error.code == ErrorCode.TIMEOUT


def _probe_config(tmp_path: Path) -> tuple[Path, Path]:
    pidfile = tmp_path / "server.pid"
    config = tmp_path / "agents.yaml"
    config.write_text(f"agents:\n  - factory: protocol_testkit:ProbeAgent\n    options: {{pidfile: '{pidfile}'}}\n")
    return config, pidfile


@pytest.mark.slow
def test_stdio_server_as_an_agent_survives_the_process_dying(tmp_path: Path, state: World) -> None:
    config, pidfile = _probe_config(tmp_path)
    world_file = tmp_path / "world.json"
    world_file.write_text(state.model_dump_json())
    params = StdioServerParameters(command=sys.executable, env=subprocess_env(),
                                   args=["-m", "netgpt.protocol.cli", "mcp", "--config", str(config),
                                         "--state", str(world_file)])
    with AgentRegistry(FaultConfig(simulate=False)) as reg:
        card = reg.add_endpoint(McpAgentClient("ext", params, timeout=20))[0]
        assert card.name == "ext" and card.endpoint.startswith("stdio:")
        assert [s.name for s in card.skills] == [f"probe__{s.name}" for s in ProbeAgent.card.skills]
        assert not any(s.needs_state for s in card.skills)
        assert reg.call(request("probe__echo", {"text": "a"}, agent="ext")).result == {"text": "a"}
        # the server's default session holds --state, so its stateful tools work without a session id
        assert reg.call(request("probe__cell_count", agent="ext")).result["cells"] == len(state.cells)
        crashed = reg.call(request("probe__crash", agent="ext"))
        assert crashed.error.code == ErrorCode.INTERNAL and "boom" in crashed.error.message
        invalid = reg.call(request("probe__echo", {"text": 1}, agent="ext"))
        assert invalid.error.code == ErrorCode.INVALID_ARGS  # checked against the tool's inputSchema, not sent

        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        dead = reg.call(request("probe__echo", {"text": "a"}, agent="ext"))
        assert dead.error.code == ErrorCode.UNAVAILABLE and dead.cost == 0
        assert reg.call(request("probe__echo", {"text": "back"}, agent="ext")).result == {"text": "back"}


def test_streamable_http_server_as_an_agent(server: tuple[str, AgentRegistry]) -> None:
    url = f"{server[0]}/mcp"
    with AgentRegistry(FaultConfig(simulate=False)) as reg:
        reg.add_endpoint(McpAgentClient("remote", url, token=TOKEN, timeout=10))
        assert reg.call(request("probe__echo", {"text": "hi"}, agent="remote")).result == {"text": "hi"}
        slow = reg.call(request("probe__sleep", {"ms": 500}, agent="remote", deadline_ms=150.0))
        assert slow.error.code == ErrorCode.TIMEOUT
        assert reg.call(request("probe__echo", {"text": "again"}, agent="remote")).ok
    for token in (None, "wrong"):
        with AgentRegistry() as reg, pytest.raises(TransportError, match="cannot connect"):
            reg.add_endpoint(McpAgentClient("remote", url, token=token, timeout=10))
