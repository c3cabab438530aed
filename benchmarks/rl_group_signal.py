"""Where an RL run's groups carry signal: per task family, from the run's ``rollouts.jsonl``.

A group is the G rollouts (plus any entropy-guided forks) of one training task. With group-relative advantages a
group whose rollouts all score the same quality only separates them by cost, so what RL can learn about answering
right comes from the groups whose rollouts differ in quality. For each family this counts the groups, the groups
with such a spread, and the rollouts that are right (quality 1), over all the runs given:

    .venv/bin/python benchmarks/rl_group_signal.py runs/bench/rl-s0 runs/bench/rl-s1 runs/bench/rl-s2

``--steps N`` counts only steps 0 to N-1, so a 30-step run lines up with a 15-step one.

Committed runs have the same file under ``results/bench/training/rl-s*``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

RIGHT = 1.0 - 1e-9
COUNTS = ("groups", "spread", "rollouts", "right")


def family_signal(rollouts: Path, steps: int | None = None) -> dict[str, dict[str, int]]:
    """Per family: ``groups``, ``spread`` (groups whose rollouts differ in quality), ``rollouts`` and ``right``,
    over the first ``steps`` steps (all when None)."""
    groups: dict[tuple[int, int, int], list[float]] = defaultdict(list)
    families: dict[tuple[int, int, int], str] = {}
    with rollouts.open() as f:
        for line in f:
            r = json.loads(line)
            if steps is not None and r["step"] >= steps:
                continue
            key = (r["step"], r.get("process", 0), r["group"])  # group numbers are per process; older logs have one
            groups[key].append(r["reward_terms"]["quality"])
            families[key] = r["family"]
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for key, quality in groups.items():
        row = out[families[key]]
        row["groups"] += 1
        row["spread"] += len(set(quality)) > 1
        row["rollouts"] += len(quality)
        row["right"] += sum(q >= RIGHT for q in quality)
    return dict(out)


def main(
    runs: list[Path] = typer.Argument(..., help="RL run directories, each with rollouts.jsonl"),
    steps: int | None = typer.Option(None, min=1, help="count only the first N steps"),
) -> None:
    per_run = {run: family_signal(run / "rollouts.jsonl", steps) for run in runs}
    families = sorted({f for signal in per_run.values() for f in signal})
    table = Table(title="groups with a quality spread / groups; right / rollouts")
    table.add_column("family")
    for run in runs:
        table.add_column(run.name, justify="right")
    for fam in families + ["all"]:
        cells = []
        for signal in per_run.values():
            rows = list(signal.values()) if fam == "all" else [signal[fam]] if fam in signal else []
            total = {k: sum(r[k] for r in rows) for k in COUNTS}
            cells.append(f"{total['spread']}/{total['groups']}; {total['right']}/{total['rollouts']}")
        table.add_row(fam, *cells)
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
