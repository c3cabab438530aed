"""One way to build a policy: a :class:`PolicySpec` says which one, :func:`build_policy` builds it.

``netgpt eval``, ``netgpt serve`` and every rollout worker (:mod:`netgpt.distributed.worker`) build their policy
here, so a scripted baseline, the prompt-only core, a trained checkpoint or an RL worker's LoRA-wrapped copy is the
same object whichever of them asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.core.episode import Policy
from netgpt.core.model import load_model, select_trainable
from netgpt.core.policies import AlwaysPolicy, OraclePolicy, RandomPolicy
from netgpt.protocol.registry import AgentRegistry

SCRIPTED = ("oracle", "always", "random")
LLM_POLICIES = ("prompt", "never")
LLM_BATCH_SIZE = 16


class UnknownPolicyError(ValueError):
    """A policy name that is neither a built-in policy nor a checkpoint directory."""


def check_policy_name(policy: str) -> None:
    """Raise :class:`UnknownPolicyError` unless ``policy`` is a built-in policy or a directory."""
    if policy not in SCRIPTED + LLM_POLICIES and not Path(policy).is_dir():
        raise UnknownPolicyError(f"unknown policy {policy!r}: one of {', '.join(SCRIPTED + LLM_POLICIES)} or a "
                                 "checkpoint directory")


def checkpoint_name(path: Path) -> str:
    """A readable policy name for a model directory: runs/rl-s0/checkpoint-000010/model → rl-s0-checkpoint-000010."""
    path = path.resolve()
    if path.name == "model":
        path = path.parent
    return f"{path.parent.name}-{path.name}" if path.name.startswith("checkpoint-") else path.name


class PolicySpec(BaseModel):
    """Which policy to build and how: everything :func:`build_policy` needs, and small enough to ship to a worker
    (which then loads an LLM itself rather than receiving one)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="oracle | always | random | prompt | never | a checkpoint directory")
    model: str | None = Field(None, description="transformers model id or path for prompt / never")
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | None = Field(None, ge=1, description="episodes per batch; None: the policy's own (16 for an LLM)")
    max_new_tokens: int = Field(MAX_NEW_TOKENS, ge=1)
    seed: int = Field(0, description="seed of the random policy, and of an LLM's per-episode sampling")
    temperature: float = Field(0.0, ge=0, description="LLM sampling temperature (0: greedy)")
    train: Literal["full", "top_layers", "lora"] | None = Field(
        None, description="the RL learner's trainable selection: a worker wraps its model the same way (LoRA "
                          "adapters), so the parameters the learner pushes have the same names")
    top_layers: int = 4
    lora_r: int = 16

    @property
    def scripted(self) -> bool:
        return self.name in SCRIPTED

    @property
    def weights(self) -> str | None:
        """The model an LLM policy loads: ``model`` for the named LLM baselines, else the checkpoint directory."""
        return self.model if self.name in LLM_POLICIES else self.name

    @property
    def display_name(self) -> str:
        """The policy's name in results: a checkpoint is named after its run (see :func:`checkpoint_name`)."""
        if self.name in SCRIPTED + LLM_POLICIES:
            return self.name
        return checkpoint_name(Path(self.name))

    def resolved(self) -> PolicySpec:
        """This spec with a checkpoint directory made absolute, for a worker that runs elsewhere."""
        if self.name in SCRIPTED + LLM_POLICIES or not Path(self.name).is_dir():
            return self
        return self.model_copy(update={"name": str(Path(self.name).resolve())})


def build_policy(spec: PolicySpec, registry: AgentRegistry,
                 status: Callable[[str], None] = lambda _: None) -> Policy:
    """The policy ``spec`` names: a scripted baseline, the LLM core (prompt / never), or a trained checkpoint.
    ``registry`` gives the random policy its agent cards; ``status`` hears model loading progress."""
    if spec.scripted:
        policy: Policy = {"oracle": OraclePolicy, "always": AlwaysPolicy}[spec.name]() if spec.name != "random" \
            else RandomPolicy(registry.cards(), seed=spec.seed)
        if spec.batch_size:
            policy.batch_size = spec.batch_size  # their draws depend on the batching (the random policy)
        return policy
    check_policy_name(spec.name)
    # torch is imported only for an LLM: scripted runs and their workers never pay its start-up
    from netgpt.core.llm import LLMPolicy

    model, tokenizer = load_model(spec.weights, device=spec.device, dtype=spec.dtype, status=status)
    if spec.train is not None:
        model = select_trainable(model, spec.train, spec.top_layers, spec.lora_r).eval()
    return LLMPolicy(model, tokenizer, name=spec.display_name, batch_size=spec.batch_size or LLM_BATCH_SIZE,
                     max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, tools=spec.name != "never",
                     seed=spec.seed if spec.temperature > 0 else None)
