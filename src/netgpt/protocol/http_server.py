"""FastAPI agent server: the agents of a registry over HTTP (``/call``) and MCP streamable HTTP (``/mcp``).

Bad input never kills the server and never produces a 500: a missing or wrong bearer token is a 401, a body
over the limit a 413 (enforced while the body is read, so an oversized body is never buffered whole), a body
that does not arrive within the read timeout a 408, malformed JSON or a request that does not fit the
:class:`Request` schema a 422, and everything that goes wrong past that point — unknown agent, invalid
arguments, an agent that raises — a 200 with a typed error :class:`Reply`.

Slow clients cannot hold connections: a connection whose request headers are not complete within
``header_timeout_s`` is closed (:class:`GuardedH11Protocol`), an idle keep-alive connection after
``keep_alive_s``, and a body not complete within ``read_timeout_s`` is answered 408 (:class:`GuardMiddleware`).
The server is closed by default: it starts only with a non-empty token, or with an explicit ``no_auth`` on a
loopback address (:func:`check_auth`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import h11
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import Request as HttpRequest
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

import netgpt
from netgpt.protocol.dispatch import error_reply, with_bytes
from netgpt.protocol.faults import MAX_INJECTED_FAULTS, FaultConfig
from netgpt.protocol.http_client import SessionOpen
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request
from netgpt.protocol.registry import SESSION_ID, AgentRegistry
from netgpt.world import World

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_STATE_BYTES = 256 << 10
"""Largest ``PUT /sessions`` body (the World JSON plus its faults): 17 times a generated world (about 15 KB)."""
SESSION_MEMORY_FACTOR = 8
"""An open session holds about this many bytes of memory per byte of its state's JSON (measured: 7.3)."""
DEFAULT_MAX_SESSIONS = 256
"""Open sessions kept (least recently used go first): at most ``256 × 8 × 256 KiB = 512 MiB`` of state."""
MAX_HEADER_BYTES = 16 << 10
"""Largest request line plus headers (h11 answers 400 past it)."""
DEFAULT_SESSION = "default"
OPEN_PATHS = frozenset({"/health"})


class AuthConfigError(ValueError):
    """A server would start open, or with an unusable token; the message says what to do instead."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth(token: str | None, *, no_auth: bool, host: str, env_var: str) -> str | None:
    """The token a server starts with, or ``None`` for an explicitly open loopback server.

    Closed by default: an empty token (``--token ""``, or ``env_var`` set to ``""``) and a missing one are
    refused, and open mode (``no_auth``) is allowed on loopback only, so a server reachable from other machines
    always checks a token. ``env_var`` is the variable the token may come from: set but empty, it counts as an
    empty token (the CLI parser drops empty variables, which would otherwise read as "no token").
    """
    if token is None and os.environ.get(env_var) == "":
        token = ""
    if token is not None and not token.strip():
        raise AuthConfigError(f"the token is empty (--token \"\" or {env_var}=\"\"): set a non-empty token, or pass "
                              "--no-auth to serve without authentication on loopback")
    if no_auth and token is not None:
        raise AuthConfigError(f"--no-auth and a token (--token or {env_var}) contradict each other: give one")
    if no_auth and not is_loopback(host):
        raise AuthConfigError(f"--no-auth is refused on {host}, which is not a loopback address: anyone who can "
                              f"reach it could use the server; set a token (--token or {env_var})")
    if token is None and not no_auth:
        raise AuthConfigError(f"no token: set {env_var} (or --token), or pass --no-auth to serve without "
                              "authentication on loopback")
    # clients' bearer values are compared stripped, so the server's must be too, or no request could match
    return token.strip() if token is not None else None


@dataclass(frozen=True)
class Timeouts:
    """How long a client may take: to send a request's headers, to send its body, and to idle between requests."""

    header_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    keep_alive_s: float = 5.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time.

    The timer starts when the connection opens, and again when the first byte of a later request on a
    kept-alive connection arrives; it is not extended by further bytes, so a client dripping a header line
    every second (slowloris) is closed like one that sends nothing. The body's own deadline is the
    middleware's (:class:`GuardMiddleware`), which can answer 408 because the request has started.
    """

    header_timeout_s = Timeouts.header_timeout_s
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def _watch_headers(self) -> None:
        waiting = self._awaiting_request() and not self.transport.is_closing()
        if waiting and self.timeout_keep_alive_task is None and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)
        elif not waiting or self.timeout_keep_alive_task is not None:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _awaiting_request(self) -> bool:
        """The peer owes a request: h11 stays IDLE until a request line and all its headers are parsed; or we have
        answered (a 401, a GET with a body) before reading a body the peer may drip forever."""
        their, ours = self.conn.their_state, self.conn.our_state
        return their is h11.IDLE or (their is h11.SEND_BODY and ours in (h11.DONE, h11.MUST_CLOSE))

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_request() and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    """:class:`GuardedH11Protocol` with its header timeout set (uvicorn builds the protocol from a class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


def run_uvicorn(app: ASGIApp, host: str, port: int, timeouts: Timeouts, log_level: str = "info") -> None:
    """Serve ``app`` as both servers do: the guarded h11 protocol, the keep-alive timeout and a bounded header
    size (h11 refuses a request whose headers exceed it)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            http=guarded_protocol(timeouts.header_timeout_s),
                            timeout_keep_alive=max(1, round(timeouts.keep_alive_s)),
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    uvicorn.Server(config).run()


async def _respond(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    response = JSONResponse(payload, status_code=status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class GuardMiddleware:
    """Bearer-token check (constant-time), a request-body limit counted while the body streams in, and a
    deadline for the whole body.

    The body of a POST/PUT/PATCH is read here, chunk by chunk, up to the limit and then replayed to the app;
    the first byte over the limit ends the request with 413 and closes the connection, and a body not complete
    ``read_timeout_s`` after its headers with 408 (e.g. ``Content-Length: 100`` and 10 bytes sent). A declared
    ``Content-Length`` over the limit is refused before a byte of body is read. ``/health`` stays open so
    liveness probes need no secret.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int,
                 read_timeout_s: float = Timeouts.read_timeout_s) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

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
                           {"www-authenticate": "Bearer", "connection": "close"})
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
        """The JSON body of a 401, 408 or 413 (a subclass can speak another API's error format)."""
        error = {401: "unauthorised", 408: "request_timeout"}.get(status, "payload_too_large")
        return {"error": error, "message": message}

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        chunks: list[bytes] = []
        size, more = 0, True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                late = f"the request body did not arrive within the {self.read_timeout_s:g} s read timeout"
                await _respond(send, 408, self.error_payload(408, late), {"connection": "close"})
                return None
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


def _too_large(field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": "payload_too_large", "field": field, "message": message}, status_code=413)


def create_app(registry: AgentRegistry, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, mcp: bool = True, host: str = "127.0.0.1",
               mcp_default_session: str | None = None, max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
               read_timeout_s: float = Timeouts.read_timeout_s) -> FastAPI:
    """The agent server for ``registry``; with ``mcp`` the same agents are MCP tools at ``/mcp``.

    ``host`` is where the server listens; loopback hosts turn on the MCP transport's DNS-rebinding protection.
    ``mcp_default_session`` is the session MCP tool calls use when their ``_meta`` names none.
    ``max_state_bytes`` bounds a session's body (its memory is about ``SESSION_MEMORY_FACTOR`` times that),
    and at most ``registry.max_sessions`` MCP sessions are open at once.
    """
    manager = None
    if mcp:
        from netgpt.protocol.mcp_server import build_mcp_server, streamable_http

        server = build_mcp_server(registry, default_session=mcp_default_session)
        mcp_app, manager = streamable_http(server, host, max_sessions=registry.max_sessions)
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
        raw = await http.body()
        if len(raw) > max_state_bytes:  # checked before parsing: the session would hold ~8x this in memory
            return _too_large("state", f"a session's state and faults are {len(raw)} bytes, over the "
                                       f"{max_state_bytes}-byte limit")
        body = _parse(SessionOpen, raw)
        if isinstance(body, JSONResponse):
            return body
        if len(body.faults) > MAX_INJECTED_FAULTS:
            return JSONResponse({"error": "invalid_request", "field": "faults",
                                 "message": f"faults: {len(body.faults)} entries, at most {MAX_INJECTED_FAULTS}"},
                                status_code=422)
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
    app.add_middleware(GuardMiddleware, token=token, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s)
    return app


def serve(host: str = "127.0.0.1", port: int = 8700, token: str | None = None,
          config: str | Path | None = None, *, no_auth: bool = False, faults: FaultConfig | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
          max_sessions: int = DEFAULT_MAX_SESSIONS, timeouts: Timeouts | None = None, mcp: bool = True,
          state: World | None = None, log_level: str = "info") -> None:
    """Run the agent server with uvicorn until interrupted.

    Refuses (:class:`AuthConfigError`) to start without a non-empty ``token`` unless ``no_auth`` is asked for
    on a loopback ``host``. The agents come from ``config`` (default: the built-in agents). The server measures
    real service time unless ``faults`` asks it to simulate; the core's own registry normally does the
    simulating. ``state`` opens the session ``default``, which MCP tool calls that name no session use.
    """
    token = check_auth(token, no_auth=no_auth, host=host, env_var="NETGPT_AGENTS_TOKEN")
    timeouts = timeouts or Timeouts()
    registry = AgentRegistry.from_config(config, faults=faults or FaultConfig(simulate=False),
                                         max_sessions=max_sessions, offload_local=True)
    if state is not None:
        registry.open_session(DEFAULT_SESSION, state)
    try:
        app = create_app(registry, token=token, max_body_bytes=max_body_bytes, mcp=mcp, host=host,
                         mcp_default_session=DEFAULT_SESSION if state is not None else None,
                         max_state_bytes=max_state_bytes, read_timeout_s=timeouts.read_timeout_s)
        run_uvicorn(app, host, port, timeouts, log_level)
    finally:
        registry.close()
