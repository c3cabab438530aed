"""The run-directory record and guards shared by evaluation, SFT and RL."""

import json

import pytest

from netgpt.rundir import TrainingRunRecord, ensure_same_run, ensure_same_start, record_start


def test_a_training_record_writes_the_keys_of_its_kind_in_order(tmp_path):
    TrainingRunRecord(command="netgpt sft", config={"steps": 2}, episodes=5).write(tmp_path / "sft")
    TrainingRunRecord(command="netgpt train", config={"steps": 2}, resumed_at=0).write(tmp_path / "rl")
    sft = json.loads((tmp_path / "sft" / "run.json").read_text())
    rl = json.loads((tmp_path / "rl" / "run.json").read_text())
    assert list(sft) == ["command", "config", "episodes", "environment"]
    assert list(rl) == ["command", "config", "resumed_at", "environment"]
    assert {"python", "torch", "netgpt"} <= set(rl["environment"])


def test_a_resume_is_refused_for_another_start_or_recipe(tmp_path):
    record_start(tmp_path, "runs/sft/model", "a" * 64)
    ensure_same_start(tmp_path, "runs/sft/model", "a" * 64)
    with pytest.raises(ValueError, match="is not the one it was trained from"):
        ensure_same_start(tmp_path, "runs/sft/model", "b" * 64)
    ensure_same_run(tmp_path, tmp_path / "rl_run.json", {"lr": 1}, {"lr": 1})
    with pytest.raises(ValueError, match=r"other \['lr'\]"):
        ensure_same_run(tmp_path, tmp_path / "rl_run.json", {"lr": 1}, {"lr": 2})
