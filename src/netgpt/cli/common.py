"""What every ``netgpt`` command shares: the console, progress bars, and bad input said as a usage error (exit 2)
rather than a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from netgpt.tasks.io import TaskFileError

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def tracked(progress: Progress, items, description: str, total: int | None = None):
    return progress.track(items, description=description, total=total if total is not None else len(items))


def status(message: str) -> None:
    """Where library code's progress messages (model loading) go."""
    console.print(f"[dim]{message}")


def load_config(load, path: Path, option: str = "--config", **overrides):
    """``load(path, **overrides)`` (a config class's ``load``), with what is wrong in the file or an override said as
    a usage error (exit 2) rather than a traceback: a bad value, an unknown setting, a broken ``extends:``."""
    try:
        return load(path, **overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in err.errors())
        raise typer.BadParameter(f"{path}: {problems}", param_hint=option) from None
    except (ValueError, OSError, yaml.YAMLError) as err:
        raise typer.BadParameter(str(err), param_hint=option) from None


def file_argument(path: Path) -> Path:
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}")
    return path


@contextmanager
def task_file_errors() -> Iterator[None]:
    """A malformed task file ends the command with one line per problem on stderr and exit code 2, no traceback."""
    try:
        yield
    except TaskFileError as err:
        for problem in err.problems:
            console.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
