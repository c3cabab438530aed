"""The evaluation run layer: one policy factory, the run object and its run.json record."""

import json

import pytest

from netgpt.core.episode import EpisodeConfig
from netgpt.core.factory import PolicySpec, UnknownPolicyError, build_policy, check_policy_name, checkpoint_name
from netgpt.core.model import model_sha256, save_model, tiny_model
from netgpt.core.policies import OraclePolicy, RandomPolicy
from netgpt.eval.harness import InfraErrorThresholdExceeded, check_infra_errors, load_episodes
from netgpt.eval.run import EvalListener, EvalRun, EvalSetupError

SCRIPTED_KEYS = ["command", "policy", "split", "seed", "generator_version", "episode", "faults", "model", "dtype",
                 "max_new_tokens", "n_tasks", "backend", "workers", "device", "batch_size", "wall_s", "startup_s",
                 "generated_tokens_per_s", "environment"]


def test_the_factory_builds_scripted_policies_and_names_checkpoints(registry, tmp_path):
    oracle = build_policy(PolicySpec(name="oracle"), registry)
    assert isinstance(oracle, OraclePolicy) and oracle.batch_size == OraclePolicy.batch_size  # its own batching
    random = build_policy(PolicySpec(name="random", seed=3, batch_size=5), registry)
    assert isinstance(random, RandomPolicy) and random.seed == 3 and random.batch_size == 5
    with pytest.raises(UnknownPolicyError, match="unknown policy 'genius'"):
        check_policy_name("genius")
    with pytest.raises(UnknownPolicyError):
        build_policy(PolicySpec(name=str(tmp_path / "missing")), registry)
    ckpt = tmp_path / "rl-s0" / "checkpoint-000010" / "model"
    ckpt.mkdir(parents=True)
    assert checkpoint_name(ckpt) == "rl-s0-checkpoint-000010"
    spec = PolicySpec(name=str(ckpt.relative_to(tmp_path)))
    assert PolicySpec(name=str(ckpt)).display_name == "rl-s0-checkpoint-000010"
    assert PolicySpec(name="oracle").resolved().name == "oracle" and spec.resolved() == spec  # not a dir from here


def test_a_run_writes_its_record_and_a_resume_adds_its_parts(tmp_path):
    heard: list = []
    listener = EvalListener(start=lambda total, kept: heard.append((total, kept)),
                            episode=lambda score: heard.append(score))
    run = EvalRun(policy=PolicySpec(name="always"), limit=6, out=tmp_path / "run", seed=2, command="first")
    outcome = run.run(listener)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert list(record) == SCRIPTED_KEYS  # the keys (and their order) run.json always had
    assert record["seed"] == 2 and record["faults"]["seed"] == 2 and record["batch_size"] == 16
    assert outcome.ran == 6 and outcome.kept == 0 and heard[0] == (6, 0) and len(heard) == 7
    more = run.model_copy(update={"limit": 9, "resume": True, "command": "second"}).run()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert list(record) == SCRIPTED_KEYS[:-1] + ["kept_episodes", "parts", "environment"]
    assert more.kept == 6 and more.ran == 3 and [p["episodes"] for p in record["parts"]] == [6, 3]
    assert [p["command"] for p in record["parts"]] == ["first", "second"]


def test_a_failed_check_fails_the_run_after_its_results_are_written(tmp_path):
    def refuse(results):
        raise RuntimeError(f"{len(results)} episodes refused")

    run = EvalRun(policy=PolicySpec(name="oracle"), limit=3, out=tmp_path / "run", checks=[refuse])
    with pytest.raises(RuntimeError, match="3 episodes refused"):
        run.run()
    assert len(load_episodes(tmp_path / "run")) == 3
    assert not (tmp_path / "run" / "episodes.jsonl").exists()


def test_a_run_refuses_too_many_infra_errors_by_default(tmp_path):
    """The default check is the harness's infra-error threshold: an agent server that died mid-run fails the run."""
    run = EvalRun(policy=PolicySpec(name="always"), limit=4, out=tmp_path / "run")
    assert run.checks == [check_infra_errors]
    broken = [r.model_copy(update={"finish_reason": "infra_error", "infra_error": "connection refused"})
              for r in run.run().results]
    with pytest.raises(InfraErrorThresholdExceeded, match="4 of 4 episodes"):
        run.checks[0](broken)


def test_setup_errors_name_the_option_at_fault(tmp_path):
    with pytest.raises(EvalSetupError, match="no split 'nope'") as missing:
        EvalRun(policy=PolicySpec(name="oracle"), split="nope", out=tmp_path / "a").run()
    assert missing.value.option == "--split"
    EvalRun(policy=PolicySpec(name="oracle"), limit=2, out=tmp_path / "b").run()
    other = EvalRun(policy=PolicySpec(name="oracle"), limit=2, out=tmp_path / "b", resume=True,
                    episode=EpisodeConfig(max_turns=2))
    with pytest.raises(EvalSetupError, match="other settings") as refused:
        other.run()
    assert refused.value.option == "--resume"


def test_an_llm_run_records_which_weights_it_ran(tokenizer, tmp_path):
    ckpt = tmp_path / "ckpt"
    save_model(tiny_model(tokenizer, seed=1), tokenizer, ckpt)
    run = EvalRun(policy=PolicySpec(name=str(ckpt), max_new_tokens=8), limit=2, out=tmp_path / "run",
                  episode=EpisodeConfig(max_turns=1), batch_size=2)
    assert run.policy.batch_size == 2
    outcome = run.run()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    at = SCRIPTED_KEYS.index("max_new_tokens") + 1
    assert list(record) == SCRIPTED_KEYS[:at] + ["model_sha256"] + SCRIPTED_KEYS[at:]
    assert record["model_sha256"] == model_sha256(str(ckpt)) and outcome.aggregate.policy == "ckpt"
