"""The core's prompt: a compact system prompt built from the agent cards, and the task turn (observation + question).

Kept short on purpose: every prompt token is paid for in every rollout of every RL step.
"""

from __future__ import annotations

from netgpt.protocol.messages import AgentCard, Reply, Skill
from netgpt.tasks.schema import FRESH_REPORT_MAX_AGE_MIN, Observation, Task, compact_json

SYSTEM_HEADER = (
    "You are NetGPT, the reasoning core of a 5G network. Answer the operator's question.\n"
    "If the observation already holds the value (a report at most {fresh} min old), answer at once. "
    "Otherwise call an agent, one call per turn, and answer from its reply. "
    "Calls cost time and bandwidth: make only the calls you need, prefer the cheap agent when the asked "
    "precision allows, and retry once if a call fails.\n"
    "Format, exactly one per turn:\n"
    '<call agent="NAME" skill="SKILL">{{"arg": value}}</call>\n'
    "<answer>value with unit</answer>\n"
    "Agents (skill(args), ? = optional):\n"
)


def _signature(skill: Skill) -> str:
    props = skill.args_schema.get("properties", {})
    required = set(skill.args_schema.get("required", []))
    args = ",".join(name if name in required else f"{name}?" for name in props)
    return f"{skill.name}({args})"


def describe_agent(card: AgentCard) -> str:
    skills = " ".join(_signature(s) for s in card.skills)
    return f"- {card.name} [~{card.cost.latency.median_ms:g} ms, cost {card.cost.per_call_cost:g}]: {skills}"


def system_prompt(cards: list[AgentCard]) -> str:
    return SYSTEM_HEADER.format(fresh=FRESH_REPORT_MAX_AGE_MIN) + "\n".join(describe_agent(c) for c in cards)


def render_observation(obs: Observation) -> str:
    return compact_json(obs.model_dump())


def task_message(task: Task) -> str:
    return f"Observation: {render_observation(task.observation)}\nQuestion: {task.question}"


def render_reply(reply: Reply) -> str:
    """What the core reads back after a call (always a tagged block, success or error)."""
    if reply.ok:
        body = compact_json(reply.result or {})
        return f'<reply agent="{reply.agent}" skill="{reply.skill}">{body}</reply>'
    code = reply.error.code if reply.error else "internal"
    message = reply.error.message if reply.error else ""
    return f'<reply agent="{reply.agent}" skill="{reply.skill}" error="{code}">{message}</reply>'


def render_issue(kind: str, message: str) -> str:
    return f'<reply error="{kind}">{message}</reply>'


def environment_turn(reply_text: str, core_closed_turn: bool) -> str:
    """Text the environment appends after a core turn: close the assistant turn (unless the core already emitted
    ``<|im_end|>``), the reply as a user turn, and the opening of the next assistant turn. Shared by generation and
    SFT so both see exactly the same token layout."""
    close = "" if core_closed_turn else "<|im_end|>"
    return f"{close}\n<|im_start|>user\n{reply_text}<|im_end|>\n<|im_start|>assistant\n"
