"""The core's one view of all agents, wherever they run: ``cards()``, ``call``/``acall`` and sessions.

Agents live behind *endpoints*: this process (:class:`LocalEndpoint`), an HTTP agent server
(:class:`~netgpt.protocol.http_client.HttpAgentClient`) or an MCP server
(:class:`~netgpt.protocol.mcp_client.McpAgentClient`). The registry checks every request against the agent's
card, applies the fault model and the session's injected faults, sends what survives to the endpoint and
accounts latency, bytes and cost the same way for every transport, so an episode's numbers do not depend on
where its agents happen to run.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from netgpt.protocol._loop import LoopThread
from netgpt.protocol.agent import Agent
from netgpt.protocol.config import HttpAgentEntry, LocalAgentEntry, RegistryConfig, load_config
from netgpt.protocol.dispatch import (
    ArgsValidator,
    LocalDispatcher,
    error_reply,
    preflight,
    unencodable,
    unknown_agent,
    with_bytes,
)
from netgpt.protocol.faults import CallDraw, FaultConfig, FaultInjection, FaultModel, InjectedFaults, LinkConfig
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request
from netgpt.protocol.transport import TransportError
from netgpt.world import World

SESSION_ID = re.compile(r"[A-Za-z0-9._:@#~+=-]{1,128}")
"""What a session id may be, on every transport (an HTTP agent server gets it in the URL path)."""

_NOT_DELIVERED = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.UNKNOWN_AGENT, ErrorCode.UNKNOWN_SKILL})


class Endpoint(Protocol):
    """Where some agents run. ``deliver`` raises :class:`TransportError` when the transport fails; every failure of
    the agent itself (a timeout, a crash, refused arguments) comes back as an error reply."""

    async def connect(self) -> list[AgentCard]:
        """Reach the endpoint and return the cards of the agents it hosts (:class:`TransportError` if it cannot)."""
        ...

    async def deliver(self, request: Request, state: World | None) -> Reply:
        """Deliver ``request``; ``state`` is the session's hidden state when the skill reads it, else ``None``.
        Raises :class:`TransportError` when the request could not be delivered or its answer did not come back
        (connection refused or dropped, the server gone, a gateway's 5xx)."""
        ...

    def forget_session(self, session_id: str) -> None:
        """The session's state changed or went away: stop relying on any copy the endpoint holds."""
        ...

    async def close_session(self, session_id: str) -> None:
        """Release the endpoint's copy of the session, if any (best effort, never raises)."""
        ...

    async def aclose(self) -> None: ...


class LocalEndpoint:
    """Agents in this process: a direct call, still through the full request pipeline.

    With ``offload`` the async path runs handlers in a worker thread, so a server's event loop keeps serving
    (health checks, other calls) while a slow agent computes.
    """

    def __init__(self, dispatcher: LocalDispatcher | None = None, offload: bool = False) -> None:
        self.dispatcher = dispatcher or LocalDispatcher()
        self.offload = offload

    async def connect(self) -> list[AgentCard]:
        return self.dispatcher.cards()

    def send_sync(self, request: Request, state: World | None) -> Reply:
        return self.dispatcher.dispatch(request, state)

    async def deliver(self, request: Request, state: World | None) -> Reply:
        """A direct call: there is no transport to fail."""
        if self.offload:
            return await anyio.to_thread.run_sync(self.send_sync, request, state)
        return self.send_sync(request, state)

    def forget_session(self, session_id: str) -> None:
        """Nothing to forget: the state is handed over on every call."""

    async def close_session(self, session_id: str) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to close."""


@dataclass
class _Session:
    state: World | None = None
    injected: InjectedFaults = field(default_factory=InjectedFaults)
    opened: bool = False
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class _Pending:
    """A request that passed every check and the fault draw, about to be sent."""

    request: Request
    card: AgentCard
    endpoint: Endpoint
    state: World | None
    draw: CallDraw | None
    link: LinkConfig | None
    cost: float


class AgentRegistry:
    """All agents the core can call, with sessions, the fault model and uniform accounting.

    Use it either from one asyncio loop (``await acall``, ``aclose``…) or from plain threads (``call``,
    ``close``…); the sync API runs remote I/O on a private loop thread and in-process agents directly.
    """

    def __init__(self, faults: FaultConfig | FaultModel | None = None, *, max_sessions: int | None = None,
                 offload_local: bool = False) -> None:
        """``max_sessions`` bounds the open sessions (least recently used go first; a server sets it);
        ``offload_local`` runs in-process agents in worker threads on the async path (see LocalEndpoint)."""
        self.faults = faults if isinstance(faults, FaultModel) else FaultModel(faults)
        self.max_sessions = max_sessions
        self._local = LocalEndpoint(offload=offload_local)
        self._endpoints: list[Endpoint] = [self._local]
        self._routes: dict[str, tuple[AgentCard, Endpoint]] = {}
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()
        self._validator = ArgsValidator()
        self._loop = LoopThread("netgpt-registry")

    # ---------------------------------------------------------------- agents
    def _claim(self, cards: Iterable[AgentCard]) -> list[AgentCard]:
        cards = list(cards)
        for card in cards:
            if card.name in self._routes:
                raise ValueError(f"agent {card.name!r} is already registered")
            ArgsValidator.check_schema(card)
        return cards

    def register(self, agent: Agent) -> AgentCard:
        """Host ``agent`` in this process."""
        self._claim([agent.card])
        self._local.dispatcher.add(agent)
        self._routes[agent.name] = (agent.card, self._local)
        return agent.card

    async def aadd_endpoint(self, endpoint: Endpoint, only: Collection[str] | None = None) -> list[AgentCard]:
        """Connect ``endpoint`` and route the agents it hosts (or just those named in ``only``) to it."""
        cards = await endpoint.connect()
        try:
            if only is not None:
                missing = set(only) - {c.name for c in cards}
                if missing:
                    raise ValueError(f"endpoint does not host {', '.join(sorted(missing))} "
                                     f"(it hosts {', '.join(c.name for c in cards)})")
                cards = [c for c in cards if c.name in only]
            self._claim(cards)
        except BaseException:
            await endpoint.aclose()
            raise
        self._endpoints.append(endpoint)
        for card in cards:
            self._routes[card.name] = (card, endpoint)
        return cards

    def add_endpoint(self, endpoint: Endpoint, only: Collection[str] | None = None) -> list[AgentCard]:
        return self._loop.call(self.aadd_endpoint, endpoint, only)

    def cards(self) -> list[AgentCard]:
        return [card for card, _ in self._routes.values()]

    def card(self, name: str) -> AgentCard | None:
        route = self._routes.get(name)
        return route[0] if route else None

    # -------------------------------------------------------------- sessions
    def open_session(self, session_id: str, state: World | None = None,
                     faults: Iterable[FaultInjection | Mapping[str, Any] | Any] = (),
                     calls: Mapping[str, int] | None = None) -> None:
        """Create or replace an episode's session: its hidden state and its injected faults.

        No I/O happens here: remote endpoints receive the state with the first stateful call that needs it.
        ``faults`` accepts :class:`FaultInjection`, plain dicts or ``netgpt.tasks.InjectedFault`` objects.
        ``calls`` is how many calls each agent has already taken in this episode (a fork that replays earlier
        turns): injected faults are keyed by that count, so a fork's retry is call 2, not a second call 1.
        """
        if not SESSION_ID.fullmatch(session_id):
            raise ValueError(f"session id {session_id!r} must match {SESSION_ID.pattern} (it travels in URLs)")
        session = _Session(state=state, injected=InjectedFaults(faults), opened=True, calls=Counter(calls or {}))
        with self._lock:
            replaced = session_id in self._sessions
            self._sessions[session_id] = session
            self._sessions.move_to_end(session_id)
            evicted = self._evict()
        for sid in ([session_id] if replaced else []) + evicted:
            for endpoint in self._endpoints:
                endpoint.forget_session(sid)

    def _evict(self) -> list[str]:
        evicted: list[str] = []
        while self.max_sessions is not None and len(self._sessions) > self.max_sessions:
            evicted.append(self._sessions.popitem(last=False)[0])
        return evicted

    def calls_made(self, session_id: str) -> dict[str, int]:
        """How many calls each agent has taken in the session (past the checks, so counted for fault injection)."""
        with self._lock:
            session = self._sessions.get(session_id)
            return dict(session.calls) if session is not None else {}

    def has_session(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        return session is not None and session.opened

    async def aclose_session(self, session_id: str) -> bool:
        """Drop the session here and on every endpoint holding a copy; ``False`` if it was not open."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        for endpoint in self._endpoints:
            await endpoint.close_session(session_id)
        return session is not None and session.opened

    def close_session(self, session_id: str) -> bool:
        if len(self._endpoints) == 1:  # only in-process agents: nothing remote to release
            with self._lock:
                session = self._sessions.pop(session_id, None)
            return session is not None and session.opened
        return self._loop.call(self.aclose_session, session_id)

    def _session(self, key: str) -> _Session:
        with self._lock:
            session = self._sessions.get(key)
            if session is None:  # calls without an open session still need per-agent call counters
                session = self._sessions[key] = _Session()
                for sid in self._evict():
                    for endpoint in self._endpoints:
                        endpoint.forget_session(sid)
            else:
                self._sessions.move_to_end(key)
            return session

    # ----------------------------------------------------------------- calls
    async def acall(self, request: Request, *, raise_transport_errors: bool = False) -> Reply:
        """Send ``request`` and return its reply, with latency, bytes and cost accounted.

        A transport failure is an ``unavailable`` reply, so a server relaying calls never raises; with
        ``raise_transport_errors`` it raises :class:`TransportError` instead, for a caller (the episode runtime) that
        must tell it apart from the agent's own failures, simulated ones included."""
        step = self._begin(request)
        if isinstance(step, Reply):
            return step
        start = time.perf_counter()
        try:
            raw = await step.endpoint.deliver(step.request, step.state)
        except TransportError as exc:
            if raise_transport_errors:
                raise
            raw = _unreachable(request, exc)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        reply = self._finish(step, raw, elapsed_ms)
        if self.faults.config.simulate and self.faults.config.realtime:
            await anyio.sleep(max(0.0, reply.latency_ms - elapsed_ms) / 1e3)
        return reply

    def call(self, request: Request, *, raise_transport_errors: bool = False) -> Reply:
        """Sync :meth:`acall`: in-process agents are called directly, remote ones through the private loop."""
        step = self._begin(request)
        if isinstance(step, Reply):
            return step
        start = time.perf_counter()
        if step.endpoint is self._local:
            raw = self._local.send_sync(step.request, step.state)
        else:
            try:
                raw = self._loop.call(step.endpoint.deliver, step.request, step.state)
            except TransportError as exc:
                if raise_transport_errors:
                    raise
                raw = _unreachable(request, exc)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        reply = self._finish(step, raw, elapsed_ms)
        if self.faults.config.simulate and self.faults.config.realtime:
            time.sleep(max(0.0, reply.latency_ms - elapsed_ms) / 1e3)
        return reply

    def _begin(self, request: Request) -> _Pending | Reply:
        """Everything decided before sending: lookup, checks, call index, injected and random failures."""
        bad = unencodable(request)
        if bad is not None:
            return self._charge(*bad, 0.0, None, 0.0)
        route = self._routes.get(request.agent)
        if route is None:
            return self._charge(request, unknown_agent(request, self._routes), 0.0, None, 0.0)
        card, endpoint = route
        session = self._session(request.session or "")
        simulate = self.faults.config.simulate
        link = self.faults.link(card.name) if simulate else None  # measured mode: no modelled link
        rejection = preflight(card, request, self._validator, session.state, session.opened)
        if rejection is not None:
            return self._charge(request, rejection, 0.0, link, 0.0)
        with self._lock:
            index = session.calls[card.name]
            session.calls[card.name] += 1
        draw = self.faults.draw(card, request.session or "", index) if simulate else None
        cost = self.faults.per_call_cost(card)
        forced = session.injected.code(card.name, index)
        if forced == ErrorCode.UNAVAILABLE or (forced is None and draw is not None and draw.fails):
            return self._charge(request, _unavailable(request), 0.0, link, 0.0)
        if forced == ErrorCode.TIMEOUT:
            return self._charge(request, _timed_out(request), 0.0, None, cost)
        if forced == ErrorCode.INTERNAL:
            failure = error_reply(request, ErrorCode.INTERNAL,
                                  f"agent {card.name!r} failed while handling {request.skill!r}")
            return self._charge(request, failure, draw.service_ms if draw else 0.0, link, cost)
        skill = card.skill(request.skill)
        state = session.state if skill is not None and skill.needs_state else None
        return _Pending(request, card, endpoint, state, draw, link, cost)

    def _finish(self, step: _Pending, raw: Reply, elapsed_ms: float) -> Reply:
        request = step.request
        reply = raw.model_copy(update={"request_id": request.id, "agent": request.agent, "skill": request.skill})
        delivered = reply.error is None or reply.error.code not in _NOT_DELIVERED
        cost = step.cost if delivered else 0.0
        if step.draw is None:  # measured mode: the wall time is the latency
            return self._charge(request, reply, elapsed_ms, None, cost)
        if reply.ok and reply.result is not None:
            reply = reply.model_copy(update={"result": self.faults.add_noise(step.card.name, reply.result,
                                                                             step.draw.rng)})
        return self._charge(request, reply, step.draw.service_ms if delivered else 0.0, step.link, cost)

    @staticmethod
    def _charge(request: Request, reply: Reply, service_ms: float, link: LinkConfig | None, cost: float) -> Reply:
        """Fill in bytes, latency (``service + link delay``) and cost; past the deadline the reply is a timeout."""
        sized = with_bytes(request, reply)
        latency = service_ms + (link.delay_ms(sized.bytes_sent + sized.bytes_received) if link else 0.0)
        timed_out = reply.error is not None and reply.error.code == ErrorCode.TIMEOUT
        if latency > request.deadline_ms and not timed_out:
            sized, timed_out = with_bytes(request, _timed_out(request)), True
        return sized.model_copy(update={"latency_ms": request.deadline_ms if timed_out else latency, "cost": cost})

    # ------------------------------------------------------------- lifecycle
    async def aclose(self) -> None:
        """Close every endpoint (HTTP clients, MCP connections)."""
        for endpoint in self._endpoints:
            await endpoint.aclose()

    def close(self) -> None:
        if len(self._endpoints) > 1:
            self._loop.call(self.aclose)
        self._loop.close()

    def __enter__(self) -> AgentRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AgentRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        self._loop.close()

    # ---------------------------------------------------------------- config
    @classmethod
    def _prepare(cls, config: RegistryConfig | str | Path | None, faults: FaultConfig | FaultModel | None,
                 kwargs: dict[str, Any]) -> tuple[AgentRegistry, list[tuple[Endpoint, list[str] | None]]]:
        """The registry with its in-process agents registered, and the remote endpoints still to connect."""
        cfg = load_config(config)
        registry = cls(faults if faults is not None else cfg.fault_config(), **kwargs)
        remote: list[tuple[Endpoint, list[str] | None]] = []
        for entry in cfg.agents:
            if isinstance(entry, LocalAgentEntry):
                registry.register(entry.build())
            else:
                remote.append((entry.build(), entry.only if isinstance(entry, HttpAgentEntry) else None))
        return registry, remote

    @classmethod
    async def afrom_config(cls, config: RegistryConfig | str | Path | None = None,
                           faults: FaultConfig | FaultModel | None = None, **kwargs: Any) -> AgentRegistry:
        """Build from a :class:`RegistryConfig` or its YAML path (``None``: the built-in agents, in-process).

        ``faults`` overrides the config's own ``faults`` entry; ``kwargs`` go to the constructor.
        """
        registry, remote = cls._prepare(config, faults, kwargs)
        try:
            for endpoint, only in remote:
                await registry.aadd_endpoint(endpoint, only)
        except BaseException:
            await registry.aclose()
            raise
        return registry

    @classmethod
    def from_config(cls, config: RegistryConfig | str | Path | None = None,
                    faults: FaultConfig | FaultModel | None = None, **kwargs: Any) -> AgentRegistry:
        """Sync :meth:`afrom_config`."""
        registry, remote = cls._prepare(config, faults, kwargs)
        try:
            for endpoint, only in remote:
                registry.add_endpoint(endpoint, only)
        except BaseException:
            registry.close()
            raise
        return registry


def _unavailable(request: Request) -> Reply:
    return error_reply(request, ErrorCode.UNAVAILABLE,
                       f"agent {request.agent!r} is unavailable: the request was not served (a retry may succeed)")


def _unreachable(request: Request, failure: TransportError) -> Reply:
    if failure.reply is not None:
        return failure.reply
    return with_bytes(request, error_reply(request, ErrorCode.UNAVAILABLE, str(failure)))


def _timed_out(request: Request) -> Reply:
    return error_reply(request, ErrorCode.TIMEOUT,
                       f"no reply from agent {request.agent!r} within the {request.deadline_ms:g} ms deadline")
