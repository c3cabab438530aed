"""Tables and plots of evaluation runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from netgpt.core.episode import EpisodeResult
from netgpt.eval.harness import Aggregate, is_infra_error

COLUMNS = (("score", "{:.3f}"), ("accuracy", "{:.3f}"), ("calls_per_task", "{:.2f}"),
           ("invalid_call_rate", "{:.3f}"), ("latency_ms", "{:.0f}"), ("bytes", "{:.0f}"), ("tokens", "{:.0f}"))


def summary_table(aggs: Sequence[Aggregate]) -> str:
    """One row per run; an ``infra_errors`` column appears when some run had episodes left out for them."""
    columns = COLUMNS + ((("infra_errors", "{}"),) if any(a.infra_errors for a in aggs) else ())
    head = "| policy | n | " + " | ".join(c for c, _ in columns) + " |"
    rows = [head, "|" + "---|" * (len(columns) + 2)]
    for a in aggs:
        cells = [fmt.format(getattr(a, c)) for c, fmt in columns]
        rows.append(f"| {a.policy} | {a.n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def infra_error_note(aggs: Sequence[Aggregate]) -> str:
    """A sentence on the episodes left out for infrastructure failures, or "" when there were none."""
    counted = [a for a in aggs if a.infra_errors]
    if not counted:
        return ""
    runs = ", ".join(f"{a.policy}: {a.infra_errors}" for a in counted)
    return (f"**Infrastructure failures** ({runs}): episodes whose agent transport failed (connection refused, "
            "server gone) are not the core's failure; they are left out of `n` and every figure, and "
            "`--resume` runs them again.")


def family_table(aggs: Sequence[Aggregate]) -> str:
    families = sorted({f for a in aggs for f in a.per_family})
    rows = ["| family | " + " | ".join(a.policy for a in aggs) + " |", "|" + "---|" * (len(aggs) + 1)]
    for f in families:
        cells = [f"{a.per_family[f].score:.3f}" if f in a.per_family else "–" for a in aggs]
        rows.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


class PairedDifference(BaseModel):
    """A per-task metric of run ``b`` minus that of run ``a``, over the tasks both ran."""

    a: str
    b: str
    metric: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    better: int = Field(description="tasks where b scored higher")
    worse: int = Field(description="tasks where b scored lower")


def paired_difference(a: str, scores_a: dict[str, float], b: str, scores_b: dict[str, float], metric: str = "score",
                      confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """Mean per-task difference with a bootstrap confidence interval over tasks (percentile method).

    Why paired: two policies run on the same tasks share each task's difficulty, so the per-task differences vary
    far less than either run's scores, and a difference too small for two unpaired means can still be resolved."""
    shared = sorted(scores_a.keys() & scores_b.keys())
    if not shared:
        raise ValueError(f"{a} and {b} share no task: a paired comparison needs runs over the same tasks")
    diffs = np.array([scores_b[t] - scores_a[t] for t in shared])
    mean = float(diffs.mean())
    if np.ptp(diffs) == 0:  # every difference equal: nothing to resample
        low = high = mean
    else:
        ci = stats.bootstrap((diffs,), np.mean, confidence_level=confidence, n_resamples=10_000,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return PairedDifference(a=a, b=b, metric=metric, n=len(shared), mean=mean, ci_low=low, ci_high=high,
                            better=int((diffs > 0).sum()), worse=int((diffs < 0).sum()))


def paired_table(diffs: Sequence[PairedDifference]) -> str:
    rows = ["| run | against | metric | shared tasks | Δ | 95 % CI | better on | worse on |", "|" + "---|" * 8]
    for d in diffs:
        rows.append(f"| {d.b} | {d.a} | {d.metric} | {d.n} | {d.mean:+.3f} | {d.ci_low:+.3f} … {d.ci_high:+.3f} | "
                    f"{d.better} | {d.worse} |")
    return "\n".join(rows)


def write_markdown(path: Path, aggs: Sequence[Aggregate], title: str) -> None:
    note = infra_error_note(aggs)
    path.write_text(f"# {title}\n\n{summary_table(aggs)}\n\n" + (f"{note}\n\n" if note else "")
                    + f"## Score by family\n\n{family_table(aggs)}\n")


def write_plots(out: Path, results: Sequence[EpisodeResult], agg: Aggregate) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(agg.per_family)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(families, [agg.per_family[f].score for f in families], color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"{agg.policy}: score by family (mean {agg.score:.3f})")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "score_by_family.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    terms = {"quality": agg.accuracy, "coordination": agg.coordination, "resource": agg.resource,
             "total": agg.score}
    ax.bar(list(terms), list(terms.values()), color=["#55a868", "#c44e52", "#8172b2", "#4c72b0"])
    ax.set_ylim(0, 1)
    ax.set_title(f"{agg.policy}: reward terms")
    fig.tight_layout()
    fig.savefig(out / "reward_terms.png", dpi=110)
    plt.close(fig)

    counts = Counter(sum(e.kind == "call" for e in r.events) for r in results if not is_infra_error(r))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = sorted(counts)
    ax.bar([str(x) for x in xs], [counts[x] for x in xs], color="#dd8452")
    ax.set_xlabel("agent calls in the episode")
    ax.set_ylabel("episodes")
    ax.set_title(f"{agg.policy}: calls per task")
    fig.tight_layout()
    fig.savefig(out / "calls_histogram.png", dpi=110)
    plt.close(fig)
