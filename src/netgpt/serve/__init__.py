"""``netgpt serve``: the core behind an OpenAI-compatible HTTP API and as the MCP tool ``solve_network_task``.

The names below load on first use (PEP 562): every ``netgpt`` command imports :mod:`netgpt.serve.cli` to register
``serve``, and must not pay for FastAPI, MCP and the model runtime unless it serves.
"""

from __future__ import annotations

import importlib

_HOME = {"create_app": "app", "ChatCompletion": "schema", "ChatCompletionRequest": "schema", "SolveArgs": "schema",
         "TaskOptions": "schema", "Trace": "schema", "Solved": "solver", "Solver": "solver", "TaskError": "tasks",
         "build_task": "tasks", "recognise": "tasks"}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
