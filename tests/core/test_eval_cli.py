"""``netgpt eval`` and ``netgpt compare`` write and read reproducible run directories."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.eval.harness import load_episodes
from netgpt.tasks import TaskFileError, load_tasks

runner = CliRunner()


@pytest.mark.slow
def test_eval_writes_a_run_and_compare_reads_it(tmp_path):
    runs = []
    for policy in ("oracle", "always"):
        out = tmp_path / policy
        result = runner.invoke(app, ["eval", "--policy", policy, "--split", "dev", "--limit", "24", "--out", str(out)],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        body = json.loads((out / "results.json").read_text())
        agg = body["aggregate"]
        assert agg["n"] == 24 and len(load_episodes(out)) == 24
        assert {"score", "accuracy", "calls_per_task", "invalid_call_rate", "per_family", "latency_ms", "bytes",
                "tokens"} <= set(agg)
        run = json.loads((out / "run.json").read_text())
        assert run["policy"] == policy and run["seed"] == 0 and "torch" in run["environment"]
        for png in ("score_by_family.png", "reward_terms.png", "calls_histogram.png"):
            assert (out / png).stat().st_size > 1000
        assert "| " + policy + " | 24 |" in (out / "results.md").read_text()
        runs.append(str(out))
    oracle = json.loads((tmp_path / "oracle" / "results.json").read_text())["aggregate"]
    always = json.loads((tmp_path / "always" / "results.json").read_text())["aggregate"]
    assert oracle["score"] > always["score"] and oracle["accuracy"] == 1.0
    compared = runner.invoke(app, ["compare", *runs], env={"COLUMNS": "200"})
    assert compared.exit_code == 0 and "oracle" in compared.output and "always" in compared.output
    # always against oracle on the same 24 tasks: the paired rows, with a lower accuracy than the oracle's 1.0
    paired = [line for line in compared.output.splitlines() if line.startswith(f"| {runs[1]} | {runs[0]} |")]
    assert [line.split(" | ")[2:4] for line in paired] == [["score", "24"], ["accuracy", "24"]]
    assert float(paired[1].split(" | ")[4]) == round(always["accuracy"] - 1.0, 3)


def test_eval_rejects_unknown_policies_and_splits(tmp_path):
    bad = runner.invoke(app, ["eval", "--policy", "genius", "--split", "dev", "--limit", "2", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "unknown policy" in bad.output
    missing = runner.invoke(app, ["eval", "--policy", "oracle", "--split", "nope"])
    assert missing.exit_code != 0 and "no split" in missing.output


def test_eval_names_each_bad_line_of_a_task_file_without_a_traceback(tmp_path):
    good = (Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl").read_text().splitlines()[0]
    split = tmp_path / "tasks.jsonl"
    split.write_text("\n".join([good, "{not json", good.replace('"family"', '"famly"')]) + "\n")
    result = runner.invoke(app, ["eval", "--policy", "oracle", "--split", str(split), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    problems = [line for line in result.output.splitlines() if line.startswith(f"{split}:")]
    with pytest.raises(TaskFileError) as expected:
        load_tasks(split)
    assert problems == expected.value.problems and {line.split(":")[1] for line in problems} == {"2", "3"}
    assert "invalid JSON" in problems[0]
    assert not (tmp_path / "r").exists()
