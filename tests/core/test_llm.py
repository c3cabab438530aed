"""The LLM policy on a tiny random Llama with the real tokenizer: token-level trajectories that are exact."""

from pathlib import Path

import pytest
import torch

from netgpt.core.episode import EpisodeConfig, run_episodes
from netgpt.core.llm import LLMPolicy
from netgpt.core.model import tiny_model
from netgpt.tasks import load_tasks

TASKS = [t for t in load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")
         if t.family not in ("load_forecast", "observation_lookup")][:6]


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, seed=1)


def _teacher_forced_logprobs(model, trajectory):
    ids = torch.tensor([trajectory.prompt_ids + trajectory.completion_ids])
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[0]
    start = len(trajectory.prompt_ids)
    return [logp[start + k - 1, t].item() for k, t in enumerate(trajectory.completion_ids)]


def test_trajectory_ids_mask_and_logprobs_are_exact(model, tokenizer, registry):
    policy = LLMPolicy(model, tokenizer, max_new_tokens=12, batch_size=4, temperature=1.0)
    torch.manual_seed(0)
    results = run_episodes(TASKS, policy, registry, EpisodeConfig(max_turns=3), lambda s: len(s))
    for r in results:
        tr = r.trajectory
        assert len(tr.completion_ids) == len(tr.env_mask) == len(tr.logprobs)
        assert sum(tr.env_mask) == sum(e.tokens for e in r.events)  # the env counted what the core generated
        assert 0 in tr.env_mask or r.turns == 1                   # agent/issue replies are masked out
        reference = _teacher_forced_logprobs(model, tr)
        for k, generated in enumerate(tr.env_mask):
            if generated:  # batched, cached, holey generation == one plain forward pass
                assert tr.logprobs[k] == pytest.approx(reference[k], abs=1e-4)
            else:
                assert tr.logprobs[k] == 0.0
        assert set(tr.to_trl()) == {"prompt_ids", "completion_ids", "logprobs", "env_mask"}


def test_reply_tokens_are_the_rendered_reply_not_a_retokenisation(model, tokenizer, registry):
    policy = LLMPolicy(model, tokenizer, max_new_tokens=8, batch_size=2)
    [result] = run_episodes(TASKS[:1], policy, registry, EpisodeConfig(max_turns=2), lambda s: len(s))
    tr = result.trajectory
    env_ids = [t for t, m in zip(tr.completion_ids, tr.env_mask) if m == 0]
    assert "<|im_start|>user" in tokenizer.decode(env_ids) and "<reply" in tokenizer.decode(env_ids)


def test_never_policy_cannot_call(model, tokenizer, registry):
    policy = LLMPolicy(model, tokenizer, name="never", max_new_tokens=6, batch_size=3, tools=False)
    results = run_episodes(TASKS[:3], policy, registry, EpisodeConfig(max_turns=2), lambda s: len(s))
    assert all(e.kind != "call" for r in results for e in r.events)
    assert all(r.events[0].text.startswith("<answer>") for r in results)
