"""NetGPT-Bench task schema (pydantic v2; JSON Schema via ``Task.model_json_schema()``)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from netgpt.tasks.params import AnyFamilyParams, FamilyParams, check_family, parse_params
from netgpt.world.schema import World

# 1.1.0: phy.peak_rate takes the carrier (fr, scs_khz, bandwidth_mhz, direction), phy.throughput a target_mbps;
# questions and answers are those of 1.0.0, only the reference plans of peak_rate and sla_check changed
GENERATOR_VERSION = "1.1.0"

AnswerKind = Literal["number", "choice", "id"]
Observability = Literal["low", "medium", "high"]
Difficulty = Literal["easy", "medium", "hard"]

# Reports older than this are stale: the core must not answer "current" questions from them.
FRESH_REPORT_MAX_AGE_MIN = 15


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerSpec(_Model):
    """The expected answer. Numbers carry a unit and an absolute tolerance in that unit (0 = exact)."""

    kind: AnswerKind
    value: float | None = None
    label: str | None = None
    unit: str | None = None
    tolerance: float | None = None
    choices: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AnswerSpec:
        if self.kind == "number":
            if self.value is None or self.tolerance is None or self.tolerance < 0:
                raise ValueError("a number answer needs a value and a tolerance >= 0")
        elif self.label is None:
            raise ValueError(f"a {self.kind} answer needs a label")
        if self.kind == "choice" and (not self.choices or self.label not in self.choices):
            raise ValueError("a choice answer needs choices that contain its label")
        return self

    def display(self) -> str:
        if self.kind == "number":
            value = f"{self.value:g}" if abs(self.value) >= 1e-3 or self.value == 0 else f"{self.value:.3e}"
            return f"{value} {self.unit}".strip() if self.unit else value
        return str(self.label)


class PlannedCall(_Model):
    """One agent call of the reference (oracle) plan. ``expect_error`` marks a call the task's faults make fail."""

    agent: str
    skill: str
    args: dict[str, Any]
    expect_error: str | None = None


class InjectedFault(_Model):
    """The first ``calls`` requests to ``agent`` fail with ``code`` (on top of the runtime's random faults)."""

    agent: str
    calls: int = Field(1, ge=1)
    code: Literal["unavailable", "timeout", "internal"] = "unavailable"


def compact(value: Any) -> Any:
    """Drop empty fields and round floats to 3 decimals, so that what the core reads costs as few tokens as possible."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v not in (None, [], {}, "")}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def compact_json(value: Any) -> str:
    """``value`` as the core reads it in its prompt: compact, without spaces."""
    return json.dumps(compact(value), separators=(",", ":"))


class CachedReport(_Model):
    """A report the core already holds; ``age_min`` tells whether it still describes the present."""

    kind: str
    subject: str
    age_min: float
    values: dict[str, float | str]


class Observation(_Model):
    """The part of the network the core sees. The observability level decides how much of the state shows."""

    time: str
    scenario: str | None = None
    carrier: dict[str, float | int] | None = None
    cells: list[dict[str, Any]] = Field(default_factory=list)
    ues: list[dict[str, Any]] = Field(default_factory=list)
    slices: list[dict[str, Any]] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    reports: list[CachedReport] = Field(default_factory=list)


class Task(_Model):
    """One benchmark question. ``params`` is the typed model of ``family`` (:mod:`netgpt.tasks.params`)."""

    id: str
    family: str
    template: str
    split: str
    question: str
    params: AnyFamilyParams = Field(description="family parameters the answer is computed from; validated against "
                                                "the family's own model (netgpt.tasks.params.FAMILY_PARAMS)")
    observability: Observability
    observation: Observation
    state: World
    answer: AnswerSpec
    reference_plan: list[PlannedCall]
    faults: list[InjectedFault] = Field(default_factory=list)
    difficulty: Difficulty
    generator_version: str = GENERATOR_VERSION

    @field_validator("family")
    @classmethod
    def _known_family(cls, name: str) -> str:
        return check_family(name)

    @field_validator("params", mode="before")
    @classmethod
    def _family_params(cls, value: Any, info: ValidationInfo) -> FamilyParams:
        if "family" not in info.data:  # the family itself is invalid: that error says why
            raise ValueError("cannot be checked without a known family")
        return parse_params(info.data["family"], value)
