"""The missed-task pool: training tasks the starting policy got wrong, replayed in every RL step beside the stream.

Data path::

    netgpt tasks sample --split train --start K   ── a region of the training stream no RL step reaches
    → netgpt eval --policy START                   ── the start's greedy episodes on it
    → missed_tasks (netgpt tasks missed)           ── the tasks it answered wrong → a JSONL pool
    → pool_batch                                   ── ``task_pool.per_step`` of them in each step's batch

Why: a group trains the answer only when its rollouts differ in quality. In the bench's three RL runs, 122 of 180
groups were right in every rollout (`results/bench/training`), and the 14 test tasks that three seeds all missed in
`results/ablations/rl-soup` were missed by their start too: the uniform stream puts few groups where greedy decoding
slips. Replaying the tasks the start missed spends rollouts there (`results/ablations/rl-missed-tasks`). Only
training-stream tasks are accepted, so an evaluation split cannot leak into training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from netgpt.eval.harness import load_episode_scores, split_file
from netgpt.tasks.io import TaskFileError, load_tasks
from netgpt.tasks.schema import Task


class TaskPoolError(ValueError):
    """A pool or a screening run that cannot feed RL: with what is wrong and how to fix it."""


def _training_only(tasks: list[Task], source: str) -> None:
    foreign = sorted({t.split for t in tasks if t.split != "train"})
    if foreign:
        raise TaskPoolError(f"{source} holds {'/'.join(foreign)} tasks: only training-stream tasks may be trained on "
                            "(an evaluation split would leak into training); screen `netgpt tasks sample` output")


def missed_tasks(run_dir: Path) -> list[Task]:
    """The tasks of a finished ``netgpt eval`` run whose answer was wrong (quality below 1), in the split's order."""
    run_file = run_dir / "run.json"
    if not (run_dir / "results.json").is_file() or not run_file.is_file():
        raise TaskPoolError(f"{run_dir} is not a finished eval run (no results.json and run.json)")
    split = json.loads(run_file.read_text())["split"]
    path = split_file(split)
    if not path.is_file():
        raise TaskPoolError(f"{run_dir} ran on {split!r}, which is not a task file here")
    tasks = load_tasks(path)
    _training_only(tasks, str(path))
    quality = load_episode_scores(run_dir, "quality")
    unscored = [t.id for t in tasks if t.id not in quality]
    if unscored:
        raise TaskPoolError(f"{run_dir} has no episode for {len(unscored)} task(s) of {path} (first: {unscored[0]})")
    return [t for t in tasks if quality[t.id] < 1.0]


def load_pool(path: Path) -> tuple[list[Task], str]:
    """The pool's tasks and the SHA-256 of its file (a resumed run must replay the same pool)."""
    if not path.is_file():
        raise TaskPoolError(f"task_pool.file: no such file: {path} (build it with `netgpt tasks missed`)")
    try:
        tasks = load_tasks(path)
    except TaskFileError as err:  # a malformed line or a repeated id, each named with its line
        raise TaskPoolError(f"task_pool.file: {err}") from None
    if not tasks:
        raise TaskPoolError(f"task_pool.file: {path} holds no tasks")
    _training_only(tasks, str(path))
    return tasks, hashlib.sha256(path.read_bytes()).hexdigest()


def pool_batch(pool: list[Task], step: int, per_step: int, process: int = 0, processes: int = 1) -> list[Task]:
    """The pool tasks a process replays at ``step``: consecutive slices cycle through the pool in order, one slice per
    process and step, so every task comes back before any comes back twice."""
    first = (step * processes + process) * per_step
    return [pool[(first + k) % len(pool)] for k in range(per_step)]
