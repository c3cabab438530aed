"""Rollout workers as Ray actors.

:class:`RayRolloutPool` runs one :class:`~netgpt.distributed.worker.RolloutWorker` per Ray actor and hands idle
workers exactly the batches the local :func:`run_episodes` would form (:func:`group_batches`). Sessions are named
after their task, so the fault draws do not depend on where an episode runs, and every per-batch policy state (the
random policy's generators, LLM padding) is that of the local run. Results come back in the local order: same
seeds, same episodes, bit for bit (``tests/eval/test_ray_backend.py``).

For RL, :meth:`RayRolloutPool.push_weights` broadcasts the learner's trainable parameters to every worker after an
optimizer step (one ``ray.put``, then an in-place ``load_state_dict`` on each worker).
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from netgpt.core.episode import EpisodeResult, Fork
from netgpt.distributed.worker import RolloutWorker, WorkerSpec, group_batches
from netgpt.eval.harness import Aggregate, aggregate, run_order, task_order
from netgpt.protocol.agent import Agent, AgentError
from netgpt.protocol.messages import AgentCard, ErrorCode
from netgpt.tasks.schema import Task
from netgpt.world import World

if TYPE_CHECKING:
    import torch

# Nothing about a run may leave the project: no usage-stats file or prompt in $HOME, no telemetry.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}


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
