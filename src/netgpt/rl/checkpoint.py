"""Atomic checkpoints: everything a killed run needs to continue exactly where it stopped.

``checkpoint-NNNNNN/trainer_state.pt`` holds the trained parameters (only those with ``requires_grad``: the frozen
rest is the starting model), the optimiser state, every RNG state and the step (= data position: step ``s`` trains
on training-stream tasks ``s·T … s·T+T−1``). ``model/`` is a plain transformers directory for ``netgpt eval
--policy``. A checkpoint is written to ``*.tmp`` and renamed, so a kill while saving leaves the previous one.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from netgpt.core.model import save_model

STATE_FILE = "trainer_state.pt"


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / f"checkpoint-{step:06d}"


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_model(model, tokenizer, target: Path) -> None:
    """A loadable transformers model directory; LoRA adapters are merged into a copy first."""
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()
    save_model(model, tokenizer, target)


def save_checkpoint(out: Path, step: int, model, optimizer, tokenizer, export: bool = True, keep: int = 2,
                    scheduler=None) -> Path:
    target = checkpoint_dir(out, step)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    state = {"step": step, "trainable": trainable, "optimizer": optimizer.state_dict(), "rng": _rng_state()}
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    torch.save(state, tmp / STATE_FILE)
    if export:
        export_model(model, tokenizer, tmp / "model")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    for old in list_checkpoints(out)[:-keep]:
        shutil.rmtree(old)
    return target


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (``*.tmp`` leftovers of a kill are ignored)."""
    return sorted(p for p in out.glob("checkpoint-*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / STATE_FILE).is_file())


def load_checkpoint(path: Path, model, optimizer, scheduler=None) -> int:
    """Restore parameters, optimiser, learning-rate schedule and RNG states in place; returns the step to continue
    from."""
    state = torch.load(path / STATE_FILE, weights_only=False)
    params = dict(model.named_parameters())
    missing = [n for n in state["trainable"] if n not in params]
    if missing:
        raise ValueError(f"{path} does not match this model/training mode (unknown parameters: {missing[:3]})")
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return state["step"]


def rows_before(metrics_path: Path, step: int) -> list[dict]:
    """The per-step metric rows a killed run logged before ``step`` (its checkpoint); the later ones are redone."""
    if not metrics_path.exists():
        return []
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["step"] < step]


def remove_checkpoints(out: Path) -> None:
    """Delete every checkpoint in ``out``: a fresh run must never resume another run's, a finished one needs none."""
    for path in list_checkpoints(out):
        shutil.rmtree(path)
