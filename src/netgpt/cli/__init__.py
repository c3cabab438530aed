"""The ``netgpt`` command line: each command parses its options and hands them to the library.

Commands live per group (:mod:`.tasks`, :mod:`.eval`, :mod:`.train`); this module only assembles them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from netgpt.cli.common import console
from netgpt.cli.eval import bench_command, compare_command, errors_command, eval_command
from netgpt.cli.tasks import agent_app, tasks_app
from netgpt.cli.train import model_app, sft_command, soup_command, train_command
from netgpt.demo import run_demo
from netgpt.protocol.cli import agents_app
from netgpt.serve.cli import serve_command

app = typer.Typer(help="NetGPT: an LLM core and its network agents, and the NetGPT-Bench benchmark.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(tasks_app, name="tasks")
app.add_typer(agents_app, name="agents")
app.add_typer(agent_app, name="agent")
app.command("serve")(serve_command)
app.add_typer(model_app, name="model")
app.command("eval")(eval_command)
app.command("sft")(sft_command)
app.command("train")(train_command)
app.command("soup")(soup_command)
app.command("bench")(bench_command)
app.command("compare")(compare_command)
app.command("errors")(errors_command)


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option()] = 0,
    episodes: Annotated[int, typer.Option(min=0, help="tasks run live by the core and the oracle")] = 2,
    model: Annotated[str | None, typer.Option(help="core model (default: SmolLM2-135M-Instruct)")] = None,
) -> None:
    """One task per family with the oracle's plan, then a few tasks run live by the core and the oracle with
    their traces step by step."""
    run_demo(Console(), console, seed, episodes, model)


__all__ = ["app"]
