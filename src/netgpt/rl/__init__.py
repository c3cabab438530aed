"""Agentic RL for the core: group rollouts with entropy-guided branching → group-relative advantages → masked loss.

One stage per module, in data-path order: :mod:`config` (what a run is), :mod:`rollout` (episodes and forks),
:mod:`batch` (one step's rollouts, rewards and advantages as one object), :mod:`advantages`, :mod:`loss`,
:mod:`metrics` (the step's typed record), :mod:`checkpoint`, :mod:`trainer` (the loop that ties them together).
Where rollouts run, and what data-parallel learner processes do together, is :mod:`netgpt.distributed`'s.
"""

from netgpt.rl.advantages import group_relative_advantages
from netgpt.rl.config import BranchingConfig, RLConfig
from netgpt.rl.loss import masked_policy_loss
from netgpt.rl.rollout import entropy_guided_branch_points

__all__ = ["BranchingConfig", "RLConfig", "entropy_guided_branch_points", "group_relative_advantages",
           "masked_policy_loss"]
