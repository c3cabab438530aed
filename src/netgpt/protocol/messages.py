"""Wire types of the agentic communication protocol (pydantic v2; JSON on every transport).

An agent publishes an :class:`AgentCard`; the core sends a :class:`Request` and always gets a :class:`Reply`
back — failures are replies with an :class:`ErrorCode`, never exceptions across the wire.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorCode(StrEnum):
    INVALID_ARGS = "invalid_args"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_SKILL = "unknown_skill"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class LatencyModel(_Wire):
    """Service time of one call: lognormal with the given median and log-space sigma, plus a fixed floor."""

    median_ms: float = Field(gt=0)
    sigma: float = Field(0.5, ge=0)
    floor_ms: float = Field(0.0, ge=0)


class CostModel(_Wire):
    latency: LatencyModel
    per_call_cost: float = Field(0.0, ge=0, description="abstract compute cost units per call")
    reliability: float = Field(1.0, ge=0, le=1, description="advertised probability that a call succeeds")


class Skill(_Wire):
    name: str
    description: str
    args_schema: dict[str, Any] = Field(description="JSON Schema of the arguments object")
    result_schema: dict[str, Any] = Field(description="JSON Schema of the result object")
    needs_state: bool = Field(description="reads the task's hidden network state (a session is required)")


class AgentCard(_Wire):
    name: str
    description: str
    skills: list[Skill]
    cost: CostModel
    endpoint: str | None = Field(None, description="where the agent is reached; None for in-process")

    def skill(self, name: str) -> Skill | None:
        return next((s for s in self.skills if s.name == name), None)


class Request(_Wire):
    id: str
    caller: str = "core"
    agent: str
    skill: str
    args: dict[str, Any] = Field(default_factory=dict)
    session: str | None = Field(None, description="id of the episode whose hidden state stateful skills read")
    deadline_ms: float = Field(5000.0, gt=0, allow_inf_nan=False, description="time budget for the reply, from sending")


class ErrorInfo(_Wire):
    code: ErrorCode
    message: str


class Reply(_Wire):
    request_id: str
    agent: str
    skill: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    latency_ms: float = Field(0.0, description="service time plus link delay, simulated or measured")
    bytes_sent: int = 0
    bytes_received: int = 0
    cost: float = 0.0
