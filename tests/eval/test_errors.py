"""``netgpt errors``: wrong episodes are traced to the first planned call the core did not make exactly."""

import json

import pytest
from typer.testing import CliRunner

from netgpt.agents import default_agents
from netgpt.cli import app
from netgpt.eval.errors import analyse, diagnose, load_run_episodes, skill_defaults
from netgpt.eval.harness import SPLITS_DIR
from netgpt.tasks import load_tasks

runner = CliRunner()
DEFAULTS = skill_defaults(agent.card for agent in default_agents())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real oracle and always runs on the first 36 dev tasks (3 per family)."""
    root = tmp_path_factory.mktemp("runs")
    for policy in ("oracle", "always"):
        result = runner.invoke(app, ["eval", "--policy", policy, "--split", "dev", "--limit", "36",
                                     "--out", str(root / policy)])
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def dev():
    return {t.id: t for t in load_tasks(SPLITS_DIR / "dev.jsonl")[:36]}


def _episode(runs, dev, family, plan=lambda p: True):
    _, episodes = load_run_episodes(runs / "oracle")
    return next((dev[e.task_id], e.model_copy(deep=True)) for e in episodes
                if e.family == family and plan(dev[e.task_id].reference_plan))


def _wrong(episode, answer="12345"):
    episode.answer = answer
    episode.reward.quality = 0.0
    return episode


def test_oracle_is_all_correct_and_always_fails_only_where_it_does_not_recover(runs, dev):
    _, oracle = load_run_episodes(runs / "oracle")
    _, always = load_run_episodes(runs / "always")
    assert analyse("oracle", list(dev.values()), oracle, DEFAULTS).kinds == {"correct": 36}
    report = analyse("always", list(dev.values()), always, DEFAULTS)
    wrong = [d for d in report.diagnoses if d.kind != "correct"]
    assert wrong and {d.family for d in wrong if d.kind == "unrecovered_failure"} == {"agent_recovery"}
    assert report.kinds["correct"] == sum(e.reward.quality >= 1.0 for e in always)


def test_a_wrong_argument_is_named_and_later_calls_are_not_blamed(runs, dev):
    task, episode = _episode(runs, dev, "tbs", lambda plan: [p.skill for p in plan] == ["mcs", "tbs"])
    first = next(e for e in episode.events if e.kind == "call")
    first.args = {**first.args, "index": first.args["index"] + 1}
    tbs = next(e for e in episode.events if e.skill == "tbs")
    tbs.args = {**tbs.args, "qm": 8}
    verdict = diagnose(task, _wrong(episode), DEFAULTS)
    assert verdict.kind == "wrong_args" and verdict.fields == ["phy.mcs.index"]


def test_argument_defaults_and_rounding_do_not_count_as_errors(runs, dev):
    task, episode = _episode(runs, dev, "tbs", lambda plan: plan[-1].args.get("n_oh_per_prb") == 0)
    assert DEFAULTS[("phy", "tbs")]["n_oh_per_prb"] == 0
    call = next(e for e in episode.events if e.skill == "tbs")
    call.args = {k: v for k, v in call.args.items() if k != "n_oh_per_prb"}
    call.args["code_rate_x1024"] *= 1 + 1e-5
    assert diagnose(task, _wrong(episode), DEFAULTS).kind == "misread_reply"


def test_each_failure_kind(runs, dev):
    task, episode = _episode(runs, dev, "tbs", lambda plan: len(plan) == 2)
    assert diagnose(task, episode, DEFAULTS).kind == "correct"
    assert diagnose(task, _wrong(episode.model_copy(deep=True), answer=None), DEFAULTS).kind == "no_answer"
    answer_only = _wrong(episode.model_copy(update={"events": [episode.events[-1]]}, deep=True))
    assert diagnose(task, answer_only, DEFAULTS).kind == "guessed"
    stopped_early = _wrong(episode.model_copy(update={"events": [episode.events[0], episode.events[-1]]}, deep=True))
    assert diagnose(task, stopped_early, DEFAULTS).kind == "wrong_call"
    rejected = episode.model_copy(deep=True)
    rejected.events[1].ok, rejected.events[1].error_code = False, "invalid_args"
    assert diagnose(task, _wrong(rejected), DEFAULTS).kind == "invalid_calls"
    down = episode.model_copy(deep=True)
    down.events[1].ok, down.events[1].error_code = False, "unavailable"
    assert diagnose(task, _wrong(down), DEFAULTS).kind == "unrecovered_failure"
    lookup, lookup_episode = _episode(runs, dev, "observation_lookup", lambda plan: not plan)
    assert diagnose(lookup, _wrong(lookup_episode), DEFAULTS).kind == "misread_observation"


def test_recovery_on_the_wrong_agent_is_an_agent_mismatch(runs, dev):
    task, episode = _episode(runs, dev, "agent_recovery")
    fallback = next(p for p in task.reference_plan if p.expect_error is None)
    call = next(e for e in episode.events if e.ok and e.skill == fallback.skill)
    call.agent = "someone_else"
    verdict = diagnose(task, _wrong(episode), DEFAULTS)
    assert verdict.kind == "wrong_args" and verdict.fields[0] == f"{fallback.agent}.{fallback.skill}.@agent"


def test_cli_writes_the_report_and_rejects_what_is_not_a_run(runs, tmp_path):
    result = runner.invoke(app, ["errors", str(runs / "oracle"), str(runs / "always"), "--out", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "| correct | 1.000 |" in (tmp_path / "errors.md").read_text()
    body = json.loads((tmp_path / "errors.json").read_text())
    assert [r["name"] for r in body] == ["oracle", "always"] and len(body[1]["diagnoses"]) == 36
    bad = runner.invoke(app, ["errors", str(tmp_path)], env={"COLUMNS": "200"})
    assert bad.exit_code != 0 and "not an evaluation run" in bad.output


def test_a_run_on_another_generator_version_is_not_diagnosed(runs, tmp_path):
    """Reference plans change with the generator version: a run from before (no version recorded, so 1.0.0) is
    refused rather than reported as wrong arguments."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs / "oracle", old)
    info = json.loads((old / "run.json").read_text())
    assert info["generator_version"] == "1.1.0"
    del info["generator_version"]
    (old / "run.json").write_text(json.dumps(info))
    refused = runner.invoke(app, ["errors", str(old)], env={"COLUMNS": "200"})
    assert refused.exit_code != 0 and "ran on task generator 1.0.0" in refused.output


def test_infra_error_episodes_are_not_diagnosed(runs, dev):
    _, episodes = load_run_episodes(runs / "always")
    cut = episodes[0].model_copy(update={"finish_reason": "infra_error", "infra_error": "agent server gone"}, deep=True)
    report = analyse("always", list(dev.values()), [cut, *episodes[1:]], DEFAULTS)
    assert report.n == len(episodes) - 1
    assert cut.task_id not in {d.task_id for d in report.diagnoses}
