"""Audit the ``los`` argument of evaluation runs' pathloss calls against the question's LOS/NLOS word.

The TR 38.901 path loss of one link differs by 10–30 dB between LOS and NLOS, so a core that writes the wrong
``"los"`` into its call scores 0 on the task however right the rest is. RL from the v3 stated SFT flipped the token
to false on 10 of 11 LOS dev calls (results/ablations/rl-stated-v3-anchor-0.1-s0). For each run this counts, per
question word, the pathloss episodes whose last pathloss call carries the matching ``los``, and, for cores trained
with the v4 line ``Pathloss.thought`` ("NLOS asked: los is false."), how many calls follow such a line and whether
the line itself copies the question's word.

    .venv/bin/python benchmarks/pathloss_los.py results/ablations/sft-stated-v3/dev results/.../dev

prints one table row per run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from netgpt.eval.harness import load_episodes, split_file
from netgpt.tasks.io import load_tasks

LINE = re.compile(r"(N?LOS) asked: los is (true|false)\.")
WORD = re.compile(r"\b(N?LOS)\b")


def audit(episode: dict, question: str) -> tuple[str, bool | None, str]:
    """(the question's word, whether the last pathloss call's ``los`` matches it or None without a call, the
    stated line's state: "none", "copied" (its word is the question's) or "miscopied")."""
    word = WORD.search(question)[1]
    calls = [e for e in episode["events"] if e["kind"] == "call" and e["skill"] == "pathloss" and e["args"]]
    if not calls:
        return word, None, "none"
    call = calls[-1]
    matches = call["args"].get("los") is (word == "LOS")
    line = LINE.search(call["text"].rpartition("\n")[0])
    return word, matches, "none" if line is None else ("copied" if line[1] == word else "miscopied")


def _right(rows: list[tuple[str, bool | None, str]], word: str) -> str:
    called = [matches for w, matches, _ in rows if w == word and matches is not None]
    return f"{sum(called)}/{len(called)}"


def main(runs: list[Path] = typer.Argument(..., help="evaluation run directories (netgpt eval --out)")) -> None:
    table = Table("run", "pathloss", "LOS: los right", "NLOS: los right", "no call", "line copied", "line miscopied")
    for run in runs:
        split = json.loads((run / "run.json").read_text())["split"]
        questions = {t.id: t.question for t in load_tasks(split_file(split)) if t.family == "pathloss"}
        episodes = [e.model_dump() for e in load_episodes(run) if e.family == "pathloss"]
        rows = [audit(e, questions[e["task_id"]]) for e in episodes]
        table.add_row(str(run), str(len(rows)), _right(rows, "LOS"), _right(rows, "NLOS"),
                      str(sum(m is None for _, m, _ in rows)),
                      str(sum(s == "copied" for *_, s in rows)), str(sum(s == "miscopied" for *_, s in rows)))
    Console(width=160).print(table)


if __name__ == "__main__":
    typer.run(main)
