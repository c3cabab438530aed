"""The core behind the API: requests from any number of connections, batched through the episode runtime.

An asyncio batcher collects requests for up to ``max_wait_ms`` (or until ``batch_size`` are waiting) and runs
them as one :func:`~netgpt.core.episode.run_episodes` batch on a single worker thread: the LLM policy holds one
batch's KV cache and is not thread-safe, so batches run one at a time, and while one runs the next collects.
Requests with different episode limits (deadline, budget, max turns) run as separate groups of the batch.

Every request is checked before it is queued (:meth:`Solver.prepare`): its state's size, and its first prompt
against the model's context window. A request still unanswered ``request_timeout_s`` after it was submitted
gets :class:`EpisodeTimeout` (the server answers 504); the batch it is in runs on, bounded by the episode
limits, and its answer is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Policy, run_episodes
from netgpt.core.policies import AlwaysPolicy, OraclePolicy
from netgpt.core.prompt import system_prompt, task_message
from netgpt.protocol.http_server import DEFAULT_MAX_STATE_BYTES
from netgpt.protocol.registry import AgentRegistry
from netgpt.serve.schema import Recognised, TaskOptions, Trace
from netgpt.serve.tasks import TaskError, build_task
from netgpt.tasks.schema import Task

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_MAX_PENDING = 64
"""Requests queued or running at once; more are refused (429), so queued states cannot grow without bound."""


class RequestError(TaskError):
    """A request over one of the server's limits or unusable as a task; ``param`` names the field at fault."""

    def __init__(self, message: str, code: str, param: str) -> None:
        super().__init__(message, code)
        self.param = param


class Overloaded(RuntimeError):
    """``max_pending`` requests are already queued or running."""

    def __init__(self, max_pending: int) -> None:
        super().__init__(f"{max_pending} requests are already queued or running; retry shortly")


class EpisodeTimeout(TimeoutError):
    """The request's episode did not finish within the server's wall-clock limit."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"the episode did not finish within the {limit_s:g} s request time limit "
                         "(netgpt serve --request-timeout-s)")
        self.limit_s = limit_s


def prompt_token_limit(policy: Policy) -> int | None:
    """Room for the first prompt in ``policy``'s context window: its model's ``max_position_embeddings`` less one
    turn's ``max_new_tokens``; ``None`` for a policy without a model (scripted policies read no prompt)."""
    config = getattr(getattr(policy, "model", None), "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if not isinstance(context, int):
        return None
    return context - int(getattr(policy, "max_new_tokens", 0))


@dataclass
class Solved:
    """One finished request: the episode, its trace for the response, and token counts for ``usage``."""

    result: EpisodeResult
    trace: Trace
    prompt_tokens: int

    @property
    def answer(self) -> str:
        return self.result.answer or ""


@dataclass
class _Pending:
    task: Task
    config: EpisodeConfig
    recognised: Recognised | None
    future: asyncio.Future[Solved]
    queued_at: float = field(default_factory=time.perf_counter)


class Solver:
    """Turns questions into episodes of ``policy`` against ``registry``; see the module docstring."""

    def __init__(self, policy: Policy, registry: AgentRegistry, count_tokens: Callable[[str], int], *,
                 model_id: str, episode: EpisodeConfig | None = None, batch_size: int = 8,
                 max_wait_ms: float = 5.0, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_state_bytes: int = DEFAULT_MAX_STATE_BYTES, max_prompt_tokens: int | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        """``max_prompt_tokens`` bounds the first prompt (default: :func:`prompt_token_limit` of ``policy``)."""
        self.policy = policy
        self.registry = registry
        self.count_tokens = count_tokens
        self.model_id = model_id
        self.episode = episode or EpisodeConfig()
        self.batch_size = batch_size
        self.max_wait_s = max_wait_ms / 1e3
        self.request_timeout_s = request_timeout_s
        self.max_pending = max_pending
        self._pending = 0
        self.max_state_bytes = max_state_bytes
        self.max_prompt_tokens = prompt_token_limit(policy) if max_prompt_tokens is None else max_prompt_tokens
        self.created = int(time.time())
        # plan followers cannot read free text: their questions must be benchmark tasks or recognised
        self.needs_plan = isinstance(policy, (OraclePolicy, AlwaysPolicy))
        self._system_tokens = count_tokens(system_prompt(registry.cards()))
        self._ids = itertools.count()
        self._batches = itertools.count()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netgpt-core")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._loop(), name="netgpt-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ requests
    def prepare(self, question: str, options: TaskOptions) -> tuple[Task, EpisodeConfig, Recognised | None]:
        """The task and episode limits of a request; raises :class:`~netgpt.serve.tasks.TaskError` (a
        :class:`RequestError` when a limit is exceeded or the request's parts do not make a task)."""
        self._check_state_size(options)
        source = "netgpt.task" if options.task is not None else "messages"
        try:
            task, recognised = build_task(f"req-{next(self._ids)}", question, options, needs_plan=self.needs_plan)
        except TaskError:
            raise
        except (ValueError, KeyError, RecursionError) as exc:  # ValidationError is a ValueError; deep JSON recurses
            raise RequestError(f"{source}: cannot make a task of it: {type(exc).__name__}: {str(exc)[:300]}",
                               "invalid_task", source) from None
        if self.max_prompt_tokens is not None:
            tokens = self._system_tokens + self.count_tokens(task_message(task))
            if tokens > self.max_prompt_tokens:
                raise RequestError(f"the prompt would be {tokens} tokens, over the {self.max_prompt_tokens} the "
                                   "model's context leaves for it: shorten the question or the observation",
                                   "context_length_exceeded", "messages")
        limits = {k: v for k, v in (("deadline_ms", options.deadline_ms), ("max_turns", options.max_turns),
                                    ("budget", options.budget)) if v is not None}
        return task, self.episode.model_copy(update=limits), recognised

    def _check_state_size(self, options: TaskOptions) -> None:
        worlds = (("netgpt.state", options.state), ("netgpt.task.state", options.task and options.task.state))
        for name, world in worlds:
            size = len(world.model_dump_json()) if world is not None else 0
            if size > self.max_state_bytes:
                raise RequestError(f"{name} is {size} bytes of JSON, over the {self.max_state_bytes}-byte limit",
                                   "state_too_large", name)

    async def solve(self, question: str, options: TaskOptions) -> Solved:
        task, config, recognised = self.prepare(question, options)
        return await self.submit(task, config, recognised)

    async def submit(self, task: Task, config: EpisodeConfig, recognised: Recognised | None = None) -> Solved:
        """The finished episode; raises :class:`EpisodeTimeout` past ``request_timeout_s`` and
        :class:`Overloaded` when ``max_pending`` requests are already in."""
        if self._queue is None:
            raise RuntimeError("Solver.start() was not awaited")
        if self._pending >= self.max_pending:
            raise Overloaded(self.max_pending)
        future: asyncio.Future[Solved] = asyncio.get_running_loop().create_future()
        self._pending += 1
        try:  # a timed-out future is cancelled, so a batch not yet started skips it
            await self._queue.put(_Pending(task, config, recognised, future))
            return await asyncio.wait_for(future, self.request_timeout_s)
        except TimeoutError:
            raise EpisodeTimeout(self.request_timeout_s) from None
        finally:
            self._pending -= 1

    # ------------------------------------------------------------------ batching
    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            until = loop.time() + self.max_wait_s
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    if loop.time() >= until:
                        break
                    # polling, not wait_for(get()): a timed-out get can lose an item on Python 3.11
                    await asyncio.sleep(min(until - loop.time(), 1e-3))
            live = [p for p in batch if not p.future.done()]  # a client that hung up cancelled its future
            groups: dict[str, list[_Pending]] = {}
            for pending in live:
                groups.setdefault(pending.config.model_dump_json(), []).append(pending)
            for group in groups.values():
                await self._run(group)

    async def _run(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        prefix = f"serve{next(self._batches)}"
        try:
            episodes = partial(run_episodes, [p.task for p in group], self.policy, self.registry, group[0].config,
                               self.count_tokens, session_prefix=prefix)
            results = await asyncio.get_running_loop().run_in_executor(self._executor, episodes)
            run_ms = (time.perf_counter() - started) * 1e3
            solved = [self._solved(p, r, started, run_ms, len(group)) for p, r in zip(group, results)]
        except Exception:
            # Agents never raise (failures are replies), so this is a bug in the policy or the runtime: run the
            # requests one by one so that only the one that triggers it fails.
            logger.exception("batch of %d episodes failed", len(group))
            if len(group) > 1:
                for pending in group:
                    await self._run([pending])
            elif not group[0].future.done():
                group[0].future.set_exception(RuntimeError("the episode runtime failed on this request"))
            return
        for pending, done in zip(group, solved):
            if not pending.future.done():
                pending.future.set_result(done)

    def _solved(self, pending: _Pending, result: EpisodeResult, started: float, run_ms: float,
                batch: int) -> Solved:
        trace = Trace(finish_reason=result.finish_reason, turns=result.turns, events=result.events,
                      cost=result.cost, recognised=pending.recognised,
                      queue_ms=(started - pending.queued_at) * 1e3, run_ms=run_ms, batch_size=batch)
        # what the core read: its system prompt, the task turn and every reply
        read = self.count_tokens(task_message(pending.task)) + sum(
            self.count_tokens(e.reply) for e in result.events if e.reply)
        return Solved(result=result, trace=trace, prompt_tokens=self._system_tokens + read)
