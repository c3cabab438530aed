"""The headline benchmark: every policy of the paper's comparison on the same fixed splits, from scratch.

Stages (each one a ``netgpt`` command a user can run alone; a stage whose output already exists is skipped, so a
killed bench resumes where it stopped, and so is a training run whose every reader is done; an evaluation on fewer
tasks than the config asks for is continued with ``--resume``, keeping the episodes it has)::

    netgpt eval  --policy oracle|always|random|never|prompt         (baselines)
    netgpt sft   --teacher always  → sft_teacher;  --teacher oracle → sft_oracle
    netgpt train --seed S --model <init>   for each RL seed
    netgpt eval  --policy <each trained model>
    → results/benchmark.json, results/benchmark.md, results/benchmark.png
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.eval.errors import ERROR_KINDS, analyse_runs
from netgpt.eval.harness import Aggregate, aggregate, load_aggregate, load_episodes, split_file
from netgpt.rl.config import RLConfig
from netgpt.yamlconfig import load_yaml

RESULTS = Path("results")
ORDER = ("prompt", "never", "random", "always", "sft_teacher", "sft_oracle", "rl", "oracle")


class SFTStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: Path = Path("configs/sft-cpu.yaml")
    n_tasks: int | None = None


class RLStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: Path = Path("configs/rl-cpu.yaml")
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    init: Literal["sft_oracle", "sft_teacher", "base"] = "sft_oracle"


class EvalStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = 16
    max_new_tokens: int = MAX_NEW_TOKENS


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: Path = Path("runs/bench")
    results: Path = Path("results/bench")
    splits: list[str] = Field(default_factory=lambda: ["test", "ood"])
    limit: int | None = None
    heuristics: list[str] = Field(default_factory=lambda: ["oracle", "always", "random", "never"])
    prompt_baseline: bool = True
    prompt_limit: int | None = Field(None, description="the untrained LLM on the first N tasks only: it rarely stops "
                                                       "before its token limit, so it is the slowest evaluation")
    sft: SFTStage = Field(default_factory=SFTStage)
    rl: RLStage = Field(default_factory=RLStage)
    eval: EvalStage = Field(default_factory=EvalStage)

    @classmethod
    def load(cls, path: Path) -> BenchConfig:
        return cls.model_validate(load_yaml(path))


class Stage(BaseModel):
    name: str
    command: list[str]
    output: Path = Field(description="the stage is done when this file exists")
    n_tasks: int | None = Field(None, description="an evaluation: done when its run holds this many tasks")
    inputs: list[Path] = Field(default_factory=list, description="outputs of the earlier stages this one reads")
    keep: tuple[Path, Path] | None = Field(
        None, description="(training run, folder under results): the run's small files are copied there to be "
                          "committed, since its checkpoints stay on the machine that trained it")

    def done(self) -> bool:
        if not self.output.exists():
            return False
        if self.n_tasks is None:
            return True
        # an evaluation with infra_error episodes is not done: its `--resume` re-runs them
        run = self.output.parent
        return _run_size(run) == self.n_tasks and _infra_errors(run) == 0


def _run_size(run: Path) -> int | None:
    info = run / "run.json"
    return json.loads(info.read_text()).get("n_tasks") if info.is_file() else None


def _infra_errors(run: Path) -> int:
    """The run's ``infra_error`` episodes (0 for runs written before they were counted)."""
    return json.loads((run / "results.json").read_text()).get("aggregate", {}).get("infra_errors", 0)


def task_limit(config: BenchConfig, name: str) -> int | None:
    """How many tasks of each split the policy ``name`` is evaluated on (None: all)."""
    limits = [n for n in (config.limit, config.prompt_limit if name == "prompt" else None) if n]
    return min(limits) if limits else None


def split_size(split: str, limit: int | None) -> int:
    """How many tasks an evaluation on ``split`` covers: the first ``limit``, or all."""
    with open(split_file(split)) as lines:
        size = sum(1 for line in lines if line.strip())
    return min(size, limit) if limit else size


TRAINING_FILES = ("config.json", "run.json", "start_model.json", "metrics.jsonl", "training_curves.png",
                  "rollouts.jsonl")


def _netgpt(*args: str) -> list[str]:
    return [sys.executable, "-m", "netgpt.cli", *args]


def rl_model(config: BenchConfig, seed: int) -> Path:
    """The RL checkpoint that gets evaluated: the last one of the run."""
    steps = RLConfig.load(config.rl.config).steps
    return config.runs / f"rl-s{seed}" / f"checkpoint-{steps:06d}" / "model"


def plan(config: BenchConfig) -> list[Stage]:
    """Every stage in dependency order, critical path first: baselines, the SFT that RL starts from, the RL seeds
    on the first split; then those trained policies on the remaining splits; then the other SFT variant and the
    untrained LLM baselines on the remaining splits. A bench stopped early has then already measured the headline
    comparison, and next how it generalises."""
    first: list[Stage] = []
    trained_later: list[Stage] = []
    later: list[Stage] = []

    def evaluate(name: str, policy: str | Path, extra: tuple[str, ...] = (), first_split: list[Stage] = first,
                 other_splits: list[Stage] = later) -> None:
        """Queue the eval on the first split into ``first_split`` and those on the other splits into
        ``other_splits``. ``policy``: a built-in policy's name, or the Path of a trained model (which it reads)."""
        inputs = [policy / "model.safetensors"] if isinstance(policy, Path) else []
        n = task_limit(config, name)
        limit = ["--limit", str(n)] if n else []
        for i, split in enumerate(config.splits):
            out = config.results / f"{name}-{split}"
            (other_splits if i else first_split).append(Stage(
                name=f"eval {name} on {split}", output=out / "results.json", n_tasks=split_size(split, n),
                command=_netgpt("eval", "--policy", str(policy), "--split", split, "--out", str(out), *limit,
                                "--resume", *extra), inputs=inputs))

    llm = ("--batch-size", str(config.eval.batch_size), "--max-new-tokens", str(config.eval.max_new_tokens))
    for name in config.heuristics:
        # never answers at once: one turn, short answers (the flags its committed baseline was measured with)
        evaluate(name, name, ("--max-new-tokens", "32", "--max-turns", "1") if name == "never" else ())
    if config.prompt_baseline:
        evaluate("prompt", "prompt", llm)
    trained: dict[str, Path] = {}
    teachers = {"sft_teacher": "always", "sft_oracle": "oracle"}  # each SFT run and the teacher it imitates
    for name, teacher in teachers.items():
        run = config.runs / name
        headline = config.rl.init == name  # the SFT that RL starts from
        sft = ["sft", "--config", str(config.sft.config), "--teacher", teacher, "--out", str(run), "--resume"]
        if config.sft.n_tasks:
            sft += ["--n-tasks", str(config.sft.n_tasks)]
        (first if headline else later).append(
            Stage(name=f"sft {name}", output=run / "model" / "model.safetensors", command=_netgpt(*sft),
                  keep=(run, config.results / "training" / name)))
        trained[name] = run / "model"
        evaluate(name, run / "model", llm, *((first, trained_later) if headline else (later, later)))
    init = [] if config.rl.init == "base" else ["--model", str(trained[config.rl.init])]
    if config.rl.init in teachers:  # the anchor imitates the teacher RL's SFT start learned from
        init += ["--sft-teacher", teachers[config.rl.init]]
    init_output = [] if config.rl.init == "base" else [trained[config.rl.init] / "model.safetensors"]
    for seed in config.rl.seeds:
        run = config.runs / f"rl-s{seed}"
        first.append(Stage(name=f"rl seed {seed}", output=rl_model(config, seed) / "model.safetensors",
                           command=_netgpt("train", "--config", str(config.rl.config), "--seed", str(seed),
                                           "--out", str(run), "--resume", *init),
                           inputs=init_output, keep=(run, config.results / "training" / f"rl-s{seed}")))
        evaluate(f"rl-s{seed}", rl_model(config, seed), llm, first, trained_later)
    return first + trained_later + later


def needed(stages: list[Stage]) -> set[str]:
    """Names of the stages that still have to run: those whose output is missing and that nothing reads
    (evaluations) or some needed stage reads. A training run whose every reader is done is not retrained — on a
    fresh checkout its evaluations are committed while its checkpoints are not."""
    readers: dict[Path, list[Stage]] = {}
    for stage in stages:
        for path in stage.inputs:
            readers.setdefault(path, []).append(stage)
    memo: dict[Path, bool] = {}

    def must_run(stage: Stage) -> bool:
        if stage.output not in memo:
            memo[stage.output] = False  # the plan is acyclic; this only stops a malformed one from recursing forever
            users = readers.get(stage.output, [])
            memo[stage.output] = not stage.done() and (not users or any(must_run(u) for u in users))
        return memo[stage.output]

    return {stage.name for stage in stages if must_run(stage)}


def keep_training_files(run: Path, target: Path) -> None:
    """Copy a finished training run's config, starting model's fingerprint, metrics, curves and rollout log to
    ``target`` (committed)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, target / name)


def run_stages(stages: list[Stage], log: Path, echo: Callable[[str], None]) -> list[str]:
    """Run the needed stages in order; a failed stage is reported and the bench goes on with the others."""
    failed: list[str] = []
    todo = needed(stages)
    log.parent.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if stage.done() or stage.name not in todo:  # done: also a stage planned twice, once it has run
            if stage.keep and stage.done():  # a run finished before its files were kept
                keep_training_files(*stage.keep)
            echo(f"[done] {stage.name}" if stage.done() else
                 f"[skip] {stage.name}: every stage that reads it is done")
            continue
        echo(f"[run ] {stage.name}: {' '.join(stage.command[2:])}")
        with open(log, "a") as sink:
            sink.write(f"\n=== {stage.name}: {' '.join(stage.command)}\n")
            sink.flush()
            code = subprocess.run(stage.command, stdout=sink, stderr=subprocess.STDOUT).returncode
        if code != 0 or not stage.done():
            failed.append(stage.name)
            echo(f"[FAIL] {stage.name} (exit {code}; see {log})")
        elif stage.keep:
            keep_training_files(*stage.keep)
    return failed


def _first_tasks(run: Path, n: int) -> Aggregate:
    """The aggregate of a run's first ``n`` episodes (runs list their episodes in the split's order)."""
    agg = load_aggregate(run)
    if agg.n == n:
        return agg
    return aggregate(agg.policy, load_episodes(run)[:n])


def _evaluated(config: BenchConfig, split: str) -> tuple[dict[str, Path], int | None]:
    """The finished evaluation runs on ``split`` by bench name, and how many tasks all of them cover: while some
    runs are on fewer tasks (a bench being extended to more), every policy is summarised on those first tasks.
    A policy the config limits to fewer tasks (``prompt_limit``) is summarised on its own first tasks."""
    names = config.heuristics + (["prompt"] if config.prompt_baseline else []) + ["sft_teacher", "sft_oracle"]
    names += [f"rl-s{s}" for s in config.rl.seeds]
    runs = {name: config.results / f"{name}-{split}" for name in names}
    runs = {name: run for name, run in runs.items() if (run / "results.json").is_file()}
    full = split_size(split, config.limit)
    sizes = [load_aggregate(run).n for name, run in runs.items() if split_size(split, task_limit(config, name)) == full]
    return runs, min(sizes, default=None)


def summarise(config: BenchConfig, out: Path = RESULTS) -> dict:
    """``benchmark.json`` (policy → aggregate per split; ``rl`` also per seed), ``benchmark.md`` and the plot."""
    summary: dict = {"splits": {}, "limit": config.limit, "n_tasks": {}, "rl_seeds": config.rl.seeds,
                     "rl_init": config.rl.init}
    for split in config.splits:
        runs, common = _evaluated(config, split)
        summary["n_tasks"][split] = {"summarised": common, "evaluated": {name: load_aggregate(run).n
                                                                         for name, run in runs.items()}}
        aggs = {name: _first_tasks(run, min(common, split_size(split, task_limit(config, name))))
                for name, run in runs.items()} if common else {}
        policies = {name: agg.model_dump() for name, agg in aggs.items() if not name.startswith("rl-s")}
        done = {s: aggs[f"rl-s{s}"] for s in config.rl.seeds if f"rl-s{s}" in aggs}
        if done:
            scores = [a.score for a in done.values()]
            mean = {k: statistics.fmean(getattr(a, k) for a in done.values())
                    for k in ("score", "accuracy", "calls_per_task", "invalid_call_rate", "latency_ms", "bytes",
                              "tokens", "answered_rate", "coordination", "resource")}
            families = sorted({f for a in done.values() for f in a.per_family})
            policies["rl"] = {**mean, "policy": "rl", "n": next(iter(done.values())).n,
                              "score_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                              "seeds": {str(s): a.score for s, a in done.items()},
                              "per_family": {f: {k: statistics.fmean(getattr(a.per_family[f], k) for a in done.values()
                                                                     if f in a.per_family)
                                                 for k in ("score", "calls_per_task")} for f in families}}
        summary["splits"][split] = {k: policies[k] for k in ORDER if k in policies}
    summary["training"] = _training(config)
    summary["targets"] = _targets(summary["splits"].get("test", {}), summary["training"])
    summary["errors"] = {split: _errors(config, split, summary["n_tasks"][split]["summarised"])
                         for split in summary["splits"]}
    # the contract: the top level maps each policy to its aggregate on the test split
    summary.update(summary["splits"].get("test", {}))
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "benchmark.md").write_text(_markdown(summary, config))
    _plot(summary, out / "benchmark.png")
    return summary


def _targets(test: dict, training: dict) -> dict:
    """The issue's targets on the test split, each as ``claim``, ``value`` against ``required``, ``met`` and the
    figures behind it (``detail``). RL is the mean over its evaluated seeds. A target whose other policy has not been
    evaluated yet is listed with ``met`` None, so the table shows what is still to measure."""
    if "rl" not in test:
        return {}
    rl = test["rl"]
    n_seeds = len(rl.get("seeds", {})) or 1
    seeds = f"RL ({'mean of ' + str(n_seeds) + ' seeds' if n_seeds > 1 else '1 seed'}) {rl['score']:.3f}"

    def target(claim, value, required, met, detail):
        return {"claim": claim, "value": value, "required": required, "met": met, "detail": detail}

    def pending(claim, missing):
        return target(claim, None, None, None, f"no {missing} run on the test split yet")

    out: dict = {}
    claim = "RL score ≥ 0.9 × oracle"
    if "oracle" in test:
        oracle = test["oracle"]["score"]
        out["rl_vs_oracle"] = target(claim, rl["score"] / oracle, 0.9, rl["score"] >= 0.9 * oracle,
                                     f"{seeds} / oracle {oracle:.3f}")
    else:
        out["rl_vs_oracle"] = pending(claim, "oracle")
    claim = "RL score ≥ 3.6 × prompt-only"
    if "prompt" in test:
        prompt = test["prompt"]["score"]
        out["rl_vs_prompt"] = target(claim, rl["score"] / prompt if prompt else None, 3.6,
                                     rl["score"] >= 3.6 * prompt, f"{seeds} / prompt {prompt:.3f}")
    else:
        out["rl_vs_prompt"] = pending(claim, "prompt")
    for sft in ("sft_teacher", "sft_oracle"):
        claim = f"RL score ≥ {sft} + 0.10 (or half its gap to the oracle)"
        if sft not in test or "oracle" not in test:
            out[f"rl_vs_{sft}"] = pending(claim, sft if sft not in test else "oracle")
            continue
        s, oracle = test[sft]["score"], test["oracle"]["score"]
        close = oracle - s <= 0.10  # already close to the oracle: RL must close half the remaining gap
        need = s + 0.5 * (oracle - s) if close else s + 0.10
        rule = f"half its gap to oracle {oracle:.3f}" if close else "+ 0.10"
        out[f"rl_vs_{sft}"] = target(claim, rl["score"], need, rl["score"] >= need,
                                     f"{seeds}; {sft} {s:.3f}, {rule}")
    claim = "RL makes fewer calls per task than always, scoring higher"
    if "always" in test:
        a = test["always"]
        out["rl_fewer_calls_than_always"] = target(
            claim, rl["calls_per_task"], a["calls_per_task"],
            rl["calls_per_task"] < a["calls_per_task"] and rl["score"] > a["score"],
            f"calls/task RL {rl['calls_per_task']:.3f} vs always {a['calls_per_task']:.3f}; "
            f"score {rl['score']:.3f} vs {a['score']:.3f}")
    else:
        out["rl_fewer_calls_than_always"] = pending(claim, "always")
    hours = {name: t["wall_s"] / 3600 for name, t in training.items() if name.startswith("rl-s")}
    if hours:
        longest = max(hours, key=hours.get)
        out["rl_training_time"] = target("RL training to its checkpoint ≤ 2 h on this CPU (hours)", hours[longest], 2.0,
                                         hours[longest] <= 2.0,
                                         f"longest seed {longest}: {hours[longest] * 60:.1f} min of steps")
    return out


def _errors(config: BenchConfig, split: str, first: int | None) -> dict[str, dict[str, float]]:
    """Share of each :mod:`netgpt.eval.errors` outcome per evaluated run (the RL seeds one by one), on the first
    ``first`` tasks."""
    names = [n for n in ORDER if n != "rl"] + [f"rl-s{s}" for s in config.rl.seeds]
    runs = {n: config.results / f"{n}-{split}" for n in names}
    reports = analyse_runs({n: run for n, run in runs.items() if (run / "run.json").is_file()}, first)
    return {r.name: {kind: r.kinds.get(kind, 0) / r.n for kind in ERROR_KINDS} for r in reports}


def _training(config: BenchConfig) -> dict:
    """Wall time and final metrics of each training run, from the metrics.jsonl kept under results."""
    out = {}
    for name in ["sft_teacher", "sft_oracle", *(f"rl-s{s}" for s in config.rl.seeds)]:
        path = config.results / "training" / name / "metrics.jsonl"
        if not path.is_file():
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        if rows:
            out[name] = {"steps": len(rows), "wall_s": sum(r["step_s"] for r in rows), "last": rows[-1]}
    return out


COLUMNS = (("score", "{:.3f}"), ("accuracy", "{:.3f}"), ("calls_per_task", "{:.2f}"), ("invalid_call_rate", "{:.3f}"),
           ("latency_ms", "{:.0f}"), ("bytes", "{:.0f}"), ("tokens", "{:.0f}"))


def _markdown(summary: dict, config: BenchConfig) -> str:
    lines = ["# NetGPT-Bench: headline benchmark", "",
             f"`make bench` (configs/bench-cpu.yaml); RL = mean over the seeds evaluated (configured: "
             f"{config.rl.seeds}; per-seed scores in benchmark.json), started from {config.rl.init}.", ""]
    for split, policies in summary["splits"].items():
        if not policies:
            continue
        count = summary["n_tasks"][split]
        size = split_size(split, None)
        scope = f"All {size} tasks" if count["summarised"] == size else (
            f"The first {count['summarised']} of the split's {size} tasks" + (
                ", the most that every policy was evaluated on" if count["summarised"] < max(
                    count["evaluated"].values()) else ""))
        fewer = [f"{name} on its first {agg['n']}" for name, agg in policies.items() if agg["n"] < count["summarised"]]
        if fewer:
            scope += f"; {', '.join(fewer)} (prompt_limit in the config: it is the slowest evaluation)"
        lines += [f"## {split}", "", scope + ".", "",
                  "| policy | n | " + " | ".join(c for c, _ in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
        for name, agg in policies.items():
            cells = [fmt.format(agg[c]) for c, fmt in COLUMNS]
            if name == "rl" and len(agg["seeds"]) > 1:
                cells[0] += f" ± {agg['score_std']:.3f}"
            lines.append(f"| {name} | {agg['n']} | " + " | ".join(cells) + " |")
        families = sorted({f for a in policies.values() for f in a["per_family"]})
        tables = (("score", "score", "{:.3f}"), ("calls_per_task", "calls per task", "{:.2f}")) if families else ()
        for key, title, fmt in tables:
            lines += ["", f"| family ({title}) | " + " | ".join(policies) + " |", "|" + "---|" * (len(policies) + 1)]
            for f in families:
                cells = [fmt.format(a["per_family"][f][key]) if f in a["per_family"] else "–"
                         for a in policies.values()]
                lines.append(f"| {f} | " + " | ".join(cells) + " |")
        lines.append("")
    if summary["targets"]:
        lines += ["## Targets (test split)", "", "| target | measured | required | met | from |", "|---" * 5 + "|"]
        for t in summary["targets"].values():
            value, required = (f"{v:.3f}" if v is not None else "–" for v in (t["value"], t["required"]))
            met = "pending" if t["met"] is None else "yes" if t["met"] else "no"
            lines.append(f"| {t['claim']} | {value} | {required} | {met} | {t['detail']} |")
        lines.append("")
    for split, shares in summary["errors"].items():
        if not shares:
            continue
        lines += [f"## Where answers go wrong ({split})", "",
                  "Share of episodes by outcome against the reference plan (`netgpt errors`, kinds in "
                  "`netgpt.eval.errors.ERROR_KINDS`).", "",
                  "| outcome | " + " | ".join(shares) + " |", "|" + "---|" * (len(shares) + 1)]
        for kind in next(iter(shares.values())):
            lines.append(f"| {kind} | " + " | ".join(f"{s[kind]:.3f}" for s in shares.values()) + " |")
        lines.append("")
    if summary["training"]:
        lines += ["## Training runs", "", "| run | steps | wall (min) |", "|---|---|---|"]
        for name, t in summary["training"].items():
            lines.append(f"| {name} | {t['steps']} | {t['wall_s'] / 60:.1f} |")
        lines.append("")
    return "\n".join(lines)


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(summary["splits"])
    fig, axes = plt.subplots(1, max(1, len(splits)), figsize=(6 * max(1, len(splits)), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits):
        policies = summary["splits"][split]
        names = list(policies)
        ax.bar(names, [policies[n]["score"] for n in names],
               yerr=[policies[n].get("score_std", 0.0) for n in names], color="#4c72b0", capsize=4)
        ax.set_ylim(0, 1)
        ax.set_ylabel("score (mean total reward)")
        ax.set_title(f"NetGPT-Bench {split}")
        ax.tick_params(axis="x", rotation=40)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
