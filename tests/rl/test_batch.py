"""The typed batch: joining a second draw renumbers groups and fork parents, and stage data that does not line up
with the rollouts is refused."""

import pytest
import torch

from netgpt.core.episode import EpisodeResult
from netgpt.reward import EpisodeCost, RewardTerms
from netgpt.rl.batch import BatchError, RolloutBatch
from netgpt.rl.rollout import BranchStats, Rollout
from netgpt.tasks.generate import training_task

TASKS = [training_task(1, k) for k in range(4)]


def _rollout(group: int, parent: int | None = None) -> Rollout:
    result = EpisodeResult(task_id=TASKS[group].id, family="f", policy="p", answer=None, finish_reason="answer",
                           turns=1, events=[], cost=EpisodeCost(),
                           reward=RewardTerms(quality=0, coordination=0, resource=0, total=0))
    return Rollout(group=group, result=result, parent=parent, fork_turn=None if parent is None else 1)


def _draw(tasks, rollouts, taken=0) -> RolloutBatch:
    return RolloutBatch(step=7, tasks=tasks, rollouts=rollouts, branch=BranchStats(eligible=3, fired=2, taken=taken))


def test_a_second_draw_is_renumbered_past_the_first():
    first = _draw(TASKS[:2], [_rollout(0), _rollout(0), _rollout(1), _rollout(1), _rollout(0, parent=1)], taken=1)
    second = _draw(TASKS[:2], [_rollout(0), _rollout(1), _rollout(1, parent=1)], taken=1)
    batch = RolloutBatch(step=7, tasks=[], rollouts=[], draws=0).joined(first).joined(second)
    assert batch.draws == 2 and batch.branch == BranchStats(eligible=6, fired=4, taken=2)
    assert len(batch.tasks) == 4
    assert [(r.group, r.parent) for r in batch.rollouts] == [
        (0, None), (0, None), (1, None), (1, None), (0, 1), (2, None), (3, None), (3, 6)]
    assert batch.groups() == {0: [0, 1, 4], 1: [2, 3], 2: [5], 3: [6, 7]}
    assert batch.group_ids == [0, 0, 1, 1, 0, 2, 3, 3]


def test_scoring_adds_rewards_and_advantages_and_the_records_carry_them():
    batch = _draw(TASKS[:1], [_rollout(0), _rollout(0)])
    with pytest.raises(BatchError, match="not scored yet: rollouts.jsonl needs rewards and advantages"):
        batch.records()
    with pytest.raises(BatchError, match="not scored yet: the update needs"):
        batch.scores("the update")
    scored = batch.scored([1.0, 0.0], torch.tensor([0.5, -0.5]), [0])
    records = scored.records(process=1)
    assert [(r["step"], r["process"], r["group"], r["reward"], r["advantage"]) for r in records] == [
        (7, 1, 0, 1.0, 0.5), (7, 1, 0, 0.0, -0.5)]
    assert records[0]["question"] == TASKS[0].question and "trajectory" not in records[0]
    assert scored.spread_groups == [0] and batch.rewards is None  # scoring returns a new batch


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.scored([1.0], torch.zeros(2), []), "1 rewards for 2 rollouts"),
    (lambda b: b.scored([1.0, 0.0], torch.zeros(3), []), "3 advantages for 2 rollouts"),
    (lambda b: RolloutBatch(step=0, tasks=TASKS[:1], rollouts=[_rollout(1)]), "in group 1, but the batch has 1 tasks"),
    (lambda b: RolloutBatch(step=0, tasks=TASKS[:1], rollouts=[_rollout(0, parent=3)]),
     "forks rollout 3, but the batch has 1 rollouts"),
])
def test_stage_data_that_does_not_line_up_is_refused(change, message):
    with pytest.raises(BatchError, match=message):
        change(_draw(TASKS[:1], [_rollout(0), _rollout(0)]))
