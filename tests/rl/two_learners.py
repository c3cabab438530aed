"""Run by ``test_trainer.py`` under ``torch.distributed.run`` with two CPU processes (gloo).

``step SETTINGS``: one RL step in which only rank 0 has a group with a reward spread; each rank writes its step row
and a checksum of its weights to ``<out>/rank<N>.json`` (a rank that skipped the gradient all-reduce would leave rank
0 waiting in it forever). ``sft`` / ``ray``: a trainer that runs in one process only; each rank writes the error it
gets to ``<out>/rank<N>.json``."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from test_trainer import _config, _peaked_tiny_model, odd_token_share

from netgpt.core.model import load_tokenizer, tiny_model
from netgpt.rl.trainer import RLTrainer
from netgpt.sft import SFTConfig, train_sft


def one_step(out: Path, settings: dict) -> dict:
    tokenizer = load_tokenizer()
    trainer = RLTrainer(_config(out, steps=1, save_steps=100, **settings), _peaked_tiny_model(tokenizer), tokenizer)
    trainer.reward_fn = odd_token_share if trainer.accelerator.process_index == 0 else (lambda result: 1.0)
    row = trainer.train_step()
    weights = torch.cat([p.detach().flatten().double() for p in trainer.model.parameters()])
    trainer.close()
    return {"row": row, "checksum": float(weights.abs().sum()), "processes": trainer.accelerator.num_processes}


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
    result = one_step(out, json.loads(sys.argv[3])) if what == "step" else refused(out, what)
    (out / f"rank{PartialState().process_index}.json").write_text(json.dumps(result))
