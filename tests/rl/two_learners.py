"""Run by ``test_trainer.py`` under ``torch.distributed.run`` with two CPU processes (gloo); each rank writes what it
saw to ``<out>/rank<N>.json``.

``step SETTINGS``: one RL step in which only rank 0 has a group with a reward spread (a rank that skipped the
gradient all-reduce would leave rank 0 waiting in it forever): the step row, this rank's update statistics before
they are merged, each process's advantages in the step's rollout records, their episodes' total rewards and a checksum
of the weights.
``train``: two steps with a checkpoint each, then a resumed trainer's third step: the weights' checksums.
``average``: ``mean_over_processes`` on three parameters with a gradient on both ranks, on rank 0 only, on neither.
``sft`` / ``ray``: a trainer that runs in one process only: the error it raises."""

import json
import os
import sys
from pathlib import Path

import torch
from test_trainer import _config, _peaked_tiny_model, odd_token_share

from netgpt.core.model import load_tokenizer, tiny_model
from netgpt.distributed.data_parallel import mean_over_processes
from netgpt.rl.trainer import RLTrainer
from netgpt.sft import SFTConfig, train_sft

# from the launcher: accelerate's process state, made here before the trainer's Accelerator(cpu=True), would not be
# distributed
RANK = int(os.environ["RANK"])


def checksum(model) -> float:
    return float(torch.cat([p.detach().flatten().double() for p in model.parameters()]).abs().sum())


class ObservedTrainer(RLTrainer):
    """Keeps this rank's update metrics, before the step's records are merged over the ranks."""

    def update(self, batch):
        self.updates = [*getattr(self, "updates", []), super().update(batch)]
        return self.updates[-1]


def one_step(out: Path, settings: dict) -> dict:
    tokenizer = load_tokenizer()
    trainer = ObservedTrainer(_config(out, steps=1, save_steps=100, **settings), _peaked_tiny_model(tokenizer),
                              tokenizer)
    trainer.reward_fn = odd_token_share if trainer.accelerator.process_index == 0 else (lambda result: 1.0)
    row = trainer.train_step().row()
    trainer.close()
    advantages = {}
    for episode in trainer.episodes:
        advantages.setdefault(episode["process"], []).append(episode["advantage"])
    totals = [episode["reward_terms"]["total"] for episode in trainer.episodes if episode["parent"] is None]
    return {"row": row, "update": trainer.updates[0].model_dump(exclude_none=True), "checksum": checksum(trainer.model),
            "processes": trainer.accelerator.num_processes, "advantages": advantages, "totals": totals}


def train_and_resume(out: Path) -> dict:
    tokenizer = load_tokenizer()
    # each rank builds a different random model: the run must start all of them from rank 0's
    first = RLTrainer(_config(out, steps=2), tiny_model(tokenizer, seed=RANK), tokenizer, reward_fn=odd_token_share)
    first.train()
    first.close()
    trained = checksum(first.model)
    second = RLTrainer(_config(out, steps=3), tiny_model(tokenizer, seed=7), tokenizer, reward_fn=odd_token_share)
    resumed = second.resume()
    second.train()
    second.close()
    return {"trained": trained, "resumed_at": 2 if resumed else None, "checksum": checksum(second.model)}


def averaged() -> dict:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    params[0].grad = torch.full((2,), float(RANK + 1))
    if RANK == 0:
        params[1].grad = torch.full((2,), 4.0)
    grads = mean_over_processes([p.grad for p in params], params)
    dist.destroy_process_group()
    return {"grads": [None if g is None else g.tolist() for g in grads]}


def refused(out: Path, what: str) -> dict:
    tokenizer = load_tokenizer()
    try:
        if what == "sft":
            train_sft(SFTConfig(out=out / "sft"), tiny_model(tokenizer), tokenizer, [])
        else:
            RLTrainer(_config(out, model=str(out), rollout={"backend": "ray"}), tiny_model(tokenizer), tokenizer)
    except ValueError as error:
        return {"error": str(error)}
    return {"error": None}


if __name__ == "__main__":
    out, what = Path(sys.argv[1]), sys.argv[2]
    if what == "step":
        result = one_step(out, json.loads(sys.argv[3]))
    elif what == "train":
        result = train_and_resume(out)
    elif what == "average":
        result = averaged()
    else:
        result = refused(out, what)
    (out / f"rank{RANK}.json").write_text(json.dumps(result))
