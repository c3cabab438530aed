"""Rollout workers as Ray actors.

Each :class:`RolloutWorker` rebuilds the local run's environment from a :class:`WorkerSpec`: its own
:class:`AgentRegistry` (same agents YAML, same fault config and seed) and its own policy (built from the
:class:`PolicySpec`, so an LLM is loaded on the worker, never shipped). :class:`RayRolloutPool` cuts the episode
list into exactly the batches the local :func:`run_episodes` would form and hands them to idle workers. Sessions
are named after their task, so the fault draws do not depend on where an episode runs, and every per-batch policy
state (the random policy's generators, LLM padding) is that of the local run. Results come back in the local
order: same seeds, same episodes, bit for bit (``tests/eval/test_ray_backend.py``).

For RL, :meth:`RayRolloutPool.push_weights` broadcasts the learner's trainable parameters to every worker after an
optimizer step (one ``ray.put``, then an in-place ``load_state_dict`` on each worker).
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Fork, Policy, run_episodes
from netgpt.eval.harness import Aggregate, aggregate, run_order, task_order
from netgpt.protocol.agent import Agent, AgentError
from netgpt.protocol.faults import FaultConfig
from netgpt.protocol.messages import AgentCard, ErrorCode
from netgpt.protocol.registry import AgentRegistry
from netgpt.tasks.schema import Task
from netgpt.world import World

if TYPE_CHECKING:
    import torch

# Nothing about a run may leave the project: no usage-stats file or prompt in $HOME, no telemetry.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}


class PolicySpec(BaseModel):
    """The policy as ``netgpt eval`` names it; each worker builds its own copy (``netgpt.cli.build_policy``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="oracle | always | random | prompt | never | a checkpoint directory (absolute)")
    model: str | None = Field(None, description="transformers model id or path for prompt / never")
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | None = Field(None, ge=1, description="episodes per batch; None: the policy's own (16 for an LLM)")
    max_new_tokens: int = Field(96, ge=1)
    seed: int = Field(0, description="seed of the random policy, and of an LLM's per-episode sampling")
    temperature: float = Field(0.0, ge=0, description="LLM sampling temperature (0: greedy)")
    train: Literal["full", "top_layers", "lora"] | None = Field(
        None, description="the RL learner's trainable selection: a worker wraps its model the same way (LoRA "
                          "adapters), so the parameters the learner pushes have the same names")
    top_layers: int = 4
    lora_r: int = 16

    def build(self, registry: AgentRegistry) -> Policy:
        from netgpt.cli import build_policy
        from netgpt.core.llm import LLMPolicy
        from netgpt.core.model import select_trainable

        policy = build_policy(self.name, registry, self.model, self.device, self.dtype, self.batch_size or 16,
                              self.max_new_tokens, self.seed)
        if self.batch_size:
            policy.batch_size = self.batch_size  # scripted policies too (their draws depend on the batching)
        if isinstance(policy, LLMPolicy):
            if self.train is not None:
                model = select_trainable(policy.model, self.train, self.top_layers, self.lora_r).eval()
                policy = LLMPolicy(model, policy.tokenizer, name=policy.name, max_new_tokens=self.max_new_tokens,
                                   batch_size=policy.batch_size, tools=policy.tools)
            policy.temperature = self.temperature
            policy.seed = self.seed if self.temperature > 0 else None
        return policy


class WorkerSpec(BaseModel):
    """Everything a worker needs to reproduce the local run's environment."""

    model_config = ConfigDict(extra="forbid")
    policy: PolicySpec
    agents: str | None = Field(None, description="agents YAML (absolute path; None: the built-in agents)")
    faults: FaultConfig = Field(default_factory=FaultConfig)
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)


class RolloutWorker:
    """One episode runtime: registry, policy and token counter. A plain class; :class:`RayRolloutPool` wraps it
    in ``ray.remote`` (so it can also be used, and debugged, in-process)."""

    def __init__(self, spec: WorkerSpec):
        from netgpt.core.model import load_tokenizer

        self.spec = spec
        self.registry = AgentRegistry.from_config(spec.agents, faults=spec.faults)
        self.policy = spec.policy.build(self.registry)
        self.tokenizer = getattr(self.policy, "tokenizer", None) or load_tokenizer(spec.policy.model)

    def describe(self) -> tuple[str, int]:
        """(policy name, episodes per batch)."""
        return self.policy.name, self.policy.batch_size

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text).input_ids)

    def run(self, tasks: Sequence[Task], session_prefix: str = "ep",
            forks: Sequence[Fork | None] | None = None) -> list[EpisodeResult]:
        return run_episodes(tasks, self.policy, self.registry, self.spec.episode, self.count_tokens,
                            session_prefix=session_prefix, forks=forks)

    def load_weights(self, state_dict: Mapping[str, Any]) -> int:
        """Copy the learner's parameters in place (a subset is fine: only the trained ones travel); returns how
        many tensors were loaded. The in-place copy bumps the parameters' versions, which is what makes the LLM
        policy recompute its cached system-prompt keys and values."""
        model = getattr(self.policy, "model", None)
        if model is None:
            raise TypeError(f"policy {self.policy.name!r} has no weights")
        unknown = set(state_dict) - set(model.state_dict())
        if unknown:
            raise KeyError(f"not parameters of the worker's model: {sorted(unknown)[:5]}")
        model.load_state_dict(state_dict, strict=False)
        return len(state_dict)

    def logits(self, input_ids: list[list[int]]) -> torch.Tensor:
        """The policy model's logits on ``input_ids``: lets the learner check that a worker holds its weights."""
        import torch

        with torch.inference_mode():
            ids = torch.tensor(input_ids, device=self.policy.device)
            return self.policy.model(input_ids=ids).logits.float().cpu()

    def close(self) -> None:
        self.registry.close()


class _AgentHost:
    """Holds one agent inside a Ray actor. Agent errors come back as values: a typed :class:`AgentError` must
    reach the registry as itself, not wrapped in a Ray task error."""

    def __init__(self, name: str, factory: str | None, options: dict[str, Any]):
        from netgpt.protocol.config import LocalAgentEntry

        self.agent = LocalAgentEntry(name=name, factory=factory, options=options).build()

    def card(self) -> AgentCard:
        return self.agent.card

    def handle(self, skill: str, args: dict[str, Any], state: World | None,
               ) -> tuple[dict[str, Any] | None, ErrorCode | None, str | None]:
        try:
            return self.agent.handle(skill, args, state), None, None
        except AgentError as exc:
            return None, exc.code, exc.message


class RayAgent(Agent):
    """An agent that runs in a Ray actor of its own; ``handle`` forwards each call (and the session's state) to it.
    The registry in front of it is unchanged (validation, fault model, deadlines), so replies are those of the
    in-process agent. In an agents YAML: ``{kind: local, factory: "netgpt.distributed.ray_backend:RayAgent",
    options: {name: traffic, num_cpus: 1}}``; Ray must be up (``init_ray``) or is started here."""

    def __init__(self, name: str, factory: str | None = None, options: dict[str, Any] | None = None,
                 num_cpus: float = 1):
        import ray

        init_ray()
        self._actor = ray.remote(num_cpus=num_cpus)(_AgentHost).remote(name, factory, options or {})
        self.card = ray.get(self._actor.card.remote())

    def handle(self, skill: str, args: dict[str, Any], state: World | None) -> dict[str, Any]:
        import ray

        result, code, message = ray.get(self._actor.handle.remote(skill, args, state))
        if code is not None:
            raise AgentError(code, message)
        return result


def group_batches(tasks: Sequence[Task], size: int) -> list[tuple[int, int]]:
    """[start, end) batches of at most ``size`` episodes that never split the repeats of a task (an RL group and its
    forks). A session is named after its task and its repeat number within a ``run_episodes`` call, so a group split
    over two workers would be numbered from 0 twice. Without repeats these are the fixed-size batches
    ``run_episodes`` itself forms, which keeps per-batch policy state (the random policy) identical to a local run."""
    runs: list[tuple[int, int]] = []
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if runs and tasks[runs[-1][0]].id == task.id:
            runs[-1] = (runs[-1][0], i + 1)
            continue
        if task.id in seen:
            raise ValueError(f"the repeats of task {task.id!r} are not contiguous: a Ray batch cannot hold them all")
        seen.add(task.id)
        runs.append((i, i + 1))
    batches: list[tuple[int, int]] = []
    for start, end in runs:
        if end - start > size:
            raise ValueError(f"the {end - start} repeats of task {tasks[start].id!r} do not fit one batch of {size}")
        if batches and end - batches[-1][0] <= size:
            batches[-1] = (batches[-1][0], end)
        else:
            batches.append((start, end))
    return batches


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None) -> bool:
    """Start a local Ray with ``num_cpus`` (default 2), or join the cluster at ``address``, unless Ray is already
    up in this process. Returns True when this call started it (the caller then shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)  # read by the driver and inherited by the local workers
    if address:
        ray.init(address=address, runtime_env={"env_vars": RAY_ENV}, log_to_driver=False)
        return True
    # A local cluster keeps token auth (on by default) but takes its token from the environment, which the processes
    # it spawns inherit; otherwise Ray would write a fresh one to ~/.ray/auth_token.
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    ray.init(num_cpus=num_cpus or 2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    return True


class RayRolloutPool:
    """``workers`` :class:`RolloutWorker` actors, one CPU each (``num_gpus`` each where the policy runs on CUDA).
    Call :func:`init_ray` first."""

    def __init__(self, spec: WorkerSpec, workers: int = 2, num_cpus: float = 1, num_gpus: float = 0):
        import ray

        if workers < 1:
            raise ValueError("workers must be >= 1")
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(RolloutWorker)
        self.workers = [actor.remote(spec) for _ in range(workers)]
        # wait for every worker, so that timings taken after the constructor measure episodes, not start-up
        self.policy_name, self.batch_size = ray.get([w.describe.remote() for w in self.workers])[0]

    def run(self, tasks: Sequence[Task], session_prefix: str = "ep", forks: Sequence[Fork | None] | None = None,
            on_result: Callable[[EpisodeResult], None] = lambda r: None) -> list[EpisodeResult]:
        """:func:`run_episodes` over the workers, in batches from :func:`group_batches`: session ids and order are
        those of the local call. ``on_result`` sees each batch's results as soon as the batch is done (batches
        finish out of order)."""
        import ray

        queue = deque((start, tasks[start:end], None if forks is None else forks[start:end])
                      for start, end in group_batches(tasks, self.batch_size))
        idle = list(self.workers)
        pending: dict[Any, tuple[int, Any]] = {}
        done: dict[int, list[EpisodeResult]] = {}
        while queue or pending:
            while idle and queue:  # one batch in flight per worker: a fast worker takes the next batch
                worker = idle.pop()
                start, batch, batch_forks = queue.popleft()
                pending[worker.run.remote(batch, session_prefix, batch_forks)] = (start, worker)
            [ref], _ = ray.wait(list(pending), num_returns=1)
            start, worker = pending.pop(ref)
            done[start] = ray.get(ref)
            idle.append(worker)
            for result in done[start]:
                on_result(result)
        return [r for start in sorted(done) for r in done[start]]

    def evaluate(self, tasks: Sequence[Task], on_result: Callable[[EpisodeResult], None] = lambda r: None,
                 ) -> tuple[list[EpisodeResult], Aggregate]:
        """:func:`netgpt.eval.harness.evaluate` over the workers."""
        ordered = task_order(tasks, self.run(run_order(tasks), on_result=on_result))
        return ordered, aggregate(self.policy_name, ordered)

    def push_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Broadcast parameters to every worker and wait until all hold them. Pass only the trainable ones, e.g.
        ``{n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}`` (unwrapped model)."""
        import ray

        ref = ray.put({name: tensor.detach().cpu() for name, tensor in state_dict.items()})  # stored once
        ray.get([worker.load_weights.remote(ref) for worker in self.workers])

    def logits(self, input_ids: list[list[int]]) -> list[torch.Tensor]:
        """Every worker's :meth:`RolloutWorker.logits`."""
        import ray

        return ray.get([worker.logits.remote(input_ids) for worker in self.workers])

    def close(self) -> None:
        import ray

        ray.get([worker.close.remote() for worker in self.workers])
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []

    def __enter__(self) -> RayRolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate_on_ray(tasks: Sequence[Task], spec: WorkerSpec, workers: int, address: str | None = None,
                    on_result: Callable[[EpisodeResult], None] = lambda r: None,
                    on_ready: Callable[[], None] = lambda: None) -> tuple[list[EpisodeResult], Aggregate]:
    """``netgpt eval --backend ray``: start (or join) Ray, evaluate on ``workers`` actors, shut down what it
    started. ``on_ready`` runs once every worker is up, before the first episode."""
    import ray

    started = init_ray(address, num_cpus=max(workers, 2))
    try:
        with RayRolloutPool(spec, workers) as pool:
            on_ready()
            return pool.evaluate(tasks, on_result)
    finally:
        if started:
            ray.shutdown()
