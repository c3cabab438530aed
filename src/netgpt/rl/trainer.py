"""The RL trainer: a compact loop, readable top to bottom, written against ``accelerate``.

One step::

    tasks (training stream, position = step)           ── data
    → collect_rollouts: G episodes per task + forks     ── rollout.py (entropy-guided branching); with dynamic
                                                           sampling, more tasks until enough groups differ
    → reward terms per episode (netgpt.reward)          ── multi-objective reward
    → group_relative_advantages                         ── advantages.py (rows per episode → rollouts.jsonl)
      (→ dynamic_sampling_filter)
    → group_token_logprobs + masked_policy_loss         ── loss.py (masked loss), ``num_iterations`` passes
      (+ ``sft_coef`` × masked NLL of teacher traces)    ── optional anchor, see ``_anchor_loss``
    → clip, optimiser step; metrics; checkpoint every ``save_steps``
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from netgpt.core.episode import EpisodeConfig, EpisodeResult
from netgpt.core.llm import LLMPolicy
from netgpt.core.model import DEFAULT_MODEL, load_model, model_sha256, select_trainable
from netgpt.eval.harness import aggregate
from netgpt.rl.advantages import dynamic_sampling_filter, group_relative_advantages, groups_with_spread
from netgpt.rl.checkpoint import (
    ensure_same_run,
    ensure_same_start,
    list_checkpoints,
    load_checkpoint,
    record_start,
    remove_checkpoints,
    rows_before,
    save_checkpoint,
)
from netgpt.rl.config import RLConfig
from netgpt.rl.loss import group_token_logprobs, loss_normaliser, masked_policy_loss
from netgpt.rl.rollout import BranchStats, EpisodeRunner, Rollout, collect_rollouts, local_runner
from netgpt.rl.task_pool import TaskPoolError, load_pool, pool_batch
from netgpt.tasks.generate import training_task
from netgpt.tasks.schema import Task

RewardFn = Callable[[EpisodeResult], float]

# Dynamic sampling's extra draws read a region of the training stream that no step's first batch reaches, so a step's
# first batch is the same with sampling on or off.
EXTRA_DRAWS_START = 1 << 32
# How a data-parallel step's metrics combine over its processes (`merge_process_rows`); the rest are averaged.
SUMMED_METRICS = ("rollouts", "groups", "spread_groups", "trained_groups", "core_tokens", "branch_eligible",
                  "branch_fired", "branch_taken")
MOST_METRICS = ("draws", "rollout_s", "update_s", "step_s")  # the busiest process's: the step waits for it
WEIGHTED_METRICS = {"entropy": "trained_groups", "kl": "trained_groups", "clip_fraction": "trained_groups",
                    "policy_token_fraction": "core_tokens"}  # means over what each process trained


def total_reward(result: EpisodeResult) -> float:
    return result.reward.total


class RLTrainer:
    """``RLTrainer(config).train()``; pass ``model``/``tokenizer`` to train an in-memory model (tests, notebooks)
    and ``reward_fn`` to optimise something other than the multi-objective total (ablations, toy tasks)."""

    def __init__(self, config: RLConfig, model=None, tokenizer=None, registry=None, reward_fn: RewardFn = total_reward,
                 status: Callable[[str], None] = lambda _: None):
        from accelerate import Accelerator

        from netgpt.protocol import AgentRegistry
        from netgpt.protocol.config import builtin_faults

        self.config = config
        self.reward_fn = reward_fn
        # the pool is checked before the model loads: a missing file should not cost a model conversion
        self.missed, self.missed_sha256 = load_pool(config.task_pool.file) if config.task_pool.file else ([], None)
        self.accelerator = Accelerator(cpu=config.device == "cpu")
        if config.rollout.backend == "ray" and self.accelerator.num_processes > 1:
            raise ValueError("Ray rollouts run from a single learner process: start `netgpt train --backend ray` "
                             "without accelerate launch (its workers are the parallel part)")
        torch.manual_seed(config.seed)
        # a model passed in memory has no files to fingerprint; one loaded by path is recorded (start_model.json)
        self.start_model, self.start_sha256 = None, None
        if model is None:
            model, tokenizer = load_model(config.model, device=str(self.accelerator.device), dtype=config.dtype,
                                          status=status)
            self.start_model, self.start_sha256 = config.model or DEFAULT_MODEL, model_sha256(config.model)
        self.tokenizer = tokenizer
        self.reference = None
        if config.beta > 0:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        model = select_trainable(model, config.train, config.top_layers, config.lora_r)
        params = [p for p in model.parameters() if p.requires_grad]
        # the model is not wrapped in DDP: the loss calls its decoder directly (shared prompt KV cache), which DDP's
        # gradient hooks never see; gradients are averaged over processes by `_average_gradients` instead
        self.model = model.to(self.accelerator.device)
        self._broadcast_weights()
        self.optimizer = self.accelerator.prepare(torch.optim.AdamW(params, lr=config.learning_rate))
        self._owns_registry = registry is None
        self.registry = registry or AgentRegistry.from_config(
            None, faults=builtin_faults().model_copy(update={"seed": config.seed}))
        self.episode = EpisodeConfig(max_turns=config.max_turns, budget=config.budget,
                                     reward_weights=config.reward_weights)
        self.step = 0
        self.out = config.out
        self.metrics_path = self.out / "metrics.jsonl"
        self.rollouts_path = self.out / "rollouts.jsonl"
        self.episodes: list[dict] = []  # the last step's rollout records
        self.anchor = self._anchor_traces() if config.sft_coef > 0 else []
        self.pool, self._owns_ray = None, False
        if config.rollout.backend == "ray":
            self._start_pool()

    def _start_pool(self) -> None:
        """Ray rollout workers, each loading the starting policy and wrapping it as the learner does; they get the
        learner's trainable parameters before every rollout. A worker runs whole groups: ceil(tasks / workers)
        groups per batch."""
        from netgpt.distributed.ray_backend import RayRolloutPool, init_ray
        from netgpt.distributed.worker import PolicySpec, WorkerSpec

        cfg = self.config
        if cfg.model is None or not Path(cfg.model).is_dir():
            raise ValueError("Ray rollout workers load the starting policy themselves: set `model` to a local "
                             "model directory (e.g. an SFT checkpoint's model/)")
        per_worker = -(-cfg.tasks_per_step // cfg.rollout.workers)
        spec = WorkerSpec(policy=PolicySpec(
            name=str(Path(cfg.model).resolve()), device=cfg.device, dtype=cfg.dtype, max_new_tokens=cfg.max_new_tokens,
            batch_size=per_worker * max(cfg.num_generations, cfg.branching.max_branches), seed=cfg.seed,
            temperature=cfg.temperature, train=cfg.train, top_layers=cfg.top_layers, lora_r=cfg.lora_r),
            faults=self.registry.faults.config, episode=self.episode)
        self._owns_ray = init_ray(cfg.rollout.address, num_cpus=max(cfg.rollout.workers, 2))
        self.pool = RayRolloutPool(spec, cfg.rollout.workers, num_gpus=1 if cfg.device.startswith("cuda") else 0)

    # ------------------------------------------------------------------ data
    def _anchor_traces(self) -> list:
        """The SFT teacher's right episodes on the SFT warm-up's tasks, laid out as SFT trains on them."""
        from netgpt.sft import SFTConfig, build_dataset

        teacher = SFTConfig(teacher=self.config.sft_teacher, n_tasks=self.config.sft_n_tasks, seed=0,
                            state_steps=self.config.sft_state_steps)
        traces = build_dataset(teacher, self.registry, self.tokenizer)
        if not traces:  # else sft_coef > 0 would silently train without its anchor
            raise ValueError(f"the {teacher.teacher} teacher got none of the first {teacher.n_tasks} training tasks "
                             "right: no traces for the SFT anchor (raise sft_n_tasks, or set sft_coef: 0)")
        return traces

    def tasks_for(self, step: int, draw: int = 0) -> list[Task]:
        """Training-stream tasks of ``step`` (its ``draw``-th batch under dynamic sampling): a pure function of the
        step, so a resumed run draws the same tasks. Each process of a multi-GPU run takes its own slice. With a
        ``task_pool``, the first batch ends with ``per_step`` tasks the start missed."""
        cfg, acc = self.config, self.accelerator
        extra = cfg.dynamic_sampling.max_draws - 1 if cfg.dynamic_sampling.enabled else 0
        if not 0 <= draw <= extra:
            raise ValueError(f"draw {draw} of step {step}: this run draws at most {extra + 1} batches per step")
        slot = step if draw == 0 else step * extra + draw - 1
        replayed = pool_batch(self.missed, step, cfg.task_pool.per_step, acc.process_index, acc.num_processes) \
            if self.missed and draw == 0 else []
        fresh = cfg.tasks_per_step - len(replayed)
        first = (EXTRA_DRAWS_START if draw else 0) + (slot * acc.num_processes + acc.process_index) * fresh
        return [training_task(cfg.data_seed, first + k, cfg.families) for k in range(fresh)] + replayed

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    # ------------------------------------------------------------------ one step
    def runner(self) -> EpisodeRunner:
        """This step's episode runner, sampling from the current weights. Each episode draws from its own generator
        (seeded by the run's seed and its session), so local and Ray rollouts are the same episodes."""
        cfg = self.config
        policy_model = self.accelerator.unwrap_model(self.model).eval()
        if self.pool is not None:
            self.pool.push_weights({n: p for n, p in policy_model.named_parameters() if p.requires_grad})
            return self.pool.run
        # a fresh policy every step: its cached system-prompt KV was computed with the previous weights
        policy = LLMPolicy(policy_model, self.tokenizer, name="rl", temperature=cfg.temperature,
                           max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                           batch_size=cfg.tasks_per_step * (cfg.num_generations + cfg.branching.max_branches))
        return local_runner(policy, self.registry, self.episode, self._count_tokens)

    def rollout(self, step: int) -> tuple[list[Rollout], list[Task], dict]:
        """The step's group rollouts and their tasks. With dynamic sampling, batches of tasks are drawn until
        ``tasks_per_step`` groups differ in the sampling metric, or ``max_draws`` batches were drawn."""
        cfg, run = self.config, self.runner()
        sampling = cfg.dynamic_sampling
        rollouts: list[Rollout] = []
        tasks: list[Task] = []
        branch = BranchStats()
        for draw in range(sampling.max_draws if sampling.enabled else 1):
            batch = self.tasks_for(step, draw)
            drawn, stats = collect_rollouts(batch, run, cfg.num_generations, cfg.branching,
                                            session_prefix=f"rl{step}" if draw == 0 else f"rl{step}-d{draw}")
            rollouts += [r.model_copy(update={"group": r.group + len(tasks),
                                              "parent": None if r.parent is None else r.parent + len(rollouts)})
                         for r in drawn]
            tasks += batch
            branch = BranchStats(eligible=branch.eligible + stats.eligible, fired=branch.fired + stats.fired,
                                 taken=branch.taken + stats.taken)
            spread = groups_with_spread(self._sampling_values(rollouts), [r.group for r in rollouts])
            if len(spread) >= cfg.tasks_per_step:
                break
        return rollouts, tasks, {"draws": draw + 1, "branch_eligible": branch.eligible, "branch_fired": branch.fired,
                                 "branch_taken": branch.taken, "branching_rate": branch.rate}

    def _sampling_values(self, rollouts: list[Rollout]) -> list[float]:
        """What dynamic sampling compares within a group (``dynamic_sampling.metric``)."""
        if self.config.dynamic_sampling.metric == "reward":
            return [self.reward_fn(r.result) for r in rollouts]
        return [r.result.reward.quality for r in rollouts]

    def score(self, rollouts: list[Rollout]) -> tuple[list[float], torch.Tensor, dict]:
        """Each episode's scalar reward (``reward_fn``) and its group-relative advantage; with dynamic sampling,
        zero outside the first ``tasks_per_step`` groups that differ in the sampling metric."""
        cfg = self.config
        groups = [r.group for r in rollouts]
        rewards = [self.reward_fn(r.result) for r in rollouts]
        advantages = group_relative_advantages(rewards, groups, cfg.scale_rewards)
        values = self._sampling_values(rollouts)
        if cfg.dynamic_sampling.enabled:
            advantages = dynamic_sampling_filter(advantages, values, groups, cfg.tasks_per_step)
        spread = groups_with_spread(values, groups)
        return rewards, advantages, {"groups": len(set(groups)), "spread_groups": len(spread)}

    def update(self, rollouts: list[Rollout], advantages: torch.Tensor) -> dict:
        """``num_iterations`` passes of the masked loss over the groups, one optimiser step each."""
        cfg, device = self.config, self.accelerator.device
        groups: dict[int, list[int]] = {}
        for index, r in enumerate(rollouts):
            groups.setdefault(r.group, []).append(index)
        # a group whose rewards are all equal has no policy gradient; skip its forward pass unless KL/entropy act
        # (dynamic sampling trains only the groups it kept, whatever acts)
        if cfg.dynamic_sampling.enabled or (cfg.beta == 0 and cfg.entropy_coef == 0):
            groups = {g: m for g, m in groups.items() if advantages[m].abs().max() > 0}
        if not self._any_process_has_work(bool(groups or self.anchor)):
            return {"loss": 0.0, "grad_norm": 0.0, "entropy": 0.0, "kl": 0.0, "clip_fraction": 0.0,
                    "policy_token_fraction": 0.0, "core_tokens": 0, "trained_groups": 0}
        masks = {g: _padded([rollouts[i].trajectory.env_mask for i in m], device) for g, m in groups.items()}
        policy_masks = self._entropy_selection(rollouts, groups, masks)
        norms = dict(zip(groups, loss_normaliser(list(masks.values()), cfg.loss_type, cfg.max_completion_tokens)))
        self.model.train()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        stats_rows, losses, grad_norm, anchor_nll, parts = [], [], 0.0, [], {}
        for iteration in range(cfg.num_iterations):
            total, anchor_grads = 0.0, None
            if self.anchor:
                nll = self._anchor_loss()
                self.accelerator.backward(cfg.sft_coef * nll)
                total += cfg.sft_coef * nll.item()
                anchor_nll.append(nll.item())
                if iteration == 0:
                    anchor_grads = [p.grad.detach().clone() if p.grad is not None else None for p in trainable]
            for group, members in groups.items():
                loss, stats = self._group_loss(rollouts, members, advantages, masks[group], policy_masks[group],
                                               norms[group].to(device))
                self.accelerator.backward(loss)
                total += loss.item()
                stats_rows.append(stats)
            self._average_gradients(trainable)
            if anchor_grads is not None:
                # each process's anchor batch differs: average it the same way (one more all-reduce, once a step)
                if self.accelerator.num_processes > 1:
                    anchor_grads = mean_over_processes(anchor_grads, trainable)
                parts = {"grad_norm_anchor": _norm(anchor_grads),
                         "grad_norm_policy": _norm([_minus(p.grad, a) for p, a in zip(trainable, anchor_grads)])}
            grad_norm = float(self.accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(total)
        core_tokens = sum(float(m.sum()) for m in masks.values())
        row = {"loss": statistics.fmean(losses), "grad_norm": grad_norm,
               "entropy": statistics.fmean(s.entropy for s in stats_rows) if stats_rows else 0.0,
               "kl": statistics.fmean(s.kl for s in stats_rows) if stats_rows else 0.0,
               "clip_fraction": statistics.fmean(s.clip_fraction for s in stats_rows) if stats_rows else 0.0,
               "policy_token_fraction": sum(float(m.sum()) for m in policy_masks.values()) / max(core_tokens, 1.0),
               "core_tokens": int(core_tokens), "trained_groups": len(groups)}
        if anchor_nll:
            row["sft_nll"] = statistics.fmean(anchor_nll)
        return row | parts

    def _broadcast_weights(self) -> None:
        """Start every process of a data-parallel run from the main process's weights (DDP did this when it wrapped
        the model): a LoRA adapter or a model built in memory need not be initialised alike everywhere."""
        if self.accelerator.num_processes == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for param in self.model.parameters():
                dist.broadcast(param.data, src=0)

    def _any_process_has_work(self, local: bool) -> bool:
        """Whether any process of the run has a group or an anchor batch to train this step. All of them then take
        the optimiser step together (one with nothing to train contributes zero gradients); none does otherwise."""
        if self.accelerator.num_processes == 1:
            return local
        flag = torch.tensor([float(local)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients over the processes of a data-parallel run (nothing to do in one process).

        Why by hand rather than by DDP: the loss calls the decoder directly to share a prompt's KV cache, which DDP's
        hooks never see, and a process whose groups all lack a reward spread runs no backward pass at all. Every
        process joins the same all-reduces once per iteration, with zeros where it has no gradient, so all of them
        take the same optimiser step and none waits forever for another. A parameter no process has a gradient for
        keeps none, so that AdamW skips it (weight decay included) as it would in one process."""
        if self.accelerator.num_processes == 1:
            return
        for param, grad in zip(params, mean_over_processes([p.grad for p in params], params)):
            param.grad = grad

    def _anchor_loss(self) -> torch.Tensor:
        """Masked NLL of this step's batch of teacher traces (the traces are cycled through in order; each process
        of a data-parallel run takes its own batch, as it takes its own tasks).

        Why: a group whose rollouts all score the same has zero advantage, so GRPO never reinforces what the core
        already does right. An update elsewhere can then move a shared low-margin token unopposed (our reading of
        RL writing ``"los": false`` on LOS tasks its start got right; docs/rl.md). Like PPO-ptx, this term keeps the
        policy's likelihood of its SFT teacher's behaviour up on every step, with the same loss mask as SFT (agent
        replies are never targets)."""
        from netgpt.sft import collate, masked_nll

        acc = self.accelerator
        batch = [self.anchor[i] for i in anchor_batch_indices(self.step, acc.process_index, acc.num_processes,
                                                              self.config.sft_batch_size, len(self.anchor))]
        tensors = {k: v.to(self.accelerator.device) for k, v in
                   collate(batch, self.tokenizer.pad_token_id, max(len(t.prompt_ids) + len(t.completion_ids)
                                                                   for t in batch)).items()}
        return masked_nll(self.model, tensors)

    def _entropy_selection(self, rollouts, groups, masks) -> dict[int, torch.Tensor]:
        """Policy-loss mask: the core's tokens, or only its top-ρ highest-entropy ones (entropies from the rollout,
        i.e. the behaviour policy, thresholded over the whole batch as TRL does)."""
        rho = self.config.top_entropy_quantile
        if rho >= 1.0 or not groups:
            return masks
        device = self.accelerator.device
        entropies = {g: _padded([rollouts[i].trajectory.entropies for i in m], device, torch.float32)
                     for g, m in groups.items()}
        pooled = torch.cat([entropies[g][masks[g].bool()] for g in groups])
        threshold = torch.quantile(pooled, 1.0 - rho) if pooled.numel() else 0.0
        return {g: masks[g] * (entropies[g] >= threshold).float() for g in groups}

    def _group_loss(self, rollouts, members, advantages, core_mask, policy_mask, normaliser):
        cfg, device = self.config, self.accelerator.device
        trajectories = [rollouts[i].trajectory for i in members]
        prompt = trajectories[0].prompt_ids
        if any(t.prompt_ids != prompt for t in trajectories):
            raise ValueError("rollouts of one group must share their prompt")
        completions = [t.completion_ids for t in trajectories]
        # entropy is always logged; it needs a gradient only as a bonus term
        logprobs, entropy = group_token_logprobs(self.model, prompt, completions, core_mask, cfg.temperature,
                                                 with_entropy=True, entropy_grad=cfg.entropy_coef > 0)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref, _ = group_token_logprobs(self.reference, prompt, completions, core_mask, cfg.temperature)
        old = _padded([t.logprobs for t in trajectories], device, torch.float32)
        return masked_policy_loss(logprobs, old, advantages[members].to(device), core_mask, policy_mask, normaliser,
                                  cfg.epsilon, cfg.epsilon_high if cfg.epsilon_high is not None else cfg.epsilon,
                                  cfg.beta, ref, cfg.entropy_coef, entropy)

    def train_step(self) -> dict:
        start = time.perf_counter()
        rollouts, tasks, sampling = self.rollout(self.step)
        rollout_s = time.perf_counter() - start
        rewards, advantages, groups = self.score(rollouts)
        update = self.update(rollouts, advantages)
        # score, accuracy, calls and entropy describe the step's first batch, as with sampling off (extra draws stop
        # on their outcomes); `rollouts` counts every drawn episode
        first_batch = [r for r in rollouts if r.group < self.config.tasks_per_step]
        episodes = [(r.result, r.parent, _core_entropies(r)) for r in first_batch]
        row = {"step": self.step, **_episode_metrics(episodes), "rollouts": len(rollouts), **sampling, **groups,
               **update, "rollout_s": rollout_s, "update_s": time.perf_counter() - start - rollout_s,
               "step_s": time.perf_counter() - start}
        records = rollout_records(self.step, tasks, rollouts, rewards, advantages, self.accelerator.process_index)
        row, self.episodes = self._whole_run(row, episodes, records)
        self.step += 1
        return row

    def _whole_run(self, row: dict, episodes: list[tuple], records: list[dict]) -> tuple[dict, list[dict]]:
        """The step as the whole data-parallel run took it (one process's step as is): every process's rollout
        records, and one metrics row over all of them (`merge_process_rows`).

        Why: each process rolls out and trains its own slice of the tasks; a row from the main process alone would
        describe 1/N of the step, and its rollouts.jsonl would hide what the other processes' groups did."""
        if self.accelerator.num_processes == 1:
            return row, records
        from accelerate.utils import gather_object

        # episode metrics need the results and the core's entropies, not the token ids every rank would receive
        light = [(result.model_copy(update={"trajectory": None}), parent, entropies)
                 for result, parent, entropies in episodes]
        rows, light = gather_object([row]), gather_object(light)
        return merge_process_rows(rows, _episode_metrics(light)), gather_object(records)

    # ------------------------------------------------------------------ the run
    def resume(self) -> bool:
        """Continue from the newest complete checkpoint in ``out``; False when there is none. A run directory trained
        with another recipe is refused: continuing its checkpoint would silently mix two configs in one run."""
        checkpoints = list_checkpoints(self.out)
        if not checkpoints:
            return False
        saved = self.out / "config.json"
        before = _recipe(RLConfig.model_validate_json(saved.read_text())) if saved.is_file() else None
        ensure_same_run(self.out, saved, before, _recipe(self.config))
        ensure_same_start(self.out, self.start_model, self.start_sha256)
        self._ensure_same_pool()
        self.step = load_checkpoint(checkpoints[-1], self.accelerator.unwrap_model(self.model), self.optimizer)
        if self.accelerator.is_main_process:  # rows logged after the checkpoint are redone
            for path in (self.metrics_path, self.rollouts_path):
                path.write_text("".join(json.dumps(row) + "\n" for row in rows_before(path, self.step)))
        return True

    def _ensure_same_pool(self) -> None:
        """A resumed run replays the pool its checkpoints were trained with: the file may not change in between."""
        if not self.missed:
            return
        saved = self.out / "task_pool.json"
        recorded = json.loads(saved.read_text())["sha256"] if saved.is_file() else None
        if recorded != self.missed_sha256:
            raise TaskPoolError(f"{self.config.task_pool.file} is not the pool {self.out} was trained with "
                                f"(sha256 {recorded} there, {self.missed_sha256} here): restore it or choose "
                                "another --out")

    def train(self, progress: Callable[[dict], None] = lambda row: None) -> list[dict]:
        """Steps until ``steps``; the main process alone writes the run directory (metrics, rollouts, TensorBoard,
        checkpoints), the others wait for it where they would otherwise read what it is writing."""
        from torch.utils.tensorboard import SummaryWriter

        main = self.accelerator.is_main_process
        self.accelerator.wait_for_everyone()  # every process has read config.json and the checkpoint (resume)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.step == 0:  # a fresh run: another run's checkpoints or metric rows must not leak into it
                remove_checkpoints(self.out)
                self.metrics_path.unlink(missing_ok=True)
                self.rollouts_path.unlink(missing_ok=True)
                (self.out / "task_pool.json").unlink(missing_ok=True)
                record_start(self.out, self.start_model, self.start_sha256)
            (self.out / "config.json").write_text(self.config.model_dump_json(indent=2))
            if self.missed:
                (self.out / "task_pool.json").write_text(json.dumps(
                    {"file": str(self.config.task_pool.file), "sha256": self.missed_sha256,
                     "task_ids": [t.id for t in self.missed]}, indent=2))
        writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step) if main else None
        rows = []
        try:
            while self.step < self.config.steps:
                row = self.train_step()
                rows.append(row)
                if main:
                    self._record(row, writer)
                progress(row)
        finally:
            if writer:
                writer.close()
        self.accelerator.wait_for_everyone()  # the last checkpoint is complete when train returns, on every process
        return rows

    def _record(self, row: dict, writer) -> None:
        """Append the step's row and rollouts to the logs, and checkpoint when it is time."""
        with open(self.metrics_path, "a") as log:
            log.write(json.dumps(row) + "\n")
        with open(self.rollouts_path, "a") as episodes:
            episodes.write("".join(json.dumps(e) + "\n" for e in self.episodes))
        for key, value in row.items():
            if key != "step":
                writer.add_scalar(key, value, row["step"])
        if self.step % self.config.save_steps == 0 or self.step == self.config.steps:
            save_checkpoint(self.out, self.step, self.accelerator.unwrap_model(self.model), self.optimizer,
                            self.tokenizer, self.config.export_model, self.config.keep_checkpoints)

    def close(self) -> None:
        if self.pool is not None:
            import ray

            self.pool.close()
            self.pool = None
            if self._owns_ray:
                ray.shutdown()
        if self._owns_registry:
            self.registry.close()


def rollout_records(step: int, tasks: list[Task], rollouts: list[Rollout], rewards: list[float],
                    advantages: torch.Tensor, process: int = 0) -> list[dict]:
    """One row per episode of a step (``rollouts.jsonl``): the question, what the core wrote and called each turn,
    the agents' replies, the reward terms (``reward_terms``), the scalar ``reward`` and the ``advantage`` it was
    trained with. ``process`` is the data-parallel process that ran it (0 in one process): ``group`` and ``parent``
    number that process's rollouts.

    Why: the step metrics say that the score moved, these rows say what the policy changed. A flip of one argument
    (``"los": false``), a reply misread, or a group with no signal shows up here, not in the means."""
    records = []
    for r, reward, advantage in zip(rollouts, rewards, advantages):
        episode = r.result.model_dump(mode="json", exclude={"trajectory"})
        records.append({"step": step, "process": process, "group": r.group, "parent": r.parent,
                        "fork_turn": r.fork_turn,
                        "question": tasks[r.group].question, "reward": reward, "advantage": float(advantage),
                        "reward_terms": episode.pop("reward"), **episode})
    return records


# Settings a resumed run may change: where it writes, how long it runs, how often it saves, and where it computes.
RESUMABLE_CHANGES = {"out", "steps", "save_steps", "keep_checkpoints", "export_model", "device", "rollout"}


def _recipe(config: RLConfig) -> dict:
    """What makes two runs the same run: every setting except ``RESUMABLE_CHANGES``."""
    return config.model_dump(mode="json", exclude=RESUMABLE_CHANGES)


def anchor_batch_indices(step: int, process: int, processes: int, batch_size: int, n_traces: int) -> list[int]:
    """Which anchor traces a process trains on at ``step``: consecutive batches cycle through the traces, one batch
    per process and step, so the processes of a data-parallel run anchor on different traces (in one process: batch
    ``step``)."""
    first = (step * processes + process) * batch_size
    return [(first + k) % n_traces for k in range(batch_size)]


def mean_over_processes(grads: list[torch.Tensor | None],
                        params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    """Each gradient averaged over the processes (all-reduce, in place). A process without a gradient for a
    parameter contributes zeros; a parameter no process has a gradient for keeps ``None``. Every process must call
    this with the same parameters, in the same order."""
    import torch.distributed as dist

    if len(grads) != len(params):
        raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")
    if not params:
        return []
    present = torch.tensor([float(g is not None) for g in grads], device=params[0].device)
    dist.all_reduce(present)  # every process then skips the same parameters, so the all-reduces below pair up
    out: list[torch.Tensor | None] = []
    for grad, param, count in zip(grads, params, present.tolist()):
        if count == 0:
            out.append(None)
            continue
        grad = torch.zeros_like(param) if grad is None else grad
        dist.all_reduce(grad)
        out.append(grad.div_(dist.get_world_size()))
    return out


def _minus(grad: torch.Tensor | None, anchor: torch.Tensor | None) -> torch.Tensor | None:
    if grad is None:
        return None
    return grad if anchor is None else grad - anchor


def _norm(grads: list[torch.Tensor | None]) -> float:
    """L2 norm over parameters, before clipping: with ``grad_norm_anchor`` and ``grad_norm_policy`` (first iteration
    of a step) it shows how much of an update is the SFT anchor and how much the GRPO term."""
    norms = [torch.linalg.vector_norm(g) for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _padded(rows, device, dtype=torch.float32) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.zeros((len(rows), width), dtype=dtype, device=device)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=dtype, device=device)
    return out


def _core_entropies(rollout: Rollout) -> list[float]:
    """The sampling policy's entropy at each token the core wrote (agent replies are not its tokens)."""
    return [e for e, m in zip(rollout.trajectory.entropies, rollout.trajectory.env_mask) if m]


def _episode_metrics(episodes: list[tuple[EpisodeResult, int | None, list[float]]]) -> dict:
    """Score and behaviour of the step's group episodes (result, fork parent, core-token entropies), as ``netgpt
    eval`` aggregates them (forks excluded: they are not a sample of the policy), and the rollouts' mean entropy on
    the core's tokens (forks included): defined every step, unlike the loss-side `entropy`, which exists only when
    some group had a learning signal."""
    agg = aggregate("rl", [result for result, parent, _ in episodes if parent is None])
    core_entropies = [e for _, _, entropies in episodes for e in entropies]
    keys = ("score", "accuracy", "coordination", "resource", "calls_per_task", "invalid_call_rate", "answered_rate")
    return {**{k: getattr(agg, k) for k in keys}, "generated_tokens": agg.tokens * agg.n,
            "rollout_entropy": statistics.fmean(core_entropies) if core_entropies else 0.0}


def merge_process_rows(rows: list[dict], episode_metrics: dict) -> dict:
    """One metrics row for a data-parallel step from each process's row: counts summed, draws and times of the
    busiest process, the update's statistics weighted by what each process trained (`WEIGHTED_METRICS`), episode
    metrics over all processes' episodes (``episode_metrics``), anything else (loss, gradient norms: the same
    averaged gradient everywhere) averaged."""
    keys = dict.fromkeys(key for row in rows for key in row)
    merged = {key: statistics.fmean(row[key] for row in rows if key in row) for key in keys}
    merged |= {key: sum(row[key] for row in rows) for key in SUMMED_METRICS if key in keys}
    merged |= {key: max(row[key] for row in rows) for key in MOST_METRICS if key in keys}
    for key, weight in WEIGHTED_METRICS.items():
        total = sum(row[weight] for row in rows)
        merged[key] = sum(row[key] * row[weight] for row in rows) / total if total else 0.0
    merged |= episode_metrics
    merged["branching_rate"] = BranchStats(eligible=merged["branch_eligible"], fired=merged["branch_fired"]).rate
    return merged | {"step": rows[0]["step"]}


def plot_training_curves(rows: list[dict], path: Path) -> None:
    """One PNG with the curves a reader checks first: reward, accuracy, calls, entropy, KL/clip, step time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("score", "score (mean total reward)"), ("accuracy", "accuracy"), ("calls_per_task", "calls / task"),
              ("rollout_entropy", "rollout entropy (nats/token)"), ("clip_fraction", "clip fraction"),
              ("step_s", "step time (s)")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    steps = [r["step"] for r in rows]
    for ax, (key, title) in zip(axes.flat, panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], marker=".", linewidth=1)  # older logs lack keys
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
