"""Stochastic external states of the agents: failures, service latency, output noise, link delay, injected faults.

The core talks to agents that fail, are slow and are noisy, and every exchange costs time and bandwidth. This
module draws those effects. Draws are seeded from ``(seed, session, agent, call index)`` so that an episode's
faults and latencies are the same however many episodes run at once and in whatever order their calls
interleave. Latency is *charged* (written into the reply) rather than slept, unless ``realtime`` is set.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from netgpt.protocol.messages import AgentCard, ErrorCode, LatencyModel


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkConfig(_Config):
    """The core↔agent link: a round trip plus serialisation of the bytes at the link rate."""

    rtt_ms: float = Field(10.0, ge=0, description="round-trip time of the link")
    bandwidth_mbps: float = Field(100.0, gt=0, description="link rate in Mbit/s")

    def delay_ms(self, n_bytes: int) -> float:
        """Communication delay of an exchange of ``n_bytes`` in total: ``rtt + bytes·8 / bandwidth``."""
        return self.rtt_ms + n_bytes * 8 / (self.bandwidth_mbps * 1e3)


class AgentFaultConfig(_Config):
    """Per-agent overrides; ``None`` keeps what the agent's card advertises."""

    failure_prob: float | None = Field(None, ge=0, le=1,
                                       description="probability a call fails as unavailable; default 1 - reliability")
    latency: LatencyModel | None = Field(None, description="service-time model; default the card's")
    per_call_cost: float | None = Field(None, ge=0, description="cost units per call; default the card's")
    noise: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict,
                                    description="result field (dotted path) -> Gaussian sigma in the field's unit")


class FaultConfig(_Config):
    """Everything stochastic about the agents, as loaded from ``configs/faults.yaml``."""

    seed: int = Field(0, ge=0)
    simulate: bool = Field(True, description="draw failures, latency and noise; False: measure real wall time")
    realtime: bool = Field(False, description="sleep the simulated latency instead of only charging it")
    default_link: LinkConfig = Field(default_factory=LinkConfig)
    links: dict[str, LinkConfig] = Field(default_factory=dict, description="per-agent link overrides")
    agents: dict[str, AgentFaultConfig] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> FaultConfig:
        """Read a YAML file (``yaml.safe_load``: nothing in it is executed)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data)


MAX_INJECTED_FAULTS = 256
"""Most injected faults a session (or a served request) may carry; each costs one entry, whatever its ``calls``."""


class FaultInjection(_Config):
    """A task's scripted failure: the first ``calls`` requests to ``agent`` fail with ``code``.

    Same fields as ``netgpt.tasks.InjectedFault``, which converts with ``model_validate(f, from_attributes=True)``.
    """

    agent: str
    calls: int = Field(1, ge=1)
    code: Literal["unavailable", "timeout", "internal"] = "unavailable"


class InjectedFaults:
    """The per-agent schedule of a session's injected faults; faults for one agent apply one after another.

    Each agent's schedule is kept as runs ``(end, code)`` — call indices below ``end`` (and at or past the
    previous run's end) fail with ``code`` — so its memory is one entry per fault however large ``calls`` is:
    a request asking for a billion failing calls costs what a request asking for one does.
    """

    def __init__(self, faults: Iterable[FaultInjection | Mapping[str, Any] | Any] = ()) -> None:
        self._ends: dict[str, list[int]] = {}
        self._codes: dict[str, list[ErrorCode]] = {}
        for fault in faults:
            f = fault if isinstance(fault, FaultInjection) else (
                FaultInjection.model_validate(fault) if isinstance(fault, Mapping)
                else FaultInjection.model_validate(fault, from_attributes=True))
            ends = self._ends.setdefault(f.agent, [])
            ends.append((ends[-1] if ends else 0) + f.calls)
            self._codes.setdefault(f.agent, []).append(ErrorCode(f.code))

    def code(self, agent: str, index: int) -> ErrorCode | None:
        """The error forced on call ``index`` (0-based, counting calls that passed validation) to ``agent``."""
        ends = self._ends.get(agent)
        if not ends or index >= ends[-1]:
            return None
        return self._codes[agent][bisect.bisect_right(ends, index)]


@dataclass(frozen=True)
class CallDraw:
    """The random fate of one call, drawn before it is made."""

    fails: bool
    service_ms: float
    rng: np.random.Generator


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class FaultModel:
    """Draws a call's fate from a generator derived from ``(seed, session, agent, call index)`` alone.

    Draw order within a call is fixed: one uniform for failure, one normal for latency, then one normal per
    noisy result element, so changing the noise config never changes which calls fail or how long they take.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()

    def _agent(self, agent: str) -> AgentFaultConfig:
        return self.config.agents.get(agent) or AgentFaultConfig()

    def link(self, agent: str) -> LinkConfig:
        return self.config.links.get(agent, self.config.default_link)

    def per_call_cost(self, card: AgentCard) -> float:
        override = self._agent(card.name).per_call_cost
        return card.cost.per_call_cost if override is None else override

    def failure_prob(self, card: AgentCard) -> float:
        override = self._agent(card.name).failure_prob
        return 1.0 - card.cost.reliability if override is None else override

    def latency_model(self, card: AgentCard) -> LatencyModel:
        return self._agent(card.name).latency or card.cost.latency

    def rng(self, session: str, agent: str, index: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, _key(session), _key(agent), index])

    def draw(self, card: AgentCard, session: str, index: int) -> CallDraw:
        """Fate of call ``index`` to ``card``'s agent in ``session``: failure, and service time
        ``floor + median·exp(sigma·z)`` with ``z ~ N(0, 1)``."""
        rng = self.rng(session, card.name, index)
        fails = bool(rng.random() < self.failure_prob(card))
        model = self.latency_model(card)
        service_ms = model.floor_ms + model.median_ms * float(np.exp(model.sigma * rng.standard_normal()))
        return CallDraw(fails=fails, service_ms=service_ms, rng=rng)

    def add_noise(self, agent: str, result: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``result`` with Gaussian noise added to the configured numeric fields (absent fields are skipped)."""
        noise = self._agent(agent).noise
        if not noise:
            return result
        noisy = copy.deepcopy(result)
        for path, sigma in noise.items():
            *parents, leaf = path.split(".")
            node: Any = noisy
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and leaf in node:
                node[leaf] = _perturb(node[leaf], sigma, rng)
        return noisy


def _perturb(value: Any, sigma: float, rng: np.random.Generator) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) + sigma * float(rng.standard_normal())
    if isinstance(value, list):
        return [_perturb(v, sigma, rng) for v in value]
    return value
