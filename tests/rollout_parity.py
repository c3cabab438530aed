"""RL rollouts on worker backends against the learner's own process: the check the process and Ray tests share."""

import pytest
import torch

from netgpt.core.model import load_tokenizer, save_model, tiny_model
from netgpt.rl.config import RLConfig
from netgpt.rl.rollout import Rollout, fork_at
from netgpt.rl.trainer import RLTrainer


def _two_steps_and_forks(config: RLConfig):
    """Two steps (rollouts, update, weights pushed, rollouts again), then forks of the first step's episodes."""
    trainer = RLTrainer(config)
    try:
        steps = []
        for step in range(2):
            batch = trainer.rollout(step)
            trainer.update(trainer.score(batch))
            steps.append(batch.rollouts)
        params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        # a random tiny model makes no valid call, so the entropy rule never fires: fork by hand
        parents = [r for r in steps[0] if len(r.result.events) >= 2][:3]
        assert parents
        forked = trainer.episode_runner()([trainer.tasks_for(0)[r.group] for r in parents], "fork",
                                          [fork_at(r.result, 1) for r in parents])
        steps.append([Rollout(group=r.group, result=f, parent=0) for r, f in zip(parents, forked)])
    finally:
        trainer.close()
    return steps, params


def assert_worker_rollouts_equal_local(tmp_path, backend: str, train: str = "top_layers") -> None:
    """The worker backend samples the episodes a local trainer samples, and the learner ends with the same
    parameters."""
    tokenizer = load_tokenizer()
    save_model(tiny_model(tokenizer, seed=6), tokenizer, tmp_path / "init")
    base = RLConfig(model=str(tmp_path / "init"), out=tmp_path / "local", steps=2, tasks_per_step=3,
                    num_generations=2, max_new_tokens=10, max_turns=2, train=train, top_layers=1, lora_r=4,
                    learning_rate=1e-2, save_steps=10, export_model=False, families=["tbs", "sla_check"],
                    branching={"enabled": True, "threshold": -100.0, "max_branches": 1})
    on_workers = base.model_copy(update={"out": tmp_path / backend,
                                         "rollout": base.rollout.model_copy(update={"backend": backend})})
    (local, local_params), (remote, remote_params) = _two_steps_and_forks(base), _two_steps_and_forks(on_workers)
    for local_step, remote_step in zip(local, remote):
        assert [(r.group, r.parent, r.result.task_id) for r in remote_step] == [
            (r.group, r.parent, r.result.task_id) for r in local_step]
        for a, b in zip(local_step, remote_step):
            assert b.trajectory.completion_ids == a.trajectory.completion_ids
            assert b.result.reward == a.result.reward
            assert b.trajectory.logprobs == pytest.approx(a.trajectory.logprobs, abs=1e-4)
    assert any(a.trajectory.completion_ids != b.trajectory.completion_ids for a, b in zip(local[0], local[1]))
    for name, value in local_params.items():
        torch.testing.assert_close(remote_params[name], value, rtol=1e-4, atol=1e-5)
