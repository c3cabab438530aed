"""The trainer end to end on a tiny model: it moves a learnable reward, and a resumed run is bit-for-bit the same."""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
import yaml

from netgpt.core.model import model_sha256, save_model, tiny_model
from netgpt.distributed.data_parallel import anchor_batch_indices
from netgpt.distributed.rollout_runners import LocalRolloutRunner
from netgpt.rl.checkpoint import list_checkpoints
from netgpt.rl.config import RLConfig
from netgpt.rl.metrics import EpisodeMetrics, StepMetrics, merge_process_metrics
from netgpt.rl.trainer import RLTrainer


def odd_token_share(result) -> float:
    """Toy reward: the share of the core's tokens with an odd id (a random model gets about half, and raising it
    needs nothing but a working policy gradient)."""
    tr = result.trajectory
    core = [t for t, m in zip(tr.completion_ids, tr.env_mask) if m]
    return sum(t % 2 for t in core) / len(core)


def _peaked_tiny_model(tokenizer):
    """A random tiny model whose next-token distribution is peaked (entropy of a few nats, like a real LM's),
    so a handful of policy-gradient steps can reweight it; a flat 49k-way distribution would need thousands."""
    model = tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        model.model.norm.weight.mul_(10.0)
    return model


def _config(tmp_path, **kw) -> RLConfig:
    base = dict(out=tmp_path / "rl", steps=3, tasks_per_step=2, num_generations=4, max_new_tokens=6, max_turns=1,
                train="full", learning_rate=3e-3, save_steps=1, export_model=False, num_iterations=1,
                families=["tbs", "peak_rate"], branching={"enabled": False})
    base.update(kw)
    return RLConfig.model_validate(base)


@pytest.mark.slow
def test_a_few_steps_move_a_learnable_reward(tokenizer, registry, tmp_path):
    config = _config(tmp_path, steps=6, export_model=True, save_steps=3, learning_rate=2e-2)
    trainer = RLTrainer(config, _peaked_tiny_model(tokenizer), tokenizer, registry, reward_fn=odd_token_share)
    rows = trainer.train()
    assert len(rows) == 6
    episodes = [json.loads(line) for line in (config.out / "rollouts.jsonl").read_text().splitlines()]
    rewards = [statistics.fmean(e["reward"] for e in episodes if e["step"] == step) for step in range(6)]
    assert sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2 + 0.2, rewards
    first = [e for e in episodes if e["step"] == 0]
    assert len(first) == 2 * 4 and {e["family"] for e in first} == {"tbs", "peak_rate"}
    assert all(e["question"] and e["events"] and "trajectory" not in e for e in first)
    for group in {e["group"] for e in first}:  # the logged advantages are the group-relative ones of the rewards
        members = [e for e in first if e["group"] == group]
        assert abs(sum(e["advantage"] for e in members)) < 1e-5
        assert all((a["reward"] > b["reward"]) == (a["advantage"] > b["advantage"]) for a in members for b in members)
    logged = [json.loads(line) for line in (config.out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(6))
    assert {"score", "accuracy", "calls_per_task", "entropy", "rollout_entropy", "clip_fraction", "kl",
            "branching_rate", "step_s"} <= set(logged[0])
    assert all(r["rollout_entropy"] > 0 for r in logged)
    assert [p.name for p in list_checkpoints(config.out)] == ["checkpoint-000003", "checkpoint-000006"]
    assert (config.out / "checkpoint-000006" / "model" / "model.safetensors").exists()
    assert list((config.out / "tensorboard").glob("events.out.tfevents.*"))


def _trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.slow
def test_resume_reproduces_the_next_step_bit_for_bit(tokenizer, registry, tmp_path):
    torch.manual_seed(0)
    config = _config(tmp_path / "a", branching={"enabled": True, "threshold": -100.0})
    straight = RLTrainer(config, tiny_model(tokenizer, seed=1), tokenizer, registry, reward_fn=odd_token_share)
    rows_straight = straight.train()

    killed = RLTrainer(config.model_copy(update={"out": tmp_path / "b", "steps": 2}), tiny_model(tokenizer, seed=1),
                       tokenizer, registry, reward_fn=odd_token_share)
    killed.train()
    del killed  # "killed" after its checkpoint at step 2
    resumed = RLTrainer(config.model_copy(update={"out": tmp_path / "b"}), tiny_model(tokenizer, seed=1), tokenizer,
                        registry, reward_fn=odd_token_share)
    assert resumed.resume() and resumed.step == 2
    [row] = resumed.train()
    drop = {"rollout_s", "update_s", "step_s"}
    assert row.model_dump(exclude=drop) == rows_straight[2].model_dump(exclude=drop)
    a, b = _trainable(straight), _trainable(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.slow
def test_resume_refuses_another_recipe_and_a_fresh_run_clears_the_old_one(tokenizer, registry, tmp_path):
    config = _config(tmp_path, steps=1)
    RLTrainer(config, tiny_model(tokenizer, seed=1), tokenizer, registry, reward_fn=odd_token_share).train()
    assert [p.name for p in list_checkpoints(config.out)] == ["checkpoint-000001"]

    other = RLTrainer(config.model_copy(update={"learning_rate": 1e-4, "sft_coef": 0.5}),
                      tiny_model(tokenizer, seed=1), tokenizer, registry, reward_fn=odd_token_share)
    with pytest.raises(ValueError, match=r"other \['learning_rate', 'sft_coef'\]; use a new --out"):
        other.resume()
    longer = RLTrainer(config.model_copy(update={"steps": 2, "save_steps": 5}), tiny_model(tokenizer, seed=1),
                       tokenizer, registry, reward_fn=odd_token_share)
    assert longer.resume() and longer.step == 1  # running longer or saving less often is the same run

    fresh = RLTrainer(config.model_copy(update={"steps": 2, "save_steps": 2}), tiny_model(tokenizer, seed=1),
                      tokenizer, registry, reward_fn=odd_token_share)
    fresh.train()  # no resume: step 1 of the old run must not survive next to this run's checkpoint
    assert [p.name for p in list_checkpoints(config.out)] == ["checkpoint-000002"]
    steps = [json.loads(line)["step"] for line in (config.out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1]


@pytest.mark.slow
def test_resume_refuses_a_start_model_retrained_in_place(tokenizer, registry, tmp_path):
    """Checkpoints hold only the trained parameters (here the top layer): resuming after another model was saved where
    the run's start was would join them to that model's frozen layers, so it is refused until the start is back."""
    start = tmp_path / "start"
    save_model(tiny_model(tokenizer, seed=1), tokenizer, start)
    config = _config(tmp_path, steps=1, model=str(start), train="top_layers", top_layers=1)
    RLTrainer(config, registry=registry, reward_fn=odd_token_share).train()
    recorded = json.loads((config.out / "start_model.json").read_text())
    assert recorded == {"model": str(start), "sha256": model_sha256(str(start))}
    shutil.copytree(start, tmp_path / "kept")
    save_model(tiny_model(tokenizer, seed=2), tokenizer, start)  # an SFT rerun saved to the same path
    longer = config.model_copy(update={"steps": 2})
    with pytest.raises(ValueError, match="is not the one it was trained from"):
        RLTrainer(longer, registry=registry, reward_fn=odd_token_share).resume()
    shutil.rmtree(start)
    shutil.copytree(tmp_path / "kept", start)
    restored = RLTrainer(longer, registry=registry, reward_fn=odd_token_share)
    assert restored.resume() and restored.step == 1


@pytest.mark.slow
def test_train_cli_killed_mid_run_resumes_from_its_last_checkpoint(tokenizer, tmp_path):
    model_dir = tmp_path / "tiny"
    save_model(tiny_model(tokenizer, seed=4), tokenizer, model_dir)
    config = _config(tmp_path, steps=40, model=str(model_dir)).model_dump(mode="json")
    (tmp_path / "rl.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "netgpt.cli", "train", "--config", str(tmp_path / "rl.yaml")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "rl"
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-000002").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint-000002").exists(), proc.stderr.read().decode()[-2000:]
    last = list_checkpoints(out)[-1]
    done = subprocess.run(cmd + ["--resume", "--steps", str(int(last.name.split("-")[1]) + 2)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed at step {int(last.name.split('-')[1])}" in done.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(len(steps))) and len(steps) == int(last.name.split("-")[1]) + 2  # no gap, no repeat
    episodes = Counter(json.loads(line)["step"] for line in (out / "rollouts.jsonl").read_text().splitlines())
    assert sorted(episodes) == steps and set(episodes.values()) == {2 * 4}  # each step's episodes once
    assert (out / "training_curves.png").exists() and (out / "run.json").exists()


@pytest.mark.slow
def test_the_sft_anchor_trains_when_no_group_has_a_signal(tokenizer, registry, tmp_path):
    """A constant reward gives every group zero advantage: without the anchor nothing moves; with ``sft_coef`` the
    oracle traces' masked NLL is still trained (and logged) on every step."""
    from netgpt.sft import collate, masked_nll

    def constant(result) -> float:
        return 1.0

    frozen = RLTrainer(_config(tmp_path / "off"), tiny_model(tokenizer, seed=0), tokenizer, registry,
                       reward_fn=constant)
    before = [p.detach().clone() for p in frozen.model.parameters()]
    assert frozen.train_step()["trained_groups"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.model.parameters()))

    config = _config(tmp_path / "on", sft_coef=1.0, sft_n_tasks=8, sft_batch_size=4, learning_rate=1e-2)
    trainer = RLTrainer(config, tiny_model(tokenizer, seed=0), tokenizer, registry, reward_fn=constant)
    batch = collate(trainer.anchor[:4], tokenizer.pad_token_id, 4096)
    with torch.no_grad():
        start = masked_nll(trainer.model, batch).item()
    rows = [trainer.train_step() for _ in range(3)]
    with torch.no_grad():
        end = masked_nll(trainer.model, batch).item()
    assert all(r["trained_groups"] == 0 and r["sft_nll"] > 0 for r in rows)
    assert all(r["grad_norm_policy"] == 0.0 and r["grad_norm_anchor"] > 0 for r in rows)  # all of it is the anchor
    assert end < 0.9 * start


def test_the_anchor_imitates_the_teacher_the_sft_start_was_trained_on(tokenizer, registry, tmp_path):
    """An RL run from SFT(teacher) anchors on the `always` teacher's right episodes, not the oracle's: the two
    differ (the oracle answers observation lookups from the cached report, `always` calls; `always` never retries)."""
    from netgpt.sft import SFTConfig, build_dataset

    anchors = {}
    for teacher in ("oracle", "always"):
        config = _config(tmp_path / teacher, sft_coef=0.1, sft_n_tasks=24, sft_teacher=teacher)
        trainer = RLTrainer(config, tiny_model(tokenizer, seed=0), tokenizer, registry)
        expected = build_dataset(SFTConfig(teacher=teacher, n_tasks=24, seed=0), registry, tokenizer)
        anchors[teacher] = [t.completion_ids for t in trainer.anchor]
        assert anchors[teacher] == [t.completion_ids for t in expected]
    assert anchors["oracle"] != anchors["always"]


def test_an_anchor_with_no_traces_is_refused(tokenizer, tmp_path):
    """sft_coef > 0 and a teacher that gets none of its tasks right (here: no agent answers its calls) must not
    quietly train without the anchor."""
    from netgpt.protocol import AgentRegistry
    from netgpt.protocol.config import builtin_faults

    no_agents = AgentRegistry(builtin_faults())
    with pytest.raises(ValueError, match="none of the first 2 training tasks right: no traces for the SFT anchor"):
        RLTrainer(_config(tmp_path, sft_coef=0.1, sft_n_tasks=2, sft_teacher="always"), tiny_model(tokenizer),
                  tokenizer, no_agents)
    no_agents.close()


def test_the_update_logs_how_much_of_its_gradient_is_the_anchor_and_how_much_grpo(tokenizer, registry, tmp_path):
    """The first iteration's two parts, before clipping: the policy part of an anchored run is the whole gradient of
    the same step without the anchor (same seed, same rollouts)."""
    rows = {}
    for coef in (0.0, 1.0):
        config = _config(tmp_path / str(coef), sft_coef=coef, sft_n_tasks=8, sft_batch_size=4, num_iterations=1,
                         max_grad_norm=1e9)
        trainer = RLTrainer(config, _peaked_tiny_model(tokenizer), tokenizer, registry, reward_fn=odd_token_share)
        rows[coef] = trainer.train_step()
    plain, anchored = rows[0.0], rows[1.0]
    assert plain["trained_groups"] > 0 and plain.grad_norm_policy is None and "grad_norm_policy" not in plain.row()
    assert anchored["grad_norm_anchor"] > 0
    assert anchored["grad_norm_policy"] == pytest.approx(plain["grad_norm"], rel=1e-4)


def test_dynamic_sampling_draws_tasks_until_enough_groups_differ(tokenizer, registry, tmp_path):
    """The first batch (tbs, peak_rate) has one group with a reward spread, the second two: dynamic sampling draws
    the second batch, trains the first two such groups only (the last one differs too but is left out), and logs
    every drawn episode."""
    from netgpt.rl.trainer import EXTRA_DRAWS_START
    from netgpt.tasks.generate import training_task

    config = _config(tmp_path, steps=1, dynamic_sampling={"enabled": True, "metric": "reward", "max_draws": 3})
    trainer = RLTrainer(config, _peaked_tiny_model(tokenizer), tokenizer, registry)
    # a step's first batch is the one a run without sampling takes; its extra draws come from another stream region
    plain = RLTrainer(_config(tmp_path / "plain"), _peaked_tiny_model(tokenizer), tokenizer, registry)
    assert [t.id for t in trainer.tasks_for(1)] == [t.id for t in plain.tasks_for(1)] == [
        training_task(1, k, config.families).id for k in (2, 3)]
    assert [t.id for t in trainer.tasks_for(1, 2)] == [
        training_task(1, EXTRA_DRAWS_START + k, config.families).id for k in (6, 7)]  # slot 1·2 + 1, 2 tasks each
    with pytest.raises(ValueError, match="at most 3 batches"):
        trainer.tasks_for(0, 3)
    with pytest.raises(ValueError, match="at most 1 batches"):
        plain.tasks_for(0, 1)

    second = {t.id for t in trainer.tasks_for(0, 1)}
    trainer.reward_fn = lambda r: odd_token_share(r) if r.family == "tbs" or r.task_id in second else 0.0
    row = trainer.train()[0]
    assert row["draws"] == 2 and row["groups"] == 4 and row["spread_groups"] == 3 and row["trained_groups"] == 2
    assert row["rollouts"] == 4 * 4
    episodes = [json.loads(line) for line in (config.out / "rollouts.jsonl").read_text().splitlines()]
    assert len(episodes) == 4 * 4 and len({e["task_id"] for e in episodes}) == 4
    last = [e for e in episodes if e["group"] == 3]
    assert len({e["reward"] for e in last}) > 1 and all(e["advantage"] == 0 for e in last)  # differs, left out
    assert {e["group"] for e in episodes if e["advantage"] != 0} == {0, 2} and all(
        e["family"] == "tbs" for e in episodes if e["group"] in (0, 2))


def test_dynamic_sampling_on_quality_ignores_groups_that_differ_only_in_reward(tokenizer, registry, tmp_path):
    """A random core never answers right, so no group has a quality spread: all ``max_draws`` batches are drawn and
    nothing is trained, although the toy reward differs within every group (without dynamic sampling it trains)."""
    config = _config(tmp_path, steps=1, dynamic_sampling={"enabled": True, "max_draws": 2})
    trainer = RLTrainer(config, _peaked_tiny_model(tokenizer), tokenizer, registry, reward_fn=odd_token_share)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    row = trainer.train_step()
    assert row["draws"] == 2 and row["groups"] == 4 and row["spread_groups"] == 0 and row["trained_groups"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    plain = RLTrainer(_config(tmp_path / "plain", steps=1), _peaked_tiny_model(tokenizer), tokenizer, registry,
                      reward_fn=odd_token_share).train_step()
    assert plain["draws"] == 1 and plain["spread_groups"] == 0 and plain["trained_groups"] == 2


@pytest.mark.parametrize("settings", [{}, {"dynamic_sampling": {"enabled": True, "metric": "reward", "max_draws": 1}},
                                      {"sft_coef": 0.1, "sft_n_tasks": 8, "sft_batch_size": 2}])
@pytest.mark.slow
def test_a_rank_with_nothing_to_train_still_joins_the_others_update(tokenizer, tmp_path, settings):
    """Two learner processes; only rank 0's rollouts carry a reward spread. Rank 1 has no group to train (and, but
    for the anchor case, nothing else), yet it must take part in the gradient all-reduce (else rank 0 waits in it
    forever) and take the same optimiser step: both end the step with the same weights, moved from the start, also
    when each rank anchors on its own traces. The step's metrics row and rollout records cover both processes, the
    same on each."""
    ranks = _two_learners(tmp_path, "step", json.dumps(settings))
    assert all(r["processes"] == 2 for r in ranks)
    row, advantages = ranks[0]["row"], ranks[0]["advantages"]
    assert ranks[1]["row"] == row and ranks[1]["advantages"] == advantages
    assert row["step"] == 0 and row["rollouts"] == 2 * 2 * 4 and row["groups"] == 2 * 2
    assert 0 < row["trained_groups"] <= 2  # rank 0's groups only
    assert len(advantages["0"]) == len(advantages["1"]) == 2 * 4
    assert any(a != 0 for a in advantages["0"]) and not any(advantages["1"])
    assert row["score"] == pytest.approx(statistics.fmean(ranks[0]["totals"]))  # both ranks' episodes
    assert len(ranks[0]["totals"]) == 2 * 2 * 4
    start = float(torch.cat([p.detach().flatten().double() for p in _peaked_tiny_model(tokenizer).parameters()])
                  .abs().sum())
    assert ranks[0]["checksum"] == ranks[1]["checksum"] != start
    if settings.get("sft_coef"):  # other traces on each rank, one averaged anchor gradient
        assert ranks[0]["update"]["sft_nll"] != ranks[1]["update"]["sft_nll"]
        for part in ("grad_norm_anchor", "grad_norm_policy"):
            assert ranks[0]["update"][part] == ranks[1]["update"][part] > 0


@pytest.mark.slow
def test_gradients_are_averaged_over_processes_and_absent_ones_stay_absent(tmp_path):
    """A rank without a gradient counts as zeros (1/N of the average, as under DDP); a parameter that no rank has a
    gradient for keeps None, so AdamW does not decay it."""
    ranks = _two_learners(tmp_path, "average")
    assert ranks[0] == ranks[1] == {"grads": [[1.5, 1.5], [2.0, 2.0], None]}


def test_each_process_anchors_on_its_own_traces():
    assert [anchor_batch_indices(step, 0, 1, 4, 10) for step in range(3)] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]  # one process: consecutive batches, cycled
    two = [[anchor_batch_indices(step, p, 2, 4, 100) for p in (0, 1)] for step in range(2)]
    assert two == [[[0, 1, 2, 3], [4, 5, 6, 7]], [[8, 9, 10, 11], [12, 13, 14, 15]]]


def test_a_data_parallel_step_is_logged_as_one_row_over_its_processes():
    """Rank 0 trained two groups, rank 1 none: counts add up, draws and times are the busiest process's, the
    update's statistics are those of what was trained (not diluted by rank 1's zeros), the episode metrics are the
    ones computed over both ranks' episodes, loss and gradient norm are averaged."""
    common = {"step": 3, "groups": 2, "branch_taken": 1, "grad_norm": 0.7, "score": 0.9, "generated_tokens": 40}
    rows = [common | {"rollouts": 8, "spread_groups": 1, "trained_groups": 2, "core_tokens": 30, "branch_eligible": 4,
                      "branch_fired": 1, "branching_rate": 0.25, "draws": 1, "rollout_s": 10.0, "update_s": 2.0,
                      "step_s": 12.0, "entropy": 0.5, "kl": 0.1, "clip_fraction": 0.2, "policy_token_fraction": 0.6,
                      "loss": 0.4},
            common | {"rollouts": 10, "spread_groups": 0, "trained_groups": 0, "core_tokens": 0, "branch_eligible": 2,
                      "branch_fired": 2, "branching_rate": 1.0, "draws": 2, "rollout_s": 14.0, "update_s": 0.5,
                      "step_s": 14.5, "entropy": 0.0, "kl": 0.0, "clip_fraction": 0.0, "policy_token_fraction": 0.0,
                      "loss": 0.0, "score": 0.1}]
    merged = merge_process_metrics([_step_metrics(row) for row in rows],
                                   _episode_metrics({"score": 0.55, "generated_tokens": 90}))
    assert merged["step"] == 3 and isinstance(merged["step"], int)
    assert {k: merged[k] for k in ("rollouts", "groups", "spread_groups", "trained_groups", "core_tokens",
                                   "branch_eligible", "branch_fired", "branch_taken")} == {
        "rollouts": 18, "groups": 4, "spread_groups": 1, "trained_groups": 2, "core_tokens": 30, "branch_eligible": 6,
        "branch_fired": 3, "branch_taken": 2}
    assert merged["branching_rate"] == 0.5
    assert (merged["draws"], merged["rollout_s"], merged["update_s"], merged["step_s"]) == (2, 14.0, 2.0, 14.5)
    assert (merged["entropy"], merged["kl"], merged["clip_fraction"], merged["policy_token_fraction"]) == (
        0.5, 0.1, 0.2, 0.6)
    assert (merged["score"], merged["generated_tokens"]) == (0.55, 90)
    assert merged["loss"] == pytest.approx(0.2) and merged["grad_norm"] == pytest.approx(0.7)


def _step_metrics(values: dict) -> StepMetrics:
    """A step's record with ``values``, every other metric 0."""
    return StepMetrics(**{name: 0 for name, field in StepMetrics.model_fields.items() if field.is_required()} | values)


def _episode_metrics(values: dict) -> EpisodeMetrics:
    return EpisodeMetrics(**dict.fromkeys(EpisodeMetrics.model_fields, 0.0) | values)


def test_step_metrics_write_the_keys_metrics_jsonl_has_always_had():
    """The typed record writes the row the dict-built trainer wrote: the same keys in the same order, anchor parts
    only when they were measured; a key the step did not log is a KeyError, as in the row."""
    keys = ["step", "score", "accuracy", "coordination", "resource", "calls_per_task", "invalid_call_rate",
            "answered_rate", "generated_tokens", "rollout_entropy", "rollouts", "draws", "branch_eligible",
            "branch_fired", "branch_taken", "branching_rate", "groups", "spread_groups", "loss", "grad_norm", "entropy",
            "kl", "clip_fraction", "policy_token_fraction", "core_tokens", "trained_groups"]
    times = ["rollout_s", "update_s", "step_s"]
    plain = _step_metrics({})
    assert list(plain.row()) == keys + times
    with pytest.raises(KeyError):
        plain["sft_nll"]
    anchored = _step_metrics({"sft_nll": 1.5, "grad_norm_anchor": 0.2, "grad_norm_policy": 0.1})
    assert list(anchored.row()) == keys + ["sft_nll", "grad_norm_anchor", "grad_norm_policy"] + times
    assert anchored["sft_nll"] == anchored.sft_nll == 1.5
    with pytest.raises(ValueError, match="typo"):
        _step_metrics({"typo": 1.0})


def _two_learners(tmp_path, *args) -> list[dict]:
    """``tests/rl/two_learners.py ARGS`` in two CPU processes; what each rank reported. A run that hangs is killed
    with its whole process group (the workers too), and its output is shown."""
    script = os.path.join(os.path.dirname(__file__), "two_learners.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script,
           str(tmp_path), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "CUDA_"))}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"two learner processes still running after 240 s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_a_data_parallel_run_starts_alike_checkpoints_once_and_resumes(tmp_path):
    """Two processes that build different random models train from the main process's weights, write one
    metrics row and one set of rollouts per step (both processes' episodes), and a resumed trainer continues from the
    checkpoint: all ranks end with the same weights."""
    ranks = _two_learners(tmp_path, "train")
    assert ranks[0]["trained"] == ranks[1]["trained"]
    assert all(r["resumed_at"] == 2 for r in ranks) and ranks[0]["checksum"] == ranks[1]["checksum"]
    out = tmp_path / "rl"
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    records = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert Counter((r["step"], r["process"]) for r in records) == {(s, p): 2 * 4 for s in range(3) for p in (0, 1)}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["rollouts"] == 2 * 2 * 4 for row in rows)  # every process's episodes, written once
    assert [c.name for c in list_checkpoints(out)][-1] == "checkpoint-000003"


@pytest.mark.parametrize(("what", "message"), [("sft", "netgpt sft trains in one process"),
                                               ("ray", "Ray rollouts run from a single learner process")])
@pytest.mark.slow
def test_trainers_that_run_in_one_process_refuse_several(tmp_path, what, message):
    assert all(message in (rank["error"] or "") for rank in _two_learners(tmp_path, what))


@pytest.mark.slow
def test_forks_of_a_later_draw_point_at_their_own_parents(tokenizer, registry, tmp_path):
    """Dynamic sampling with branching: a fork's ``parent`` is an index into the whole step's rollouts, so forks of
    the second draw must point past the first draw's episodes, at an episode of their own group that they continue.
    The groups' first wave is the oracle's episodes laid out as tokens (entropy 0, so every turn after an agent reply
    forks at threshold −1); the forks are sampled by a tiny core."""
    from netgpt.core.episode import run_episodes
    from netgpt.core.policies import OraclePolicy
    from netgpt.core.prompt import system_prompt
    from netgpt.sft import teacher_trajectory

    config = _config(tmp_path, steps=1, max_turns=3, branching={"enabled": True, "threshold": -1.0, "max_branches": 1},
                     dynamic_sampling={"enabled": True, "metric": "reward", "max_draws": 2})
    episode, system = config.episode_config, system_prompt(registry.cards())

    class OracleWaveTinyForks:
        """Rollouts whose first wave is the oracle's and whose forks the learner samples."""

        def __init__(self):
            self.local = LocalRolloutRunner(config, tokenizer, registry, episode)

        def sync(self, model):
            forks_run = self.local.sync(model)

            def run(tasks, session_prefix, forks=None):
                if forks is not None:
                    return forks_run(tasks, session_prefix, forks)
                results = run_episodes(tasks, OraclePolicy(), registry, episode, self.local.count_tokens,
                                       session_prefix=session_prefix)
                for result, task in zip(results, tasks):
                    tokens = teacher_trajectory(result, task, system, tokenizer)
                    result.trajectory = tokens.model_copy(update={"entropies": [0.0] * len(tokens.env_mask)})
                return results
            return run

        def close(self):
            self.local.close()

    trainer = RLTrainer(config, tiny_model(tokenizer, seed=2), tokenizer, registry, runner=OracleWaveTinyForks())
    second = {t.id for t in trainer.tasks_for(0, 1)}  # only the second draw's groups differ in reward
    trainer.reward_fn = lambda r: r.reward.total if r.task_id in second else 1.0
    batch = trainer.rollout(0)
    rollouts, tasks = batch.rollouts, batch.tasks
    assert batch.draws == 2 and batch.branch.taken == 4  # one fork per group, in both draws
    forks = [(k, r) for k, r in enumerate(rollouts) if r.parent is not None]
    assert sorted(r.group for _, r in forks) == [0, 1, 2, 3]
    for k, fork in forks:
        parent = rollouts[fork.parent]
        assert parent.parent is None and parent.group == fork.group and fork.parent < k
        assert parent.result.task_id == fork.result.task_id == tasks[fork.group].id
        assert fork.result.events[:fork.fork_turn] == parent.result.events[:fork.fork_turn]
