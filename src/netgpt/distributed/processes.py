"""Rollout workers as local processes: every core of one machine, without Ray.

``netgpt eval --backend processes --workers N`` runs one :class:`~netgpt.distributed.worker.RolloutWorker` per
process. Processes are spawned, not forked: a fresh interpreter is safe with the thread pools torch and the
tokenizers library start, and a scripted policy's worker never imports either (about 1.5 s to start). Idle workers
take the next of the batches :func:`group_batches` cuts, so sessions, fault draws and per-batch policy state are
those of the local run and the episodes are the same, bit for bit (``tests/eval/test_process_backend.py``). A worker
that dies (an agent crashing its process, the OOM killer) fails the run with :class:`WorkerDied`, never a hang.
For RL (``rollout: {backend: processes}``), :meth:`ProcessRolloutPool.push_weights` gives every worker the learner's
trainable parameters before a step's rollouts.
As with any spawned pool, a script that builds one must do so under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from threading import BrokenBarrierError
from typing import Any

from threadpoolctl import threadpool_limits

from netgpt.core.episode import EpisodeResult, Fork
from netgpt.distributed.worker import RolloutWorker, WorkerSpec, group_batches
from netgpt.eval.harness import Aggregate, aggregate, run_order, task_order
from netgpt.tasks.schema import Task

_worker: RolloutWorker | None = None  # this worker process's episode runtime
_every_worker = None  # a barrier shared by the workers of one pool


class WorkerDied(RuntimeError):
    """A rollout worker process ended while it held episodes; their results are lost."""


def _start_worker(spec: WorkerSpec, barrier, threads: int) -> None:
    global _worker, _every_worker
    _worker = RolloutWorker(spec)
    # This worker's share of the cores: N workers with a thread per core each would oversubscribe the machine.
    # Set once the worker is built, because threadpoolctl only reaches libraries that are already loaded.
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    _every_worker = barrier
    atexit.register(_worker.close)


def _describe_when_all_started(timeout_s: float) -> tuple[str, int]:
    # Each of the pool's first N calls waits here until N workers have built their runtime, so the N calls run
    # on N different processes and the pool is fully up when they return.
    _every_worker.wait(timeout_s)
    return _worker.describe()


def _load_weights_when_all_arrive(state_dict: Mapping[str, Any], timeout_s: float) -> int:
    # As at start-up: each of N calls waits for the other N - 1, so every worker loads the weights exactly once.
    _every_worker.wait(timeout_s)
    return _worker.load_weights(state_dict)


def _run_batch(tasks: Sequence[Task], session_prefix: str, forks: Sequence[Fork | None] | None,
               ) -> list[EpisodeResult]:
    return _worker.run(tasks, session_prefix, forks)


class ProcessRolloutPool:
    """``workers`` spawned processes, each with its own registry and policy built from ``spec`` and
    ``threads_per_worker`` torch/BLAS threads (default: the cores divided among the workers). The constructor
    returns once every worker is up (timings taken after it measure episodes, not start-up)."""

    def __init__(self, spec: WorkerSpec, workers: int = 2, threads_per_worker: int | None = None,
                 start_timeout_s: float = 300.0):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                             initargs=(spec, context.Barrier(workers), threads))
        try:
            described = [self._executor.submit(_describe_when_all_started, start_timeout_s) for _ in range(workers)]
            self.policy_name, self.batch_size = [f.result() for f in described][0]
        except (BrokenProcessPool, BrokenBarrierError) as exc:
            self.close()
            raise WorkerDied(f"a rollout worker failed to start ({exc!r}); run the same spec in-process "
                             "(netgpt eval --backend local) to see its error") from exc

    def run(self, tasks: Sequence[Task], session_prefix: str = "ep", forks: Sequence[Fork | None] | None = None,
            on_result: Callable[[EpisodeResult], None] = lambda r: None) -> list[EpisodeResult]:
        """:func:`run_episodes` over the workers; results in the local order. ``on_result`` sees each batch's
        results as soon as that batch is done (batches finish out of order)."""
        pending: dict[Future, int] = {
            self._executor.submit(_run_batch, tasks[start:end], session_prefix,
                                  None if forks is None else forks[start:end]): start
            for start, end in group_batches(tasks, self.batch_size)}
        done: dict[int, list[EpisodeResult]] = {}
        try:
            for future in as_completed(pending):
                batch = done[pending[future]] = future.result()
                for result in batch:
                    on_result(result)
        except BrokenProcessPool as exc:
            raise WorkerDied(f"a rollout worker process died with {len(tasks) - sum(map(len, done.values()))} "
                             f"of {len(tasks)} episodes unfinished") from exc
        finally:
            for future in pending:
                future.cancel()
        return [r for start in sorted(done) for r in done[start]]

    def push_weights(self, state_dict: Mapping[str, Any], timeout_s: float = 300.0) -> None:
        """Copy parameters into every worker's policy and wait until all hold them (the RL learner's trainable
        parameters after an optimiser step). Each worker receives its own pickled copy."""
        state = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
        loads = [self._executor.submit(_load_weights_when_all_arrive, state, timeout_s) for _ in range(self.workers)]
        try:
            for load in loads:
                load.result()
        except (BrokenProcessPool, BrokenBarrierError) as exc:
            raise WorkerDied(f"a rollout worker died while loading the learner's weights ({exc!r})") from exc

    def evaluate(self, tasks: Sequence[Task], on_result: Callable[[EpisodeResult], None] = lambda r: None,
                 ) -> tuple[list[EpisodeResult], Aggregate]:
        """:func:`netgpt.eval.harness.evaluate` over the workers."""
        ordered = task_order(tasks, self.run(run_order(tasks), on_result=on_result))
        return ordered, aggregate(self.policy_name, ordered)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessRolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
