"""The rollout runners the trainer is given: chosen by ``rollout.backend``, and worker processes that receive the
learner's weights sample the episodes the learner's own process samples."""

import pytest
from rollout_parity import assert_worker_rollouts_equal_local
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.distributed.rollout_runners import (
    LocalRolloutRunner,
    RolloutBackendError,
    build_rollout_runner,
    ensure_backend_fits,
    rollout_worker_spec,
)
from netgpt.rl.config import RLConfig


def test_the_backend_names_the_runner_and_worker_backends_take_one_learner(tokenizer, registry, tmp_path):
    assert isinstance(build_rollout_runner(RLConfig(), tokenizer, registry, processes=2), LocalRolloutRunner)
    for backend, name in (("processes", "Process"), ("ray", "Ray")):
        config = RLConfig(model=str(tmp_path), rollout={"backend": backend})
        with pytest.raises(ValueError, match=f"{name} rollouts run from a single learner process"):
            build_rollout_runner(config, tokenizer, registry, processes=2)


def test_rollout_workers_need_the_start_as_a_local_directory(registry, tmp_path):
    for model in (None, str(tmp_path / "absent")):
        config = RLConfig(model=model, rollout={"backend": "processes"})
        with pytest.raises(RolloutBackendError, match="`processes` rollout workers load the starting policy"):
            ensure_backend_fits(config, processes=1)
    spec = rollout_worker_spec(RLConfig(model=str(tmp_path), tasks_per_step=5, num_generations=3, train="lora",
                                        rollout={"backend": "processes", "workers": 2}),
                               registry.faults.config, RLConfig().episode_config)
    assert spec.policy.batch_size == 3 * 3 and spec.policy.train == "lora"  # ceil(5 / 2) whole groups per batch


@pytest.mark.slow
def test_rl_rollouts_on_worker_processes_equal_local_ones(tmp_path):
    """`rollout: {backend: processes}`: two steps (rollouts, update, weights pushed, rollouts again) and forks give
    the episodes a local trainer samples, and the learner ends with the same parameters."""
    assert_worker_rollouts_equal_local(tmp_path, "processes")


def test_train_refuses_worker_rollouts_from_a_hub_id_before_loading_anything(tmp_path):
    result = CliRunner().invoke(app, ["train", "--config", "configs/rl-cpu.yaml", "--backend", "processes",
                                      "--model", "HuggingFaceTB/SmolLM2-135M-Instruct", "--out", str(tmp_path / "rl")],
                                terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "--backend" in result.output and "checkpoint's model/)" in result.output  # the option, the remedy
    assert not (tmp_path / "rl").exists()
