"""Group-relative advantages (GRPO), with the std normalisation switchable (Dr. GRPO)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_relative_advantages(rewards: Sequence[float], groups: Sequence[int], scale_rewards: bool = True,
                              eps: float = 1e-4) -> torch.Tensor:
    """``A_i = r_i − mean(r over i's group)``, divided by the group's (unbiased) std when ``scale_rewards``.

    The group is every rollout of the same task (forks included), so the baseline is the task's own difficulty and
    no value network is needed. Dr. GRPO (``scale_rewards=False``) drops the std: dividing by it up-weights groups
    that are almost all right or all wrong, a question-difficulty bias. A group with one member or equal rewards
    has advantage 0: it carries no signal about which behaviour was better."""
    r = torch.tensor(rewards, dtype=torch.float64)
    g = torch.tensor(groups)
    advantages = torch.zeros_like(r)
    for group in g.unique():
        members = g == group
        if members.sum() < 2 or r[members].max() == r[members].min():
            continue  # exact zero (not rounding noise) so the trainer can skip the group
        centred = r[members] - r[members].mean()
        if scale_rewards:
            centred = centred / (r[members].std() + eps)
        advantages[members] = centred
    return advantages.float()
