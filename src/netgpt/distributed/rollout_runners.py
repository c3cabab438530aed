"""Where the RL learner's episodes run: the rollout runner the trainer is given (veRL keeps its agent loop apart from
its PPO trainer in the same way).

A :class:`RolloutRunner` turns the learner's current weights into this step's
:class:`~netgpt.rl.rollout.EpisodeRunner`, once per step, before the rollouts:

- :class:`LocalRolloutRunner` samples in the learner's process, from the learner's model itself;
- :class:`ProcessRolloutRunner` and :class:`RayRolloutRunner` push the learner's trainable parameters to rollout
  workers (spawned processes on this machine, or Ray actors: ``rollout.backend`` ``processes`` or ``ray``) that each
  hold a copy of the starting policy, wrapped as the learner's.

Each episode draws from its own generator, seeded by the run's seed and its session, so every runner samples the same
episodes (``tests/eval/test_ray_backend.py``, ``tests/rl/test_rollout_runners.py``). :func:`build_rollout_runner`
picks one by ``rollout.backend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from netgpt.core.episode import EpisodeConfig
from netgpt.core.factory import PolicySpec
from netgpt.core.llm import LLMPolicy
from netgpt.distributed.processes import ProcessRolloutPool
from netgpt.distributed.ray_backend import RayRolloutPool, init_ray
from netgpt.distributed.worker import WorkerSpec
from netgpt.protocol.faults import FaultConfig
from netgpt.protocol.registry import AgentRegistry
from netgpt.rl.config import RLConfig
from netgpt.rl.rollout import EpisodeRunner, local_runner


class RolloutRunner(Protocol):
    """What the trainer needs from wherever its rollouts run."""

    def sync(self, model: torch.nn.Module) -> EpisodeRunner:
        """This step's episode runner, sampling from ``model``'s current weights (the unwrapped learner, in eval
        mode). Called once per step, after the previous step's optimiser step."""

    def close(self) -> None:
        """Release what the runner started (workers, a Ray it started); the caller's registry stays open."""


class LocalRolloutRunner:
    """Rollouts in the learner's process, with the learner's model, tokenizer and agent registry."""

    def __init__(self, config: RLConfig, tokenizer, registry: AgentRegistry, episode: EpisodeConfig):
        self.config, self.tokenizer, self.registry, self.episode = config, tokenizer, registry, episode

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def sync(self, model: torch.nn.Module) -> EpisodeRunner:
        cfg = self.config
        # a fresh policy every step: its cached system-prompt KV was computed with the previous weights
        policy = LLMPolicy(model, self.tokenizer, name="rl", temperature=cfg.temperature,
                           max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                           batch_size=cfg.tasks_per_step * (cfg.num_generations + cfg.branching.max_branches))
        return local_runner(policy, self.registry, self.episode, self.count_tokens)

    def close(self) -> None:
        """Nothing to release: the model and the registry belong to the caller."""


def rollout_worker_spec(config: RLConfig, faults: FaultConfig, episode: EpisodeConfig) -> WorkerSpec:
    """What each rollout worker builds: the starting policy (``config.model``, a local model directory) wrapped as
    the learner wraps it (same trainable selection, so the pushed parameters have the same names), sampling as the
    learner would, and the learner's fault config and episode settings. A worker runs whole groups:
    ceil(tasks / workers) groups per batch."""
    per_worker = -(-config.tasks_per_step // config.rollout.workers)
    return WorkerSpec(policy=PolicySpec(
        name=str(Path(config.model).resolve()), device=config.device, dtype=config.dtype,
        max_new_tokens=config.max_new_tokens,
        batch_size=per_worker * max(config.num_generations, config.branching.max_branches), seed=config.seed,
        temperature=config.temperature, train=config.train, top_layers=config.top_layers, lora_r=config.lora_r),
        faults=faults, episode=episode)


class ProcessRolloutRunner:
    """``config.rollout.workers`` spawned processes on this machine (:class:`ProcessRolloutPool`)."""

    def __init__(self, config: RLConfig, faults: FaultConfig, episode: EpisodeConfig):
        self.pool = ProcessRolloutPool(rollout_worker_spec(config, faults, episode), config.rollout.workers)

    def sync(self, model: torch.nn.Module) -> EpisodeRunner:
        self.pool.push_weights({n: p for n, p in model.named_parameters() if p.requires_grad})
        return self.pool.run

    def close(self) -> None:
        self.pool.close()


class RayRolloutRunner:
    """``config.rollout.workers`` Ray actors (:class:`RayRolloutPool`). Starts (or joins, at ``rollout.address``)
    Ray, and shuts down a Ray it started on :meth:`close`."""

    def __init__(self, config: RLConfig, faults: FaultConfig, episode: EpisodeConfig):
        spec = rollout_worker_spec(config, faults, episode)
        self._owns_ray = init_ray(config.rollout.address, num_cpus=max(config.rollout.workers, 2))
        self.pool = RayRolloutPool(spec, config.rollout.workers,
                                   num_gpus=1 if config.device.startswith("cuda") else 0)

    def sync(self, model: torch.nn.Module) -> EpisodeRunner:
        self.pool.push_weights({n: p for n, p in model.named_parameters() if p.requires_grad})
        return self.pool.run

    def close(self) -> None:
        import ray  # the optional extra: imported only by a runner that started

        self.pool.close()
        if self._owns_ray:
            ray.shutdown()


def build_rollout_runner(config: RLConfig, tokenizer, registry: AgentRegistry, processes: int = 1
                         ) -> RolloutRunner:
    """The runner ``config.rollout.backend`` names, for a learner of ``processes`` data-parallel processes that
    samples with ``tokenizer`` and ``registry`` (rollout workers, processes or Ray, build their own from the
    registry's fault config)."""
    ensure_backend_fits(config, processes)
    if config.rollout.backend == "local":
        return LocalRolloutRunner(config, tokenizer, registry, config.episode_config)
    runner = RayRolloutRunner if config.rollout.backend == "ray" else ProcessRolloutRunner
    return runner(config, registry.faults.config, config.episode_config)


class RolloutBackendError(ValueError):
    """A rollout backend that cannot serve this run; raised before any model is loaded."""


def ensure_backend_fits(config: RLConfig, processes: int) -> None:
    """Rollout workers serve one learner process (under ``accelerate launch`` the learner processes are the
    parallel part, and each rolls out in its own process), and they load the starting policy themselves, so it
    must be a local directory. The trainer checks this before it loads a model."""
    backend = config.rollout.backend
    if backend == "local":
        return
    if processes > 1:
        name = "Ray" if backend == "ray" else "Process"
        raise RolloutBackendError(f"{name} rollouts run from a single learner process: start `netgpt train "
                                  f"--backend {backend}` without accelerate launch (its workers are the parallel part)")
    if config.model is None or not Path(config.model).is_dir():
        raise RolloutBackendError(f"`{backend}` rollout workers load the starting policy themselves: set `model` to "
                                  "a local model directory (e.g. an SFT checkpoint's model/)")
