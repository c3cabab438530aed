"""The missed-task pool: built from a real eval run over the CLI, refused when it could leak an evaluation split or
change under a resumed run, and replayed in each step's batch after the stream's tasks."""

import json
import re

import pytest
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.core.model import tiny_model
from netgpt.eval.harness import load_episodes
from netgpt.rl.config import RLConfig
from netgpt.rl.task_pool import TaskPoolError, load_pool, missed_tasks, pool_batch
from netgpt.rl.trainer import RLTrainer
from netgpt.tasks import load_tasks
from netgpt.tasks.generate import task_line, training_task

runner = CliRunner()


def _said(result) -> str:
    """The CLI's output with rich's error box and line wrapping taken out."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    """Twelve training-stream tasks from position 500 (one per family) and the `always` policy's eval run on them."""
    root = tmp_path_factory.mktemp("screen")
    tasks = root / "train-500.jsonl"
    tasks.write_text(_ok(runner.invoke(app, ["tasks", "sample", "--split", "train", "--seed", "1", "--start", "500",
                                             "--n", "12"])).stdout)
    run = root / "always"
    _ok(runner.invoke(app, ["eval", "--policy", "always", "--split", str(tasks), "--out", str(run)]))
    return tasks, run


def test_sample_start_prints_the_training_stream_from_that_position(screened):
    tasks = load_tasks(screened[0])
    assert [t.id for t in tasks] == [f"train-{k:05d}" for k in range(500, 512)]
    assert tasks == [training_task(1, 500 + k) for k in range(12)]  # what an RL run with data_seed 1 would draw


def test_missed_keeps_exactly_the_tasks_answered_wrong(screened, tmp_path):
    tasks, run = screened
    quality = {e.task_id: e.reward.quality for e in load_episodes(run)}
    out = tmp_path / "missed.jsonl"
    result = _ok(runner.invoke(app, ["tasks", "missed", str(run), "--out", str(out)]))
    missed = load_tasks(out)
    # the scripted `always` gets most of them right, not all (0.881 on test)
    assert 0 < len(missed) < 12
    assert [t.id for t in missed] == [t.id for t in load_tasks(tasks) if quality[t.id] < 1.0]
    assert f"{len(missed)} missed task(s)" in result.output


def test_an_oracle_misses_nothing(screened, tmp_path):
    run = tmp_path / "oracle"
    _ok(runner.invoke(app, ["eval", "--policy", "oracle", "--split", str(screened[0]), "--out", str(run)]))
    assert missed_tasks(run) == []


@pytest.mark.slow
def test_missed_tasks_of_an_evaluation_split_are_refused(tmp_path):
    run = tmp_path / "dev"
    _ok(runner.invoke(app, ["eval", "--policy", "never", "--split", "dev", "--limit", "3", "--out", str(run)]))
    result = runner.invoke(app, ["tasks", "missed", str(run), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "would leak into training" in _said(result)
    assert not (tmp_path / "x.jsonl").exists()
    unfinished = runner.invoke(app, ["tasks", "missed", str(tmp_path), "--out", str(tmp_path / "x.jsonl")])
    assert unfinished.exit_code == 2 and "not a finished eval run" in _said(unfinished)


def test_a_pool_that_cannot_feed_rl_is_refused(tmp_path):
    with pytest.raises(TaskPoolError, match="no such file"):
        load_pool(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TaskPoolError, match="holds no tasks"):
        load_pool(empty)
    twice = tmp_path / "twice.jsonl"
    twice.write_text(task_line(training_task(1, 7)) * 2)
    with pytest.raises(TaskPoolError, match="line 2: duplicate id"):
        load_pool(twice)
    dev = tmp_path / "dev.jsonl"
    dev.write_text(task_line(load_tasks("data/bench/dev.jsonl")[0]))
    with pytest.raises(TaskPoolError, match="only training-stream tasks"):
        load_pool(dev)


def test_the_pool_is_replayed_in_order_and_each_process_takes_its_own_slice():
    pool = [training_task(1, 600 + k) for k in range(5)]
    ids = [[t.id[-3:] for t in pool_batch(pool, step, 2)] for step in range(3)]
    assert ids == [["600", "601"], ["602", "603"], ["604", "600"]]  # every task once before any twice
    two = [[t.id[-3:] for t in pool_batch(pool, 1, 2, process, 2)] for process in range(2)]
    assert two == [["604", "600"], ["601", "602"]]


def _config(tmp_path, pool, **kw) -> RLConfig:
    base = dict(out=tmp_path / "rl", steps=1, tasks_per_step=3, num_generations=2, max_new_tokens=4, max_turns=1,
                train="full", save_steps=1, export_model=False, branching={"enabled": False},
                task_pool={"file": str(pool), "per_step": 1})
    return RLConfig.model_validate(base | kw)


def test_each_step_replays_pool_tasks_after_the_stream_and_a_changed_pool_is_not_resumed(tokenizer, registry,
                                                                                        tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(task_line(training_task(1, 900 + k)) for k in range(2)))
    config = _config(tmp_path, pool)
    trainer = RLTrainer(config, tiny_model(tokenizer, seed=1), tokenizer, registry)
    assert [t.id for t in trainer.tasks_for(0)] == ["train-00000", "train-00001", "train-00900"]
    assert [t.id for t in trainer.tasks_for(1)] == ["train-00002", "train-00003", "train-00901"]
    trainer.train()
    episodes = [json.loads(line) for line in (config.out / "rollouts.jsonl").read_text().splitlines()]
    replayed = [e for e in episodes if e["task_id"] == "train-00900"]
    assert len(replayed) == 2 and replayed[0]["question"] == training_task(1, 900).question
    assert json.loads((config.out / "task_pool.json").read_text())["task_ids"] == ["train-00900", "train-00901"]

    pool.write_text(task_line(training_task(1, 950)))
    changed = RLTrainer(config.model_copy(update={"steps": 2}), tiny_model(tokenizer, seed=1), tokenizer, registry)
    with pytest.raises(TaskPoolError, match="is not the pool .* was trained with"):
        changed.resume()


def test_a_pool_larger_than_the_batch_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match=r"task_pool.per_step \(4\) exceeds tasks_per_step \(3\)"):
        _config(tmp_path, tmp_path / "pool.jsonl", task_pool={"file": "pool.jsonl", "per_step": 4})


def test_train_cli_names_a_missing_pool(tmp_path):
    config = tmp_path / "rl.yaml"
    config.write_text(f"out: {tmp_path / 'rl'}\ntask_pool: {{file: {tmp_path / 'absent.jsonl'}}}\n")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2 and "build it with `netgpt tasks missed`" in _said(result)
