"""The committed NetGPT-Bench splits: manifest, balance, recomputation, HF datasets, and the CLI's checks."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.tasks import TaskFileError, check_file, load_tasks
from netgpt.tasks.generate import SPLIT_SEEDS, generate_split, task_line
from netgpt.tasks.schema import Task

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
runner = CliRunner()


def test_manifest_matches_files():
    manifest = json.loads((BENCH / "manifest.json").read_text())
    expected_counts = {"dev": 200, "test": 600}
    for split, entry in manifest["splits"].items():
        data = (BENCH / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], split
        assert data.count(b"\n") == entry["count"]
        assert entry["count"] == expected_counts.get(split, entry["count"]) and entry["count"] >= 200
        counts = entry["families"].values()
        assert len(entry["families"]) >= 8 and max(counts) - min(counts) <= 1  # balanced


def test_committed_splits_are_reproducible_from_the_generator():
    """Guards against generator drift: the first tasks of each split regenerate byte for byte, except a fitted
    forecast answer, which may move within FIT_DRIFT on another CPU (and nothing else of that task may)."""
    from netgpt.tasks.io import fit_drift

    for split in ("dev", "test", "ood"):
        lines = (BENCH / f"{split}.jsonl").read_text().splitlines(keepends=True)[:13]
        for line, task in zip(lines, generate_split(split, 13, SPLIT_SEEDS[split]), strict=True):
            stored = Task.model_validate_json(line)
            if task_line(task) != line and fit_drift(stored, task.answer):
                task = task.model_copy(update={"answer": stored.answer})
            assert task_line(task) == line, (split, stored.id)


@pytest.mark.parametrize("split", ["dev", "test", "ood"])
@pytest.mark.slow
def test_check_recomputes_every_answer(split):
    report = check_file(BENCH / f"{split}.jsonl")
    assert report.ok, [str(e) for e in report.errors[:5]]
    assert report.count == sum(1 for _ in open(BENCH / f"{split}.jsonl"))


def test_cli_check_passes_and_reports_count():
    result = runner.invoke(app, ["tasks", "check", str(BENCH / "dev.jsonl")])
    assert result.exit_code == 0, result.output
    assert "OK: 200 tasks over 12 families" in result.output


def _corrupt(tmp_path):
    lines = (BENCH / "dev.jsonl").read_text().splitlines()[:12]
    broken = list(lines)
    broken[1] = lines[1][:-40]                                       # truncated JSON
    task = json.loads(lines[4])
    task["answer"]["value"] = (task["answer"]["value"] or 0) + 1000  # wrong answer
    broken[4] = json.dumps(task)
    task = json.loads(lines[7])
    del task["question"]                                             # schema violation
    broken[7] = json.dumps(task)
    broken[10] = lines[0]                                            # duplicate id
    path = tmp_path / "corrupt.jsonl"
    path.write_text("\n".join(broken) + "\n")
    return path


def test_cli_check_fails_with_line_numbers_on_a_corrupted_copy(tmp_path):
    path = _corrupt(tmp_path)
    result = runner.invoke(app, ["tasks", "check", str(path)])
    assert result.exit_code == 1
    for line in (2, 5, 8, 11):
        assert f"corrupt.jsonl:{line}" in result.output, result.output
    assert "invalid JSON" in result.output and "duplicate id" in result.output and "question" in result.output


def test_corrupted_file_is_never_half_loaded(tmp_path):
    with pytest.raises(TaskFileError) as info:
        load_tasks(_corrupt(tmp_path))
    assert [e.line for e in info.value.errors] == [2, 8, 11]  # structural problems; line 5 parses but is wrong


def test_hf_datasets_reads_the_splits():
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(BENCH / "dev.jsonl"), split="train")
    tasks = load_tasks(BENCH / "dev.jsonl")
    assert len(ds) == len(tasks)
    assert ds[3]["question"] == tasks[3].question
    # arrow's JSON reader may round the last ulp differently
    assert ds[3]["answer"]["value"] == pytest.approx(tasks[3].answer.value, rel=1e-12)


def test_json_schema_export_validates_a_task():
    result = runner.invoke(app, ["tasks", "schema"])
    schema = json.loads(result.stdout)
    line = (BENCH / "dev.jsonl").read_text().splitlines()[0]
    jsonschema.validate(json.loads(line), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "x"}, schema)


def test_cli_sample_and_stats(tmp_path):
    result = runner.invoke(app, ["tasks", "sample", "--family", "tbs", "--n", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    tasks = [Task.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [t.family for t in tasks] == ["tbs", "tbs"]
    bad = runner.invoke(app, ["tasks", "sample", "--family", "nope"])
    assert bad.exit_code != 0 and "unknown task family" in str(bad.exception or bad.output)
    stats = runner.invoke(app, ["tasks", "stats", str(BENCH / "dev.jsonl")], env={"COLUMNS": "200"})
    assert stats.exit_code == 0 and "link_budget" in stats.output


@pytest.mark.slow
def test_netgpt_entry_point_runs():
    exe = Path(sys.executable).parent / "netgpt"
    out = subprocess.run([str(exe), "tasks", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "check" in out.stdout


def test_a_fitted_answer_may_drift_within_its_bound_and_no_further(tmp_path):
    """A forecast answer off by 0.5 points (within FIT_DRIFT x its 5-point tolerance) is reported as CPU drift; off
    by 3 points it is an error on any CPU."""
    from netgpt.tasks.io import FIT_DRIFT

    line = next(x for x in (BENCH / "dev.jsonl").read_text().splitlines() if '"family":"load_forecast"' in x)
    task = json.loads(line)
    assert 0.5 < task["answer"]["tolerance"] * FIT_DRIFT < 3
    reports = {}
    for shift in (0.5, 3.0):
        moved = {**task, "answer": {**task["answer"], "value": task["answer"]["value"] + shift}}
        path = tmp_path / f"shift-{shift}.jsonl"
        path.write_text(json.dumps(moved) + "\n")
        reports[shift] = check_file(path)
    assert reports[0.5].ok and len(reports[0.5].drift) == 1
    assert not reports[3.0].ok and not reports[3.0].drift
