"""Where a finished run keeps its episodes: in ``results.json`` (runs written before compression) or in
``episodes.jsonl.gz``; a run that keeps only its aggregate says so instead of failing on a missing key."""

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.core.episode import EpisodeConfig
from netgpt.core.policies import AlwaysPolicy, OraclePolicy
from netgpt.eval.bench import BenchConfig, summarise
from netgpt.eval.harness import (
    EPISODES_FILE,
    SPLITS_DIR,
    MissingEpisodesError,
    aggregate,
    evaluate,
    load_aggregate,
    load_episode_scores,
    load_episodes,
)
from netgpt.eval.run import write_run
from netgpt.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = sorted(run for run in (ROOT / "results" / "bench").iterdir() if (run / "results.json").is_file())


def _episodes(policy, registry):
    tasks = load_tasks(SPLITS_DIR / "dev.jsonl")[:12]
    return evaluate(tasks, policy, registry, EpisodeConfig(), lambda s: len(s.split()))


def _dump(results):
    return [r.model_dump(exclude={"trajectory"}) for r in results]


def test_episodes_inside_results_json_are_read_as_before(tmp_path, registry):
    results, agg = _episodes(OraclePolicy(), registry)
    (tmp_path / "results.json").write_text(json.dumps({"aggregate": agg.model_dump(), "episodes": _dump(results)}))
    assert _dump(load_episodes(tmp_path)) == _dump(results)
    assert load_episode_scores(tmp_path, "quality") == {r.task_id: r.reward.quality for r in results}


def test_episodes_beside_an_aggregate_only_results_json_are_read_from_the_compressed_file(tmp_path, registry):
    results, agg = _episodes(AlwaysPolicy(), registry)
    (tmp_path / "results.json").write_text(json.dumps({"aggregate": agg.model_dump()}))
    with gzip.open(tmp_path / EPISODES_FILE, "wt") as packed:
        packed.writelines(json.dumps(row) + "\n" for row in _dump(results))
    assert _dump(load_episodes(tmp_path)) == _dump(results)
    assert load_episode_scores(tmp_path) == {r.task_id: r.reward.total for r in results}


def test_a_run_that_keeps_only_its_aggregate_is_a_typed_error_and_compare_names_it(tmp_path, registry):
    for name, policy in (("oracle", OraclePolicy()), ("always", AlwaysPolicy())):
        _, agg = _episodes(policy, registry)
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"aggregate": agg.model_dump()}))
    with pytest.raises(MissingEpisodesError, match="keeps only its aggregate"):
        load_episodes(tmp_path / "oracle")
    with pytest.raises(MissingEpisodesError, match="docs/experiments.md"):
        load_episode_scores(tmp_path / "always")
    compared = CliRunner().invoke(app, ["compare", str(tmp_path / "oracle"), str(tmp_path / "always")],
                                  env={"COLUMNS": "300"})
    assert compared.exit_code != 0 and "keeps only its aggregate" in compared.output


@pytest.mark.slow
@pytest.mark.parametrize("run", HEADLINE, ids=[run.name for run in HEADLINE])
def test_the_headline_runs_keep_episodes_that_give_their_aggregate(run):
    episodes = load_episodes(run)
    assert aggregate(load_aggregate(run).policy, episodes) == load_aggregate(run)


@pytest.mark.slow
def test_the_committed_benchmark_summary_is_rebuilt_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the bench config names its stages' files relative to the repository
    summarise(BenchConfig.load(ROOT / "configs" / "bench-cpu.yaml"), out=tmp_path)
    for name in ("benchmark.json", "benchmark.md"):
        assert (tmp_path / name).read_text() == (ROOT / "results" / name).read_text(), name


def test_a_new_run_writes_its_aggregate_and_its_episodes_compressed_and_reads_them_back(tmp_path, registry):
    results, agg = _episodes(OraclePolicy(), registry)
    write_run(tmp_path / "run", results, agg, {"split": "dev"})
    write_run(tmp_path / "again", results, agg, {"split": "dev"})
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == {"aggregate": agg.model_dump()}
    assert _dump(load_episodes(tmp_path / "run")) == _dump(results)
    # no timestamp in the gzip header: the same episodes give the same bytes
    assert (tmp_path / "run" / EPISODES_FILE).read_bytes() == (tmp_path / "again" / EPISODES_FILE).read_bytes()
