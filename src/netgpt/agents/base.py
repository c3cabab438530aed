"""Declarative skills: a typed argument model, a typed result model and a handler, turned into an AgentCard.

The argument model is the single source of the skill's JSON Schema (``model_json_schema``), so the schema the
protocol validates against and the parsing the handler relies on cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from netgpt.protocol.agent import Agent, AgentError
from netgpt.protocol.messages import AgentCard, CostModel, ErrorCode, Skill
from netgpt.world import World


class Args(BaseModel):
    """Base of every skill's arguments: unknown fields are an error, not silently ignored, and so are Infinity
    and NaN (no radio input is infinite, and a result computed from one could not be sent as JSON)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SkillSpec:
    name: str
    description: str
    args: type[Args]
    result: type[BaseModel]  # Result subclasses, or the analytics models an agent returns unchanged
    needs_state: bool
    handler: Callable[..., BaseModel]


def skill(name: str, description: str, args: type[Args], result: type[BaseModel], needs_state: bool = False):
    """Mark an agent method as a skill. The method receives the parsed args (and the state if it needs one)."""

    def mark(fn):
        fn.__skill__ = (name, description, args, result, needs_state)
        return fn

    return mark


class SkillAgent(Agent):
    """An agent whose skills are its ``@skill`` methods."""

    agent_name: ClassVar[str]
    description: ClassVar[str]
    cost: ClassVar[CostModel]

    def __init__(self) -> None:
        self.skills: dict[str, SkillSpec] = {}
        for attr in dir(type(self)):
            marker = getattr(getattr(type(self), attr), "__skill__", None)
            if marker:
                name, description, args, result, needs_state = marker
                self.skills[name] = SkillSpec(name, description, args, result, needs_state, getattr(self, attr))
        self.card = AgentCard(
            name=self.agent_name, description=self.description, cost=self.cost,
            skills=[Skill(name=s.name, description=s.description, args_schema=s.args.model_json_schema(),
                          result_schema=s.result.model_json_schema(), needs_state=s.needs_state)
                    for s in self.skills.values()],
        )

    def handle(self, skill: str, args: dict[str, Any], state: World | None) -> dict[str, Any]:
        spec = self.skills.get(skill)
        if spec is None:
            raise AgentError(ErrorCode.UNKNOWN_SKILL, f"agent {self.agent_name!r} has no skill {skill!r}")
        try:
            parsed = spec.args.model_validate(args)
        except ValidationError as exc:
            raise AgentError(ErrorCode.INVALID_ARGS, _first_error(exc)) from None
        if spec.needs_state and state is None:
            raise AgentError(ErrorCode.INVALID_ARGS, f"{self.agent_name}.{skill} reads the network state: "
                                                     "the request needs a session")
        try:
            result = spec.handler(parsed, state) if spec.needs_state else spec.handler(parsed)
        except (KeyError, ValueError) as exc:  # unknown ids, out-of-range radio inputs: the caller's mistake
            message = exc.args[0] if exc.args else str(exc)
            raise AgentError(ErrorCode.INVALID_ARGS, str(message)) from None
        return result.model_dump(mode="json")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "args"
    return f"{where}: {err['msg']}"
