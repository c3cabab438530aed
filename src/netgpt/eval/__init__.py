"""Evaluation: run policies over NetGPT-Bench splits, aggregate, report."""

from netgpt.eval.harness import Aggregate, aggregate, evaluate, load_aggregate, write_run

__all__ = ["Aggregate", "aggregate", "evaluate", "load_aggregate", "write_run"]
