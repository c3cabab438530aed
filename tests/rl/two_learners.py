"""Run by ``test_trainer.py`` under ``torch.distributed.run`` with two CPU processes (gloo): one RL step in which only
rank 0 has a group with a reward spread. Each rank writes its step row and a checksum of its weights to
``<out>/rank<N>.json``; a rank that skipped the gradient all-reduce would leave rank 0 waiting in it forever."""

import json
import sys
from pathlib import Path

import torch
from test_trainer import _config, _peaked_tiny_model, odd_token_share

from netgpt.core.model import load_tokenizer
from netgpt.rl.trainer import RLTrainer


def main(out: Path) -> None:
    tokenizer = load_tokenizer()
    config = _config(out, steps=1, save_steps=100, **json.loads(sys.argv[2]))
    trainer = RLTrainer(config, _peaked_tiny_model(tokenizer), tokenizer)
    rank = trainer.accelerator.process_index
    trainer.reward_fn = odd_token_share if rank == 0 else (lambda result: 1.0)
    row = trainer.train_step()
    weights = torch.cat([p.detach().flatten().double() for p in trainer.model.parameters()])
    (out / f"rank{rank}.json").write_text(json.dumps({"row": row, "checksum": float(weights.abs().sum()),
                                                      "processes": trainer.accelerator.num_processes}))
    trainer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
