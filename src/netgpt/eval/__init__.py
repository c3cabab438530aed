"""Evaluation: run policies over NetGPT-Bench splits, aggregate, report (:mod:`.run` writes a run directory)."""

from netgpt.eval.harness import Aggregate, aggregate, evaluate, load_aggregate

__all__ = ["Aggregate", "aggregate", "evaluate", "load_aggregate"]
