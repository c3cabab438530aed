"""``netgpt eval``, ``compare``, ``errors`` and ``bench``: evaluation runs and what is read from them. Each command
parses its options into the library's objects (:class:`~netgpt.eval.run.EvalRun`) and prints what they return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from netgpt.cli.common import console, load_config, progress_bar, status, task_file_errors
from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.core.episode import EpisodeConfig
from netgpt.core.factory import PolicySpec, UnknownPolicyError
from netgpt.eval.errors import ERROR_KINDS, analyse_runs, fields_table, kinds_table
from netgpt.eval.harness import InfraErrorThresholdExceeded, load_aggregate, load_episode_scores
from netgpt.eval.report import family_table, paired_difference, paired_table, summary_table
from netgpt.eval.run import Backend, EvalListener, EvalRun, EvalSetupError
from netgpt.protocol.config import builtin_faults
from netgpt.protocol.faults import FaultConfig


def eval_command(
    policy: Annotated[str, typer.Option(help="prompt | never | always | oracle | random | CHECKPOINT_DIR")],
    split: Annotated[str, typer.Option(help="dev | test | ood | path to a JSONL task file")] = "dev",
    limit: Annotated[int | None, typer.Option(min=1, help="first N tasks only")] = None,
    model: Annotated[str | None, typer.Option(help="transformers model id or path (default: SmolLM2-135M)")] = None,
    faults: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                help="fault model YAML (default: configs/faults.yaml values)")] = None,
    agents: Annotated[Path | None, typer.Option(help="agents YAML (default: built-in agents in-process)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the fault model and of the random policy")] = 0,
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<policy>-<split>)")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 | float16")] = "float32",
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    max_new_tokens: Annotated[int, typer.Option(min=8, help="tokens the core may generate per turn")] = MAX_NEW_TOKENS,
    max_turns: Annotated[int, typer.Option(min=1)] = 4,
    backend: Annotated[Backend, typer.Option(help="local: this process; processes: rollout workers as local "
                                                  "processes; ray: rollout workers as Ray actors")] = Backend.LOCAL,
    workers: Annotated[int, typer.Option(min=1, help="rollout workers (--backend processes | ray)")] = 2,
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster (default: a local one)")] = None,
    resume: Annotated[bool, typer.Option(help="keep the episodes a run with the same settings already finished in "
                                              "--out (a killed run, or one on fewer tasks) and run only the rest")
                      ] = False,
) -> None:
    """Run a policy over a split: results.json, results.md, plots and run.json in the run directory."""
    run = EvalRun(
        policy=PolicySpec(name=policy, model=model, device=device, dtype=dtype, max_new_tokens=max_new_tokens),
        split=split, limit=limit, out=out, agents=agents,
        faults=load_config(FaultConfig.load, faults, "--faults") if faults else builtin_faults(),
        episode=EpisodeConfig(max_turns=max_turns), seed=seed, batch_size=batch_size, backend=backend,
        workers=workers, ray_address=ray_address, resume=resume)
    label = f"{run.policy.display_name} on {split}"
    with progress_bar() as progress, task_file_errors():
        bar = progress.add_task(label)
        listener = EvalListener(
            status=status, start=lambda total, kept: progress.update(bar, total=total, completed=kept),
            episode=lambda score: progress.update(bar, advance=1, description=f"{label}: score {score:.3f}"))
        try:
            outcome = run.run(listener)
        except UnknownPolicyError as err:
            raise typer.BadParameter(str(err), param_hint="--policy") from None
        except EvalSetupError as err:
            raise typer.BadParameter(str(err), param_hint=err.option) from None
        except InfraErrorThresholdExceeded as err:  # the run directory is written: resume re-runs those episodes
            console.print(f"[red]{escape(str(err))}")
            raise typer.Exit(1) from None
    Console().print(summary_table([outcome.aggregate]))
    kept = f" ({outcome.kept} kept from the earlier run)" if outcome.kept else ""
    console.print(f"{outcome.ran} tasks in {outcome.record.wall_s:.1f} s{kept} → {outcome.out}")


def compare_command(runs: Annotated[list[Path], typer.Argument(help="run directories")]) -> None:
    """Side-by-side tables of several runs, and each run against the first on the tasks both ran (paired
    difference of per-task scores with a bootstrap 95 % CI)."""
    aggs = []
    for run in runs:
        if not (run / "results.json").is_file():
            raise typer.BadParameter(f"{run} has no results.json")
        aggs.append(load_aggregate(run))
    text = summary_table(aggs) + "\n\n" + family_table(aggs)
    if len(runs) > 1:
        names = [str(run) for run in runs]  # policies can share a name (two checkpoints): the folder tells them apart
        try:
            diffs = [paired_difference(names[0], load_episode_scores(runs[0], term), name,
                                       load_episode_scores(run, term), metric)
                     for name, run in zip(names[1:], runs[1:])
                     for metric, term in (("score", "total"), ("accuracy", "quality"))]
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        text += "\n\n" + paired_table(diffs)
    Console().print(text, markup=False)


def errors_command(
    runs: Annotated[list[Path], typer.Argument(help="run directories (netgpt eval --out)")],
    top: Annotated[int, typer.Option(min=1, help="most often wrong arguments listed per run")] = 8,
    out: Annotated[Path | None, typer.Option(help="also write errors.json (every diagnosis) and errors.md here")
                   ] = None,
) -> None:
    """Why answers were wrong: each episode of each run lined up with its task's reference plan."""
    for run in runs:
        if not (run / "results.json").is_file() or not (run / "run.json").is_file():
            raise typer.BadParameter(f"{run} is not an evaluation run (results.json and run.json)")
    try:
        names = [run.name for run in runs]  # a run is named by its folder, by its path where two folders share a name
        analysed = analyse_runs({run.name if names.count(run.name) == 1 else str(run): run for run in runs})
    except (ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from None
    legend = "\n".join(f"- {kind}: {text}" for kind, text in ERROR_KINDS.items())
    report = (f"# Error analysis against the reference plans\n\n{kinds_table(analysed)}\n\n{legend}\n\n"
              + "\n\n".join(f"## {r.name}: wrong arguments\n\n{fields_table(r, top)}" for r in analysed if r.fields))
    Console().print(report, markup=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "errors.md").write_text(report + "\n")
        (out / "errors.json").write_text(json.dumps([r.model_dump() for r in analysed]) + "\n")


def bench_command(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="bench YAML")] = Path(
        "configs/bench-cpu.yaml"),
    dry_run: Annotated[bool, typer.Option(help="list the stages and whether each is done; run nothing")] = False,
    summarise_only: Annotated[bool, typer.Option(help="only rebuild results/benchmark.* from finished stages")] = False,
) -> None:
    """The headline benchmark: baselines, SFT(teacher), SFT(oracle), RL seeds; finished stages are skipped."""
    from netgpt.eval.bench import BenchConfig, needed, plan, run_stages, summarise  # reads RL configs: torch

    cfg = load_config(BenchConfig.load, config)
    stages = plan(cfg)
    if dry_run:
        todo = needed(stages)
        for stage in stages:
            state = "todo" if stage.name in todo else "done" if stage.done() else "skip"
            console.print(f"[{state}] {stage.name}: {' '.join(stage.command[2:])}", markup=False)
        return
    failed = [] if summarise_only else run_stages(stages, cfg.runs / "bench.log",
                                                  lambda m: console.print(m, markup=False))
    summary = summarise(cfg)
    Console().print((Path("results") / "benchmark.md").read_text(), markup=False)
    console.print(f"policies measured on test: {', '.join(k for k in summary['splits'].get('test', {}))}")
    if failed:
        raise typer.Exit(f"failed stages: {', '.join(failed)}")
