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
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from netgpt.core.model import load_model, save_model

SOUP_FILE = "soup.json"


class SoupError(ValueError):
    """The models cannot be averaged: different architectures, tokenizers or parameter sets."""


def average_state_dicts(state_dicts: Iterable[dict[str, torch.Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """The weighted mean of each floating-point tensor (summed in float64, returned in its own dtype).

    ``state_dicts`` is read one at a time, so a generator keeps a single model in memory besides the sums.
    ``weights`` default to uniform and are normalised to sum to 1. Integer tensors (buffers) must agree exactly."""
    if weights is not None and (any(w < 0 for w in weights) or sum(weights) <= 0):
        raise SoupError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    first: dict[str, torch.Tensor] = {}
    sums: dict[str, torch.Tensor] = {}
    count, total = 0, 0.0
    for i, state in enumerate(state_dicts):
        if weights is not None and i >= len(weights):
            raise SoupError(f"{len(weights)} weights for more models")
        weight = 1.0 if weights is None else float(weights[i])
        if i == 0:
            first = dict(state)
            sums = {name: torch.zeros(tensor.shape, dtype=torch.float64)
                    for name, tensor in first.items() if tensor.is_floating_point()}
        elif state.keys() != first.keys():
            raise SoupError(f"model {i} has other parameters than model 0: {sorted(state.keys() ^ first.keys())[:5]}")
        for name, tensor in state.items():
            if tensor.shape != first[name].shape:
                raise SoupError(f"{name}: shape {tuple(tensor.shape)} in model {i}, {tuple(first[name].shape)} in "
                                "model 0")
            if name in sums:
                sums[name] += tensor.detach().to(torch.float64) * weight
            elif not torch.equal(tensor, first[name]):
                raise SoupError(f"{name} is not floating point and differs between the models")
        count += 1
        total += weight
    if count == 0:
        raise SoupError("no models to average")
    if weights is not None and count != len(weights):
        raise SoupError(f"{len(weights)} weights for {count} models")
    return {name: (sums[name] / total).to(tensor.dtype) if name in sums else tensor for name, tensor in first.items()}


def _architecture(model) -> dict:
    config = model.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(key, None)
    return config


def make_soup(models: Sequence[str | Path], out: Path, weights: Sequence[float] | None = None,
              environment: dict | None = None) -> Path:
    """Average ``models`` (transformers directories of one architecture and tokenizer) into ``out``.

    The models are loaded one after another. Writes ``out/soup.json`` with the sources, the weights and the command,
    so the soup can be rebuilt."""
    if len(models) < 2:
        raise SoupError("a soup needs at least two models")
    if weights is not None and len(weights) != len(models):
        raise SoupError(f"{len(weights)} weights for {len(models)} models")
    base, tokenizer = load_model(str(models[0]))

    def states():
        yield base.state_dict()
        for path in models[1:]:
            model, tok = load_model(str(path))
            if _architecture(model) != _architecture(base):
                raise SoupError(f"{path} has another architecture than {models[0]}")
            if tok.get_vocab() != tokenizer.get_vocab():
                raise SoupError(f"{path} has another tokenizer than {models[0]}")
            yield model.state_dict()

    base.load_state_dict(average_state_dicts(states(), weights))
    save_model(base, tokenizer, out)
    uniform = [1.0 / len(models)] * len(models)
    normalised = uniform if weights is None else [w / sum(weights) for w in weights]
    (out / SOUP_FILE).write_text(json.dumps({
        "command": " ".join(sys.argv), "models": [str(p) for p in models], "weights": normalised,
        "environment": environment or {}}, indent=2) + "\n")
    return out
