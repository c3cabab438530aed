"""The rollout runners the trainer is given: chosen by ``rollout.backend``, and worker processes that receive the
learner's weights sample the episodes the learner's own process samples."""

import pytest
import torch

from netgpt.core.model import load_tokenizer, save_model, tiny_model
from netgpt.distributed.rollout_runners import LocalRolloutRunner, build_rollout_runner, rollout_worker_spec
from netgpt.rl.config import RLConfig
from netgpt.rl.rollout import Rollout, fork_at
from netgpt.rl.trainer import RLTrainer


def test_the_backend_names_the_runner_and_worker_backends_take_one_learner(tokenizer, registry, tmp_path):
    assert isinstance(build_rollout_runner(RLConfig(), tokenizer, registry, processes=2), LocalRolloutRunner)
    for backend, name in (("processes", "Process"), ("ray", "Ray")):
        config = RLConfig(model=str(tmp_path), rollout={"backend": backend})
        with pytest.raises(ValueError, match=f"{name} rollouts run from a single learner process"):
            build_rollout_runner(config, tokenizer, registry, processes=2)


def test_rollout_workers_need_the_start_as_a_local_directory(registry, tmp_path):
    for model in (None, str(tmp_path / "absent")):
        config = RLConfig(model=model, rollout={"backend": "processes"})
        with pytest.raises(ValueError, match="`processes` rollout workers load the starting policy themselves"):
            rollout_worker_spec(config, registry.faults.config, config.episode_config)
    spec = rollout_worker_spec(RLConfig(model=str(tmp_path), tasks_per_step=5, num_generations=3, train="lora",
                                        rollout={"backend": "processes", "workers": 2}),
                               registry.faults.config, RLConfig().episode_config)
    assert spec.policy.batch_size == 3 * 3 and spec.policy.train == "lora"  # ceil(5 / 2) whole groups per batch


@pytest.mark.slow
def test_rl_rollouts_on_worker_processes_equal_local_ones(tmp_path):
    """`rollout: {backend: processes}`: two steps (rollouts, update, weights pushed, rollouts again) and forks give
    the episodes a local trainer samples, and the learner ends with the same parameters."""
    tokenizer = load_tokenizer()
    save_model(tiny_model(tokenizer, seed=6), tokenizer, tmp_path / "init")
    base = RLConfig(model=str(tmp_path / "init"), out=tmp_path / "local", steps=2, tasks_per_step=3,
                    num_generations=2, max_new_tokens=10, max_turns=2, train="top_layers", top_layers=1,
                    learning_rate=1e-2, save_steps=10, export_model=False, families=["tbs", "sla_check"],
                    branching={"enabled": True, "threshold": -100.0, "max_branches": 1})
    on_workers = base.model_copy(update={"out": tmp_path / "processes",
                                         "rollout": base.rollout.model_copy(update={"backend": "processes"})})
    runs = []
    for config in (base, on_workers):
        trainer = RLTrainer(config)
        try:
            steps = []
            for step in range(2):
                batch = trainer.rollout(step)
                trainer.update(trainer.score(batch))
                steps.append(batch.rollouts)
            params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
            # forks (a random tiny model makes no valid call, so the entropy rule never fires: fork by hand)
            parents = [r for r in steps[0] if len(r.result.events) >= 2][:3]
            assert parents
            forked = trainer.episode_runner()([trainer.tasks_for(0)[r.group] for r in parents], "fork",
                                              [fork_at(r.result, 1) for r in parents])
            steps.append([Rollout(group=r.group, result=f, parent=0) for r, f in zip(parents, forked)])
        finally:
            trainer.close()
        runs.append((steps, params))
    (local, local_params), (remote, remote_params) = runs
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
