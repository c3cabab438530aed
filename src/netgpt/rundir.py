"""What every run directory (an evaluation, SFT, RL) records about itself, and the guards that keep a resumed run
the same run: the package versions it ran with, the model it started from (by SHA-256), and its recipe.

Torch-free, so a scripted evaluation can use it without loading the training stack."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def environment_info() -> dict[str, str]:
    packages = ("netgpt", "torch", "transformers", "numpy", "scipy", "statsmodels", "networkx", "pydantic")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}


class RunMismatchError(ValueError):
    """A resume refused because the run directory holds another run (another start model or recipe)."""


class TrainingRunRecord(BaseModel):
    """``run.json`` of an SFT or RL run: the command, the resolved config and the environment; SFT adds how many
    teacher episodes it trained on, RL the step it resumed at."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(default_factory=lambda: " ".join(sys.argv))
    config: dict[str, Any]
    episodes: int | None = Field(None, description="SFT: successful teacher episodes in the dataset")
    resumed_at: int | None = Field(None, description="RL: the step this invocation started from")
    environment: dict[str, str] = Field(default_factory=environment_info)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(self.model_dump(exclude_none=True), indent=2))


START_FILE = "start_model.json"


def record_start(out: Path, model: str | None, sha256: str | None) -> None:
    """Write which model a fresh run starts from (``start_model.json``): its checkpoints hold only the trained
    parameters, so a resume rebuilds the frozen rest from that path and must find the same weights there."""
    (out / START_FILE).write_text(json.dumps({"model": model, "sha256": sha256}, indent=2) + "\n")


def ensure_same_start(out: Path, model: str | None, sha256: str | None) -> None:
    """Refuse to resume ``out`` when the starting model's files changed since the run began (a retrained SFT saved
    to the same path): its trained layers would be joined to another model's frozen ones. A run that recorded no
    start (one from before the record existed) is continued unchecked."""
    saved = out / START_FILE
    if not saved.is_file():
        return
    recorded = json.loads(saved.read_text())
    if recorded["sha256"] != sha256:
        raise RunMismatchError(f"cannot resume {out}: the starting model {model} is not the one it was trained from "
                         f"(sha256 {recorded['sha256']} there, {sha256} here; {recorded['model']} then): its "
                         "checkpoints hold only the trained parameters and the rest would come from another model; "
                         "restore that model or use a new --out")


def ensure_same_run(out: Path, record: Path, before: dict | None, now: dict) -> None:
    """Refuse to resume ``out`` when the recipe saved in ``record`` (``before``) differs from ``now``: continuing
    another recipe's checkpoint would silently mix two runs in one. The error names the settings that differ."""
    if before == now:
        return
    if before is None:
        reason = f"cannot tell whether it was trained with another config ({record} is missing)"
    else:
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        reason = f"it was trained with another config: other {changed}"
    raise RunMismatchError(f"cannot resume {out}: {reason}; use a new --out")
