"""The scripted baselines over the 600 test tasks: one process against worker processes (issue target: ≤ 10 s).

For each policy and backend this runs the real command, ``netgpt eval --policy P --split test [--backend processes
--workers N]``, as a subprocess, ``--repeats`` times, back to back. It records three times: the episodes (``wall_s``
in run.json, from the first episode to the last), the start-up before them (``startup_s``: tasks, registry, policy,
and for processes the workers), and the whole command (Python start, plots and files included). It checks that every
backend writes the same ``results.json`` and episodes as the local run.

    .venv/bin/python benchmarks/bench_scripted.py --out results/bench_scripted

writes ``bench_scripted.json``, ``bench_scripted.md`` and ``bench_scripted.png``. Run it on an idle machine.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
from rich.progress import Progress

from netgpt.eval.harness import load_episodes
from netgpt.rundir import environment_info

TARGET_S = 10.0
NETGPT = str(Path(sys.executable).with_name("netgpt"))


def run_eval(policy: str, backend: str, workers: int, out: Path) -> dict:
    command = [NETGPT, "eval", "--policy", policy, "--split", "test", "--out", str(out)]
    if backend != "local":
        command += ["--backend", backend, "--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    whole = time.perf_counter() - start
    run = json.loads((out / "run.json").read_text())
    aggregate = json.loads((out / "results.json").read_text())["aggregate"]
    return {"command": " ".join(["netgpt", *command[1:-2]]), "episodes_s": run["wall_s"],
            "startup_s": run["startup_s"], "command_s": whole, "score": aggregate["score"], "n": aggregate["n"]}


def main(out: Path = typer.Option(Path("results/bench_scripted")),
         policies: list[str] = typer.Option(["oracle", "always", "random"], "--policy"),
         workers: int = typer.Option(2, help="worker processes (this machine has 2 cores)"),
         repeats: int = typer.Option(3, min=1)) -> None:
    backends = [("local", 1), ("processes", workers)]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch, Progress() as progress:
        bar = progress.add_task("scripted evals", total=len(policies) * len(backends) * repeats)
        for policy in policies:
            for repeat in range(repeats):
                results = {}
                for backend, n in backends:
                    run_dir = Path(scratch) / f"{policy}-{backend}-{repeat}"
                    runs.append({"policy": policy, "backend": backend, "workers": n, "repeat": repeat,
                                 **run_eval(policy, backend, n, run_dir)})
                    results[backend] = (json.loads((run_dir / "results.json").read_text()), load_episodes(run_dir))
                    progress.advance(bar)
                if any(r != results["local"] for r in results.values()):
                    raise SystemExit(f"{policy}: a backend's results.json or episodes differ from the local run's")
    rows = []
    for policy in policies:
        for backend, n in backends:
            mine = [r for r in runs if r["policy"] == policy and r["backend"] == backend]
            rows.append({"policy": policy, "backend": backend, "workers": n, "score": mine[0]["score"],
                         **{f"{key}_median": statistics.median(r[key] for r in mine)
                            for key in ("episodes_s", "startup_s", "command_s")}})
    for row in rows:
        local = next(r for r in rows if r["policy"] == row["policy"] and r["backend"] == "local")
        row["episodes_speedup"] = local["episodes_s_median"] / row["episodes_s_median"]
    result = {"what": __doc__.split("\n\n")[0], "target_s": TARGET_S, "repeats": repeats, "rows": rows, "runs": runs,
              "same_results_json_as_local": True, "machine": platform.machine(), "environment": environment_info(),
              "command": f"python benchmarks/bench_scripted.py --out {out}"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_scripted.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Scripted baselines over the 600 test tasks (median of {repeats}, back to back)", "",
             f"Target: ≤ {TARGET_S:.0f} s. `episodes` is run.json's `wall_s`; `start-up` is what comes before the "
             "first episode; `command` is the whole `netgpt eval` (Python start, plots and files included). Every "
             "backend wrote the local run's `results.json`.", "",
             "| policy | backend | score | episodes (s) | × local | start-up (s) | command (s) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['policy']} | {r['backend']}{'' if r['workers'] == 1 else ' ×' + str(r['workers'])} | "
              f"{r['score']:.3f} | {r['episodes_s_median']:.1f} | {r['episodes_speedup']:.2f} | "
              f"{r['startup_s_median']:.1f} | {r['command_s_median']:.1f} |" for r in rows]
    lines += ["", f"Command: `{result['command']}`"]
    (out / "bench_scripted.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "bench_scripted.png")
    print("\n".join(lines))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['policy']}\n{r['backend']}" for r in rows]
    episodes = [r["episodes_s_median"] for r in rows]
    startup = [r["startup_s_median"] for r in rows]
    ax.bar(labels, episodes, label="episodes")
    ax.bar(labels, startup, bottom=episodes, label="start-up", alpha=0.5)
    ax.axhline(TARGET_S, color="red", linestyle="--", label=f"target {TARGET_S:.0f} s")
    ax.set_ylabel("seconds (median)")
    ax.set_title("Scripted baselines, 600 test tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    typer.run(main)
