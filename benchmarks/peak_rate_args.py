"""Audit the arguments of evaluation runs' peak_rate calls against the oracle's, one argument at a time.

The TS 38.306 §4.1.2 rate of a task is a product of six numbers the core writes into one call: the layers, the
scaling factor and Q_m come from the question (Q_m sometimes as a modulation name), N_PRB from the knowledge agent's
reply, and mu (from the SCS) and the overhead (from FR and direction) from tables the core has to know. Any one wrong
scores the task 0. For each run this counts the peak_rate episodes with a call, how many carry each argument right,
and, for cores trained with the stated line ``PeakRate.thought`` ("30 kHz SCS is mu = 1; 256QAM is Q_m = 8; FR1
downlink overhead is 0.14."), how often the line's value for mu, Q_m and overhead is itself right and how often the
call disagrees with its own line: a wrong line is a recall error, a right line with a wrong call is a copy error.

    .venv/bin/python benchmarks/peak_rate_args.py results/bench/sft_oracle-test results/.../dev

prints one table row per run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from netgpt.eval.harness import split_file
from netgpt.tasks.families import family
from netgpt.tasks.io import load_tasks

ARGS = ("layers", "scaling", "qm", "n_prb", "mu", "overhead")
LINE = re.compile(r"SCS is mu = (\S+); .* is Q_m = (\S+); .* overhead is (\S+)\.")
STATED = ("mu", "qm", "overhead")


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return False


def audit(episode: dict, params: dict) -> dict[str, bool] | None:
    """Per argument whether the last peak_rate call has the oracle's value; ``line_<arg>`` whether the stated line
    has it and ``copied_<arg>`` whether the call repeats the line's value (absent without a line). None without a
    call."""
    calls = [e for e in episode["events"] if e["kind"] == "call" and e["skill"] == "peak_rate" and e["args"]]
    if not calls:
        return None
    call = calls[-1]
    oracle = family("peak_rate")._rate_args(params)
    row = {k: _same(call["args"].get(k), oracle[k]) for k in ARGS}
    line = LINE.search(call["text"].rpartition("\n")[0])
    if line:
        for k, stated in zip(STATED, line.groups()):
            row[f"line_{k}"] = _same(stated, oracle[k])
            row[f"copied_{k}"] = _same(stated, call["args"].get(k))
    return row


def main(runs: list[Path] = typer.Argument(..., help="evaluation run directories (results.json, run.json)")) -> None:
    table = Table("run", "peak_rate", "called", "all right", *ARGS, "lines",
                  *(f"line {k}" for k in STATED), "call = line")
    for run in runs:
        split = json.loads((run / "run.json").read_text())["split"]
        params = {t.id: t.params for t in load_tasks(split_file(split)) if t.family == "peak_rate"}
        episodes = [e for e in json.loads((run / "results.json").read_text())["episodes"]
                    if e["family"] == "peak_rate"]
        rows = [r for r in (audit(e, params[e["task_id"]]) for e in episodes) if r is not None]
        lined = [r for r in rows if "line_mu" in r]
        table.add_row(str(run), str(len(episodes)), str(len(rows)), str(sum(all(r[k] for k in ARGS) for r in rows)),
                      *(str(sum(r[k] for r in rows)) for k in ARGS), str(len(lined)),
                      *(str(sum(r[f"line_{k}"] for r in lined)) for k in STATED),
                      str(sum(all(r[f"copied_{k}"] for k in STATED) for r in lined)))
    Console(width=200).print(table)


if __name__ == "__main__":
    typer.run(main)
