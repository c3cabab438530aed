"""Reading and verifying task files (JSONL, one :class:`Task` per line).

A file is loaded whole or not at all: every problem (a line that is not UTF-8 text, not JSON, not a task, a task
with an unsafe or repeated id, a file with no task at all) is reported with its line number in one
:class:`TaskFileError`, and no partial list is ever returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from netgpt.tasks.families import FAMILIES, family
from netgpt.tasks.schema import AnswerSpec, Task

TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
"""What a task id may be. It names the episode's session (``ep-<id>-<repeat>``, at most 128 characters, sent in URL
paths) and run files, so no path separators, no ``..`` at the start and room for the session's prefix and suffix."""


@dataclass
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class TaskFileError(ValueError):
    """A task file that cannot be loaded. ``problems`` holds every problem, one line each, as ``file:line: message``
    (what a command prints, one per line, without a traceback); ``errors`` the same as :class:`LineError` values."""

    def __init__(self, path: Path | str, errors: list[LineError]):
        self.path = str(path)
        self.errors = errors
        self.problems: list[str] = [f"{self.path}:{e.line}: {e.message}" for e in errors]
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{self.path}: {len(errors)} problem(s)\n{shown}{more}")


def _parse_line(raw: str) -> Task | list[str]:
    """The task on a line, or what is wrong with it (every schema error, one message each)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [f"invalid JSON ({exc.msg} at column {exc.colno})"]
    except RecursionError:
        return ["invalid JSON (nested too deep)"]
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        return [f"schema: {'.'.join(str(p) for p in e['loc']) or 'task'}: {e['msg']}"
                for e in exc.errors(include_url=False)]


def _text_lines(path: Path | str) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None, why not text) per line: each line is decoded on its own, so a binary or
    mis-encoded file gives one problem per bad line instead of a decoding error for the whole file."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                yield number, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def read_tasks(path: Path | str) -> tuple[list[tuple[int, Task]], list[LineError]]:
    """(line number, task) for every valid line, and the errors of the others; a file without a task (empty, or
    blank lines only) is an error too."""
    tasks: list[tuple[int, Task]] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    for number, text, undecodable in _text_lines(path):
        if text is None:
            errors.append(LineError(number, undecodable))
            continue
        if not text.strip():
            continue
        task = _parse_line(text)
        if isinstance(task, list):
            errors.extend(LineError(number, message) for message in task)
            continue
        if not TASK_ID.fullmatch(task.id):
            errors.append(LineError(number, f"id {task.id!r} must match {TASK_ID.pattern} "
                                            "(letters, digits, '.', '_', '-'; at most 96 characters)"))
            continue
        if task.family not in FAMILIES:
            errors.append(LineError(number, f"unknown family {task.family!r}"))
            continue
        if task.id in seen:
            errors.append(LineError(number, f"duplicate id {task.id!r} (first on line {seen[task.id]})"))
            continue
        seen[task.id] = number
        tasks.append((number, task))
    if not tasks and not errors:
        errors.append(LineError(1, "the file holds no tasks (it is empty)"))
    return tasks, errors


def load_tasks(path: Path | str) -> list[Task]:
    """All tasks of a JSONL file, or a :class:`TaskFileError` naming every bad line."""
    tasks, errors = read_tasks(path)
    if errors:
        raise TaskFileError(path, errors)
    return [task for _, task in tasks]


def _answers_agree(stored: AnswerSpec, recomputed: AnswerSpec) -> str | None:
    if stored.kind != recomputed.kind or stored.unit != recomputed.unit:
        return f"answer kind/unit {stored.kind}/{stored.unit} != recomputed {recomputed.kind}/{recomputed.unit}"
    if stored.kind == "number":
        # forecasts come from a numerical optimiser: allow 1 % of the tolerance, otherwise near-exact
        slack = max(1e-6 * abs(recomputed.value), 0.01 * recomputed.tolerance)
        if abs(stored.value - recomputed.value) > slack:
            return f"answer {stored.value!r} != recomputed {recomputed.value!r}"
        if abs(stored.tolerance - recomputed.tolerance) > slack:
            return f"tolerance {stored.tolerance!r} != recomputed {recomputed.tolerance!r}"
    elif stored.label != recomputed.label or stored.choices != recomputed.choices:
        return f"answer {stored.label!r} != recomputed {recomputed.label!r}"
    return None


# Answers from a numerical fit that stops on its evaluation budget (analytics._load_forecast_path): the optimiser's
# path follows the CPU's BLAS kernels, so on another CPU the same history can land a little elsewhere: between the
# AVX512 machine that wrote the splits and an AVX2 EPYC, 34 of the 1 040 tasks moved, by at most 0.45 points (0.09x
# the 5-point tolerance, so no score changes).
FIT_FAMILIES = frozenset({"load_forecast"})
FIT_DRIFT = 0.2  # x the answer's tolerance: within it a fitted answer that differs is drift, beyond it an error


def fit_drift(task: Task, recomputed: AnswerSpec) -> bool:
    """Whether ``recomputed`` differs from the stored answer only as much as a fit on another CPU can."""
    stored = task.answer
    return (task.family in FIT_FAMILIES and stored.kind == recomputed.kind == "number"
            and abs(stored.value - recomputed.value) <= FIT_DRIFT * stored.tolerance)


def verify_task(task: Task, drift: list[str] | None = None) -> list[str]:
    """Recompute the answer, reference plan and faults from the task's own state; list the disagreements. With a
    ``drift`` list, a fitted answer that differs within :data:`FIT_DRIFT` goes there instead (see FIT_FAMILIES)."""
    fam = family(task.family)
    problems = []
    try:
        answer = fam.solve(task.state, task.params)
        plan = fam.plan(task.state, task.params, task.observation)
    except (KeyError, ValueError, TypeError) as exc:
        return [f"cannot recompute from state: {type(exc).__name__}: {exc}"]
    mismatch = _answers_agree(task.answer, answer)
    if mismatch and drift is not None and fit_drift(task, answer):
        drift.append(mismatch)
    elif mismatch:
        problems.append(mismatch)
    stored_plan = [c.model_dump() for c in task.reference_plan]
    if stored_plan != [c.model_dump() for c in plan]:
        problems.append(f"reference plan differs from the recomputed plan {[c.model_dump() for c in plan]}")
    if [f.model_dump() for f in task.faults] != [f.model_dump() for f in fam.faults(task.params)]:
        problems.append("faults differ from the family's faults for these parameters")
    return problems


@dataclass
class CheckReport:
    path: str
    count: int = 0
    families: dict[str, int] = field(default_factory=dict)
    errors: list[LineError] = field(default_factory=list)
    drift: list[LineError] = field(default_factory=list)  # fitted answers this CPU lands elsewhere (FIT_DRIFT)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_file(path: Path | str, progress: Callable[[Iterable], Iterable] = iter) -> CheckReport:
    """Validate a task file line by line and recompute every answer from its state."""
    tasks, errors = read_tasks(path)
    report = CheckReport(path=str(path), errors=errors)
    for number, task in progress(tasks):
        report.count += 1
        report.families[task.family] = report.families.get(task.family, 0) + 1
        drift: list[str] = []
        report.errors.extend(LineError(number, f"{task.id}: {p}") for p in verify_task(task, drift))
        report.drift.extend(LineError(number, f"{task.id}: {p}") for p in drift)
    report.errors.sort(key=lambda e: e.line)
    return report
