"""The masked loss: positions the core did not generate contribute nothing, to the loss or to its gradient."""

import pytest
import torch

from netgpt.core.model import tiny_model
from netgpt.rl.loss import group_token_logprobs, loss_normaliser, masked_policy_loss

CORE = torch.tensor([[0, 1, 1, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 1, 0, 0]], dtype=torch.float32)  # 0: agent reply/pad


def _loss(logprobs, old, ref=None, entropy=None, beta=0.0, entropy_coef=0.0, mask=CORE):
    norm = loss_normaliser([mask], "dapo", 8)[0]
    return masked_policy_loss(logprobs, old, torch.tensor([1.0, -0.5]), mask, mask, norm, 0.2, 0.28, beta, ref,
                              entropy_coef, entropy)


def test_masked_positions_change_neither_loss_nor_gradient():
    torch.manual_seed(0)
    base = torch.randn(2, 8) - 2.0
    old = base + 0.1 * torch.randn(2, 8)
    ref = base + 0.1 * torch.randn(2, 8)
    entropy = torch.rand(2, 8)
    outs = []
    for perturb in (False, True):
        logprobs = base.clone()
        o, r, e = old.clone(), ref.clone(), entropy.clone()
        if perturb:  # scramble everything the agent wrote: its "logits" and its "labels"
            noise = torch.randn(2, 8) * 5 * (1 - CORE)
            logprobs, o, r, e = logprobs + noise, o - noise, r + 3 * noise, e + noise.abs()
        logprobs.requires_grad_(True)
        e.requires_grad_(True)
        loss, _ = _loss(logprobs, o, r, e, beta=0.1, entropy_coef=0.01)
        loss.backward()
        outs.append((loss.detach(), logprobs.grad, e.grad))
    (loss_a, grad_a, ent_a), (loss_b, grad_b, ent_b) = outs
    assert torch.equal(loss_a, loss_b)
    assert torch.equal(grad_a, grad_b) and torch.equal(ent_a, ent_b)
    assert torch.all(grad_a[CORE == 0] == 0) and torch.all(grad_a[CORE == 1] != 0)
    assert torch.all(ent_a[CORE == 0] == 0)


def test_on_policy_ratio_is_one_and_the_gradient_is_advantage_weighted():
    logprobs = torch.full((2, 8), -1.0, requires_grad=True)
    loss, stats = _loss(logprobs, logprobs.detach())
    loss.backward()
    n = CORE.sum()
    expected = -torch.tensor([[1.0], [-0.5]]) * CORE / n  # d(-A·ratio)/dlogp = −A at ratio 1, dapo token mean
    assert torch.allclose(logprobs.grad, expected)
    assert stats.clip_fraction == 0.0 and stats.kl == 0.0


def test_clipping_stops_the_gradient_beyond_the_trust_region():
    logprobs = torch.zeros((2, 8), requires_grad=True)
    old = torch.full((2, 8), -1.0)  # ratio e ≈ 2.72 > 1.28: positive advantage clipped, negative one not
    loss, stats = _loss(logprobs, old)
    loss.backward()
    assert torch.all(logprobs.grad[0] == 0)
    assert torch.all(logprobs.grad[1][CORE[1] == 1] != 0)
    assert stats.clip_fraction == pytest.approx(5 / 9)


def test_loss_types_normalise_as_documented():
    masks = [torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 1.0]])]
    assert [n.tolist() for n in loss_normaliser(masks, "dapo", 10)] == [[6.0, 6.0], [6.0]]
    assert [n.tolist() for n in loss_normaliser(masks, "grpo", 10)] == [[6.0, 3.0], [9.0]]
    assert [n.tolist() for n in loss_normaliser(masks, "dr_grpo", 10)] == [[30.0, 30.0], [30.0]]


def test_group_logprobs_with_a_shared_prompt_equal_separate_passes(tokenizer):
    model = tiny_model(tokenizer, seed=3)
    prompt = tokenizer("<|im_start|>system\nYou are NetGPT.<|im_end|>\n<|im_start|>user\nTBS?<|im_end|>\n").input_ids
    completions = [tokenizer(t).input_ids for t in ("<answer>3824 bits</answer>", "<call agent", "x")]
    logprobs, entropy = group_token_logprobs(model, prompt, completions, temperature=0.7, with_entropy=True)
    only_second = torch.zeros_like(logprobs, dtype=torch.bool)
    only_second[:, 1] = True
    masked, _ = group_token_logprobs(model, prompt, completions, only_second, temperature=0.7)
    # the same value from logits at fewer positions (equal to the last bit on AVX512, not on AVX2 kernels)
    assert masked[0, 1].item() == pytest.approx(logprobs[0, 1].item(), abs=1e-6)
    assert masked[0, 0] == 0 and masked[2, 1] == 0  # row 2 has one token
    for row, completion in enumerate(completions):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logp = (model(ids).logits[0] / 0.7).log_softmax(-1)
        for k, token in enumerate(completion):
            position = len(prompt) + k - 1
            assert logprobs[row, k].item() == pytest.approx(logp[position, token].item(), abs=1e-5)
            assert entropy[row, k].item() == pytest.approx(-(logp[position].exp() * logp[position]).sum().item(),
                                                           abs=1e-4)
