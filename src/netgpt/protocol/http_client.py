"""httpx client for an agent server (:mod:`netgpt.protocol.http_server`): an :class:`Endpoint` over HTTP.

``send`` never raises: a refused or dropped connection is an ``unavailable`` reply, an expired deadline a
``timeout`` reply and any other non-2xx status a typed error reply. ``deliver`` (what the registry calls) raises
:class:`~netgpt.protocol.transport.TransportError` instead when the transport failed, so that a dying agent server
ends an episode as the infrastructure's failure, not the core's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netgpt.protocol.dispatch import error_reply, with_bytes
from netgpt.protocol.faults import FaultInjection
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request
from netgpt.protocol.transport import TransportError
from netgpt.world import World


class SessionOpen(BaseModel):
    """Body of ``PUT /sessions/{id}``: the episode's hidden state and, optionally, its injected faults."""

    model_config = ConfigDict(extra="forbid")
    state: World
    faults: list[FaultInjection] = Field(default_factory=list)


_STATUS_CODES: dict[int, ErrorCode] = {400: ErrorCode.INVALID_ARGS, 413: ErrorCode.INVALID_ARGS,
                                       422: ErrorCode.INVALID_ARGS, 408: ErrorCode.TIMEOUT, 504: ErrorCode.TIMEOUT,
                                       502: ErrorCode.UNAVAILABLE, 503: ErrorCode.UNAVAILABLE}


def status_error(status: int) -> ErrorCode:
    """The error code a non-2xx status maps to: other 4xx (401, 404…) mean the agent cannot be reached as
    configured (``unavailable``); other 5xx are the server's failure (``internal``)."""
    return _STATUS_CODES.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.UNAVAILABLE)


def not_an_agent_answer(status: int) -> bool:
    """Whether a ``/call`` status means the request never got an agent's answer: the agent server answers 200
    (a typed reply, errors included) or 4xx about the request itself (400/408/413/422), and never 500, so a 5xx
    comes from a gateway in between or a broken server (504 excepted: a deadline the agent may have caused),
    and 401/403/404… mean the server cannot be reached as configured."""
    if status == 200:
        return False
    code = status_error(status)
    return code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)  # INTERNAL is only ever a 5xx


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:300]
    return str(body)[:300]


class HttpAgentClient:
    """The agents of one agent server, reached over HTTP(S) with an optional bearer token.

    ``timeout`` (seconds) bounds the card and session requests; calls are bounded by their own deadline.
    Sessions are handed to the server lazily, with the first stateful call of the session that needs them.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._pushed: set[str] = set()

    def _http(self) -> httpx.AsyncClient:
        """The connection pool of the running loop (a pool cannot cross event loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            old, old_loop = self._client, self._client_loop
            if old is not None and old_loop is not None and old_loop.is_running():
                asyncio.run_coroutine_threadsafe(old.aclose(), old_loop)  # close it where it lives
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=self.timeout)
            self._client_loop = loop
        return self._client

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {self.base_url}{path} failed: {type(exc).__name__}: {exc}") from exc

    async def connect(self) -> list[AgentCard]:
        """``GET /agents``: the cards of the hosted agents, with ``endpoint`` set to this server's URL."""
        response = await self._request("GET", "/agents")
        if response.status_code != 200:
            raise TransportError(f"GET {self.base_url}/agents: HTTP {response.status_code}: {_detail(response)}")
        try:
            cards = [AgentCard.model_validate(c) for c in response.json()]
        except (ValueError, TypeError) as exc:
            raise TransportError(f"GET {self.base_url}/agents returned malformed cards: {exc}") from exc
        return [card.model_copy(update={"endpoint": self.base_url}) for card in cards]

    cards = connect  # the name a standalone user looks for

    async def health(self) -> bool:
        try:
            return (await self._request("GET", "/health")).status_code == 200
        except TransportError:
            return False

    async def open_session(self, session_id: str, state: World,
                           faults: Iterable[FaultInjection] = ()) -> None:
        """``PUT /sessions/{id}``: create or replace the session on the server."""
        body = SessionOpen(state=state, faults=list(faults)).model_dump_json()
        response = await self._request("PUT", f"/sessions/{quote(session_id, safe='')}", content=body,
                                       headers={"content-type": "application/json"})
        if response.status_code != 200:
            raise TransportError(f"PUT session {session_id!r}: HTTP {response.status_code}: {_detail(response)}")
        self._pushed.add(session_id)

    def forget_session(self, session_id: str) -> None:
        self._pushed.discard(session_id)

    async def close_session(self, session_id: str) -> None:
        """``DELETE /sessions/{id}`` if this client handed the session over; failures are ignored."""
        if session_id not in self._pushed:
            return
        self._pushed.discard(session_id)
        try:
            await self._request("DELETE", f"/sessions/{quote(session_id, safe='')}")
        except TransportError:
            pass  # the server is gone, and its sessions with it

    async def send(self, request: Request, state: World | None = None) -> Reply:
        """``POST /call`` with the request's deadline as the timeout. Never raises: every failure is an error reply."""
        reply, _ = await self._exchange(request, state)
        return reply

    async def deliver(self, request: Request, state: World | None = None) -> Reply:
        """:meth:`send`, but a transport failure raises :class:`TransportError` (the registry's endpoint API)."""
        reply, transport_failed = await self._exchange(request, state)
        if transport_failed:
            raise TransportError(reply.error.message if reply.error else f"{self.base_url}: transport failed", reply)
        return reply

    async def _exchange(self, request: Request, state: World | None) -> tuple[Reply, bool]:
        """The reply, and whether it stands for a failed transport rather than the agent's own answer."""
        if state is not None and request.session is not None and request.session not in self._pushed:
            try:
                await self.open_session(request.session, state)
            except TransportError as exc:
                return with_bytes(request, error_reply(request, ErrorCode.UNAVAILABLE, str(exc))), True
        start = time.perf_counter()
        transport_failed = False
        try:
            response = await self._http().post("/call", content=request.model_dump_json(),
                                               headers={"content-type": "application/json"},
                                               timeout=request.deadline_ms / 1e3)
            reply = self._reply(request, response)
            transport_failed = not_an_agent_answer(response.status_code)
        except httpx.TimeoutException as exc:
            reply = error_reply(request, ErrorCode.TIMEOUT,
                                f"no reply from {self.base_url} within the {request.deadline_ms:g} ms deadline")
            # a read past the deadline is the agent's slowness; no connection within it is the transport's failure
            transport_failed = isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        except httpx.TransportError as exc:  # refused, reset, dropped
            self._pushed.clear()  # a server that went away lost its sessions; hand them over again
            reply = error_reply(request, ErrorCode.UNAVAILABLE,
                                f"agent server {self.base_url} unreachable: {type(exc).__name__}: {exc}")
            transport_failed = True
        except Exception as exc:  # boundary: the caller gets a reply whatever httpx raises
            reply = error_reply(request, ErrorCode.INTERNAL, f"HTTP call failed: {type(exc).__name__}: {exc}")
        measured = with_bytes(request, reply)
        return measured.model_copy(update={"latency_ms": (time.perf_counter() - start) * 1e3}), transport_failed

    @staticmethod
    def _reply(request: Request, response: httpx.Response) -> Reply:
        if response.status_code != 200:
            return error_reply(request, status_error(response.status_code),
                               f"HTTP {response.status_code}: {_detail(response)}")
        try:
            reply = Reply.model_validate_json(response.content)
        except ValidationError as exc:
            return error_reply(request, ErrorCode.INTERNAL, f"malformed reply from the agent server: {exc}")
        if (reply.request_id, reply.agent, reply.skill) != (request.id, request.agent, request.skill):
            return error_reply(request, ErrorCode.INTERNAL,
                               f"the agent server answered another request ({reply.request_id!r})")
        return reply

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    async def __aenter__(self) -> HttpAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
