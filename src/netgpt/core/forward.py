"""One forward pass over many sequences that start with the same tokens, the shared prefix encoded once.

Every prompt starts with the same system turn (≈570 tokens), and every rollout of a group with the same whole
prompt. Encoding that prefix once and repeating its KV cache over the batch gives the same logits as separate
passes (the repeat is differentiable, so gradients through the prefix are exact too) at a fraction of the cost on
a CPU, in SFT and in the RL loss alike. The output projection (576 → 49 152 for SmolLM2, as costly as a third of
the network) is applied only where a loss needs a logit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def predicting_hidden(model, prefix_ids: Sequence[int], rows: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Final hidden states ``[B, W, H]`` where ``[b, j]`` is the state that predicts ``rows[b, j]``.

    ``rows`` ``[B, W]`` are right-padded continuations of ``prefix_ids`` (``attention`` 0 on padding, which causal
    attention never lets a real token see). Apply ``model.get_output_embeddings()`` to the entries a loss needs."""
    device = rows.device
    batch, width, p = rows.shape[0], rows.shape[1], len(prefix_ids)
    decoder = model.get_decoder()
    prefix_out = decoder(input_ids=torch.tensor([list(prefix_ids)], device=device), use_cache=True)
    cache = prefix_out.cache
    cache.batch_repeat_interleave(batch)
    full_attention = torch.cat([torch.ones((batch, p), dtype=attention.dtype, device=device), attention], dim=1)
    position_ids = torch.arange(p, p + width, device=device).expand(batch, width)
    out = decoder(input_ids=rows, attention_mask=full_attention, cache=cache, position_ids=position_ids)
    last = prefix_out.last_hidden_state[:, -1:].expand(batch, 1, -1)  # the prefix's end predicts token 0
    return torch.cat([last, out.last_hidden_state[:, :-1]], dim=1)


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for k in range(n):
        if any(s[k] != first[k] for s in sequences):
            return k
    return n
