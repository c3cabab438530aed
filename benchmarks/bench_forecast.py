"""What the traffic agent's Holt-Winters fit costs, and what other fits would change in the benchmark's answers.

The scripted policies' time over the 600 test tasks is mostly the 50 ``load_forecast`` fits
(`netgpt.analytics._load_forecast_path`: additive weekly season, 168 estimated initial states on 336 h of history).
For every ``load_forecast`` task of the committed splits this runs the agent's own forecast ("shipped": L-BFGS-B
with :func:`netgpt.analytics._scipy_forward_difference_gradient`), statsmodels' default fit (the same optimiser
with scipy estimating the gradient itself: what the answers were generated with) and the faster statsmodels options,
and reports per-fit time and how far each moves the forecast the task is scored on. A change beyond 1 % of the task
tolerance fails ``netgpt tasks check`` (the splits would have to be regenerated and every LLM policy re-evaluated);
one beyond the tolerance itself changes which answers score.

    .venv/bin/python benchmarks/bench_forecast.py --out results/bench_forecast

writes ``bench_forecast.json`` and ``bench_forecast.md``.
"""

from __future__ import annotations

import functools
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.progress import Progress

from netgpt import analytics
from netgpt.eval.harness import split_file
from netgpt.tasks.io import load_tasks

# the other fits: name → (ExponentialSmoothing initialization_method, fit() keyword arguments)
ALTERNATIVES = {
    "statsmodels default (scipy's numerical gradient)": ("estimated", {}),
    "estimated, no brute-force start": ("estimated", {"use_brute": False}),
    "estimated, least squares": ("estimated", {"method": "least_squares"}),
    "heuristic initial states": ("heuristic", {}),
}


def shipped_forecast(history: np.ndarray, horizon_h: int) -> tuple[float, float]:
    """(the traffic agent's own forecast, seconds its fit took): the real code path, with its per-history cache
    cleared so every task pays the fit."""
    analytics._load_forecast_path.cache_clear()
    start = time.perf_counter()
    value = analytics.forecast_load(history.tolist(), horizon_h).mean_pct
    return value, time.perf_counter() - start


def forecast(history: np.ndarray, horizon_h: int, init: str, fit_kwargs: dict) -> tuple[float, float]:
    """(forecast at the horizon, clipped as the agent does; seconds the fit took)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        fit = ExponentialSmoothing(history, seasonal="add", seasonal_periods=168,
                                   initialization_method=init).fit(**fit_kwargs)
        seconds = time.perf_counter() - start
    return float(np.clip(fit.forecast(horizon_h)[-1], 0.0, 100.0)), seconds


def main(out: Path = typer.Option(Path("results/bench_forecast")),
         splits: list[str] = typer.Option(["test", "dev", "ood"], "--split")) -> None:
    tasks = [t for split in splits for t in load_tasks(split_file(split)) if t.family == "load_forecast"]
    alternatives = {name: functools.partial(forecast, init=init, fit_kwargs=fit_kwargs)
                    for name, (init, fit_kwargs) in ALTERNATIVES.items()}
    methods = {"shipped": shipped_forecast, **alternatives}
    values = {name: [] for name in methods}
    seconds = {name: [] for name in methods}
    with Progress() as progress:
        bar = progress.add_task("Holt-Winters fits", total=len(tasks) * len(methods))
        for task in tasks:
            history = np.asarray(task.state.cell_series(task.params.cell_id).load_pct, dtype=float)
            for name, method in methods.items():
                value, took = method(history, task.params.horizon_h)
                values[name].append(value)
                seconds[name].append(took)
                progress.advance(bar)
    shipped = np.array(values["shipped"])
    tolerance = np.array([t.answer.tolerance for t in tasks])
    stored_error = np.abs(shipped - np.array([t.answer.value for t in tasks]))
    n_test = sum(t.split == "test" for t in tasks)
    rows = []
    for name in methods:
        shift = np.abs(np.array(values[name]) - shipped)
        rows.append({
            "method": name, "fit_s_median": float(np.median(seconds[name])),
            "test_split_fits_s": float(np.median(seconds[name]) * n_test),
            "shift_pp_median": float(np.median(shift)), "shift_pp_p95": float(np.percentile(shift, 95)),
            "shift_pp_max": float(shift.max()),
            "fails_tasks_check": int((shift > 0.01 * tolerance).sum()),
            "beyond_tolerance": int((shift > tolerance).sum())})
    result = {"what": __doc__.split("\n\n")[0], "tasks": len(tasks), "splits": splits, "test_tasks": n_test,
              "stored_answer_max_error_pp": float(stored_error.max()), "methods": rows,
              "python": platform.python_version(), "machine": platform.machine(),
              "command": "python benchmarks/bench_forecast.py --out " + str(out)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_forecast.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Holt-Winters fit: cost and answer shift ({len(tasks)} load_forecast tasks of "
             f"{', '.join(splits)}; {n_test} in test)", "",
             "| method | fit (median s) | test split fits (s) | shift median / p95 / max (pp) | "
             "fail `tasks check` | beyond tolerance |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['fit_s_median']:.3f} | {r['test_split_fits_s']:.1f} | "
              f"{r['shift_pp_median']:.2f} / {r['shift_pp_p95']:.2f} / {r['shift_pp_max']:.2f} | "
              f"{r['fails_tasks_check']} | {r['beyond_tolerance']} |" for r in rows]
    lines += ["", f"Command: `{result['command']}`. The shipped fit reproduces the stored answers to "
              f"{result['stored_answer_max_error_pp']:.2g} pp."]
    (out / "bench_forecast.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
