"""One step's episodes as a single typed object, from rollout to loss (veRL's ``DataProto`` in miniature).

The trainer fills a :class:`RolloutBatch` in stages::

    rollout  ── tasks, rollouts (each with its group id and fork parent), draws, branch statistics
    score    ── + rewards, advantages, spread_groups    (RolloutBatch.scored)
    update   ── groups(), scores() → the masked loss      (loss.py)
    log      ── records() → rollouts.jsonl

A rollout's ``group`` indexes ``tasks`` and its ``parent`` indexes ``rollouts``: the batch keeps both valid when draws
are joined (:meth:`RolloutBatch.joined`) and checks that stage data lines up with its rollouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from netgpt.rl.rollout import BranchStats, Rollout
from netgpt.tasks.schema import Task


class BatchError(ValueError):
    """Stage data that does not line up with a batch's rollouts or tasks, or that a stage needs before it exists."""


@dataclass(frozen=True)
class RolloutBatch:
    """A step's group rollouts and their tasks; after scoring, their rewards and advantages too.

    ``tasks[g]`` is group ``g``'s task; ``rewards[i]`` and ``advantages[i]`` belong to ``rollouts[i]``;
    ``spread_groups`` are the groups (in order of first appearance) whose dynamic-sampling metric differs."""

    step: int
    tasks: list[Task]
    rollouts: list[Rollout]
    draws: int = 1
    branch: BranchStats = field(default_factory=BranchStats)
    rewards: list[float] | None = None
    advantages: torch.Tensor | None = None
    spread_groups: list[int] | None = None

    def __post_init__(self) -> None:
        for k, rollout in enumerate(self.rollouts):
            if not 0 <= rollout.group < len(self.tasks):
                raise BatchError(f"rollout {k} is in group {rollout.group}, but the batch has {len(self.tasks)} tasks")
            if rollout.parent is not None and not 0 <= rollout.parent < len(self.rollouts):
                raise BatchError(f"rollout {k} forks rollout {rollout.parent}, but the batch has "
                                 f"{len(self.rollouts)} rollouts")
        for name, values in (("rewards", self.rewards), ("advantages", self.advantages)):
            if values is not None and len(values) != len(self.rollouts):
                raise BatchError(f"{len(values)} {name} for {len(self.rollouts)} rollouts")

    @property
    def group_ids(self) -> list[int]:
        return [r.group for r in self.rollouts]

    def groups(self) -> dict[int, list[int]]:
        """Each group's rollout indices (forks included), groups in order of first appearance."""
        members: dict[int, list[int]] = {}
        for index, rollout in enumerate(self.rollouts):
            members.setdefault(rollout.group, []).append(index)
        return members

    def joined(self, draw: RolloutBatch) -> RolloutBatch:
        """This batch followed by another draw of the same step: the draw's groups and fork parents are renumbered
        past this batch's tasks and rollouts, and the branch statistics add up."""
        shifted = [r.model_copy(update={"group": r.group + len(self.tasks),
                                        "parent": None if r.parent is None else r.parent + len(self.rollouts)})
                   for r in draw.rollouts]
        branch = BranchStats(eligible=self.branch.eligible + draw.branch.eligible,
                             fired=self.branch.fired + draw.branch.fired, taken=self.branch.taken + draw.branch.taken)
        return RolloutBatch(step=self.step, tasks=self.tasks + draw.tasks, rollouts=self.rollouts + shifted,
                            draws=self.draws + draw.draws, branch=branch)

    def scored(self, rewards: Sequence[float], advantages: torch.Tensor, spread_groups: Sequence[int]
               ) -> RolloutBatch:
        """The batch with each rollout's scalar reward and advantage, and the groups with a spread."""
        return replace(self, rewards=list(rewards), advantages=advantages, spread_groups=list(spread_groups))

    def scores(self, needed_by: str) -> tuple[list[float], torch.Tensor]:
        """The rewards and advantages, which ``needed_by`` (a stage after scoring) cannot do without."""
        if self.rewards is None or self.advantages is None:
            raise BatchError(f"step {self.step}'s batch is not scored yet: {needed_by} needs rewards and advantages")
        return self.rewards, self.advantages

    def records(self, process: int = 0) -> list[dict[str, Any]]:
        """One ``rollouts.jsonl`` row per episode: the question, what the core wrote and called each turn, the agents'
        replies, the reward terms (``reward_terms``), the scalar ``reward`` and the ``advantage`` it was trained with.
        ``process`` is the data-parallel process that ran it (0 in one process): ``group`` and ``parent`` number that
        process's rollouts.

        Why: the step metrics say that the score moved, these rows say what the policy changed. A flip of one argument
        (``"los": false``), a reply misread, or a group with no signal shows up here, not in the means."""
        rewards, advantages = self.scores("rollouts.jsonl")
        records = []
        for r, reward, advantage in zip(self.rollouts, rewards, advantages):
            episode = r.result.model_dump(mode="json", exclude={"trajectory"})
            records.append({"step": self.step, "process": process, "group": r.group, "parent": r.parent,
                            "fork_turn": r.fork_turn, "question": self.tasks[r.group].question, "reward": reward,
                            "advantage": float(advantage), "reward_terms": episode.pop("reward"), **episode})
        return records
