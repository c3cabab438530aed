"""Domain-specialised network agents (see ``docs/protocol.md`` for how they are reached)."""

from __future__ import annotations

from typing import Any

from netgpt.agents.base import SkillAgent
from netgpt.agents.knowledge import KnowledgeAgent
from netgpt.agents.network import (
    ChannelAgent,
    ChannelLiteAgent,
    KpiAgent,
    PhyAgent,
    RanAgent,
    TopologyAgent,
    TrafficAgent,
    TrafficLiteAgent,
)

AGENT_CLASSES: dict[str, type[SkillAgent]] = {cls.agent_name: cls for cls in (
    ChannelAgent, ChannelLiteAgent, PhyAgent, KnowledgeAgent, TrafficAgent, TrafficLiteAgent, RanAgent, TopologyAgent,
    KpiAgent)}


def build_agent(name: str, **options: Any) -> SkillAgent:
    """Instantiate a built-in agent by name (options go to its constructor, e.g. ``step_db`` for channel_lite)."""
    try:
        cls = AGENT_CLASSES[name]
    except KeyError:
        raise KeyError(f"unknown built-in agent {name!r} (known: {', '.join(AGENT_CLASSES)})") from None
    return cls(**options)


def default_agents() -> list[SkillAgent]:
    return [cls() for cls in AGENT_CLASSES.values()]


__all__ = ["AGENT_CLASSES", "SkillAgent", "build_agent", "default_agents"]
