"""Run configs as YAML files, where an ablation names the recipe it varies (``extends:``) and lists only what it
changes, so a change to the recipe reaches every ablation of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXTENDS = "extends"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in ``path`` laid over the file its ``extends:`` key names (a path relative to ``path``'s folder,
    followed recursively). Nested mappings merge key by key; any other value replaces the base's.

    Raises ``ValueError`` for a file that is not a mapping, and for a chain of ``extends`` that comes back to a file
    it has already read."""
    return _load(Path(path), ())


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ValueError(f"config extends itself: {chain}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a mapping of settings, not {type(data).__name__}")
    base_name = data.pop(EXTENDS, None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ValueError(f"{path}: '{EXTENDS}' names one file (a path relative to this one)")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise ValueError(f"{path}: '{EXTENDS}: {base_name}' names no file ({base_path})")
    return _merged(_load(base_path, (*seen, resolved)), data)


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
