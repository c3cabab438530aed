"""Group rollouts with entropy-guided branching: G episodes per task, then extra partial rollouts forked where the
core became uncertain right after an agent reply.

Data path of one step::

    tasks ──► wave 1: G episodes per task (the batched episode runtime, sampling at ``temperature``)
          ──► entropy_guided_branch_points: turns after an agent reply whose entropy rose above the calling turn's
          ──► wave 2: up to ``max_branches`` forks per group, each continuing its parent from just before that turn
          ──► Rollouts (episode result + token-level trajectory + group id)
          ──► drop_infra_errors: a group any of whose rollouts met a failed agent transport is dropped whole

Forks share their parent's prefix (events, tokens, agent replies) and sample only what comes after, so the group's
extra budget is spent exactly where the core's next decision depends on what an agent said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic import BaseModel

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Fork, Policy, Trajectory, run_episodes
from netgpt.protocol.registry import AgentRegistry
from netgpt.rl.config import BranchingConfig
from netgpt.tasks.schema import Task


class Rollout(BaseModel):
    group: int
    result: EpisodeResult
    parent: int | None = None
    fork_turn: int | None = None

    @property
    def trajectory(self) -> Trajectory:
        if self.result.trajectory is None:
            raise ValueError("a rollout needs a token-level trajectory (use a token policy such as LLMPolicy)")
        return self.result.trajectory


class BranchPoint(BaseModel):
    turn: int
    rise: float


class BranchStats(BaseModel):
    eligible: int = 0   # turns that followed an agent reply
    fired: int = 0      # of those, where the entropy rule held
    taken: int = 0      # forks actually run (the group budget caps them)

    @property
    def rate(self) -> float:
        return self.fired / self.eligible if self.eligible else 0.0


class EpisodeRunner(Protocol):
    """Runs episodes to completion, like :func:`~netgpt.core.episode.run_episodes`: in this process
    (:func:`local_runner`) or on rollout workers, spawned processes or Ray actors
    (:mod:`netgpt.distributed.rollout_runners`)."""

    def __call__(self, tasks: Sequence[Task], session_prefix: str,
                 forks: Sequence[Fork | None] | None = None) -> list[EpisodeResult]: ...


def local_runner(policy: Policy, registry: AgentRegistry, episode: EpisodeConfig,
                 count_tokens: Callable[[str], int]) -> EpisodeRunner:
    def run(tasks: Sequence[Task], session_prefix: str, forks: Sequence[Fork | None] | None = None):
        return run_episodes(tasks, policy, registry, episode, count_tokens, session_prefix=session_prefix,
                            forks=forks, end_on_infra_error=True)
    return run


def turn_spans(env_mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each core turn in the completion: the maximal runs of generated tokens."""
    spans, start = [], None
    for k, generated in enumerate(env_mask):
        if generated and start is None:
            start = k
        elif not generated and start is not None:
            spans.append((start, k))
            start = None
    if start is not None:
        spans.append((start, len(env_mask)))
    return spans


def _probe_entropy(entropies: Sequence[float], span: tuple[int, int], k: int) -> float:
    # the peak, not the mean: a turn's decision is one token (`<call` or `<answer`, which agent, the first digit)
    # among near-certain tag tokens, and a mean over them hides it (measured on the SFT core: the call-or-answer
    # token after a reply is often at ln 2 nats while the mean of the first 8 tokens stays near 0.04)
    return max(entropies[span[0]:min(span[1], span[0] + k)])


def entropy_guided_branch_points(result: EpisodeResult, config: BranchingConfig) -> tuple[list[BranchPoint], int]:
    """Where to fork extra partial rollouts (ARPO-style adaptive branching), and how many turns were eligible.

    A turn ``t`` is eligible when the turn before it called an agent, so the core is reading an external reply.
    It fires when the peak entropy among its first ``probe_tokens`` tokens exceeds that of the calling turn (the
    pre-call level) by more than ``threshold`` nats. Why: a rise means the reply left the core uncertain about what
    to do next (retry? switch agent? which number to report?) — the decisions this benchmark is about — so sampling
    more continuations there buys more learning signal per generated token than sampling whole episodes again."""
    trajectory = result.trajectory
    spans = turn_spans(trajectory.env_mask)
    if len(spans) != len(result.events) or len(trajectory.entropies) != len(trajectory.env_mask):
        raise ValueError("trajectory turns do not line up with the episode's events")
    points, eligible = [], 0
    for t in range(1, len(spans)):
        if result.events[t - 1].kind != "call":
            continue
        eligible += 1
        rise = (_probe_entropy(trajectory.entropies, spans[t], config.probe_tokens)
                - _probe_entropy(trajectory.entropies, spans[t - 1], config.probe_tokens))
        if rise > config.threshold:
            points.append(BranchPoint(turn=t, rise=rise))
    return points, eligible


def fork_at(result: EpisodeResult, turn: int) -> Fork:
    """The state of ``result`` just before core turn ``turn``: its earlier events and the tokens up to that turn."""
    trajectory = result.trajectory
    cut = turn_spans(trajectory.env_mask)[turn][0]
    prefix = Trajectory(prompt_ids=trajectory.prompt_ids, completion_ids=trajectory.completion_ids[:cut],
                        env_mask=trajectory.env_mask[:cut], logprobs=trajectory.logprobs[:cut],
                        entropies=trajectory.entropies[:cut])
    return Fork(events=result.events[:turn], trajectory=prefix)


def drop_infra_errors(rollouts: Sequence[Rollout]) -> list[Rollout]:
    """``rollouts`` without every group in which any rollout (a fork included) ended as ``infra_error``.

    Why the whole group: its reward says nothing about the core, and GRPO's baseline is the group's mean, so keeping
    the group's other members would rank them against a sample that is missing or scored 0 for the transport's
    sake. The groups that stay keep their numbers (they index the step's tasks); forks' ``parent`` indices are
    renumbered to the shortened list."""
    failed = {r.group for r in rollouts if r.result.finish_reason == "infra_error"}
    if not failed:
        return list(rollouts)
    kept = [index for index, r in enumerate(rollouts) if r.group not in failed]
    new_index = {old: new for new, old in enumerate(kept)}
    return [rollouts[index].model_copy(update={"parent": None if rollouts[index].parent is None
                                               else new_index[rollouts[index].parent]}) for index in kept]


def collect_rollouts(tasks: Sequence[Task], run: EpisodeRunner, num_generations: int, branching: BranchingConfig,
                     session_prefix: str) -> tuple[list[Rollout], BranchStats]:
    """G rollouts per task, then the entropy-guided forks (wave 2) when branching is enabled. The repeats of a task
    (and its forks) are contiguous, so a Ray runner can keep each group on one worker. Groups that met an
    infrastructure failure are not returned (:func:`drop_infra_errors`): RL never trains on them."""
    repeated = [task for task in tasks for _ in range(num_generations)]
    wave = run(repeated, f"{session_prefix}-g")
    rollouts = [Rollout(group=i // num_generations, result=r) for i, r in enumerate(wave)]
    stats = BranchStats()
    if not branching.enabled or branching.max_branches == 0:
        return drop_infra_errors(rollouts), stats
    chosen: list[tuple[int, BranchPoint]] = []
    for group in range(len(tasks)):
        candidates = []
        for index in range(group * num_generations, (group + 1) * num_generations):
            points, eligible = entropy_guided_branch_points(rollouts[index].result, branching)
            stats.eligible += eligible
            stats.fired += len(points)
            candidates += [(index, p) for p in points]
        candidates.sort(key=lambda c: -c[1].rise)  # the most uncertain points first, within the group's budget
        chosen += candidates[:branching.max_branches]
    stats.taken = len(chosen)
    if chosen:
        forks = [fork_at(rollouts[index].result, point.turn) for index, point in chosen]
        branch_tasks = [tasks[rollouts[index].group] for index, _ in chosen]
        results = run(branch_tasks, f"{session_prefix}-b", forks)
        rollouts += [Rollout(group=rollouts[index].group, result=r, parent=index, fork_turn=point.turn)
                     for (index, point), r in zip(chosen, results)]
    return drop_infra_errors(rollouts), stats
