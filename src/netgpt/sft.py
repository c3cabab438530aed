"""Supervised fine-tuning of the core on scripted traces (the ``always`` teacher or the ``oracle``).

Data path: training-stream tasks → the scripted policy runs them through the real episode runtime (agents, fault
model) → each successful episode becomes a token-level :class:`Trajectory` laid out exactly as the LLM policy lays
out its own rollouts (same chat template, same environment turns) → :func:`masked_nll` trains only on the core's
turns. Agent replies carry mask 0: they are external and stochastic, so imitating them is noise.
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.episode import EpisodeConfig, EpisodeResult, Trajectory, run_episodes
from netgpt.core.forward import common_prefix_length, predicting_hidden
from netgpt.core.model import DEFAULT_MODEL, save_model, select_trainable
from netgpt.core.policies import AlwaysPolicy, OraclePolicy
from netgpt.core.prompt import environment_turn, system_prompt, task_message
from netgpt.rl.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    remove_checkpoints,
    rows_before,
    save_checkpoint,
)
from netgpt.rundir import ensure_same_run, ensure_same_start, record_start
from netgpt.tasks.generate import training_stream
from netgpt.tasks.schema import Task
from netgpt.yamlconfig import load_yaml


class SFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teacher: Literal["always", "oracle"] = "oracle"
    model: str | None = Field(None, description="base model id or path; default SmolLM2-135M-Instruct")
    n_tasks: int = Field(600, ge=1, description="training-stream tasks the teacher runs")
    seed: int = 0
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler_type: Literal["linear", "constant"] = Field(
        "linear", description="linear: warm up, then decay to 0 by the last step (TRL's default); constant: flat")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="fraction of the steps spent warming up")
    mixed_precision: Literal["no", "bf16"] = Field(
        "no", description="bf16: matmuls in bfloat16 under autocast, weights and optimiser in float32 "
                          "(about 1.8x faster on CPUs with AVX512-BF16, and on GPUs)")
    state_steps: bool = Field(
        False, description="the teacher writes a one-line step before actions that hide a mapping or a selection "
                           "(Family.thought: the modulation order before a peak_rate call; the allocation "
                           "before a tbs call; the LOS/NLOS word before a pathloss call; a copy of the cached report "
                           "before an observation_lookup answer or a link_budget decision). configs/sft-cpu.yaml "
                           "turns it on")
    train: Literal["full", "top_layers", "lora"] = "top_layers"
    top_layers: int = Field(4, ge=1)
    lora_r: int = Field(16, ge=1)
    max_length: int = Field(1536, ge=64)
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps, so --resume continues a killed run")
    group_by_length: bool = Field(
        False, description="batch episodes of similar length (transformers' length-grouped sampling; batch order "
                           "still shuffled): less padding computed, so fewer FLOPs per epoch")
    device: str = "cpu"
    out: Path = Path("runs/sft")

    @classmethod
    def load(cls, path: str | Path, **overrides) -> SFTConfig:
        data = load_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)


def teacher_trajectory(result: EpisodeResult, task: Task, system: str, tokenizer) -> Trajectory:
    """Token layout of a scripted episode, identical to what :class:`~netgpt.core.llm.LLMPolicy` would produce had
    it written the same turns: turn text mask 1, everything the environment adds mask 0."""
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": system},
                                            {"role": "user", "content": task_message(task)}],
                                           add_generation_prompt=True, tokenize=True, return_dict=False)
    ids: list[int] = []
    mask: list[int] = []
    for event in result.events:
        turn = tokenizer(event.text, add_special_tokens=False).input_ids
        ids += turn
        mask += [1] * len(turn)
        if event.reply is not None:
            env = tokenizer(environment_turn(event.reply, core_closed_turn=False), add_special_tokens=False).input_ids
            ids += env
            mask += [0] * len(env)
    return Trajectory(prompt_ids=prompt, completion_ids=ids, env_mask=mask, logprobs=[0.0] * len(ids))


def build_dataset(config: SFTConfig, registry, tokenizer) -> list[Trajectory]:
    """Run the teacher on ``n_tasks`` training-stream tasks; keep the episodes it got right."""
    tasks = [t for t, _ in zip(training_stream(config.seed), range(config.n_tasks))]
    teacher = OraclePolicy if config.teacher == "oracle" else AlwaysPolicy
    policy = teacher(state_steps=config.state_steps)
    results = run_episodes(tasks, policy, registry, EpisodeConfig(), lambda s: len(tokenizer(s).input_ids),
                           session_prefix="sft")
    system = system_prompt(registry.cards())
    return [teacher_trajectory(r, t, system, tokenizer) for r, t in zip(results, tasks) if r.reward.quality >= 0.99]


def collate(trajectories: Sequence[Trajectory], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded batch split at the prompt prefix every row shares (the system turn, encoded once by
    :func:`masked_nll`): ``prefix_ids`` ``[P]``, then per row the rest of its ids, attention and loss mask (1 on the
    core's tokens only)."""
    full = [(t.prompt_ids + t.completion_ids)[:max_length] for t in trajectories]
    masks = [([0] * len(t.prompt_ids) + t.env_mask)[:max_length] for t in trajectories]
    # keep one token after the prefix in every row so each row has something to continue from
    p = min(common_prefix_length([t.prompt_ids for t in trajectories]), min(len(r) for r in full) - 1)
    width = max(len(r) for r in full) - p
    input_ids = torch.full((len(full), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    loss_mask = torch.zeros_like(input_ids)
    for i, (row, mask) in enumerate(zip(full, masks)):
        input_ids[i, :len(row) - p] = torch.tensor(row[p:])
        attention[i, :len(row) - p] = 1
        loss_mask[i, :len(mask) - p] = torch.tensor(mask[p:])
    return {"prefix_ids": torch.tensor(full[0][:p]), "input_ids": input_ids, "attention_mask": attention,
            "loss_mask": loss_mask}


def masked_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood over the tokens the core itself writes (``loss_mask`` 1).

    Prompt and agent-reply tokens are context, never targets: the loss mask is the same data the rollout produces
    as ``env_mask``, so SFT and RL optimise exactly the same positions (and only those need logits)."""
    hidden = predicting_hidden(model, batch["prefix_ids"].tolist(), batch["input_ids"], batch["attention_mask"])
    targets = batch["loss_mask"].bool()
    logits = model.get_output_embeddings()(hidden[targets]).float()
    return torch.nn.functional.cross_entropy(logits, batch["input_ids"][targets])


def epoch_batches(order: list[int], lengths: Sequence[int], batch_size: int, group_by_length: bool,
                  rng: random.Random) -> list[list[int]]:
    """One epoch's batches of indices. Ungrouped, ``order`` is reshuffled in place and cut into batches.

    Grouped by length, each batch holds rows of similar length, so the padding a batch computes shrinks (random
    batches of the CPU recipe's traces compute 1.8x their real tokens); the batches themselves are then shuffled so
    the schedule does not walk from long to short episodes."""
    if not group_by_length:
        rng.shuffle(order)
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(rng.getrandbits(63))
    grouped = get_length_grouped_indices(list(lengths), batch_size, generator=generator)
    batches = [grouped[i:i + batch_size] for i in range(0, len(grouped), batch_size)]
    rng.shuffle(batches)
    return batches


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matmuls natively (on a CPU: AVX512-BF16 or AMX). Elsewhere they are emulated:
    one step of the CPU recipe took 476 s under bf16 autocast against 25 s in float32 on an AVX2-only EPYC."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def with_native_precision(config: SFTConfig) -> SFTConfig:
    """``config``, or a copy training in float32 (with a warning) where its bf16 autocast would be emulated; the run
    records the precision it really used."""
    if config.mixed_precision == "bf16" and not fast_bf16(torch.device(config.device)):
        warnings.warn(f"{config.device} has no native bfloat16 matmuls: training in float32 instead (recorded as "
                      "mixed_precision: no in the run's config)", stacklevel=2)
        return config.model_copy(update={"mixed_precision": "no"})
    return config


def refuse_several_processes() -> None:
    """SFT trains in one process: under ``accelerate launch`` every process would train the same batches, and DDP's
    gradient hooks never see ``masked_nll``, which calls the decoder directly. Read from the launcher's environment:
    accelerate's process state, once made, could not take the run's own ``cpu`` setting any more."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("netgpt sft trains in one process; run it without accelerate launch (netgpt train is the "
                         "data-parallel trainer)")


def train_sft(config: SFTConfig, model, tokenizer, data: Sequence[Trajectory], progress=None,
              resume: bool = False, start_sha256: str | None = None) -> list[dict]:
    """A compact training loop written against ``accelerate``; returns the per-step metrics.

    Every ``save_steps`` steps it writes an atomic checkpoint (trained parameters, optimiser, schedule, RNG states).
    With ``resume`` it continues from the newest one: the batch schedule is a function of the seed and the data, so
    the continued run trains on the same batches and ends with the same weights as one never killed.
    ``start_sha256`` (``model_sha256`` of the model ``config.model`` names) is recorded, and a resume from a model
    whose files changed since is refused."""
    from accelerate import Accelerator
    from transformers import get_scheduler

    refuse_several_processes()
    accelerator = Accelerator(cpu=config.device == "cpu")
    config = with_native_precision(config)
    # torch.autocast rather than Accelerator(mixed_precision=...): accelerate's state is a process-wide singleton
    # that refuses a second setting, and masked_nll calls the decoder directly rather than through forward.
    autocast = torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=config.mixed_precision == "bf16")
    torch.manual_seed(config.seed)
    model = select_trainable(model, config.train, config.top_layers, config.lora_r)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    order = list(range(len(data)))
    lengths = [len(t.prompt_ids) + len(t.completion_ids) for t in data]
    rng = random.Random(config.seed)
    schedule = [(epoch, batch) for epoch in range(config.epochs)
                for batch in epoch_batches(order, lengths, config.batch_size, config.group_by_length, rng)]
    scheduler = get_scheduler(config.lr_scheduler_type, optimizer, num_warmup_steps=int(config.warmup_ratio *
                              len(schedule)), num_training_steps=len(schedule))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    first_step, metrics = _start(config, len(data), resume, accelerator.unwrap_model(model), optimizer, scheduler,
                                 start_sha256)
    with open(config.out / "metrics.jsonl", "w") as log:
        for row in metrics:  # a resumed run keeps the rows up to its checkpoint and redoes the rest
            log.write(json.dumps(row) + "\n")
        for step in range(first_step, len(schedule)):
            epoch, indices = schedule[step]
            start = time.perf_counter()
            batch = {k: v.to(accelerator.device) for k, v in
                     collate([data[i] for i in indices], tokenizer.pad_token_id, config.max_length).items()}
            with autocast:
                loss = masked_nll(model, batch)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            row = {"epoch": epoch, "step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                   "tokens": int(batch["loss_mask"].sum()), "step_s": time.perf_counter() - start}
            metrics.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            if (step + 1) % config.save_steps == 0 and step + 1 < len(schedule):
                save_checkpoint(config.out, step + 1, accelerator.unwrap_model(model), optimizer, tokenizer,
                                export=False, keep=1, scheduler=scheduler)
            if progress:
                progress(row)
    model = accelerator.unwrap_model(model)
    if config.train == "lora":
        model = model.merge_and_unload()
    model.eval()
    save_model(model, tokenizer, config.out / "model")
    remove_checkpoints(config.out)  # the run is complete: its resume points are not needed
    return metrics


def _start(config: SFTConfig, n_examples: int, resume: bool, model, optimizer, scheduler,
           start_sha256: str | None) -> tuple[int, list[dict]]:
    """Step to start from and the metric rows already logged: (0, []) for a fresh run, else the newest checkpoint's
    step, after checking that the run directory was trained with this same config, data and starting model."""
    config.out.mkdir(parents=True, exist_ok=True)
    settings = {"exclude": {"out", "save_steps"}, "mode": "json"}
    identity = {**config.model_dump(**settings), "examples": n_examples}
    saved = config.out / "sft_run.json"
    start = config.model or DEFAULT_MODEL
    checkpoints = list_checkpoints(config.out) if resume else []
    if checkpoints:
        # settings added since the record was written count at their defaults
        before = {**SFTConfig().model_dump(**settings), **json.loads(saved.read_text())} if saved.is_file() else None
        ensure_same_run(config.out, saved, before, identity)
        ensure_same_start(config.out, start, start_sha256)
        step = load_checkpoint(checkpoints[-1], model, optimizer, scheduler)
        return step, rows_before(config.out / "metrics.jsonl", step)
    remove_checkpoints(config.out)
    saved.write_text(json.dumps(identity, indent=2))
    record_start(config.out, start, start_sha256)
    (config.out / "config.json").write_text(config.model_dump_json(indent=2))
    return 0, []
