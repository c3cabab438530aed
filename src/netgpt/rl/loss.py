"""The masked policy loss and the forward pass it needs.

All rollouts of a group start from the same prompt (same task, same system turn), so the prompt is encoded once
and its KV cache is repeated across the group (:mod:`netgpt.core.forward`): exact, and about twice as fast on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel

from netgpt.core.forward import predicting_hidden


class TokenStats(BaseModel):
    entropy: float
    kl: float
    clip_fraction: float
    policy_tokens: int


def group_token_logprobs(model, prompt_ids: Sequence[int], completions: Sequence[Sequence[int]],
                         score_mask: torch.Tensor | None = None, temperature: float = 1.0,
                         with_entropy: bool = False, entropy_grad: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the completion tokens, ``[G, L]`` right-padded, the prompt encoded once.

    Position ``k`` holds ``log p(completion[k] | prompt, completion[:k])`` at the sampling temperature, the same
    quantity the rollout recorded, so the PPO ratio starts at exactly 1. Only positions in ``score_mask`` (default:
    every real token) are scored; the rest are 0 — the loss masks them anyway, and the output projection is costly."""
    device = next(model.parameters()).device
    g, width = len(completions), max(len(c) for c in completions)
    ids = torch.zeros((g, width), dtype=torch.long, device=device)
    attention = torch.zeros((g, width), dtype=torch.long, device=device)
    for row, completion in enumerate(completions):
        ids[row, :len(completion)] = torch.tensor(list(completion), device=device)
        attention[row, :len(completion)] = 1
    scored = attention.bool() if score_mask is None else score_mask.bool() & attention.bool()
    hidden = predicting_hidden(model, prompt_ids, ids, attention)
    logp_all = torch.log_softmax(model.get_output_embeddings()(hidden[scored]).float() / temperature, dim=-1)
    logprobs = torch.zeros((g, width), device=device)
    logprobs[scored] = logp_all.gather(-1, ids[scored].unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = torch.zeros((g, width), device=device)
            entropy[scored] = -(logp_all.exp() * logp_all).sum(-1)
    return logprobs, entropy


def masked_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                       core_mask: torch.Tensor, policy_mask: torch.Tensor, normaliser: torch.Tensor,
                       epsilon: float, epsilon_high: float, beta: float = 0.0,
                       ref_logprobs: torch.Tensor | None = None, entropy_coef: float = 0.0,
                       entropy: torch.Tensor | None = None) -> tuple[torch.Tensor, TokenStats]:
    """PPO-clip on the core's own tokens only — **the masked loss** — plus optional KL and entropy terms.

    ``core_mask`` is the rollout's ``env_mask``: 1 on tokens the core generated, 0 on the prompt, on agent replies
    and on every other injected token. Those 0-positions contribute nothing to the policy term, the KL term or the
    entropy term, nor to their gradients. Why it matters: an agent's reply is external and stochastic (it fails, is
    noisy, depends on hidden state); treating its tokens as actions would push the core to imitate or "explain
    away" noise it never chose, corrupting the gradient of the decisions it did make (when to call, whom, with what,
    what to answer). ``policy_mask`` ⊆ ``core_mask`` additionally drops low-entropy tokens from the policy term when
    ``top_entropy_quantile`` < 1 (the high-entropy "forking" tokens carry the decisions).

    Shapes ``[G, L]``; ``advantages`` is ``[G]``; ``normaliser`` ``[G]`` scales each rollout's summed token loss
    (it encodes ``loss_type``, see :func:`loss_normaliser`). Returns the loss and token statistics."""
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon_high) * adv
    per_token = -torch.min(unclipped, clipped) * policy_mask
    kl = torch.zeros_like(logprobs)
    if beta > 0.0:
        # k3 estimator of KL(π‖π_ref): unbiased, always ≥ 0
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + beta * kl * core_mask
    if entropy_coef > 0.0:
        per_token = per_token - entropy_coef * entropy * core_mask
    loss = (per_token.sum(dim=1) / normaliser).sum()
    with torch.no_grad():
        n_core = core_mask.sum().clamp(min=1.0)
        n_policy = policy_mask.sum()
        was_clipped = ((ratio < 1.0 - epsilon) & (adv < 0)) | ((ratio > 1.0 + epsilon_high) & (adv > 0))
        stats = TokenStats(
            entropy=float((entropy * core_mask).sum() / n_core) if entropy is not None else 0.0,
            kl=float((kl * core_mask).sum() / n_core),
            clip_fraction=float((was_clipped.float() * policy_mask).sum() / n_policy.clamp(min=1.0)),
            policy_tokens=int(n_policy))
    return loss, stats


LossType = Literal["grpo", "dr_grpo", "dapo"]


def loss_normaliser(core_masks: Sequence[torch.Tensor], loss_type: LossType, max_completion_tokens: int
                    ) -> list[torch.Tensor]:
    """Per-rollout divisors for one optimiser step, computed over the whole batch before any backward pass.

    ``grpo``: each rollout's mean over its own tokens, averaged over rollouts (long answers weigh less per token).
    ``dapo``: one mean over every core token of the batch (each token weighs the same).
    ``dr_grpo``: sums divided by rollouts × the maximum completion length (a constant: no length bias)."""
    n_rollouts = sum(m.shape[0] for m in core_masks)
    total_tokens = max(1.0, float(sum(m.sum() for m in core_masks)))
    out = []
    for mask in core_masks:
        if loss_type == "grpo":
            out.append(mask.sum(dim=1).clamp(min=1.0) * n_rollouts)
        elif loss_type == "dapo":
            out.append(torch.full((mask.shape[0],), total_tokens))
        else:
            out.append(torch.full((mask.shape[0],), float(n_rollouts * max_completion_tokens)))
    return out
