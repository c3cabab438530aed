"""Weight averaging ("model soup", Wortsman et al. 2022) of runs that started from the same model.

RL from one SFT(oracle) start moves the top layers a little in every run, and which of the few remaining errors a
run repairs, or breaks, depends on the rollouts it happened to draw (results/ablations/rl-temperature). Runs from a
shared start stay in one basin, so the mean of their weights is itself a working model: it keeps the direction the
runs agree on and divides what each learnt from its own draws by the number of runs. ``netgpt soup`` writes that
mean as a plain transformers directory that ``netgpt eval --policy`` loads like any checkpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from netgpt.core.model import load_model, save_model

SOUP_FILE = "soup.json"


class SoupError(ValueError):
    """The models cannot be averaged: different architectures, tokenizers or parameter sets."""


def average_state_dicts(state_dicts: Sequence[dict[str, torch.Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """The weighted mean of each floating-point tensor (summed in float64, returned in its own dtype).

    ``weights`` default to uniform and are normalised to sum to 1. Integer tensors (buffers) must agree exactly."""
    if not state_dicts:
        raise SoupError("no models to average")
    weights = [1.0] * len(state_dicts) if weights is None else list(weights)
    if len(weights) != len(state_dicts):
        raise SoupError(f"{len(weights)} weights for {len(state_dicts)} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise SoupError(f"weights must be non-negative with a positive sum, got {weights}")
    total = sum(weights)
    first = state_dicts[0]
    for i, other in enumerate(state_dicts[1:], start=1):
        if other.keys() != first.keys():
            diff = sorted(other.keys() ^ first.keys())
            raise SoupError(f"model {i} has other parameters than model 0: {diff[:5]}")
        for name, tensor in first.items():
            if other[name].shape != tensor.shape:
                raise SoupError(f"{name}: shape {tuple(other[name].shape)} in model {i}, {tuple(tensor.shape)} in "
                                "model 0")
    averaged = {}
    for name, tensor in first.items():
        if not tensor.is_floating_point():
            if any(not torch.equal(sd[name], tensor) for sd in state_dicts[1:]):
                raise SoupError(f"{name} is not floating point and differs between the models")
            averaged[name] = tensor.clone()
            continue
        acc = torch.zeros(tensor.shape, dtype=torch.float64)
        for sd, w in zip(state_dicts, weights, strict=True):
            acc += sd[name].to(torch.float64) * (w / total)
        averaged[name] = acc.to(tensor.dtype)
    return averaged


def _architecture(model) -> dict:
    config = model.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(key, None)
    return config


def make_soup(models: Sequence[str | Path], out: Path, weights: Sequence[float] | None = None,
              environment: dict | None = None) -> Path:
    """Average ``models`` (transformers directories of one architecture and tokenizer) into ``out``.

    Writes ``out/soup.json`` with the sources, the weights and the command, so the soup can be rebuilt."""
    if len(models) < 2:
        raise SoupError("a soup needs at least two models")
    loaded = [load_model(str(path)) for path in models]
    base, tokenizer = loaded[0]
    for path, (model, tok) in zip(models[1:], loaded[1:], strict=True):
        if _architecture(model) != _architecture(base):
            raise SoupError(f"{path} has another architecture than {models[0]}")
        if tok.get_vocab() != tokenizer.get_vocab():
            raise SoupError(f"{path} has another tokenizer than {models[0]}")
    base.load_state_dict(average_state_dicts([model.state_dict() for model, _ in loaded], weights))
    save_model(base, tokenizer, out)
    uniform = [1.0 / len(models)] * len(models)
    normalised = uniform if weights is None else [w / sum(weights) for w in weights]
    (out / SOUP_FILE).write_text(json.dumps({
        "command": " ".join(sys.argv), "models": [str(p) for p in models], "weights": normalised,
        "environment": environment or {}}, indent=2) + "\n")
    return out
