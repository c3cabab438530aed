"""One forward pass over many sequences that start with the same tokens, the shared prefix encoded once.

Every prompt starts with the same system turn (≈530 tokens), and every rollout of a group with the same whole
prompt. Encoding that prefix once and repeating its KV cache over the batch gives the same logits as separate
passes (the repeat is differentiable, so gradients through the prefix are exact too) at a fraction of the cost on
a CPU, in SFT and in the RL loss alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def shared_prefix_logits(model, prefix_ids: Sequence[int], rows: torch.Tensor, attention: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(last, logits)``: ``last`` ``[1, V]`` predicts each row's first token; ``logits[:, k]`` predicts token
    ``k + 1`` of its row. ``rows`` ``[B, W]`` are right-padded continuations of ``prefix_ids`` (``attention`` 0 on
    padding, which causal attention never lets a real token see)."""
    device = rows.device
    batch, width, p = rows.shape[0], rows.shape[1], len(prefix_ids)
    prefix_out = model(torch.tensor([list(prefix_ids)], device=device), use_cache=True)
    cache = prefix_out.past_key_values
    cache.batch_repeat_interleave(batch)
    full_attention = torch.cat([torch.ones((batch, p), dtype=attention.dtype, device=device), attention], dim=1)
    positions = torch.arange(p, p + width, device=device).expand(batch, width)
    out = model(input_ids=rows, attention_mask=full_attention, past_key_values=cache, position_ids=positions)
    return prefix_out.logits[:, -1], out.logits


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for k in range(n):
        if any(s[k] != first[k] for s in sequences):
            return k
    return n
