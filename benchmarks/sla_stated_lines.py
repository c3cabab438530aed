"""Audit the stated SLA lines of evaluation runs: where between the agent's reply and the verdict a stated core goes
wrong on sla_check.

A core trained with ``state_steps`` writes, before its sla_check answer, the line ``SlaCheck.thought`` teaches:
"0057.783 Mbps achievable, 0069.300 Mbps needed; 0=0, 0=0, 5<6: not enough." Each answer is put in the first
stage it fails:

- ``no line``: no line of that form before the answer;
- ``copy``: the padded numbers are not the last throughput reply's rate and the task's target;
- ``walk``: the numbers are right but the digit walk is not ``compare_digits`` of them;
- ``verdict``: the walk is right but "enough" / "not enough" disagrees with its last sign;
- ``answer``: the line is right but the answer tag disagrees with it;
- ``right``: every stage agrees (the answer is then correct).

    .venv/bin/python benchmarks/sla_stated_lines.py results/ablations/sft-stated-v3/dev results/.../test

prints one table row per run (counts of sla_check answers per stage).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from netgpt.eval.harness import split_file
from netgpt.tasks.families import compare_digits
from netgpt.tasks.io import load_tasks

STAGES = ("right", "no line", "copy", "walk", "verdict", "answer")
LINE = re.compile(r"(\d+\.\d{3}) Mbps achievable, (\d+\.\d{3}) Mbps needed; (.+): (enough|not enough)\.")


def stage_of(episode: dict, target_mbps: float) -> str:
    """The first stage at which one sla_check episode's stated line departs from what the oracle would write."""
    answer = next((e for e in episode["events"] if e["kind"] == "answer"), None)
    rates = [e["result"]["rate_mbps"] for e in episode["events"]
             if e["kind"] == "call" and e["ok"] and e["skill"] == "throughput"]
    line = LINE.fullmatch(answer["text"].rpartition("\n")[0].strip()) if answer else None
    if line is None or not rates:
        return "no line"
    stated_rate, stated_target, walk, verdict = line.groups()
    if (stated_rate, stated_target) != compare_digits(rates[-1], target_mbps)[:2]:
        return "copy"
    if walk != compare_digits(float(stated_rate), float(stated_target))[2]:
        return "walk"
    if (verdict == "enough") != (walk.split(", ")[-1][1] in "=>"):
        return "verdict"
    if episode["answer"] != ("yes" if verdict == "enough" else "no"):
        return "answer"
    return "right"


def main(runs: list[Path] = typer.Argument(..., help="evaluation run directories (results.json, run.json)")) -> None:
    table = Table("run", "sla_check", *STAGES, "says yes")
    for run in runs:
        split = json.loads((run / "run.json").read_text())["split"]
        targets = {t.id: t.params["target_mbps"] for t in load_tasks(split_file(split)) if t.family == "sla_check"}
        episodes = [e for e in json.loads((run / "results.json").read_text())["episodes"] if e["family"] == "sla_check"]
        stages = Counter(stage_of(e, targets[e["task_id"]]) for e in episodes)
        table.add_row(str(run), str(len(episodes)), *(str(stages[s]) for s in STAGES),
                      str(sum(e["answer"] == "yes" for e in episodes)))
    Console(width=160).print(table)


if __name__ == "__main__":
    typer.run(main)
