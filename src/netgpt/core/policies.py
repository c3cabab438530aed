"""Scripted baseline policies: ``oracle`` (our physical limit), ``always`` and ``random``.

They speak the same action format as the LLM and go through the same parser, registry and fault model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np

from netgpt.core.actions import Call, render_answer, render_call
from netgpt.core.episode import Policy, session_seed
from netgpt.tasks.families import family
from netgpt.tasks.schema import Observation, PlannedCall, Task

_REPLY = re.compile(r'<reply agent="[^"]*" skill="[^"]*"(?: error="(?P<error>[^"]*)")?>(?P<body>.*)</reply>', re.DOTALL)


def _parse_reply(text: str) -> tuple[dict | None, str | None]:
    """(result, error code) of a rendered reply; parse issues count as errors."""
    match = _REPLY.search(text)
    if not match:
        return None, "issue"
    if match["error"]:
        return None, match["error"]
    return json.loads(match["body"]), None


class _PlanFollower(Policy):
    """Runs a list of planned calls, then answers from the successful results. With ``state_steps`` each action is
    preceded by the family's :meth:`~netgpt.tasks.families.Family.thought` (SFT traces that spell out a mapping or
    a selection)."""

    retries = 0
    use_observation = True
    state_steps = False  # a class default too: subclasses with their own __init__ keep working

    def __init__(self, state_steps: bool = False):
        self.state_steps = state_steps

    def begin(self, system, tasks, first_messages, resume=None, sessions=None):
        _no_forks(resume)
        self.tasks = list(tasks)
        self.plans = [self._plan(t) for t in self.tasks]
        self.cursor = [0] * len(self.tasks)
        self.attempts = [0] * len(self.tasks)
        self.results: list[list[dict]] = [[] for _ in self.tasks]
        self.gave_up = [False] * len(self.tasks)

    def _seen(self, task: Task) -> Observation:
        """The observation this policy acts on: a blank one (whatever it holds ignored) unless it uses it."""
        return task.observation if self.use_observation else Observation(time=task.observation.time)

    def _plan(self, task: Task) -> list[PlannedCall]:
        if self.use_observation:
            return [c for c in task.reference_plan if c.expect_error is None]
        return family(task.family).plan(task.state, task.params, self._seen(task))

    def act(self, indices):
        out = []
        for i in indices:
            task, plan = self.tasks[i], self.plans[i]
            fam = family(task.family)
            if self.use_observation and not plan:
                answer = fam.answer_from_observation(task.observation, task.params)
                text = self._stated(i, None, render_answer(answer)) if answer else render_answer("unknown")
            elif self.gave_up[i]:
                text = render_answer("unknown")
            elif self.cursor[i] < len(plan):
                c = plan[self.cursor[i]]
                text = self._stated(i, c, render_call(Call(agent=c.agent, skill=c.skill, args=c.args)))
            else:
                text = self._stated(i, None, render_answer(fam.answer_from_results(task.params, self.results[i])))
            out.append((text, None, False))
        return out

    def _stated(self, i: int, call: PlannedCall | None, action: str) -> str:
        """Episode ``i``'s ``action``, preceded by its family's thought line when steps are stated and it has one."""
        task = self.tasks[i]
        if not self.state_steps:
            return action
        # the teacher that ignores the observation states no reading of it either
        thought = family(task.family).thought(self._seen(task), task.params, self.results[i], call)
        return f"{thought}\n{action}" if thought else action

    def observe(self, index, reply_text):
        result, error = _parse_reply(reply_text)
        if error is None:
            self.results[index].append(result)
            self.cursor[index] += 1
            self.attempts[index] = 0
        elif self.attempts[index] < self.retries:
            self.attempts[index] += 1
        else:
            self.gave_up[index] = True


class OraclePolicy(_PlanFollower):
    """Answers from a fresh report when there is one, otherwise runs the cheapest adequate plan and retries a
    failed call (up to twice) — the best any core can do on the benchmark."""

    name = "oracle"
    retries = 2


class AlwaysPolicy(_PlanFollower):
    """Teacher baseline: always delegates, following the plan for a blank observation; never retries."""

    name = "always"
    use_observation = False


class RandomPolicy(Policy):
    """Each turn: with probability ½ answer a random number, otherwise call a random skill with the task's
    parameters whose names match the skill's arguments. A floor for every other policy."""

    name = "random"

    def __init__(self, cards, seed: int = 0):
        self.skills = [(c.name, s) for c in cards for s in c.skills]
        self.seed = seed

    def begin(self, system, tasks, first_messages, resume=None, sessions=None):
        _no_forks(resume)
        if sessions is None or len(sessions) != len(tasks):
            raise ValueError("the random policy seeds each episode from its session name: pass one per task")
        self.tasks = list(tasks)
        self.rngs = [np.random.default_rng(session_seed(self.seed, s)) for s in sessions]

    def act(self, indices: Sequence[int]):
        out = []
        for i in indices:
            rng = self.rngs[i]
            if rng.random() < 0.5:
                out.append((render_answer(f"{rng.uniform(0, 100):.1f}"), None, False))
                continue
            agent, skill = self.skills[int(rng.integers(len(self.skills)))]
            props = skill.args_schema.get("properties", {})
            args = {k: v for k, v in self.tasks[i].params.model_dump().items() if k in props}
            out.append((render_call(Call(agent=agent, skill=skill.name, args=args)), None, False))
        return out


def _no_forks(resume) -> None:
    if resume is not None and any(r is not None for r in resume):
        raise ValueError("scripted policies write whole episodes: they cannot continue a fork's tokens")
