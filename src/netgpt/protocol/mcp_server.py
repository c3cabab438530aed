"""Every agent skill as an MCP tool, over stdio or streamable HTTP (official ``mcp`` SDK, low-level server).

Tool names are ``<agent>__<skill>``: MCP allows ``[A-Za-z0-9._-]{1,128}`` (SEP-986), but the function-calling
APIs MCP tools are usually forwarded to accept only ``[A-Za-z0-9_-]``, so the separator avoids the dot. A tool's
``inputSchema`` is the skill's ``args_schema`` and its ``outputSchema`` the ``result_schema``. Results come back
as structured content plus the same JSON as text; NetGPT errors are ``isError`` results whose structured
content is ``{"error": {"code", "message"}}``. An unknown tool name is a protocol error (``-32602``), as the
MCP specification asks. Stateful skills read the session named in the request's ``_meta["netgpt/session"]``,
else the server's default session (e.g. a world loaded with ``netgpt agents mcp --state``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError

import netgpt
from netgpt.protocol.dispatch import ACCOUNTING_FIELDS
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request, Skill
from netgpt.protocol.registry import AgentRegistry

SESSION_META_KEY = "netgpt/session"
DEADLINE_META_KEY = "netgpt/deadline_ms"
REPLY_META_KEY = "netgpt/reply"
TOOL_SEPARATOR = "__"
MCP_SESSION_IDLE_S = 600.0
"""An MCP streamable-HTTP session with no request for this long is closed (the SDK's default: 30 minutes)."""
_PORTABLE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def tool_name(agent: str, skill: str) -> str:
    name = f"{agent}{TOOL_SEPARATOR}{skill}"
    if not _PORTABLE_NAME.fullmatch(name):
        raise ValueError(f"{agent}.{skill} cannot be an MCP tool name: {name!r} must match {_PORTABLE_NAME.pattern}")
    return name


def skill_tool(card: AgentCard, skill: Skill) -> types.Tool:
    session_note = (" Reads the network state: pass the episode's session id in _meta['netgpt/session'] "
                    "unless the server has a default session.") if skill.needs_state else ""
    output = skill.result_schema if skill.result_schema.get("type") == "object" else None
    return types.Tool(name=tool_name(card.name, skill.name), title=f"{card.name}.{skill.name}",
                      description=f"[{card.name}] {skill.description}{session_note}",
                      input_schema=skill.args_schema, output_schema=output,
                      annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False))


def tool_result(reply: Reply) -> types.CallToolResult:
    """A reply as a tool result; the accounting fields travel in ``_meta["netgpt/reply"]``."""
    meta = {REPLY_META_KEY: reply.model_dump(include=set(ACCOUNTING_FIELDS))}
    if reply.ok:
        result = reply.result or {}
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(result))],
                                    structured_content=result, meta=meta)
    assert reply.error is not None
    error = reply.error.model_dump(mode="json")
    return types.CallToolResult(content=[types.TextContent(text=f"{error['code']}: {error['message']}")],
                                structured_content={"error": error}, is_error=True, meta=meta)


def build_mcp_server(registry: AgentRegistry, *, name: str = "netgpt-agents",
                     default_session: str | None = None) -> Server[Any]:
    """A low-level MCP server whose tools are the skills of ``registry``'s agents at build time."""
    routes: dict[str, tuple[str, str]] = {}
    tools: list[types.Tool] = []
    for card in registry.cards():
        for skill in card.skills:
            tool = skill_tool(card, skill)
            routes[tool.name] = (card.name, skill.name)
            tools.append(tool)
    schemas = {tool.name: tool.input_schema for tool in tools}

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult:
        route = routes.get(params.name)
        if route is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r}")
        meta: Mapping[str, Any] = params.meta or {}
        fields: dict[str, Any] = {"session": meta.get(SESSION_META_KEY, default_session)}
        if DEADLINE_META_KEY in meta:
            fields["deadline_ms"] = meta[DEADLINE_META_KEY]
        request_id = f"mcp-{ctx.request_id}" if ctx.request_id is not None else f"mcp-{uuid.uuid4().hex}"
        try:
            request = Request(id=request_id, caller="mcp", agent=route[0], skill=route[1],
                              args=params.arguments or {}, **fields)
        except ValidationError as exc:
            return types.CallToolResult(
                content=[types.TextContent(text=f"{ErrorCode.INVALID_ARGS}: bad _meta: {exc.errors()[0]['msg']}")],
                structured_content={"error": {"code": ErrorCode.INVALID_ARGS, "message": "bad _meta"}},
                is_error=True)
        return tool_result(await registry.acall(request))

    instructions = ("NetGPT network agents. Each tool is <agent>__<skill>; tools marked as reading the network "
                    "state need a session (see _meta['netgpt/session']).")
    return Server(name, version=netgpt.__version__, instructions=instructions, on_list_tools=list_tools,
                  on_call_tool=call_tool, get_tool_input_schema=schemas.get)


async def run_stdio(server: Server[Any]) -> None:
    """Serve ``server`` on this process's stdin/stdout until the client hangs up."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve_stdio(server: Server[Any]) -> None:
    anyio.run(run_stdio, server)


def streamable_http(server: Server[Any], host: str = "127.0.0.1", *, max_sessions: int | None = None,
                    ) -> tuple[StreamableHTTPASGIApp, StreamableHTTPSessionManager]:
    """The ASGI app of the MCP streamable HTTP transport and its session manager (whose ``run()`` must wrap
    the hosting app's lifespan). DNS-rebinding protection is on for loopback hosts, as in the SDK.

    ``max_sessions`` bounds the open MCP sessions (the SDK's default, 10 000, otherwise); each is closed after
    ``MCP_SESSION_IDLE_S`` without a request.
    """
    security = None
    if host in ("127.0.0.1", "localhost", "::1"):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    limit = {} if max_sessions is None else {"max_sessions": max_sessions}
    manager = StreamableHTTPSessionManager(app=server, security_settings=security,
                                           session_idle_timeout=MCP_SESSION_IDLE_S, **limit)
    return StreamableHTTPASGIApp(manager), manager
