"""Entropy-guided branching: forks fire exactly when the entropy rule says, and continue their parent exactly."""

from pathlib import Path

import pytest
import torch

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Event, NetworkTaskEnv, Trajectory, run_episodes
from netgpt.core.llm import LLMPolicy
from netgpt.core.model import tiny_model
from netgpt.core.policies import OraclePolicy
from netgpt.core.prompt import system_prompt
from netgpt.reward import EpisodeCost, RewardTerms
from netgpt.rl.config import BranchingConfig
from netgpt.rl.rollout import entropy_guided_branch_points, fork_at, turn_spans
from netgpt.sft import teacher_trajectory
from netgpt.tasks import load_tasks

DEV = load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")


def _episode(kinds, mask, entropies):
    events = [Event(turn=t, kind=k, text="x", tokens=1) for t, k in enumerate(kinds)]
    trajectory = Trajectory(prompt_ids=[1, 2], completion_ids=list(range(len(mask))), env_mask=mask,
                            logprobs=[0.0] * len(mask), entropies=entropies)
    return EpisodeResult(task_id="t", family="f", policy="p", answer=None, finish_reason="answer", turns=len(kinds),
                         events=events, cost=EpisodeCost(), reward=RewardTerms(quality=0, coordination=0, resource=0,
                                                                               total=0), trajectory=trajectory)


def test_turn_spans_are_the_runs_of_generated_tokens():
    assert turn_spans([1, 1, 0, 0, 1, 0, 1, 1]) == [(0, 2), (4, 5), (6, 8)]
    assert turn_spans([0, 1]) == [(1, 2)]


def test_branching_fires_exactly_when_the_entropy_rule_says():
    mask = [1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1]
    #        turn 0   |reply| t1  |reply| turn 2 |iss| t3
    ent = [0.25, 0.25, 9.0, 0, 0, 1.0, 1.0, 0, 0, 1.5, 1.5, 0.0, 0, 4.0, 4.0]
    result = _episode(["call", "call", "issue", "answer"], mask, ent)
    rule = BranchingConfig(threshold=0.5, probe_tokens=2)
    points, eligible = entropy_guided_branch_points(result, rule)
    # t1 follows a call: rise 1.0 − 0.25 = 0.75 > 0.5 (the 9.0 is outside the 2-token probe) → fires
    # t2 follows a call: rise 1.5 − 1.0 = 0.5, not above the threshold → does not fire
    # t3 follows a parse issue, not an agent reply → not eligible however high its entropy
    assert eligible == 2
    assert [(p.turn, p.rise) for p in points] == [(1, 0.75)]
    assert [p.turn for p in entropy_guided_branch_points(result, rule.model_copy(update={"threshold": 0.49}))[0]] \
        == [1, 2]
    assert entropy_guided_branch_points(result, rule.model_copy(update={"probe_tokens": 3}))[0] == []


def test_one_uncertain_token_is_enough_to_fire():
    # the call-or-answer choice is one token among near-certain tag tokens: the peak counts, a mean would hide it
    mask = [1, 1, 1, 1, 0, 0, 1, 1, 1, 1]
    ent = [0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.69, 0.0, 0.0]
    result = _episode(["call", "answer"], mask, ent)
    points, eligible = entropy_guided_branch_points(result, BranchingConfig(threshold=0.5, probe_tokens=4))
    assert eligible == 1 and [(p.turn, p.rise) for p in points] == [(1, 0.69)]
    assert entropy_guided_branch_points(result, BranchingConfig(threshold=0.5, probe_tokens=1))[0] == []


def test_misaligned_trajectories_are_rejected():
    with pytest.raises(ValueError, match="line up"):
        entropy_guided_branch_points(_episode(["call", "answer"], [1, 1, 1], [0.0] * 3), BranchingConfig())


def test_a_fork_continues_its_parent_from_the_branch_point(tokenizer, registry):
    task = next(t for t in DEV if t.family == "peak_rate")
    config = EpisodeConfig(max_turns=3)
    [parent] = run_episodes([task], OraclePolicy(), registry, config, lambda s: len(tokenizer(s).input_ids))
    assert parent.events[0].kind == "call"
    tokens = teacher_trajectory(parent, task, system_prompt(registry.cards()), tokenizer)
    parent.trajectory = tokens.model_copy(update={"entropies": [0.0] * len(tokens.env_mask)})
    fork = fork_at(parent, 1)
    assert fork.events == parent.events[:1]
    assert fork.trajectory.completion_ids == tokens.completion_ids[:len(fork.trajectory.completion_ids)]
    assert fork.trajectory.env_mask[-1] == 0  # the prefix ends with the agent's reply

    policy = LLMPolicy(tiny_model(tokenizer, seed=2), tokenizer, max_new_tokens=6, temperature=1.0)
    torch.manual_seed(0)
    [child] = run_episodes([task], policy, registry, config, lambda s: len(tokenizer(s).input_ids),
                           session_prefix="fork", forks=[fork])
    assert child.events[0] == parent.events[0]            # the parent's call counts for the fork
    assert child.cost.latency_ms >= parent.events[0].latency_ms
    assert 1 < child.turns <= 3
    tr = child.trajectory
    n = len(fork.trajectory.completion_ids)
    assert tr.prompt_ids == tokens.prompt_ids and tr.completion_ids[:n] == fork.trajectory.completion_ids
    assert tr.env_mask[:n] == fork.trajectory.env_mask and tr.env_mask[n] == 1  # then the fork's own turn


def test_a_fork_keeps_its_parents_agent_call_counts_so_injected_faults_do_not_fire_again(tokenizer, registry):
    # agent_recovery injects "the first call to the primary agent fails"; the parent retries and succeeds. A fork
    # after the failed call replays it, so the fork's retry is that agent's second call and must succeed too.
    task = next(t for t in DEV if t.family == "agent_recovery")
    count = lambda s: len(tokenizer(s).input_ids)  # noqa: E731
    [parent] = run_episodes([task], OraclePolicy(), registry, EpisodeConfig(max_turns=4), count)
    failed, retry = parent.events[0], parent.events[1]
    assert (failed.ok, failed.error_code, failed.call_index) == (False, "unavailable", 0)
    assert (retry.agent, retry.ok, retry.call_index) == (failed.agent, True, 1)

    env = NetworkTaskEnv(registry, EpisodeConfig(max_turns=4), "fork-recovery", count)
    env.restore(task, parent.events[:1])  # what fork_at(parent, 1) carries of the episode
    step = env.step(retry.text)
    assert (step.event.ok, step.event.call_index, step.event.result) == (True, 1, retry.result)


def test_a_call_refused_before_reaching_its_agent_takes_no_call_number(tokenizer, registry):
    task = next(t for t in DEV if t.family == "agent_recovery")
    env = NetworkTaskEnv(registry, EpisodeConfig(max_turns=4), "refused", lambda s: len(tokenizer(s).input_ids))
    env.reset(task)
    first = task.reference_plan[0]
    refused = env.step(f'<call agent="{first.agent}" skill="{first.skill}">{{"no_such_arg": 1}}</call>').event
    assert (refused.kind, refused.error_code, refused.call_index) == ("call", "invalid_args", None)
    assert registry.calls_made("refused") == {}
