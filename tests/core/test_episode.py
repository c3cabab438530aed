"""The episode runtime with scripted policies: dispatch, faults, budgets, turn limits, typed issues."""

from pathlib import Path

import pytest

from netgpt.core.episode import EpisodeConfig, NetworkTaskEnv, Policy, run_episodes
from netgpt.core.policies import AlwaysPolicy, OraclePolicy, RandomPolicy
from netgpt.reward import Budget
from netgpt.tasks import load_tasks

TASKS = load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")
# a slice with every family, skipping the slow forecast fits
SAMPLE = [t for t in TASKS if t.family != "load_forecast"][:44]


def count(text):
    return len(text) // 4


def test_oracle_is_right_everywhere_and_recovers_from_failures(registry):
    results = run_episodes(SAMPLE, OraclePolicy(), registry, EpisodeConfig(), count)
    wrong = [(r.task_id, r.answer) for r in results if r.reward.quality < 1]
    assert not wrong
    recovery = [r for r in results if r.family == "agent_recovery"]
    assert recovery and all(r.events[0].error_code == "unavailable" and r.events[1].ok for r in recovery)
    lookups = [r for r in results if r.family == "observation_lookup"]
    assert lookups and all(r.turns == 1 and r.events[0].kind == "answer" for r in lookups)


def test_always_calls_even_when_the_observation_answers_and_never_retries(registry):
    results = {r.task_id: r for r in run_episodes(SAMPLE, AlwaysPolicy(), registry, EpisodeConfig(), count)}
    for task in SAMPLE:
        r = results[task.id]
        if task.family == "observation_lookup":
            assert r.events[0].kind == "call" and r.reward.coordination == 0.5  # called for nothing
        if task.family == "agent_recovery":
            assert r.reward.quality == 0.0 and r.answer == "unknown"


def test_same_seed_same_episodes(registry):
    a = run_episodes(SAMPLE[:12], RandomPolicy(registry.cards(), seed=3), registry, EpisodeConfig(), count)
    b = run_episodes(SAMPLE[:12], RandomPolicy(registry.cards(), seed=3), registry, EpisodeConfig(), count)
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]


def test_random_episodes_do_not_depend_on_the_batch_size(registry):
    """Seeded from the session name, not the position in the batch: workers may batch the tasks as they like."""
    def run(batch_size, seed=3):
        policy = RandomPolicy(registry.cards(), seed=seed)
        policy.batch_size = batch_size
        return [r.model_dump() for r in run_episodes(SAMPLE[:12], policy, registry, EpisodeConfig(), count)]

    whole = run(12)
    assert run(5) == whole and run(1) == whole
    assert run(12, seed=4) != whole


class Scripted(Policy):
    name = "scripted"

    def __init__(self, turns):
        self.turns = turns

    def begin(self, system, tasks, first, resume=None, sessions=None):
        self.k = 0
        self.replies = []

    def act(self, indices):
        text = self.turns[min(self.k, len(self.turns) - 1)]
        self.k += 1
        return [(text, None, False) for _ in indices]

    def observe(self, index, reply_text):
        self.replies.append(reply_text)


def test_bad_output_becomes_replies_the_core_can_recover_from(registry):
    task = next(t for t in SAMPLE if t.family == "tbs")
    policy = Scripted(["I am not sure", '<call agent="oracle" skill="x">{}</call>',
                       '<call agent="phy" skill="tbs">{"qm": "six"}</call>',
                       f"<answer>{task.answer.display()}</answer>"])
    [result] = run_episodes([task], policy, registry, EpisodeConfig(max_turns=6), count)
    assert [e.kind for e in result.events] == ["issue", "issue", "call", "answer"]
    assert 'error="no_action"' in policy.replies[0] and 'error="unknown_agent"' in policy.replies[1]
    assert 'error="invalid_args"' in policy.replies[2]
    assert result.reward.quality == 1.0 and result.reward.coordination == pytest.approx(0.25)


def test_turn_limit_and_budget(registry):
    task = next(t for t in SAMPLE if t.family == "pathloss")
    call = task.reference_plan[0]
    text = f'<call agent="{call.agent}" skill="{call.skill}">' + __import__("json").dumps(call.args) + "</call>"
    [looping] = run_episodes([task], Scripted([text]), registry, EpisodeConfig(max_turns=3), count)
    assert looping.finish_reason == "max_turns" and looping.turns == 3 and looping.reward.total == 0.0
    tight = EpisodeConfig(budget=Budget(latency_ms=1.0))
    [broke] = run_episodes([task], Scripted([text]), registry, tight, count)
    assert broke.finish_reason == "budget" and broke.turns == 1


def test_step_after_the_end_is_an_error(registry):
    env = NetworkTaskEnv(registry, EpisodeConfig(), "s-1", count)
    env.reset(SAMPLE[0])
    env.step("<answer>1</answer>")
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("<answer>2</answer>")


@pytest.mark.parametrize(("config", "stated"), [("configs/rl-cpu.yaml", True), ("configs/bench-cpu.yaml", True),
                                               ("configs/ablations/rl-unstated.yaml", False)])
def test_configured_token_limit_fits_every_scripted_turn(registry, tokenizer, config, stated):
    """A turn limit below the teacher's longest call cuts every such call off (tbs and pathloss arguments run to
    ~87 tokens, ~113 with a stated step): the trained core could never complete them, in rollouts or in evaluation."""
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / config).read_text())
    limit = data.get("max_new_tokens") or data["eval"]["max_new_tokens"]
    results = run_episodes(SAMPLE, OraclePolicy(state_steps=stated), registry, EpisodeConfig(), count)
    longest = max(len(tokenizer(e.text, add_special_tokens=False).input_ids) for r in results for e in r.events)
    assert 80 <= longest <= limit
