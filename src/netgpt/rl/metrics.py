"""What an RL step reports: one typed record per step, written as one ``metrics.jsonl`` row and to TensorBoard.

:class:`StepMetrics` lists every key a row can hold, in the order the row is written. A data-parallel step has one
record per process; :func:`merge_process_metrics` combines them into the record of the whole step.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from netgpt.core.episode import EpisodeResult
from netgpt.eval.harness import aggregate
from netgpt.rl.rollout import BranchStats, Rollout


class EpisodeMetrics(BaseModel):
    """Score and behaviour of a step's group episodes, as ``netgpt eval`` aggregates them (forks left out: they are
    not a sample of the policy), and the mean entropy of the rollouts on the core's tokens (forks included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    score: float
    accuracy: float
    coordination: float
    resource: float
    calls_per_task: float
    invalid_call_rate: float
    answered_rate: float
    generated_tokens: float
    # defined every step, unlike the loss-side `entropy`, which exists only when some group had a learning signal
    rollout_entropy: float


class UpdateMetrics(BaseModel):
    """What the optimiser steps of one update did. The ``sft_nll`` and ``grad_norm_*`` parts exist only with the SFT
    anchor (``sft_coef`` > 0): the anchor's masked NLL, and the first iteration's gradient norm split into the
    anchor's part and the GRPO part, before clipping."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    loss: float = 0.0
    grad_norm: float = 0.0
    entropy: float = 0.0
    kl: float = 0.0
    clip_fraction: float = 0.0
    policy_token_fraction: float = 0.0
    core_tokens: int = 0
    trained_groups: int = 0
    sft_nll: float | None = None
    grad_norm_anchor: float | None = None
    grad_norm_policy: float | None = None


class StepMetrics(BaseModel):
    """One step's ``metrics.jsonl`` row. Fields in the order they are written; ``None`` fields are not written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    step: int
    # EpisodeMetrics
    score: float
    accuracy: float
    coordination: float
    resource: float
    calls_per_task: float
    invalid_call_rate: float
    answered_rate: float
    generated_tokens: float
    rollout_entropy: float
    # rollout
    rollouts: int
    draws: int
    branch_eligible: int
    branch_fired: int
    branch_taken: int
    branching_rate: float
    # scoring
    groups: int
    spread_groups: int
    # UpdateMetrics
    loss: float
    grad_norm: float
    entropy: float
    kl: float
    clip_fraction: float
    policy_token_fraction: float
    core_tokens: int
    trained_groups: int
    sft_nll: float | None = None
    grad_norm_anchor: float | None = None
    grad_norm_policy: float | None = None
    # wall-clock times
    rollout_s: float
    update_s: float
    step_s: float

    def row(self) -> dict[str, Any]:
        """The ``metrics.jsonl`` row (and TensorBoard scalars): every field that has a value."""
        return self.model_dump(exclude_none=True)

    def __getitem__(self, key: str) -> Any:
        """A logged value by its ``metrics.jsonl`` key, for callers that name metrics as strings (the tests compare
        rows so). A key this step did not log raises ``KeyError``, as the row would."""
        return self.row()[key]


class EpisodeSample(BaseModel):
    """What the episode metrics need of one rollout, light enough to gather from every data-parallel process: the
    result without its token ids, whether it is a fork, and the sampling policy's entropy at each token the core wrote
    (agent replies are not its tokens)."""

    model_config = ConfigDict(frozen=True)
    result: EpisodeResult
    forked: bool
    core_entropies: list[float]

    @classmethod
    def of(cls, rollout: Rollout) -> EpisodeSample:
        trajectory = rollout.trajectory
        return cls(result=rollout.result.model_copy(update={"trajectory": None}), forked=rollout.parent is not None,
                   core_entropies=[e for e, m in zip(trajectory.entropies, trajectory.env_mask) if m])


def episode_metrics(samples: Sequence[EpisodeSample]) -> EpisodeMetrics:
    """:class:`EpisodeMetrics` of a step's episodes."""
    agg = aggregate("rl", [sample.result for sample in samples if not sample.forked])
    entropies = [e for sample in samples for e in sample.core_entropies]
    return EpisodeMetrics(score=agg.score, accuracy=agg.accuracy, coordination=agg.coordination,
                          resource=agg.resource, calls_per_task=agg.calls_per_task,
                          invalid_call_rate=agg.invalid_call_rate, answered_rate=agg.answered_rate,
                          generated_tokens=agg.tokens * agg.n,
                          rollout_entropy=statistics.fmean(entropies) if entropies else 0.0)


# How the records of a data-parallel step's processes combine (`merge_process_metrics`); the rest are averaged.
SUMMED_METRICS = ("rollouts", "groups", "spread_groups", "trained_groups", "core_tokens", "branch_eligible",
                  "branch_fired", "branch_taken")
MOST_METRICS = ("draws", "rollout_s", "update_s", "step_s")  # the busiest process's: the step waits for it
WEIGHTED_METRICS = {"entropy": "trained_groups", "kl": "trained_groups", "clip_fraction": "trained_groups",
                    "policy_token_fraction": "core_tokens"}  # means over what each process trained


def merge_process_metrics(records: Sequence[StepMetrics], episodes: EpisodeMetrics) -> StepMetrics:
    """One record for a data-parallel step from each process's record: counts summed, draws and times of the
    busiest process, the update's statistics weighted by what each process trained (`WEIGHTED_METRICS`), episode
    metrics over all processes' episodes (``episodes``), anything else (loss, gradient norms: the same averaged
    gradient everywhere) averaged."""
    rows = [record.row() for record in records]
    keys = dict.fromkeys(key for row in rows for key in row)
    merged = {key: statistics.fmean(row[key] for row in rows if key in row) for key in keys}
    merged |= {key: sum(row[key] for row in rows) for key in SUMMED_METRICS}
    merged |= {key: max(row[key] for row in rows) for key in MOST_METRICS}
    for key, weight in WEIGHTED_METRICS.items():
        total = sum(row[weight] for row in rows)
        merged[key] = sum(row[key] * row[weight] for row in rows) / total if total else 0.0
    merged |= episodes.model_dump()
    merged["branching_rate"] = BranchStats(eligible=merged["branch_eligible"], fired=merged["branch_fired"]).rate
    return StepMetrics.model_validate(merged | {"step": records[0].step})
