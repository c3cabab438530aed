"""What an RL run is: one YAML file (``configs/rl-cpu.yaml``, or an ablation that ``extends:`` it) loaded into
:class:`RLConfig`.

Option names follow TRL's ``GRPOConfig`` where the meaning is the same (``num_generations``, ``beta``, ``epsilon``,
``epsilon_high``, ``loss_type``, ``scale_rewards``, ``top_entropy_quantile``, ``reward_weights``,
``num_iterations``, ``max_grad_norm``, ``save_steps``), so a TRL user can read a config at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.core.episode import EpisodeConfig
from netgpt.reward import Budget, RewardWeights
from netgpt.yamlconfig import load_yaml


class BranchingConfig(BaseModel):
    """ARPO-style adaptive branching (entropy-guided exploration, part a)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    threshold: float = Field(0.5, description="fork when the entropy after an agent reply exceeds the entropy of "
                                               "the turn that made the call by more than this many nats")
    probe_tokens: int = Field(4, ge=1, description="leading tokens of a turn whose peak entropy is compared")
    max_branches: int = Field(2, ge=0, description="extra partial rollouts per group (the group budget)")


class DynamicSamplingConfig(BaseModel):
    """DAPO-style dynamic sampling: draw more tasks until enough groups carry a learning signal."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    metric: Literal["quality", "reward"] = Field("quality", description="what must differ within a group: the "
                                                 "answer's quality term, or the trained scalar reward")
    max_draws: int = Field(3, ge=1, description="batches of tasks_per_step tasks drawn at most per step")


class TaskPoolConfig(BaseModel):
    """Tasks the start missed, replayed beside the training stream (:mod:`netgpt.rl.task_pool`)."""

    model_config = ConfigDict(extra="forbid")
    file: Path | None = Field(None, description="JSONL of training tasks (`netgpt tasks missed`); none: stream only")
    per_step: int = Field(2, ge=1, description="pool tasks in each step's batch of tasks_per_step (the rest come "
                                               "from the stream)")


class RolloutBackendConfig(BaseModel):
    """Where rollouts run: in the learner's process, or on rollout workers (spawned processes on this machine, or Ray
    actors) that receive the learner's weights each step."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["local", "processes", "ray"] = "local"
    workers: int = Field(2, ge=1, description="rollout workers (processes: the cores are shared among them; Ray: one "
                                              "CPU each, one GPU each on cuda)")
    address: str | None = Field(None, description="existing Ray cluster (default: start a local one)")


class RLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="starting policy: model id or path (an SFT checkpoint's model/ "
                                                "dir); default SmolLM2-135M-Instruct")
    out: Path = Path("runs/rl")
    seed: int = 0
    data_seed: int = Field(1, description="training-stream seed (SFT uses 0, so RL sees other tasks)")
    families: list[str] | None = None
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"

    # rollouts
    steps: int = Field(30, ge=1)
    tasks_per_step: int = Field(4, ge=1)
    num_generations: int = Field(4, ge=2, description="group size G: rollouts per task")
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(MAX_NEW_TOKENS, ge=4, description="per core turn")
    max_turns: int = Field(4, ge=1)
    branching: BranchingConfig = Field(default_factory=BranchingConfig)
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    task_pool: TaskPoolConfig = Field(default_factory=TaskPoolConfig)
    rollout: RolloutBackendConfig = Field(default_factory=RolloutBackendConfig)

    # reward and advantages
    reward_weights: RewardWeights = Field(default_factory=RewardWeights)
    budget: Budget = Field(default_factory=Budget)
    scale_rewards: bool = Field(True, description="divide advantages by the group std (GRPO); False = Dr. GRPO")

    # loss
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    epsilon: float = Field(0.2, gt=0)
    epsilon_high: float | None = Field(None, description="upper clip (DAPO clip-higher); default = epsilon")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting policy (0: no reference model)")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus on the core's tokens")
    top_entropy_quantile: float = Field(1.0, gt=0, le=1, description="train only the top-ρ highest-entropy core "
                                                                     "tokens (entropy-guided, part b); 1 = all")
    num_iterations: int = Field(1, ge=1, description="optimisation passes over each batch of rollouts (μ)")
    sft_coef: float = Field(0.0, ge=0, description="weight of an SFT loss on the teacher's traces added to every "
                                                   "update (InstructGPT's PPO-ptx); 0 = off")
    sft_teacher: Literal["oracle", "always"] = Field("oracle", description="the scripted policy whose right episodes "
                                                     "the SFT term imitates: set it as the SFT start was trained")
    sft_batch_size: int = Field(4, ge=1, description="teacher traces in each update's SFT term")
    sft_n_tasks: int = Field(400, ge=1, description="training-stream tasks (SFT's seed 0) the teacher runs once to "
                                                    "build the SFT term's traces")
    sft_state_steps: bool = Field(False, description="the SFT term's traces state their steps (SFTConfig.state_steps): "
                                                     "set it as the SFT start was trained")

    # optimisation
    train: Literal["full", "top_layers", "lora"] = "top_layers"
    top_layers: int = Field(4, ge=1)
    lora_r: int = Field(16, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)

    # bookkeeping
    save_steps: int = Field(5, ge=1, description="checkpoint every N steps (and at the end)")
    keep_checkpoints: int = Field(2, ge=1)
    export_model: bool = Field(True, description="save a loadable model/ directory in every checkpoint")

    @model_validator(mode="after")
    def _pool_fits_the_batch(self) -> RLConfig:
        if self.task_pool.file is not None and self.task_pool.per_step > self.tasks_per_step:
            raise ValueError(f"task_pool.per_step ({self.task_pool.per_step}) exceeds tasks_per_step "
                             f"({self.tasks_per_step})")
        return self

    @property
    def max_completion_tokens(self) -> int:
        return self.max_turns * self.max_new_tokens

    @property
    def episode_config(self) -> EpisodeConfig:
        """The episode runtime's settings for this run's rollouts, wherever they run."""
        return EpisodeConfig(max_turns=self.max_turns, budget=self.budget, reward_weights=self.reward_weights)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> RLConfig:
        data = load_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
