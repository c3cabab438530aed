"""Transport-independent dispatch: one :class:`Request` in, one :class:`Reply` out, never an exception.

Every transport (in-process, HTTP, MCP) ends here for agents hosted in this process, so the checks a request
goes through are the same wherever it came from: agent and skill lookup, JSON Schema (Draft 2020-12)
validation of the arguments *before* any work, the session rule for stateful skills, and the conversion of
whatever the handler raises into a typed error reply. Nothing in a request is ever evaluated as code: the
arguments are data checked against a schema and handed to the agent's ``handle``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match, relevance

from netgpt.protocol.agent import Agent, AgentError
from netgpt.protocol.messages import AgentCard, ErrorCode, ErrorInfo, Reply, Request, Skill
from netgpt.world import World

ACCOUNTING_FIELDS = frozenset({"latency_ms", "bytes_sent", "bytes_received", "cost"})
"""Reply fields the measuring side fills in; they are left out when a reply's size is measured."""

MAX_ARGS_DEPTH = 32
"""Deepest nesting of objects and arrays in a request's arguments (no skill needs more than a few levels)."""

_MAX_MESSAGE_CHARS = 600
_MAX_SCHEMA_ERRORS = 3


def request_bytes(request: Request) -> int:
    """Size of the request on the wire: UTF-8 length of its compact JSON (``Request.model_dump_json()``)."""
    return len(request.model_dump_json().encode())


def reply_bytes(reply: Reply) -> int:
    """Size of the reply's payload: UTF-8 length of its compact JSON without the accounting fields.

    The accounting fields are excluded so that the size does not depend on itself; everything the core has to
    read (ids, result or error) is counted.
    """
    return len(reply.model_dump_json(exclude=set(ACCOUNTING_FIELDS)).encode())


def with_bytes(request: Request, reply: Reply) -> Reply:
    """``reply`` with ``bytes_sent``/``bytes_received`` measured as defined above."""
    return reply.model_copy(update={"bytes_sent": request_bytes(request), "bytes_received": reply_bytes(reply)})


def _clip(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ok_reply(request: Request, result: dict[str, Any]) -> Reply:
    return Reply(request_id=request.id, agent=request.agent, skill=request.skill, ok=True, result=result)


def error_reply(request: Request, code: ErrorCode, message: str) -> Reply:
    return Reply(request_id=request.id, agent=request.agent, skill=request.skill, ok=False,
                 error=ErrorInfo(code=code, message=_clip(message)))


class ArgsValidator:
    """Compiled Draft 2020-12 validators for skill argument schemas, built once per schema.

    Compiling a validator costs far more than running it, and the same few skills are called thousands of
    times per benchmark run.
    """

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], tuple[dict[str, Any], Draft202012Validator]] = {}

    @staticmethod
    def check_schema(card: AgentCard) -> None:
        """Raise ``jsonschema.SchemaError`` if a skill of ``card`` carries an invalid argument schema."""
        for skill in card.skills:
            Draft202012Validator.check_schema(skill.args_schema)

    def _validator(self, agent: str, skill: Skill) -> Draft202012Validator:
        cached = self._compiled.get((agent, skill.name))
        if cached is None or cached[0] is not skill.args_schema:
            cached = (skill.args_schema, Draft202012Validator(skill.args_schema))
            self._compiled[(agent, skill.name)] = cached
        return cached[1]

    def problems(self, agent: str, skill: Skill, args: dict[str, Any]) -> str | None:
        """A readable description of what is wrong with ``args`` (naming the fields), or ``None`` if valid."""
        errors = list(self._validator(agent, skill).iter_errors(args))
        if not errors:
            return None
        first = best_match(errors)
        ordered = [first] + sorted((e for e in errors if e is not first), key=relevance)
        described = "; ".join(_describe(e) for e in ordered[:_MAX_SCHEMA_ERRORS])
        more = f" (+{len(errors) - _MAX_SCHEMA_ERRORS} more)" if len(errors) > _MAX_SCHEMA_ERRORS else ""
        return f"invalid arguments for {agent}.{skill.name}: {described}{more}"


def _describe(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    inside = f" in '{where}'" if where else ""
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [n for n in error.validator_value if n not in error.instance]
        return f"missing required argument {', '.join(repr(m) for m in missing)}{inside}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unexpected argument {', '.join(repr(e) for e in extra)}{inside}{hint}"
    # jsonschema quotes the offending value in full; shorten it so the reason stays visible
    quoted = repr(error.instance)
    message = error.message.replace(quoted, _clip(quoted, 40), 1) if len(quoted) > 40 else error.message
    message = _clip(message, 200)
    return f"argument '{where}': {message}" if where else message


def args_problem(args: dict[str, Any]) -> str | None:
    """What makes ``args`` unfit for any skill, or ``None``: a number JSON cannot carry (Infinity, NaN; some
    JSON parsers accept them) or nesting past :data:`MAX_ARGS_DEPTH`. Walked without recursion, so a deeply
    nested value cannot exhaust the stack before it is refused."""
    stack: list[tuple[Any, str, int]] = [(args, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"argument '{where}': {value} is not a finite number (JSON has no Infinity or NaN)"
        if isinstance(value, dict | list):
            if depth >= MAX_ARGS_DEPTH:
                return f"arguments nested deeper than {MAX_ARGS_DEPTH} levels (at '{where}')"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in items)
    return None


def preflight(card: AgentCard, request: Request, validator: ArgsValidator, state: World | None,
              session_known: bool) -> Reply | None:
    """The checks a request passes before any work: skill, arguments, session. ``None`` means go ahead.

    ``session_known`` says whether ``request.session`` names an open session; it only matters for skills that
    read the hidden state, which cannot run without one.
    """
    skill = card.skill(request.skill)
    if skill is None:
        known = ", ".join(s.name for s in card.skills)
        return error_reply(request, ErrorCode.UNKNOWN_SKILL,
                           f"agent {card.name!r} has no skill {request.skill!r} (skills: {known})")
    problem = args_problem(request.args) or validator.problems(card.name, skill, request.args)
    if problem is not None:
        return error_reply(request, ErrorCode.INVALID_ARGS, problem)
    if skill.needs_state and state is None:
        if request.session is None:
            why = "the request carries no session id"
        elif not session_known:
            why = f"session {request.session!r} is not open"
        else:
            why = f"session {request.session!r} holds no network state"
        return error_reply(request, ErrorCode.INVALID_ARGS,
                           f"{card.name}.{skill.name} reads the network state, so it needs the id of an open "
                           f"session: {why}")
    return None


def _clean(text: str) -> str:
    return text.encode("utf-8", "replace").decode()


def unencodable(request: Request) -> tuple[Request, Reply] | None:
    """A request that cannot be written as JSON (text with lone surrogates, non-JSON values built in Python)
    cannot go on any wire: its ``invalid_args`` reply, with the request it answers (text cleaned, args dropped)."""
    try:
        request.model_dump_json()
    except ValueError as exc:
        clean = Request(id=_clean(request.id), caller=_clean(request.caller), agent=_clean(request.agent),
                        skill=_clean(request.skill), deadline_ms=request.deadline_ms,
                        session=None if request.session is None else _clean(request.session))
        return clean, error_reply(clean, ErrorCode.INVALID_ARGS,
                                  f"the request cannot be serialised as JSON: {_clean(str(exc))}")
    return None


def unknown_agent(request: Request, known: Iterable[str]) -> Reply:
    return error_reply(request, ErrorCode.UNKNOWN_AGENT,
                       f"no agent named {request.agent!r} (agents: {', '.join(sorted(known))})")


def _json_scalar(value: Any) -> Any:
    """numpy scalars (``np.int64``, ``np.bool_``…) are plain numbers to the caller; anything else is not JSON."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def run_handler(agent: Agent, request: Request, state: World | None) -> Reply:
    """Call ``agent.handle``; an :class:`AgentError` becomes its typed reply, anything else ``internal``.

    The result goes through a JSON round trip so that an in-process caller gets exactly what a remote one
    would (lists not tuples, no NaN, numpy scalars as numbers), and a result that is not JSON is the agent's
    failure, reported as ``internal``.
    """
    try:
        result = agent.handle(request.skill, dict(request.args), state)
    except AgentError as exc:
        codes = {c.value for c in ErrorCode}
        return error_reply(request, ErrorCode(exc.code) if exc.code in codes else ErrorCode.INTERNAL, str(exc.message))
    except Exception as exc:  # boundary: a crashing agent must not take the caller down
        return error_reply(request, ErrorCode.INTERNAL,
                           f"agent {agent.name!r} failed while handling {request.skill!r}: "
                           f"{type(exc).__name__}: {exc}")
    if not isinstance(result, dict):
        return error_reply(request, ErrorCode.INTERNAL,
                           f"agent {agent.name!r} returned {type(result).__name__} for {request.skill!r}, "
                           "not a JSON object")
    try:
        payload = json.loads(json.dumps(result, allow_nan=False, default=_json_scalar))
    except (TypeError, ValueError) as exc:
        return error_reply(request, ErrorCode.INTERNAL,
                           f"agent {agent.name!r} returned a result that is not JSON: {exc}")
    return ok_reply(request, payload)


class LocalDispatcher:
    """In-process agents behind the full request pipeline; the state of a call is passed in by the caller."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        self.validator = ArgsValidator()
        for agent in agents:
            self.add(agent)

    def add(self, agent: Agent) -> None:
        """Host ``agent``; its argument schemas are checked now so a bad card fails at start-up, not mid-run."""
        if agent.name in self._agents:
            raise ValueError(f"agent {agent.name!r} is already registered")
        ArgsValidator.check_schema(agent.card)
        self._agents[agent.name] = agent

    def cards(self) -> list[AgentCard]:
        return [agent.card for agent in self._agents.values()]

    def dispatch(self, request: Request, state: World | None = None, session_known: bool | None = None) -> Reply:
        """Run ``request`` against the hosted agents; bytes are measured, latency and cost are the caller's."""
        bad = unencodable(request)
        if bad is not None:
            return with_bytes(*bad)
        agent = self._agents.get(request.agent)
        if agent is None:
            return with_bytes(request, unknown_agent(request, self._agents))
        known = state is not None if session_known is None else session_known
        reply = preflight(agent.card, request, self.validator, state, known) or run_handler(agent, request, state)
        return with_bytes(request, reply)
