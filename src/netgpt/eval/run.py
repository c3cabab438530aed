"""An evaluation run: one policy over a split's tasks, into a run directory that can be continued.

:class:`EvalRun` holds what ``netgpt eval`` was asked (the policy as a :class:`PolicySpec`, split, faults, episode
settings, backend, resume); :meth:`EvalRun.run` checks a resumed run's settings and its model's weights
(``model_sha256``) against what it was, runs the missing episodes on the chosen backend, and writes the directory:
``results.json`` (the aggregate), ``episodes.jsonl.gz``, ``results.md``, plots and ``run.json`` (a
:class:`RunRecord`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from netgpt.core.episode import EpisodeConfig, EpisodeResult
from netgpt.core.factory import LLM_BATCH_SIZE, PolicySpec, build_policy, check_policy_name
from netgpt.core.model import model_sha256, policy_token_counter
from netgpt.distributed.processes import ProcessRolloutPool
from netgpt.distributed.ray_backend import evaluate_on_ray
from netgpt.distributed.worker import WorkerSpec
from netgpt.eval.harness import (
    EPISODES_FILE,
    Aggregate,
    EpisodeLog,
    aggregate,
    check_infra_errors,
    episodes_to_run,
    evaluate,
    finished_episodes,
    split_file,
    split_generator_version,
    task_order,
    write_episodes,
)
from netgpt.eval.report import write_markdown, write_plots
from netgpt.protocol.config import builtin_faults
from netgpt.protocol.faults import FaultConfig
from netgpt.protocol.registry import AgentRegistry
from netgpt.rundir import environment_info
from netgpt.tasks.io import load_tasks
from netgpt.tasks.schema import Task


class Backend(StrEnum):
    """Where episodes run: this process, spawned worker processes or Ray actors (evaluations and RL rollouts)."""

    LOCAL = "local"
    PROCESSES = "processes"
    RAY = "ray"


class EvalSetupError(ValueError):
    """A run that cannot start as asked; ``option`` names the ``netgpt eval`` option at fault."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


class RunPart(BaseModel):
    """One invocation that contributed episodes to a continued run."""

    command: str | None
    episodes: int | None
    wall_s: float | None


# keys of run.json written only where they apply: an LLM's weights, the episodes a continued run kept
_OPTIONAL_KEYS = ("model_sha256", "kept_episodes", "parts")


class RunRecord(BaseModel):
    """``run.json`` of an evaluation run: its settings (what decides each episode), the run's size, backend and
    speed, and the software it ran on."""

    model_config = ConfigDict(extra="forbid")
    command: str
    policy: str
    split: str
    seed: int
    generator_version: str
    episode: EpisodeConfig
    faults: FaultConfig
    model: str | None
    dtype: str
    max_new_tokens: int
    model_sha256: str | None = Field(None, description="an LLM's weights (None: a hub id); absent for scripted")
    n_tasks: int
    backend: Backend
    workers: int
    device: str
    batch_size: int
    wall_s: float
    startup_s: float
    generated_tokens_per_s: float | None
    kept_episodes: int | None = None
    parts: list[RunPart] | None = None
    environment: dict[str, str] = Field(default_factory=environment_info)

    def entries(self) -> dict[str, Any]:
        """run.json's entries, in order; the optional ones only where they were set."""
        return self.model_dump(mode="json", exclude={key for key in _OPTIONAL_KEYS if key not in self.model_fields_set})


def write_run(out: Path, results: Sequence[EpisodeResult], agg: Aggregate,
              record: RunRecord | Mapping[str, Any]) -> None:
    """The run directory: ``results.json`` (the aggregate), ``episodes.jsonl.gz`` (every episode), ``run.json``
    (``record``: a :class:`RunRecord`, or its entries, ``environment`` added when missing), ``results.md``, plots."""
    info = record.entries() if isinstance(record, RunRecord) else dict(record)
    info.setdefault("environment", environment_info())
    out.mkdir(parents=True, exist_ok=True)
    write_episodes(out / EPISODES_FILE, results)
    (out / "results.json").write_text(json.dumps({"aggregate": agg.model_dump()}, indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    write_markdown(out / "results.md", [agg], title=f"{agg.policy} on {info.get('split')}")
    write_plots(out, results, agg)


@dataclass
class EvalListener:
    """What a front end hears while a run goes: model loading messages, the size of the run once the resumed
    episodes are known, and the running mean score after each new episode."""

    status: Callable[[str], None] = lambda message: None
    start: Callable[[int, int], None] = lambda total, kept: None
    episode: Callable[[float], None] = lambda mean_score: None


@dataclass
class EvalOutcome:
    out: Path
    results: list[EpisodeResult]
    aggregate: Aggregate
    record: RunRecord
    kept: int
    ran: int


EpisodeCheck = Callable[[Sequence[EpisodeResult]], None]


class EvalRun(BaseModel):
    """One ``netgpt eval``. ``seed`` seeds both the fault model and the policy; ``batch_size`` is an LLM's episodes
    per batch (scripted policies keep their own batching, which their random draws depend on). ``checks`` run on
    all the run's episodes once its directory is written: one that raises fails the run, whose results stay. The
    default refuses a run with too many ``infra_error`` episodes (``InfraErrorThresholdExceeded``)."""

    model_config = ConfigDict(extra="forbid")
    policy: PolicySpec
    split: str = "dev"
    limit: int | None = Field(None, ge=1)
    out: Path | None = Field(None, description="run directory (default runs/<policy>-<split>)")
    agents: Path | None = Field(None, description="agents YAML (None: the built-in agents in-process)")
    faults: FaultConfig = Field(default_factory=builtin_faults)
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)
    seed: int = 0
    batch_size: int = Field(LLM_BATCH_SIZE, ge=1)
    backend: Backend = Backend.LOCAL
    workers: int = Field(2, ge=1, description="rollout workers (processes | ray)")
    ray_address: str | None = None
    resume: bool = False
    command: str = Field(default_factory=lambda: " ".join(sys.argv))
    checks: list[EpisodeCheck] = Field(default_factory=lambda: [check_infra_errors])

    @model_validator(mode="after")
    def _one_seed(self) -> EvalRun:
        self.policy = self.policy.model_copy(update={
            "seed": self.seed, "batch_size": None if self.policy.scripted else self.batch_size})
        self.faults = self.faults.model_copy(update={"seed": self.seed})
        return self

    @property
    def directory(self) -> Path:
        return self.out or Path("runs") / f"{self.policy.display_name}-{Path(self.split).stem}"

    def load_tasks(self) -> list[Task]:
        """The split's tasks (its first ``limit``); a malformed task file raises ``TaskFileError``."""
        path = split_file(self.split)
        if not path.is_file():
            raise EvalSetupError(f"no split {self.split!r}: use dev, test, ood or a JSONL task file", "--split")
        return load_tasks(path)[:self.limit]

    def _generation(self) -> dict:
        """The LLM settings run.json records (for a scripted policy too, where they decide nothing)."""
        generation = {"model": self.policy.model, "dtype": self.policy.dtype,
                      "max_new_tokens": self.policy.max_new_tokens}
        if not self.policy.scripted:  # which weights, not only which path: a model retrained in place is another run
            generation["model_sha256"] = model_sha256(self.policy.weights)
        return generation

    def run(self, listener: EvalListener | None = None) -> EvalOutcome:
        listener = listener or EvalListener()
        check_policy_name(self.policy.name)
        tasks = self.load_tasks()
        out = self.directory
        generation = self._generation()
        settings = {"policy": self.policy.name, "split": self.split, "seed": self.seed,
                    "generator_version": split_generator_version(tasks), "episode": self.episode.model_dump(),
                    "faults": self.faults.model_dump(), **({} if self.policy.scripted else generation)}
        try:
            kept, parts = finished_episodes(out, settings) if self.resume else ({}, [])
        except ValueError as err:
            raise EvalSetupError(str(err), "--resume") from None
        wanted = {t.id for t in tasks}
        kept = {task_id: r for task_id, r in kept.items() if task_id in wanted}
        todo = episodes_to_run(tasks, kept)
        log = EpisodeLog(out, settings, self.command, kept.values())
        scores = [r.reward.total for r in kept.values()]
        listener.start(len(tasks), len(kept))

        def tick(result: EpisodeResult) -> None:
            log.write(result)
            scores.append(result.reward.total)
            listener.episode(sum(scores) / len(scores))

        start = launched = time.perf_counter()
        if todo:
            new, agg, start = self._episodes(todo, tick, listener.status)
        else:  # every task is in the earlier run
            new, agg = [], aggregate(next(iter(kept.values())).policy, [])
        wall = time.perf_counter() - start
        generated = agg.tokens * agg.n  # by this invocation only: the speed is of this machine and these settings
        results = new
        if kept:
            results = task_order(tasks, [*kept.values(), *new])
            agg = aggregate(agg.policy, results)
            parts.append({"command": self.command, "episodes": len(new), "wall_s": wall})
        record = RunRecord(
            command=self.command, **{**settings, **generation}, n_tasks=len(tasks), backend=self.backend,
            workers=1 if self.backend is Backend.LOCAL else self.workers, device=self.policy.device,
            batch_size=self.batch_size, wall_s=wall, startup_s=start - launched,
            generated_tokens_per_s=generated / wall if wall else None,
            **({"kept_episodes": len(kept), "parts": parts} if kept else {}))
        write_run(out, results, agg, record)
        log.close(remove=True)
        for check in self.checks:
            check(results)
        return EvalOutcome(out=out, results=results, aggregate=agg, record=record, kept=len(kept), ran=len(todo))

    def _episodes(self, tasks: list[Task], tick: Callable[[EpisodeResult], None], status: Callable[[str], None],
                  ) -> tuple[list[EpisodeResult], Aggregate, float]:
        """The episodes on the chosen backend: (results, aggregate, when the first episode started)."""
        start = time.perf_counter()
        spec = WorkerSpec(policy=self.policy.resolved(), agents=str(self.agents.resolve()) if self.agents else None,
                          faults=self.faults, episode=self.episode)
        if self.backend is Backend.RAY:
            def workers_up() -> None:
                nonlocal start
                start = time.perf_counter()

            results, agg = evaluate_on_ray(tasks, spec, self.workers, self.ray_address, on_result=tick,
                                           on_ready=workers_up)
        elif self.backend is Backend.PROCESSES:
            with ProcessRolloutPool(spec, self.workers) as pool:
                start = time.perf_counter()
                results, agg = pool.evaluate(tasks, on_result=tick)
        else:
            with AgentRegistry.from_config(self.agents, faults=self.faults) as registry:
                policy = build_policy(self.policy, registry, status)
                count_tokens = policy_token_counter(policy, self.policy.model)
                start = time.perf_counter()
                results, agg = evaluate(tasks, policy, registry, self.episode, count_tokens, on_result=tick)
        return results, agg, start
