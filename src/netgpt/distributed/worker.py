"""The episode runtime as a self-contained worker, whatever runs it: a Ray actor (:mod:`.ray_backend`), a local
process (:mod:`.processes`), or this process.

A :class:`RolloutWorker` rebuilds the local run's environment from a :class:`WorkerSpec`: its own
:class:`AgentRegistry` (same agents YAML, same fault config and seed) and its own policy (built from the
:class:`~netgpt.core.factory.PolicySpec`, so an LLM is loaded by the worker, never shipped). Pools hand it the batches
:func:`group_batches` cuts, so session ids, fault draws and per-batch policy state are those of the local run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Fork, run_episodes
from netgpt.core.factory import PolicySpec, build_policy
from netgpt.core.model import policy_token_counter
from netgpt.protocol.faults import FaultConfig
from netgpt.protocol.registry import AgentRegistry
from netgpt.tasks.schema import Task

if TYPE_CHECKING:
    import torch


class WorkerSpec(BaseModel):
    """Everything a worker needs to reproduce the local run's environment."""

    model_config = ConfigDict(extra="forbid")
    policy: PolicySpec
    agents: str | None = Field(None, description="agents YAML (absolute path; None: the built-in agents)")
    faults: FaultConfig = Field(default_factory=FaultConfig)
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)


class RolloutWorker:
    """One episode runtime: registry, policy and token counter. A plain class: the pools run one per Ray actor or
    per process, and it can also be used, and debugged, in-process."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.registry = AgentRegistry.from_config(spec.agents, faults=spec.faults)
        self.policy = build_policy(spec.policy, self.registry)
        self.count_tokens = policy_token_counter(self.policy, spec.policy.model)

    def describe(self) -> tuple[str, int]:
        """(policy name, episodes per batch)."""
        return self.policy.name, self.policy.batch_size

    def run(self, tasks: Sequence[Task], session_prefix: str = "ep",
            forks: Sequence[Fork | None] | None = None) -> list[EpisodeResult]:
        # as in a local eval or rollout: a dead agent server ends the episode as infra_error, not as the core's failure
        return run_episodes(tasks, self.policy, self.registry, self.spec.episode, self.count_tokens,
                            session_prefix=session_prefix, forks=forks, end_on_infra_error=True)

    def load_weights(self, state_dict: Mapping[str, Any]) -> int:
        """Copy the learner's parameters in place (a subset is fine: only the trained ones travel); returns how
        many tensors were loaded. The in-place copy bumps the parameters' versions, which is what makes the LLM
        policy recompute its cached system-prompt keys and values."""
        model = getattr(self.policy, "model", None)
        if model is None:
            raise TypeError(f"policy {self.policy.name!r} has no weights")
        unknown = set(state_dict) - set(model.state_dict())
        if unknown:
            raise KeyError(f"not parameters of the worker's model: {sorted(unknown)[:5]}")
        model.load_state_dict(state_dict, strict=False)
        return len(state_dict)

    def logits(self, input_ids: list[list[int]]) -> torch.Tensor:
        """The policy model's logits on ``input_ids``: lets the learner check that a worker holds its weights."""
        import torch

        with torch.inference_mode():
            ids = torch.tensor(input_ids, device=self.policy.device)
            return self.policy.model(input_ids=ids).logits.float().cpu()

    def close(self) -> None:
        self.registry.close()


def group_batches(tasks: Sequence[Task], size: int) -> list[tuple[int, int]]:
    """[start, end) batches of at most ``size`` episodes that never split the repeats of a task (an RL group and its
    forks). A session is named after its task and its repeat number within a ``run_episodes`` call, so a group split
    over two workers would be numbered from 0 twice. Without repeats these are the fixed-size batches
    ``run_episodes`` itself forms, which keeps per-batch policy state (the random policy) identical to a local run."""
    runs: list[tuple[int, int]] = []
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if runs and tasks[runs[-1][0]].id == task.id:
            runs[-1] = (runs[-1][0], i + 1)
            continue
        if task.id in seen:
            raise ValueError(f"the repeats of task {task.id!r} are not contiguous: one batch cannot hold them all")
        seen.add(task.id)
        runs.append((i, i + 1))
    batches: list[tuple[int, int]] = []
    for start, end in runs:
        if end - start > size:
            raise ValueError(f"the {end - start} repeats of task {tasks[start].id!r} do not fit one batch of {size}")
        if batches and end - batches[-1][0] <= size:
            batches[-1] = (batches[-1][0], end)
        else:
            batches.append((start, end))
    return batches
