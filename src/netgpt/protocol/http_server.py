"""FastAPI agent server: the agents of a registry over HTTP (``/call``) and MCP streamable HTTP (``/mcp``).

Bad input never kills the server and never produces a 500: a missing or wrong bearer token is a 401, a body
over the limit a 413 (enforced while the body is read, so an oversized body is never buffered whole),
malformed JSON or a request that does not fit the :class:`Request` schema a 422, and everything that goes wrong
past that point — unknown agent, invalid arguments, an agent that raises — a 200 with a typed error
:class:`Reply`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import Request as HttpRequest
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import netgpt
from netgpt.protocol.dispatch import error_reply, with_bytes
from netgpt.protocol.faults import FaultConfig
from netgpt.protocol.http_client import SessionOpen
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request
from netgpt.protocol.registry import SESSION_ID, AgentRegistry
from netgpt.world import World

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_SESSIONS = 1024
DEFAULT_SESSION = "default"
OPEN_PATHS = frozenset({"/health"})


async def _respond(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    response = JSONResponse(payload, status_code=status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class GuardMiddleware:
    """Bearer-token check (constant-time) and a request-body limit counted while the body streams in.

    The body of a POST/PUT/PATCH is read here, chunk by chunk, up to the limit and then replayed to the app;
    the first byte over the limit ends the request with 413 and closes the connection. A declared
    ``Content-Length`` over the limit is refused before a byte of body is read. ``/health`` stays open so
    liveness probes need no secret.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    def _authorised(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token or b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            await _respond(send, 401, self.error_payload(401, "missing or wrong bearer token"),
                           {"www-authenticate": "Bearer"})
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")  # the HTTP parser vetted its syntax
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _respond(send, 413, self._too_large, {"connection": "close"})
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    @property
    def _too_large(self) -> dict[str, Any]:
        return self.error_payload(413, f"request body over the {self.max_body_bytes}-byte limit")

    def error_payload(self, status: int, message: str) -> dict[str, Any]:
        """The JSON body of a 401 or 413 (a subclass can speak another API's error format)."""
        return {"error": "unauthorised" if status == 401 else "payload_too_large", "message": message}

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, self._too_large, {"connection": "close"})
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body, only a disconnect can come

    return replay


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], body: bytes) -> M | JSONResponse:
    """The body as ``model``, or a 422 whose message says what is wrong (the body itself is not echoed)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        parts = []
        for error in errors[:5]:
            where = ".".join(str(p) for p in error["loc"])
            if error["type"] == "json_invalid":
                parts.append(f"malformed JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
            else:
                parts.append(f"{where}: {error['msg']}" if where else error["msg"])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        return JSONResponse({"error": "invalid_request", "message": "; ".join(parts) + more,
                             "detail": [{k: e[k] for k in ("type", "loc", "msg")} for e in errors]}, status_code=422)


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI description of a body the handler parses itself (to answer malformed input with its own 422)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def create_app(registry: AgentRegistry, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, mcp: bool = True, host: str = "127.0.0.1",
               mcp_default_session: str | None = None) -> FastAPI:
    """The agent server for ``registry``; with ``mcp`` the same agents are MCP tools at ``/mcp``.

    ``host`` is where the server listens; loopback hosts turn on the MCP transport's DNS-rebinding protection.
    ``mcp_default_session`` is the session MCP tool calls use when their ``_meta`` names none.
    """
    manager = None
    if mcp:
        from netgpt.protocol.mcp_server import build_mcp_server, streamable_http

        server = build_mcp_server(registry, default_session=mcp_default_session)
        mcp_app, manager = streamable_http(server, host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manager is None:
            yield
            return
        async with manager.run():
            yield

    app = FastAPI(title="NetGPT agents", version=netgpt.__version__, lifespan=lifespan,
                  description="Network agents behind the NetGPT agentic communication protocol.")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "agents": len(registry.cards())}

    @app.get("/agents", response_model=list[AgentCard])
    async def agents() -> list[AgentCard]:
        return registry.cards()

    @app.post("/call", response_model=Reply, openapi_extra=_body_schema(Request))
    async def call(http: HttpRequest) -> Reply | JSONResponse:
        request = _parse(Request, await http.body())
        if isinstance(request, JSONResponse):
            return request
        try:
            return await registry.acall(request)
        except Exception as exc:  # boundary: the registry never raises, but the server must not 500 if it did
            return with_bytes(request, error_reply(request, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"))

    @app.put("/sessions/{session_id}")  # body: SessionOpen (World + faults, see docs/protocol.md)
    async def open_session(session_id: str, http: HttpRequest) -> JSONResponse:
        if not SESSION_ID.fullmatch(session_id):
            return JSONResponse({"error": "invalid_request", "message": f"session id must match {SESSION_ID.pattern}"},
                                status_code=422)
        body = _parse(SessionOpen, await http.body())
        if isinstance(body, JSONResponse):
            return body
        registry.open_session(session_id, body.state, body.faults)
        return JSONResponse({"session": session_id})

    @app.delete("/sessions/{session_id}")
    async def close_session(session_id: str) -> JSONResponse:
        if not registry.has_session(session_id):
            return JSONResponse({"error": "not_found", "message": f"no open session {session_id!r}"},
                                status_code=404)
        await registry.aclose_session(session_id)
        return JSONResponse({"session": session_id, "closed": True})

    if manager is not None:
        app.router.routes.append(Route("/mcp", endpoint=mcp_app))
    app.add_middleware(GuardMiddleware, token=token, max_body_bytes=max_body_bytes)
    return app


def serve(host: str = "127.0.0.1", port: int = 8700, token: str | None = None,
          config: str | Path | None = None, *, faults: FaultConfig | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, mcp: bool = True, state: World | None = None,
          log_level: str = "info") -> None:
    """Run the agent server with uvicorn until interrupted.

    The agents come from ``config`` (default: the built-in agents). The server measures real service time
    unless ``faults`` asks it to simulate; the core's own registry normally does the simulating. ``state``
    opens the session ``default``, which MCP tool calls that name no session use.
    """
    registry = AgentRegistry.from_config(config, faults=faults or FaultConfig(simulate=False),
                                         max_sessions=DEFAULT_MAX_SESSIONS, offload_local=True)
    if state is not None:
        registry.open_session(DEFAULT_SESSION, state)
    try:
        app = create_app(registry, token=token, max_body_bytes=max_body_bytes, mcp=mcp, host=host,
                         mcp_default_session=DEFAULT_SESSION if state is not None else None)
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        registry.close()
