"""Error analysis: where a wrong answer came from, judged against the task's reference plan.

Every task carries the plan the scripted oracle follows (empty when the observation already holds the answer), so
the successful calls of a wrong episode can be lined up with it. The first planned call the core did not make
exactly names the root cause: a later call usually differs only because it was fed the reply of a wrong earlier
one (an MCS looked up at the wrong index gives the wrong Q_m to the TBS call). Arguments are compared after filling
in the defaults from the agent's card, numbers to 0.1 % (the oracle rounds SINR to two decimals).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from netgpt.core.episode import EpisodeResult, Event
from netgpt.eval.harness import (
    INVALID_CODES,
    is_infra_error,
    load_episodes,
    split_file,
    split_generator_version,
)
from netgpt.protocol.messages import AgentCard
from netgpt.tasks.schema import PlannedCall, Task

ErrorKind = Literal["correct", "no_answer", "misread_observation", "guessed", "invalid_calls", "unrecovered_failure",
                    "wrong_call", "wrong_args", "misread_reply"]

ERROR_KINDS: dict[ErrorKind, str] = {
    "correct": "full quality",
    "no_answer": "ran out of turns or budget without an answer",
    "misread_observation": "the answer was in the observation (empty plan) and the core got it wrong",
    "guessed": "the plan needs agents, the core answered without calling any",
    "invalid_calls": "the planned call was only tried malformed or with arguments the agent rejected",
    "unrecovered_failure": "the planned call failed (agent down, timeout) and the core neither retried nor switched",
    "wrong_call": "a planned skill was never called successfully (other skills instead)",
    "wrong_args": "the planned skill was called with other arguments (or on another agent)",
    "misread_reply": "every planned call was made exactly, yet the answer is wrong",
}
AGENT_FIELD = "@agent"


class Diagnosis(BaseModel):
    task_id: str
    family: str
    kind: ErrorKind
    fields: list[str] = []  # "agent.skill.field" that differ from the plan (wrong_args)


def skill_defaults(cards: Iterable[AgentCard]) -> dict[tuple[str, str], dict[str, Any]]:
    """(agent, skill) → the default value of every argument whose JSON Schema declares one."""
    return {(card.name, skill.name): {name: prop["default"]
                                      for name, prop in skill.args_schema.get("properties", {}).items()
                                      if "default" in prop}
            for card in cards for skill in card.skills}


def _same_value(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9)
    return a == b


def _differing_fields(call: Event, planned: PlannedCall, defaults: Mapping[tuple[str, str], dict]) -> list[str]:
    fields = [AGENT_FIELD] if call.agent != planned.agent else []
    base = defaults.get((planned.agent, planned.skill), {})
    want, got = {**base, **planned.args}, {**base, **(call.args or {})}
    fields += sorted(k for k in want.keys() | got.keys()
                     if k not in want or k not in got or not _same_value(want[k], got[k]))
    return fields


def diagnose(task: Task, episode: EpisodeResult, defaults: Mapping[tuple[str, str], dict]) -> Diagnosis:
    """Classify one episode (see ``ERROR_KINDS``); checks run from the most to the least basic failure."""

    def verdict(kind: ErrorKind, fields: Sequence[str] = ()) -> Diagnosis:
        return Diagnosis(task_id=task.id, family=task.family, kind=kind, fields=list(fields))

    if episode.reward.quality >= 1.0:
        return verdict("correct")
    if episode.answer is None:
        return verdict("no_answer")
    needed = [p for p in task.reference_plan if p.expect_error is None]
    if not needed:
        return verdict("misread_observation")
    if not any(e.kind != "answer" for e in episode.events):
        return verdict("guessed")
    made = [e for e in episode.events if e.kind == "call" and e.ok]
    for planned in needed:
        candidates = [e for e in made if e.skill == planned.skill]
        diffs = [_differing_fields(e, planned, defaults) for e in candidates]
        if any(not d for d in diffs):
            continue
        if not diffs:
            return verdict(_why_not_made(planned, episode.events))
        closest = min(diffs, key=len)
        return verdict("wrong_args", [f"{planned.agent}.{planned.skill}.{f}" for f in closest])
    return verdict("misread_reply")


def _why_not_made(planned: PlannedCall, events: Sequence[Event]) -> ErrorKind:
    attempts = [e for e in events if e.kind == "call" and e.skill == planned.skill]
    if any(e.error_code not in INVALID_CODES for e in attempts):
        return "unrecovered_failure"
    if attempts or all(e.kind == "issue" for e in events if e.kind != "answer"):
        return "invalid_calls"
    return "wrong_call"


class RunErrors(BaseModel):
    """The diagnoses of one evaluation run, with counts by kind and by mismatched argument."""

    name: str
    n: int
    kinds: dict[str, int]
    fields: dict[str, int]
    by_family: dict[str, dict[str, int]]
    diagnoses: list[Diagnosis]


def analyse(name: str, tasks: Sequence[Task], episodes: Sequence[EpisodeResult],
            defaults: Mapping[tuple[str, str], dict]) -> RunErrors:
    by_id = {t.id: t for t in tasks}
    # an episode the infrastructure cut short says nothing about the core, as in the aggregate
    episodes = [e for e in episodes if not is_infra_error(e)]
    missing = [e.task_id for e in episodes if e.task_id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} episodes of {name} have no task in the split (first: {missing[0]})")
    diagnoses = [diagnose(by_id[e.task_id], e, defaults) for e in episodes]
    by_family: dict[str, Counter] = {}
    for d in diagnoses:
        by_family.setdefault(d.family, Counter())[d.kind] += 1
    return RunErrors(name=name, n=len(diagnoses), kinds=dict(Counter(d.kind for d in diagnoses)),
                     fields=dict(Counter(f for d in diagnoses for f in d.fields).most_common()),
                     by_family={f: dict(c) for f, c in sorted(by_family.items())}, diagnoses=diagnoses)


def analyse_runs(runs: Mapping[str, Path], first: int | None = None) -> list[RunErrors]:
    """:func:`analyse` each named evaluation run directory against the tasks of the split it ran on (only the
    first ``first`` episodes of each, when given)."""
    from netgpt.agents import default_agents
    from netgpt.tasks import load_tasks

    defaults = skill_defaults(agent.card for agent in default_agents())
    tasks: dict[str, list[Task]] = {}
    versions: dict[str, str] = {}
    analysed = []
    for name, run in runs.items():
        info, episodes = load_run_episodes(run)
        split = info["split"]
        if split not in tasks:
            tasks[split] = load_tasks(split_file(split))
            versions[split] = split_generator_version(tasks[split])
        # runs from before the version was recorded were all on generator 1.0.0
        ran_on, current = info.get("generator_version", "1.0.0"), versions[split]
        if ran_on != current:
            raise ValueError(f"{run} ran on task generator {ran_on} and {split_file(split)} is {current}: their "
                             "reference plans differ, so its calls cannot be diagnosed against these tasks")
        analysed.append(analyse(name, tasks[split], episodes[:first], defaults))
    return analysed


def load_run_episodes(run_dir: Path) -> tuple[dict, list[EpisodeResult]]:
    """(run.json, episodes) of an evaluation run directory."""
    return json.loads((run_dir / "run.json").read_text()), load_episodes(run_dir)


def kinds_table(runs: Sequence[RunErrors]) -> str:
    """Markdown: the share of episodes of each kind, one column per run."""
    rows = ["| outcome | " + " | ".join(r.name for r in runs) + " |", "|" + "---|" * (len(runs) + 1)]
    for kind in ERROR_KINDS:
        rows.append(f"| {kind} | " + " | ".join(f"{r.kinds.get(kind, 0) / r.n:.3f}" for r in runs) + " |")
    return "\n".join(rows)


def fields_table(run: RunErrors, top: int = 8) -> str:
    """Markdown: the arguments most often wrong in ``wrong_args`` episodes of one run."""
    rows = ["| argument (agent.skill.field) | episodes |", "|---|---|"]
    rows += [f"| {field} | {count} |" for field, count in list(run.fields.items())[:top]]
    return "\n".join(rows)
