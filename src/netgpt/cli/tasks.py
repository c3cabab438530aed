"""``netgpt tasks …`` and ``netgpt agent call``: task files and single agent calls from the shell."""

from __future__ import annotations

import json
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from netgpt.cli.common import console, file_argument, progress_bar, task_file_errors, tracked
from netgpt.protocol import AgentRegistry, FaultConfig, Request
from netgpt.tasks import Task, check_file, generate, load_tasks
from netgpt.tasks.families import family as get_family

tasks_app = typer.Typer(help="NetGPT-Bench task files: sample, build, inspect and verify.", no_args_is_help=True)
agent_app = typer.Typer(help="Talk to one agent from the shell.", no_args_is_help=True)


@tasks_app.command("sample")
def tasks_sample(
    family: Annotated[str | None, typer.Option(help="family name; all families round-robin if omitted")] = None,
    n: Annotated[int, typer.Option(min=1)] = 5,
    seed: Annotated[int, typer.Option()] = 0,
    split: Annotated[str, typer.Option(help="train (in-distribution) or ood (held-out templates/ranges)")] = "train",
    start: Annotated[int, typer.Option(min=0, help="index of the first task: --split train --seed S --start K prints "
                                               "the training stream of seed S from position K")] = 0,
) -> None:
    """Print N generated tasks as JSONL on stdout."""
    if split not in ("train", "ood"):
        raise typer.BadParameter("split must be train or ood", param_hint="--split")
    families = [get_family(family).name] if family else None
    for task in generate.generate_split(split, n, seed, families, start):
        sys.stdout.write(generate.task_line(task))


@tasks_app.command("missed")
def tasks_missed(
    run: Annotated[Path, typer.Argument(help="a finished `netgpt eval` run on training-stream tasks")],
    out: Annotated[Path, typer.Option(help="JSONL of the tasks it answered wrong (RL's task_pool.file)")],
) -> None:
    """Write the tasks a policy answered wrong in an eval run: the pool RL replays (configs' task_pool)."""
    from netgpt.rl.task_pool import TaskPoolError, missed_tasks  # the netgpt.rl package imports torch

    try:
        tasks = missed_tasks(run)
    except TaskPoolError as err:
        raise typer.BadParameter(str(err), param_hint="RUN") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(generate.task_line(t) for t in tasks))
    per_family = " ".join(f"{name}:{n}" for name, n in sorted(Counter(t.family for t in tasks).items()))
    console.print(f"{len(tasks)} missed task(s) → {out} ({per_family or 'none'})")


@tasks_app.command("build")
def tasks_build(out: Annotated[Path, typer.Option(help="directory for dev/test/ood JSONL and manifest")] = Path(
        "data/bench")) -> None:
    """Regenerate the committed dev (200), test (600) and ood splits and their manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifests = []
    with progress_bar() as progress:
        for split, size in generate.SPLIT_SIZES.items():
            seed = generate.SPLIT_SEEDS[split]
            tasks = list(tracked(progress, generate.generate_split(split, size, seed), f"{split:>4}", size))
            manifests.append(generate.write_split(out / f"{split}.jsonl", tasks, split, seed))
    path = generate.write_manifest(out, manifests)
    console.print(f"wrote {', '.join(m.file for m in manifests)} and {path}")


@tasks_app.command("stats")
def tasks_stats(file: Annotated[Path, typer.Argument(callback=file_argument)]) -> None:
    """Counts per family, variant, observability, difficulty and plan length."""
    with task_file_errors():
        tasks = load_tasks(file)
    table = Table(title=f"{file}: {len(tasks)} tasks")
    for col in ("family", "tasks", "variants", "observability", "difficulty", "calls (mean)", "no-call tasks"):
        table.add_column(col)
    by_family: dict[str, list] = {}
    for t in tasks:
        by_family.setdefault(t.family, []).append(t)
    for name, group in by_family.items():
        calls = [len(t.reference_plan) for t in group]
        table.add_row(name, str(len(group)), _counts(t.params.variant for t in group),
                      _counts(t.observability for t in group), _counts(t.difficulty for t in group),
                      f"{sum(calls) / len(calls):.2f}", str(calls.count(0)))
    Console().print(table)


def _counts(values) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(Counter(values).items()))


@tasks_app.command("check")
def tasks_check(file: Annotated[Path, typer.Argument(callback=file_argument)]) -> None:
    """Validate every line and recompute every answer and reference plan from the task's state."""
    with progress_bar() as progress:
        report = check_file(file, progress=lambda items: tracked(progress, items, "checking"))
    for note in report.drift:
        console.print(f"[yellow]{file}:{note.line}[/]: {note.message} (within the fit's CPU drift)", highlight=False)
    if report.drift:
        console.print(f"[yellow]note[/]: {len(report.drift)} forecast answer(s) land elsewhere on this CPU: the "
                      "Holt-Winters fit stops on its evaluation budget, and its path follows the BLAS kernels")
    if not report.ok:
        for error in report.errors:
            console.print(f"[red]{file}:{error.line}[/]: {error.message}", highlight=False)
        console.print(f"[red]FAILED[/]: {len(report.errors)} problem(s) in {file}")
        raise typer.Exit(1)
    per_family = " ".join(f"{name}:{n}" for name, n in sorted(report.families.items()))
    console.print(f"[green]OK[/]: {report.count} tasks over {len(report.families)} families ({per_family})")


@tasks_app.command("schema")
def tasks_schema() -> None:
    """Print the JSON Schema of a task."""
    sys.stdout.write(json.dumps(Task.model_json_schema(), indent=2) + "\n")


class FaultsMode(StrEnum):
    OFF = "off"
    CONFIG = "config"


@agent_app.command("call")
def agent_call(
    agent: Annotated[str, typer.Argument(help="agent name, e.g. phy")],
    skill: Annotated[str, typer.Argument(help="skill name, e.g. tbs")],
    args: Annotated[str, typer.Option("--args", help="arguments as a JSON object")] = "{}",
    task_file: Annotated[Path | None, typer.Option(help="JSONL task file whose task state the call reads")] = None,
    task_id: Annotated[str | None, typer.Option(help="id of the task in --task-file")] = None,
    config: Annotated[Path | None, typer.Option(help="agents YAML (default: built-in agents in-process)")] = None,
    faults: Annotated[FaultsMode, typer.Option(help="off: exact, no random faults; config: the fault model")] = (
        FaultsMode.OFF),
) -> None:
    """Send one request and print its Reply as JSON (exit 0 when ok, 1 with the error code otherwise)."""
    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--args") from None
    if not isinstance(arguments, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--args")
    if (task_file is None) != (task_id is None):
        raise typer.BadParameter("--task-file and --task-id go together")
    fault_config = None if faults is FaultsMode.CONFIG else FaultConfig(simulate=False)
    with AgentRegistry.from_config(config, faults=fault_config) as registry:
        session = None
        if task_file is not None:
            with task_file_errors():
                tasks = load_tasks(task_file)
            task = next((t for t in tasks if t.id == task_id), None)
            if task is None:
                raise typer.BadParameter(f"no task {task_id!r} in {task_file}", param_hint="--task-id")
            session = "cli"
            registry.open_session(session, task.state, task.faults)
        reply = registry.call(Request(id="cli-1", agent=agent, skill=skill, args=arguments, session=session))
    sys.stdout.write(reply.model_dump_json(indent=2) + "\n")
    if not reply.ok:
        console.print(f"[red]{reply.error.code}[/]: {reply.error.message}")
        raise typer.Exit(1)
