"""Task generation: the seeded training stream and the fixed dev / test / ood splits.

Every task has its own world, drawn from a seed that ``numpy.random.SeedSequence`` derives from
(split, base seed, index, attempt), so the training stream never reproduces a dev/test world, and regenerating a
split with the same generator version gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from netgpt.tasks.families import FAMILIES, Family, Resample, family
from netgpt.tasks.schema import GENERATOR_VERSION, Task
from netgpt.world import WorldConfig, generate_world

SPLIT_CODES = {"train": 0, "dev": 1, "test": 2, "ood": 3}
SPLIT_SIZES = {"dev": 200, "test": 600, "ood": 240}
SPLIT_SEEDS = {"dev": 2026, "test": 7, "ood": 99}
MAX_ATTEMPTS = 50


def task_seed(split: str, base_seed: int, index: int, attempt: int) -> int:
    entropy = [SPLIT_CODES[split], base_seed, index, attempt]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def make_task(fam: Family, split: str, base_seed: int, index: int) -> Task:
    """Draw one task of ``fam``. The ood split uses held-out templates and parameter ranges."""
    ood = split == "ood"
    for attempt in range(MAX_ATTEMPTS):
        seed = task_seed(split, base_seed, index, attempt)
        rng = np.random.default_rng(seed)
        world = generate_world(WorldConfig(seed=seed, **fam.world_config(rng, ood)))
        try:
            params = fam.sample(rng, world, ood)
        except Resample:
            continue
        level = fam.levels[int(rng.integers(len(fam.levels)))]
        obs = fam.observation(rng, world, params, level)
        templates = (fam.ood_templates if ood else fam.templates)[params.variant]
        template_index = int(rng.integers(len(templates)))
        prefix = "ood" if ood else "t"
        return Task(
            id=f"{split}-{index:05d}", family=fam.name, template=f"{params.variant}/{prefix}{template_index}",
            split=split, question=fam.question(templates[template_index], world, params), params=params,
            observability=level, observation=obs, state=world, answer=fam.solve(world, params),
            reference_plan=fam.plan(world, params, obs), faults=fam.faults(params), difficulty=fam.difficulty,
        )
    raise RuntimeError(f"{fam.name}: no valid task after {MAX_ATTEMPTS} worlds (split={split}, index={index})")


def generate_split(split: str, n: int, base_seed: int, families: list[str] | None = None,
                   start: int = 0) -> Iterator[Task]:
    """``n`` tasks balanced across families (round robin), from index ``start``."""
    names = families or list(FAMILIES)
    for index in range(start, start + n):
        yield make_task(family(names[index % len(names)]), split, base_seed, index)


def training_task(seed: int, index: int, families: list[str] | None = None) -> Task:
    """Task ``index`` of the training stream, drawn directly (a resumed run starts at its data position)."""
    names = families or list(FAMILIES)
    return make_task(family(names[index % len(names)]), "train", seed, index)


def training_stream(seed: int, families: list[str] | None = None, start: int = 0) -> Iterator[Task]:
    """Endless training tasks; disjoint from the committed splits by seed derivation."""
    index = start
    while True:
        yield training_task(seed, index, families)
        index += 1


def task_line(task: Task) -> str:
    return task.model_dump_json(exclude_none=False) + "\n"


class SplitManifest(BaseModel):
    split: str
    file: str
    generator_version: str
    base_seed: int
    count: int
    families: dict[str, int]
    sha256: str


def write_split(path: Path, tasks: list[Task], split: str, base_seed: int) -> SplitManifest:
    data = "".join(task_line(t) for t in tasks).encode()
    path.write_bytes(data)
    return SplitManifest(split=split, file=path.name, generator_version=GENERATOR_VERSION, base_seed=base_seed,
                         count=len(tasks), families=dict(Counter(t.family for t in tasks)),
                         sha256=hashlib.sha256(data).hexdigest())


def write_manifest(directory: Path, manifests: list[SplitManifest]) -> Path:
    path = directory / "manifest.json"
    body = {"generator_version": GENERATOR_VERSION, "splits": {m.split: m.model_dump() for m in manifests}}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
