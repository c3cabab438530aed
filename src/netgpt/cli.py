"""The ``netgpt`` command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from netgpt.protocol.cli import agents_app

app = typer.Typer(help="NetGPT: an LLM core and its network agents, and the NetGPT-Bench benchmark.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
tasks_app = typer.Typer(help="NetGPT-Bench task files: sample, build, inspect and verify.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(agents_app, name="agents")
agent_app = typer.Typer(help="Talk to one agent from the shell.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _tracked(progress: Progress, items, description: str, total: int | None = None):
    return progress.track(items, description=description, total=total if total is not None else len(items))


@tasks_app.command("sample")
def tasks_sample(
    family: Annotated[str | None, typer.Option(help="family name; all families round-robin if omitted")] = None,
    n: Annotated[int, typer.Option(min=1)] = 5,
    seed: Annotated[int, typer.Option()] = 0,
    split: Annotated[str, typer.Option(help="train (in-distribution) or ood (held-out templates/ranges)")] = "train",
) -> None:
    """Print N generated tasks as JSONL on stdout."""
    from netgpt.tasks import generate
    from netgpt.tasks.families import family as get_family

    if split not in ("train", "ood"):
        raise typer.BadParameter("split must be train or ood", param_hint="--split")
    families = [get_family(family).name] if family else None
    for task in generate.generate_split(split, n, seed, families):
        sys.stdout.write(generate.task_line(task))


@tasks_app.command("build")
def tasks_build(out: Annotated[Path, typer.Option(help="directory for dev/test/ood JSONL and manifest")] = Path(
        "data/bench")) -> None:
    """Regenerate the committed dev (200), test (600) and ood splits and their manifest."""
    from netgpt.tasks import generate

    out.mkdir(parents=True, exist_ok=True)
    manifests = []
    with _progress() as progress:
        for split, size in generate.SPLIT_SIZES.items():
            seed = generate.SPLIT_SEEDS[split]
            tasks = list(_tracked(progress, generate.generate_split(split, size, seed), f"{split:>4}", size))
            manifests.append(generate.write_split(out / f"{split}.jsonl", tasks, split, seed))
    path = generate.write_manifest(out, manifests)
    console.print(f"wrote {', '.join(m.file for m in manifests)} and {path}")


def _file_argument(path: Path) -> Path:
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}")
    return path


@tasks_app.command("stats")
def tasks_stats(file: Annotated[Path, typer.Argument(callback=_file_argument)]) -> None:
    """Counts per family, variant, observability, difficulty and plan length."""
    from netgpt.tasks import TaskFileError, load_tasks

    try:
        tasks = load_tasks(file)
    except TaskFileError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"{file}: {len(tasks)} tasks")
    for col in ("family", "tasks", "variants", "observability", "difficulty", "calls (mean)", "no-call tasks"):
        table.add_column(col)
    by_family: dict[str, list] = {}
    for t in tasks:
        by_family.setdefault(t.family, []).append(t)
    for name, group in by_family.items():
        calls = [len(t.reference_plan) for t in group]
        table.add_row(name, str(len(group)), _counts(t.params["variant"] for t in group),
                      _counts(t.observability for t in group), _counts(t.difficulty for t in group),
                      f"{sum(calls) / len(calls):.2f}", str(calls.count(0)))
    Console().print(table)


def _counts(values) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(Counter(values).items()))


@tasks_app.command("check")
def tasks_check(file: Annotated[Path, typer.Argument(callback=_file_argument)]) -> None:
    """Validate every line and recompute every answer and reference plan from the task's state."""
    from netgpt.tasks import check_file

    with _progress() as progress:
        report = check_file(file, progress=lambda items: _tracked(progress, items, "checking"))
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
    from netgpt.tasks import Task

    sys.stdout.write(json.dumps(Task.model_json_schema(), indent=2) + "\n")


class FaultsMode(str, Enum):
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
    from netgpt.protocol import AgentRegistry, FaultConfig, Request
    from netgpt.tasks import load_tasks

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
            task = next((t for t in load_tasks(task_file) if t.id == task_id), None)
            if task is None:
                raise typer.BadParameter(f"no task {task_id!r} in {task_file}", param_hint="--task-id")
            session = "cli"
            registry.open_session(session, task.state, task.faults)
        reply = registry.call(Request(id="cli-1", agent=agent, skill=skill, args=arguments, session=session))
    sys.stdout.write(reply.model_dump_json(indent=2) + "\n")
    if not reply.ok:
        console.print(f"[red]{reply.error.code}[/]: {reply.error.message}")
        raise typer.Exit(1)


@app.command("demo")
def demo(seed: Annotated[int, typer.Option()] = 0) -> None:
    """Show one generated task per family with the oracle's plan and the answer it computes."""
    from netgpt.tasks import FAMILIES, make_task

    out = Console()
    out.rule("[bold]NetGPT-Bench: one task per family, solved by the oracle plan")
    with _progress() as progress:
        tasks = [make_task(fam, "train", seed, i)
                 for i, fam in enumerate(_tracked(progress, list(FAMILIES.values()), "generating"))]
    for task in tasks:
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_row("[bold]question", task.question)
        table.add_row("observation", f"{task.observability}: {_observation_summary(task)}")
        plan = "\n".join(_call_text(c) for c in task.reference_plan) or "(answer from the observation, no call)"
        table.add_row("oracle plan", plan)
        if task.faults:
            table.add_row("faults", ", ".join(f"{f.agent}: first {f.calls} call(s) {f.code}" for f in task.faults))
        table.add_row("[bold]answer", f"[green]{task.answer.display()}[/]"
                      + (f"  (± {task.answer.tolerance:g})" if task.answer.tolerance else ""))
        out.rule(f"{task.family} · {task.difficulty} · {task.id}", style="dim")
        out.print(table)


def _call_text(call) -> str:
    args = json.dumps(call.args, separators=(",", ":"))
    failed = f"  → fails ({call.expect_error}), retry" if call.expect_error else ""
    return f"{call.agent}.{call.skill}({args}){failed}"


def _observation_summary(task) -> str:
    obs = task.observation
    parts = [obs.time, f"{len(obs.cells)} cells"]
    if obs.carrier:
        parts.append(", ".join(f"{k}={v}" for k, v in obs.carrier.items()))
    parts += [f"{r.kind} report on {r.subject} ({r.age_min:g} min old)" for r in obs.reports[:2]]
    if len(obs.reports) > 2:
        parts.append(f"+{len(obs.reports) - 2} more reports")
    return "; ".join(parts)


if __name__ == "__main__":
    app()
