"""Group-relative advantages on hand-made groups."""

import math

import pytest
import torch

from netgpt.rl.advantages import group_relative_advantages


def test_grpo_normalises_by_the_group_std():
    a = group_relative_advantages([1.0, 0.0, 0.0, 1.0, 0.2, 0.2, 0.2, 0.8], [0, 0, 0, 0, 1, 1, 1, 1])
    # group 0: mean 0.5, unbiased std sqrt(1/3) → ±0.5·sqrt(3)
    half_sqrt3 = 0.5 * math.sqrt(3)
    assert a[:4].tolist() == pytest.approx([half_sqrt3, -half_sqrt3, -half_sqrt3, half_sqrt3], abs=1e-3)
    # group 1: mean 0.35, std 0.3 → (−0.15, −0.15, −0.15, 0.45) / 0.3
    assert a[4:].tolist() == pytest.approx([-0.5, -0.5, -0.5, 1.5], abs=1e-3)


def test_dr_grpo_keeps_the_raw_centred_reward():
    a = group_relative_advantages([1.0, 0.0, 0.0, 1.0], [3, 3, 3, 3], scale_rewards=False)
    assert a.tolist() == [0.5, -0.5, -0.5, 0.5]


def test_groups_without_signal_get_zero():
    a = group_relative_advantages([0.7, 0.7, 0.7, 0.4], [0, 0, 0, 1])
    assert torch.equal(a, torch.zeros(4))  # equal rewards; a group of one


def test_groups_may_be_interleaved_and_of_different_sizes():
    a = group_relative_advantages([1.0, 3.0, 0.0, 5.0, 2.0], [0, 1, 0, 1, 0], scale_rewards=False)
    assert a.tolist() == pytest.approx([0.0, -1.0, -1.0, 1.0, 1.0])


def test_dynamic_sampling_keeps_the_first_groups_whose_values_differ():
    from netgpt.rl.advantages import dynamic_sampling_filter, groups_with_spread

    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    quality = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]  # group 1 and group 3 differ
    assert groups_with_spread(quality, groups) == [1, 3]
    advantages = torch.tensor([0.1, -0.1, -0.5, 0.5, 0.0, 0.0, 0.5, -0.5])  # group 0 differs only in cost
    assert dynamic_sampling_filter(advantages, quality, groups, keep=2).tolist() == pytest.approx(
        [0.0, 0.0, -0.5, 0.5, 0.0, 0.0, 0.5, -0.5])
    assert dynamic_sampling_filter(advantages, quality, groups, keep=1).tolist() == pytest.approx(
        [0.0, 0.0, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0])  # only the first such group: a fixed update size
