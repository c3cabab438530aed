"""The LLM policy on a tiny random Llama with the real tokenizer: token-level trajectories that are exact."""

from pathlib import Path

import pytest
import torch

from netgpt.core.episode import EpisodeConfig, run_episodes
from netgpt.core.llm import PREFILL_CHUNK, STOP_STRINGS, LLMPolicy
from netgpt.core.model import tiny_model
from netgpt.core.prompt import task_message
from netgpt.tasks import load_tasks

TASKS = [t for t in load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")
         if t.family not in ("load_forecast", "observation_lookup")][:6]


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, seed=1)


def _teacher_forced(model, trajectory, temperature=1.0):
    """Log-prob and entropy of every completion token under softmax(logits / temperature), one plain forward."""
    ids = torch.tensor([trajectory.prompt_ids + trajectory.completion_ids])
    with torch.no_grad():
        logp = (model(ids).logits[0] / temperature).log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    start = len(trajectory.prompt_ids)
    return ([logp[start + k - 1, t].item() for k, t in enumerate(trajectory.completion_ids)],
            [entropy[start + k - 1].item() for k in range(len(trajectory.completion_ids))])


def _assert_matches_teacher_forcing(model, trajectory, temperature=1.0):
    logprobs, entropies = _teacher_forced(model, trajectory, temperature)
    assert len(trajectory.entropies) == len(trajectory.completion_ids)
    for k, generated in enumerate(trajectory.env_mask):
        if generated:  # batched, cached, shared-prefix generation == one plain forward pass
            assert trajectory.logprobs[k] == pytest.approx(logprobs[k], abs=1e-4)
            assert trajectory.entropies[k] == pytest.approx(entropies[k], abs=1e-4)
        else:
            assert trajectory.logprobs[k] == 0.0 and trajectory.entropies[k] == 0.0


@pytest.mark.slow
def test_trajectory_ids_mask_and_logprobs_are_exact(model, tokenizer, registry):
    policy = LLMPolicy(model, tokenizer, max_new_tokens=12, batch_size=4, temperature=1.0)
    torch.manual_seed(0)
    results = run_episodes(TASKS, policy, registry, EpisodeConfig(max_turns=3), lambda s: len(s))
    for r in results:
        tr = r.trajectory
        assert len(tr.completion_ids) == len(tr.env_mask) == len(tr.logprobs)
        assert sum(tr.env_mask) == sum(e.tokens for e in r.events)  # the env counted what the core generated
        assert 0 in tr.env_mask or r.turns == 1                   # agent/issue replies are masked out
        _assert_matches_teacher_forcing(model, tr)
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


SYSTEM = "You are NetGPT. Call an agent or answer."


def _messages(tokenizer):
    """First user turns of different lengths, one longer than a prefill chunk."""
    long = " ".join(task_message(t) for t in TASKS)
    assert len(tokenizer(long).input_ids) > PREFILL_CHUNK
    return ["Hi.", task_message(TASKS[0]), long]


def test_greedy_turn_equals_model_generate(model, tokenizer):
    policy = LLMPolicy(model, tokenizer, max_new_tokens=12, batch_size=3)
    messages = _messages(tokenizer)
    policy.begin(SYSTEM, TASKS[:3], messages)
    turns = policy.act([0, 1, 2])
    for i, (_, n, truncated) in enumerate(turns):
        prompt = torch.tensor([policy.prompt_ids[i]])
        reference = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                                   do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                   pad_token_id=tokenizer.pad_token_id)[0, prompt.shape[1]:].tolist()
        assert policy.completion[i] == reference[:n]
        ended = reference[n - 1] == tokenizer.eos_token_id or any(
            s in tokenizer.decode(reference[:n]) for s in STOP_STRINGS)
        assert truncated == (not ended) and (ended or n == 12)


def _reply(i):
    return f'<reply agent="phy" skill="mcs">{{"qm": {2 * i + 2}, "code_rate_x1024": 378}}</reply>'


@pytest.mark.slow
def test_resumed_prefix_continues_like_the_original(model, tokenizer):
    messages = _messages(tokenizer)
    original = LLMPolicy(model, tokenizer, max_new_tokens=10, batch_size=3)
    original.begin(SYSTEM, TASKS[:3], messages)
    original.act([0, 1, 2])
    first_turn = [original.trajectory(i) for i in range(3)]
    for i in range(3):
        original.observe(i, _reply(i))
    forks = [original.trajectory(i) for i in range(3)]  # just before the second core turn
    original.act([0, 1, 2])
    full = [original.trajectory(i) for i in range(3)]

    resumed = LLMPolicy(model, tokenizer, max_new_tokens=10, batch_size=3)
    resumed.begin(SYSTEM, TASKS[:3], messages, resume=[forks[0], None, forks[2]])
    resumed.act([0, 1, 2])  # episodes 0 and 2 write their second turn, episode 1 its first
    for i, expected in ((0, full[0]), (1, first_turn[1]), (2, full[2])):
        got = resumed.trajectory(i)
        assert got.completion_ids == expected.completion_ids and got.env_mask == expected.env_mask
        assert got.logprobs == pytest.approx(expected.logprobs, abs=1e-4)
        assert got.entropies == pytest.approx(expected.entropies, abs=1e-4)
        _assert_matches_teacher_forcing(model, got)
    resumed.observe(1, _reply(1))
    resumed.act([1])  # a batch of one row that was not at the front of the key/value buffers
    assert resumed.trajectory(1).completion_ids == full[1].completion_ids

    with pytest.raises(ValueError, match="prompt"):
        resumed.begin(SYSTEM, TASKS[:3], messages, resume=[forks[1], None, None])


@pytest.mark.slow
def test_sampling_is_reproducible_and_tempered(model, tokenizer):
    def sample(seed):
        policy = LLMPolicy(model, tokenizer, max_new_tokens=10, batch_size=3, temperature=0.7)
        policy.begin(SYSTEM, TASKS[:3], _messages(tokenizer))
        torch.manual_seed(seed)
        policy.act([0, 1, 2])
        return [policy.trajectory(i) for i in range(3)]

    first, again, other = sample(0), sample(0), sample(1)
    assert [t.completion_ids for t in first] == [t.completion_ids for t in again]
    assert [t.completion_ids for t in first] != [t.completion_ids for t in other]
    for trajectory in first:  # log-probs and entropies are of the tempered distribution the tokens came from
        assert all(e > 0 for e in trajectory.entropies)
        _assert_matches_teacher_forcing(model, trajectory, temperature=0.7)


def test_seeded_sampling_follows_the_session_not_the_batch(model, tokenizer):
    """With a seed, an episode's tokens depend on its session name only: the same episode sampled alone, or beside
    others in another order, writes the same turn (what lets RL rollouts move to Ray workers unchanged)."""
    messages = _messages(tokenizer)

    def sample(order, seed=5):
        policy = LLMPolicy(model, tokenizer, max_new_tokens=10, batch_size=3, temperature=1.0, seed=seed)
        policy.begin(SYSTEM, [TASKS[i] for i in order], [messages[i] for i in order],
                     sessions=[f"s-{i}" for i in order])
        torch.manual_seed(len(order))  # the global generator must not matter
        policy.act(list(range(len(order))))
        return {i: policy.trajectory(k).completion_ids for k, i in enumerate(order)}

    together, alone, reordered = sample([0, 1, 2]), sample([1]), sample([2, 0])
    assert alone[1] == together[1] and reordered[0] == together[0] and reordered[2] == together[2]
    assert sample([0, 1, 2], seed=6) != together
    with pytest.raises(ValueError, match="session"):
        LLMPolicy(model, tokenizer, temperature=1.0, seed=5).begin(SYSTEM, TASKS[:1], messages[:1])


def test_lora_wrapped_model_decodes_through_its_adapters(tokenizer):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(tiny_model(tokenizer, seed=2), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # non-zero adapters, so that decoding without them would differ
            torch.nn.init.normal_(p, std=0.5)
    policy = LLMPolicy(lora, tokenizer, max_new_tokens=6, batch_size=2)
    policy.begin(SYSTEM, TASKS[:2], _messages(tokenizer)[:2])
    policy.act([0, 1])
    for i in range(2):
        _assert_matches_teacher_forcing(lora, policy.trajectory(i))
