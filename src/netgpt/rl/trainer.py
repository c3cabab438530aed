"""The RL trainer: a compact loop, readable top to bottom, written against ``accelerate``.

One step, one :class:`~netgpt.rl.batch.RolloutBatch` carried through it::

    tasks (training stream, position = step)           ── data
    → runner.sync(model); collect_rollouts              ── injected runner (local/processes/Ray), rollout.py
                                                           (entropy-guided branching); with dynamic sampling, more
                                                           tasks until enough groups differ
    → reward per episode (netgpt.reward)                ── multi-objective reward
    → group_relative_advantages                         ── advantages.py (batch.scored; rows → rollouts.jsonl)
      (→ dynamic_sampling_filter)
    → group_token_logprobs + masked_policy_loss         ── loss.py (masked loss), ``num_iterations`` passes
      (+ ``sft_coef`` × masked NLL of teacher traces)    ── optional anchor, see ``_anchor_loss``
    → clip, optimiser step; StepMetrics; checkpoint every ``save_steps``

Where rollouts run is the runner's business (:mod:`netgpt.distributed.rollout_runners`); what N data-parallel
learner processes must do together is :mod:`netgpt.distributed.data_parallel`'s.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator

from netgpt.core.episode import EpisodeResult
from netgpt.core.model import DEFAULT_MODEL, load_model, model_sha256, select_trainable
from netgpt.distributed.data_parallel import DataParallel, anchor_batch_indices
from netgpt.distributed.rollout_runners import RolloutRunner, build_rollout_runner, ensure_backend_fits
from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import builtin_faults
from netgpt.rl.advantages import dynamic_sampling_filter, group_relative_advantages, groups_with_spread
from netgpt.rl.batch import RolloutBatch
from netgpt.rl.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    remove_checkpoints,
    rows_before,
    save_checkpoint,
)
from netgpt.rl.config import RLConfig
from netgpt.rl.loss import group_token_logprobs, loss_normaliser, masked_policy_loss
from netgpt.rl.metrics import EpisodeSample, StepMetrics, UpdateMetrics, episode_metrics, merge_process_metrics
from netgpt.rl.rollout import EpisodeRunner, Rollout, collect_rollouts
from netgpt.rl.task_pool import TaskPoolError, load_pool, pool_batch
from netgpt.rundir import ensure_same_run, ensure_same_start, record_start
from netgpt.sft import SFTConfig, build_dataset, collate, masked_nll
from netgpt.tasks.generate import training_task
from netgpt.tasks.schema import Task

RewardFn = Callable[[EpisodeResult], float]

# Dynamic sampling's extra draws read a region of the training stream that no step's first batch reaches, so a step's
# first batch is the same with sampling on or off.
EXTRA_DRAWS_START = 1 << 32


def total_reward(result: EpisodeResult) -> float:
    return result.reward.total


class RLTrainer:
    """``RLTrainer(config).train()``; pass ``model``/``tokenizer`` to train an in-memory model (tests, notebooks),
    ``reward_fn`` to optimise something other than the multi-objective total (ablations, toy tasks), and ``runner``
    to choose where rollouts run (default: :func:`build_rollout_runner` by ``config.rollout.backend``, with this
    trainer's tokenizer and registry)."""

    def __init__(self, config: RLConfig, model=None, tokenizer=None, registry: AgentRegistry | None = None,
                 reward_fn: RewardFn = total_reward, status: Callable[[str], None] = lambda _: None,
                 runner: RolloutRunner | None = None):
        self.config = config
        self.reward_fn = reward_fn
        # the pool is checked before the model loads: a missing file should not cost a model conversion
        self.missed, self.missed_sha256 = load_pool(config.task_pool.file) if config.task_pool.file else ([], None)
        self.accelerator = Accelerator(cpu=config.device == "cpu")
        self.parallel = DataParallel(self.accelerator)
        if runner is None:
            ensure_backend_fits(config, self.parallel.num_processes)
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
        # not wrapped in DDP: see netgpt.distributed.data_parallel
        self.model = model.to(self.accelerator.device)
        self.parallel.broadcast_weights(self.model)
        self.optimizer = self.accelerator.prepare(torch.optim.AdamW(params, lr=config.learning_rate))
        self._owns_registry = registry is None
        self.registry = registry or AgentRegistry.from_config(
            None, faults=builtin_faults().model_copy(update={"seed": config.seed}))
        self.step = 0
        self.out = config.out
        self.metrics_path = self.out / "metrics.jsonl"
        self.rollouts_path = self.out / "rollouts.jsonl"
        self.episodes: list[dict] = []  # the last step's rollout records
        self.anchor = self._anchor_traces() if config.sft_coef > 0 else []
        self._owns_runner = runner is None
        self.runner = runner or build_rollout_runner(config, tokenizer, self.registry, self.parallel.num_processes)

    # ------------------------------------------------------------------ data
    def _anchor_traces(self) -> list:
        """The SFT teacher's right episodes on the SFT warm-up's tasks, laid out as SFT trains on them."""
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
        cfg, dp = self.config, self.parallel
        extra = cfg.dynamic_sampling.max_draws - 1 if cfg.dynamic_sampling.enabled else 0
        if not 0 <= draw <= extra:
            raise ValueError(f"draw {draw} of step {step}: this run draws at most {extra + 1} batches per step")
        slot = step if draw == 0 else step * extra + draw - 1
        replayed = pool_batch(self.missed, step, cfg.task_pool.per_step, dp.process_index, dp.num_processes) \
            if self.missed and draw == 0 else []
        fresh = cfg.tasks_per_step - len(replayed)
        first = (EXTRA_DRAWS_START if draw else 0) + (slot * dp.num_processes + dp.process_index) * fresh
        return [training_task(cfg.data_seed, first + k, cfg.families) for k in range(fresh)] + replayed

    # ------------------------------------------------------------------ one step
    def episode_runner(self) -> EpisodeRunner:
        """This step's episode runner: the rollout runner brought to the current weights."""
        return self.runner.sync(self.accelerator.unwrap_model(self.model).eval())

    def rollout(self, step: int) -> RolloutBatch:
        """The step's group rollouts and their tasks. With dynamic sampling, batches of tasks are drawn until
        ``tasks_per_step`` groups differ in the sampling metric, or ``max_draws`` batches were drawn."""
        cfg, run = self.config, self.episode_runner()
        sampling = cfg.dynamic_sampling
        batch = RolloutBatch(step=step, tasks=[], rollouts=[], draws=0)
        for draw in range(sampling.max_draws if sampling.enabled else 1):
            tasks = self.tasks_for(step, draw)
            rollouts, branch = collect_rollouts(tasks, run, cfg.num_generations, cfg.branching,
                                                session_prefix=f"rl{step}" if draw == 0 else f"rl{step}-d{draw}")
            batch = batch.joined(RolloutBatch(step=step, tasks=tasks, rollouts=rollouts, branch=branch))
            spread = groups_with_spread(self._sampling_values(batch.rollouts), batch.group_ids)
            if len(spread) >= cfg.tasks_per_step:
                break
        return batch

    def _sampling_values(self, rollouts: list[Rollout]) -> list[float]:
        """What dynamic sampling compares within a group (``dynamic_sampling.metric``)."""
        if self.config.dynamic_sampling.metric == "reward":
            return [self.reward_fn(r.result) for r in rollouts]
        return [r.result.reward.quality for r in rollouts]

    def score(self, batch: RolloutBatch) -> RolloutBatch:
        """Each episode's scalar reward (``reward_fn``) and its group-relative advantage; with dynamic sampling,
        zero outside the first ``tasks_per_step`` groups that differ in the sampling metric."""
        cfg, groups = self.config, batch.group_ids
        rewards = [self.reward_fn(r.result) for r in batch.rollouts]
        advantages = group_relative_advantages(rewards, groups, cfg.scale_rewards)
        values = self._sampling_values(batch.rollouts)
        if cfg.dynamic_sampling.enabled:
            advantages = dynamic_sampling_filter(advantages, values, groups, cfg.tasks_per_step)
        return batch.scored(rewards, advantages, groups_with_spread(values, groups))

    def update(self, batch: RolloutBatch) -> UpdateMetrics:
        """``num_iterations`` passes of the masked loss over the scored batch's groups, one optimiser step each."""
        cfg, device = self.config, self.accelerator.device
        rollouts, (_, advantages) = batch.rollouts, batch.scores("the update")
        groups = batch.groups()
        # a group whose rewards are all equal has no policy gradient; skip its forward pass unless KL/entropy act
        # (dynamic sampling trains only the groups it kept, whatever acts)
        if cfg.dynamic_sampling.enabled or (cfg.beta == 0 and cfg.entropy_coef == 0):
            groups = {g: m for g, m in groups.items() if advantages[m].abs().max() > 0}
        if not self.parallel.any_has_work(bool(groups or self.anchor)):
            return UpdateMetrics()
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
            self.parallel.average_gradients(trainable)
            if anchor_grads is not None:
                # each process's anchor batch differs: average it the same way (one more all-reduce, once a step)
                anchor_grads = self.parallel.mean(anchor_grads, trainable)
                parts = {"grad_norm_anchor": _norm(anchor_grads),
                         "grad_norm_policy": _norm([_minus(p.grad, a) for p, a in zip(trainable, anchor_grads)])}
            grad_norm = float(self.accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(total)
        core_tokens = sum(float(m.sum()) for m in masks.values())
        return UpdateMetrics(
            loss=statistics.fmean(losses), grad_norm=grad_norm,
            entropy=statistics.fmean(s.entropy for s in stats_rows) if stats_rows else 0.0,
            kl=statistics.fmean(s.kl for s in stats_rows) if stats_rows else 0.0,
            clip_fraction=statistics.fmean(s.clip_fraction for s in stats_rows) if stats_rows else 0.0,
            policy_token_fraction=sum(float(m.sum()) for m in policy_masks.values()) / max(core_tokens, 1.0),
            core_tokens=int(core_tokens), trained_groups=len(groups),
            sft_nll=statistics.fmean(anchor_nll) if anchor_nll else None, **parts)

    def _anchor_loss(self) -> torch.Tensor:
        """Masked NLL of this step's batch of teacher traces (the traces are cycled through in order; each process
        of a data-parallel run takes its own batch, as it takes its own tasks).

        Why: a group whose rollouts all score the same has zero advantage, so GRPO never reinforces what the core
        already does right. An update elsewhere can then move a shared low-margin token unopposed (our reading of
        RL writing ``"los": false`` on LOS tasks its start got right; docs/rl.md). Like PPO-ptx, this term keeps the
        policy's likelihood of its SFT teacher's behaviour up on every step, with the same loss mask as SFT (agent
        replies are never targets)."""
        dp = self.parallel
        batch = [self.anchor[i] for i in anchor_batch_indices(self.step, dp.process_index, dp.num_processes,
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

    def train_step(self) -> StepMetrics:
        start = time.perf_counter()
        batch = self.rollout(self.step)
        rollout_s = time.perf_counter() - start
        batch = self.score(batch)
        update = self.update(batch)
        # score, accuracy, calls and entropy describe the step's first batch, as with sampling off (extra draws stop
        # on their outcomes); `rollouts` counts every drawn episode
        samples = [EpisodeSample.of(r) for r in batch.rollouts if r.group < self.config.tasks_per_step]
        metrics = StepMetrics(
            step=self.step, **episode_metrics(samples).model_dump(), rollouts=len(batch.rollouts), draws=batch.draws,
            branch_eligible=batch.branch.eligible, branch_fired=batch.branch.fired, branch_taken=batch.branch.taken,
            branching_rate=batch.branch.rate, groups=len(batch.groups()), spread_groups=len(batch.spread_groups),
            **update.model_dump(), rollout_s=rollout_s, update_s=time.perf_counter() - start - rollout_s,
            step_s=time.perf_counter() - start)
        metrics, self.episodes = self._whole_run(metrics, samples, batch.records(self.parallel.process_index))
        self.step += 1
        return metrics

    def _whole_run(self, metrics: StepMetrics, samples: list[EpisodeSample], records: list[dict]
                   ) -> tuple[StepMetrics, list[dict]]:
        """The step as the whole data-parallel run took it (one process's step as is): every process's rollout
        records, and one metrics record over all of them (`merge_process_metrics`).

        Why: each process rolls out and trains its own slice of the tasks; a record from the main process alone would
        describe 1/N of the step, and its rollouts.jsonl would hide what the other processes' groups did."""
        if self.parallel.num_processes == 1:
            return metrics, records
        every = self.parallel.gather([metrics])
        return merge_process_metrics(every, episode_metrics(self.parallel.gather(samples))), \
            self.parallel.gather(records)

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

    def train(self, progress: Callable[[StepMetrics], None] = lambda metrics: None) -> list[StepMetrics]:
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
        steps = []
        try:
            while self.step < self.config.steps:
                metrics = self.train_step()
                steps.append(metrics)
                if main:
                    self._record(metrics, writer)
                progress(metrics)
        finally:
            if writer:
                writer.close()
        self.accelerator.wait_for_everyone()  # the last checkpoint is complete when train returns, on every process
        return steps

    def _record(self, metrics: StepMetrics, writer) -> None:
        """Append the step's row and rollouts to the logs, and checkpoint when it is time."""
        row = metrics.row()
        with open(self.metrics_path, "a") as log:
            log.write(json.dumps(row) + "\n")
        with open(self.rollouts_path, "a") as episodes:
            episodes.write("".join(json.dumps(e) + "\n" for e in self.episodes))
        for key, value in row.items():
            if key != "step":
                writer.add_scalar(key, value, metrics.step)
        if self.step % self.config.save_steps == 0 or self.step == self.config.steps:
            save_checkpoint(self.out, self.step, self.accelerator.unwrap_model(self.model), self.optimizer,
                            self.tokenizer, self.config.export_model, self.config.keep_checkpoints)

    def close(self) -> None:
        if self._owns_runner:
            self.runner.close()
        if self._owns_registry:
            self.registry.close()


# Settings a resumed run may change: where it writes, how long it runs, how often it saves, and where it computes.
RESUMABLE_CHANGES = {"out", "steps", "save_steps", "keep_checkpoints", "export_model", "device", "rollout"}


def _recipe(config: RLConfig) -> dict:
    """What makes two runs the same run: every setting except ``RESUMABLE_CHANGES``."""
    return config.model_dump(mode="json", exclude=RESUMABLE_CHANGES)


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
