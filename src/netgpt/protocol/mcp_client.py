"""An external MCP server as one NetGPT agent: each tool becomes a skill (``needs_state`` False).

The MCP connection (and, over stdio, the server process) lives in a task on a private loop thread, so it
outlives whichever event loop or thread is calling, and calls from anywhere are awaited without blocking.
A server that dies turns the call into an ``unavailable`` reply from ``send``, and into a
:class:`~netgpt.protocol.transport.TransportError` from ``deliver`` (the registry's endpoint API); the next call
starts it again.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from jsonschema import Draft202012Validator, SchemaError
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from netgpt.protocol._loop import LoopThread
from netgpt.protocol.dispatch import error_reply, ok_reply, with_bytes
from netgpt.protocol.messages import AgentCard, CostModel, ErrorCode, LatencyModel, Reply, Request, Skill
from netgpt.protocol.transport import TransportError
from netgpt.world import World

logger = logging.getLogger(__name__)

_UNREACHABLE = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


def reply_from_tool_result(request: Request, result: types.CallToolResult) -> Reply:
    """A tool result as a reply: structured content (or a JSON object in the text) is the result; an
    ``isError`` result keeps a NetGPT error code when it carries one, else it is ``internal``."""
    text = "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))
    structured = result.structured_content
    if result.is_error:
        error = structured.get("error") if isinstance(structured, dict) else None
        codes = {c.value for c in ErrorCode}
        if isinstance(error, dict) and error.get("code") in codes:
            return error_reply(request, ErrorCode(error["code"]), str(error.get("message", text)))
        return error_reply(request, ErrorCode.INTERNAL, text or "the MCP tool reported an error")
    if isinstance(structured, dict):
        return ok_reply(request, structured)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return ok_reply(request, parsed if isinstance(parsed, dict) else {"text": text})


def _skill(tool: types.Tool) -> Skill | None:
    try:
        Draft202012Validator.check_schema(tool.input_schema)
    except SchemaError as exc:
        logger.warning("skipping MCP tool %r: invalid input schema: %s", tool.name, exc.message)
        return None
    output = tool.output_schema if tool.output_schema and tool.output_schema.get("type") == "object" else None
    return Skill(name=tool.name, description=tool.description or tool.title or tool.name,
                 args_schema=tool.input_schema, result_schema=output or {"type": "object"}, needs_state=False)


class McpAgentClient:
    """Endpoint for an MCP server reached over stdio (``StdioServerParameters``) or streamable HTTP (a URL)."""

    def __init__(self, name: str, target: StdioServerParameters | str, *, token: str | None = None,
                 description: str | None = None, cost: CostModel | None = None, timeout: float = 30.0) -> None:
        self.name = name
        self.target = target
        self.description = description
        self.cost = cost or CostModel(latency=LatencyModel(median_ms=100.0))
        self.timeout = timeout
        self._token = token
        self._loop = LoopThread(f"netgpt-mcp-{name}")
        self._lock = threading.Lock()
        self._holder: Future[None] | None = None
        self._client: Client | None = None
        self._stop: anyio.Event | None = None
        self._card: AgentCard | None = None

    @property
    def endpoint(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return "stdio:" + " ".join([self.target.command, *self.target.args])

    async def _hold(self, *, task_status: TaskStatus[AgentCard]) -> None:
        """Open the connection, publish the card, and keep the connection until asked to stop."""
        async with AsyncExitStack() as stack:
            target: Any = self.target
            if isinstance(target, str):
                headers = {"authorization": f"Bearer {self._token}"} if self._token else None
                http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
                target = streamable_http_client(target, http_client=http)
            client = await stack.enter_async_context(Client(target, read_timeout_seconds=self.timeout))
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
            skills = [s for s in map(_skill, tools) if s is not None]
            info = client.server_info
            description = self.description or client.instructions or (info.description if info else None) \
                or f"MCP server {self.endpoint}"
            self._card = AgentCard(name=self.name, description=description, skills=skills, cost=self.cost,
                                   endpoint=self.endpoint)
            self._client, self._stop = client, anyio.Event()
            task_status.started(self._card)
            await self._stop.wait()

    def _start(self) -> AgentCard:
        """Connect unless connected (blocking; never called on the private loop)."""
        with self._lock:
            if self._holder is not None and not self._holder.done():
                return self._card  # type: ignore[return-value]  # set before the holder reports started
            self._client = None
            self._holder, card = self._loop.portal.start_task(self._hold, name=f"mcp-{self.name}")
            return card

    async def connect(self) -> list[AgentCard]:
        try:
            return [await anyio.to_thread.run_sync(self._start)]
        except Exception as exc:
            raise TransportError(f"cannot connect to MCP server {self.name!r} ({self.endpoint}): {_reason(exc)}") \
                from exc

    async def _call_tool(self, request: Request) -> types.CallToolResult:
        if self._client is None:
            raise anyio.ClosedResourceError
        return await self._client.call_tool(request.skill, dict(request.args),
                                            read_timeout_seconds=request.deadline_ms / 1e3)

    async def send(self, request: Request, state: World | None = None) -> Reply:
        """``tools/call`` with the request's deadline as the read timeout. Never raises: a lost server is an
        ``unavailable`` reply."""
        reply, _ = await self._exchange(request)
        return reply

    async def deliver(self, request: Request, state: World | None = None) -> Reply:
        """:meth:`send`, but a server that cannot be started or reached raises :class:`TransportError`."""
        reply, lost = await self._exchange(request)
        if lost:
            raise TransportError(reply.error.message if reply.error else f"MCP server {self.name!r} lost", reply)
        return reply

    async def _exchange(self, request: Request) -> tuple[Reply, bool]:
        """The reply, and whether the connection to the server was lost (rather than the tool failing)."""
        if self._holder is None or self._holder.done():
            try:
                await anyio.to_thread.run_sync(self._start)
            except Exception as exc:
                return with_bytes(request, error_reply(request, ErrorCode.UNAVAILABLE,
                                                       f"MCP server {self.name!r} unreachable: {_reason(exc)}")), True
        lost = False
        try:
            reply = reply_from_tool_result(request, await self._loop.run(self._call_tool, request))
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                reply = error_reply(request, ErrorCode.TIMEOUT,
                                    f"no reply from MCP server {self.name!r} within {request.deadline_ms:g} ms")
            elif exc.code == types.CONNECTION_CLOSED:
                reply, lost = self._lost(request, exc), True
            else:
                code = ErrorCode.INVALID_ARGS if exc.code == types.INVALID_PARAMS else ErrorCode.INTERNAL
                reply = error_reply(request, code, f"MCP error {exc.code}: {exc.message}")
        except _UNREACHABLE as exc:
            reply, lost = self._lost(request, exc), True
        except Exception as exc:  # boundary: whatever the SDK raises, the caller gets a reply
            reply = error_reply(request, ErrorCode.INTERNAL, f"MCP call failed: {type(exc).__name__}: {exc}")
        return with_bytes(request, reply), lost

    def _lost(self, request: Request, exc: BaseException) -> Reply:
        """The connection is gone: drop it (the next call reconnects) and report ``unavailable``."""
        self._drop()
        return error_reply(request, ErrorCode.UNAVAILABLE,
                           f"MCP server {self.name!r} unreachable: {type(exc).__name__}: {exc}")

    def _drop(self) -> None:
        with self._lock:
            holder, stop, self._holder, self._client = self._holder, self._stop, None, None
        if holder is not None and not holder.done() and stop is not None:
            try:
                self._loop.portal.start_task_soon(stop.set)
            except RuntimeError:
                pass  # the loop is already shutting down

    def forget_session(self, session_id: str) -> None:
        """MCP tools here never read the network state."""

    async def close_session(self, session_id: str) -> None:
        """No session state is held."""

    def _shutdown(self) -> None:
        with self._lock:
            holder, stop = self._holder, self._stop
            self._holder = self._client = None
        if holder is not None and stop is not None and not holder.done():
            self._loop.portal.call(stop.set)
            try:
                holder.result(timeout=self.timeout)
            except Exception as exc:  # a server that died mid-shutdown is already shut down
                logger.debug("MCP server %r closed with %r", self.name, exc)
        self._loop.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._shutdown)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a (possibly grouped) connection failure, readable in one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
