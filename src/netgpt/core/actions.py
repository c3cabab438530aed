"""The core's action format and its parser.

The core writes exactly one action per turn::

    <call agent="phy" skill="tbs">{"qm": 6, "code_rate_x1024": 772, ...}</call>
    <answer>47112 bits</answer>

Free text before the tag (a short thought) is allowed and ignored. Agent replies come back in a user turn as
``<reply agent="phy" skill="tbs">{...}</reply>`` or ``<reply error="invalid_args">message</reply>``.

:func:`parse_turn` never raises: every way model output can be wrong becomes a typed :class:`ParseIssue` that the
episode turns into an error reply (so the core can recover) and that the reward can penalise.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from netgpt.protocol.messages import AgentCard

# Tokens an LLM core may generate per turn, by default everywhere (eval, serve, bench, RL, rollout workers): the
# longest stated oracle turn (tbs: the allocation line, then the call) is 113 tokens.
MAX_NEW_TOKENS = 128

MAX_ARGS_CHARS = 4000


class IssueKind(StrEnum):
    NO_ACTION = "no_action"                # neither a call nor an answer
    MALFORMED_CALL = "malformed_call"      # a <call …> tag without agent/skill attributes or without </call>
    BAD_JSON = "bad_json"                  # the call body is not JSON
    ARGS_NOT_OBJECT = "args_not_object"    # the call body is JSON but not an object
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_SKILL = "unknown_skill"
    EMPTY_ANSWER = "empty_answer"
    OVERLONG = "overlong"                  # generation hit the token limit inside an action
    EXTRA_ACTIONS = "extra_actions"        # more than one action in a turn: only the first counts


class ParseIssue(BaseModel):
    kind: IssueKind
    message: str


class Call(BaseModel):
    agent: str
    skill: str
    args: dict[str, Any]


class Answer(BaseModel):
    text: str


class ParsedTurn(BaseModel):
    action: Call | Answer | None
    issues: list[ParseIssue]


_ACTION = re.compile(r"<(call|answer)\b([^>]*)>(.*?)(?:(?P<close></\1\s*>)|\Z)", re.DOTALL | re.IGNORECASE)
_ATTR = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def parse_turn(text: str, cards: dict[str, AgentCard], truncated: bool = False) -> ParsedTurn:
    """Parse one generated turn. ``truncated``: generation stopped at the token limit, not at a stop string."""
    matches = list(_ACTION.finditer(text))
    if not matches:
        kind = IssueKind.OVERLONG if truncated else IssueKind.NO_ACTION
        return ParsedTurn(action=None, issues=[ParseIssue(kind=kind, message=(
            "no <call …>…</call> or <answer>…</answer> found"))])
    issues = []
    if len(matches) > 1:
        message = f"{len(matches)} actions; only the first is used"
        issues.append(ParseIssue(kind=IssueKind.EXTRA_ACTIONS, message=message))
    match = matches[0]
    tag, attrs, body = match.group(1).lower(), match.group(2), match.group(3)
    closed = match.group("close") is not None
    if tag == "answer":
        if not closed and truncated:
            return ParsedTurn(action=None, issues=issues + [ParseIssue(
                kind=IssueKind.OVERLONG, message="the answer was cut off by the token limit")])
        answer = body.strip()
        if not answer:
            return ParsedTurn(action=None, issues=issues + [ParseIssue(kind=IssueKind.EMPTY_ANSWER,
                                                                        message="empty <answer>")])
        return ParsedTurn(action=Answer(text=answer[:500]), issues=issues)
    return _parse_call(attrs, body, closed, truncated, cards, issues)


def _parse_call(attrs: str, body: str, closed: bool, truncated: bool, cards: dict[str, AgentCard],
                issues: list[ParseIssue]) -> ParsedTurn:
    def fail(kind: IssueKind, message: str) -> ParsedTurn:
        return ParsedTurn(action=None, issues=issues + [ParseIssue(kind=kind, message=message)])

    if not closed:
        if truncated:
            return fail(IssueKind.OVERLONG, "the call was cut off by the token limit")
        return fail(IssueKind.MALFORMED_CALL, "missing </call>")
    values = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR.finditer(attrs)}
    agent, skill = values.get("agent", "").strip(), values.get("skill", "").strip()
    if not agent or not skill:
        return fail(IssueKind.MALFORMED_CALL, 'a call needs agent="…" and skill="…" attributes')
    if agent not in cards:
        return fail(IssueKind.UNKNOWN_AGENT, f"unknown agent {agent!r}; agents: {', '.join(sorted(cards))}")
    if cards[agent].skill(skill) is None:
        known = ", ".join(s.name for s in cards[agent].skills)
        return fail(IssueKind.UNKNOWN_SKILL, f"agent {agent!r} has no skill {skill!r}; skills: {known}")
    body = body.strip() or "{}"
    if len(body) > MAX_ARGS_CHARS:
        return fail(IssueKind.BAD_JSON, f"arguments longer than {MAX_ARGS_CHARS} characters")
    try:
        args = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        return fail(IssueKind.BAD_JSON, f"arguments are not valid JSON: {getattr(exc, 'msg', exc)}")
    if not isinstance(args, dict):
        return fail(IssueKind.ARGS_NOT_OBJECT, f"arguments must be a JSON object, got {type(args).__name__}")
    return ParsedTurn(action=Call(agent=agent, skill=skill, args=args), issues=issues)


def render_call(call: Call) -> str:
    return f'<call agent="{call.agent}" skill="{call.skill}">{json.dumps(call.args, separators=(",", ":"))}</call>'


def render_answer(text: str) -> str:
    return f"<answer>{text}</answer>"
