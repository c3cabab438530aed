"""Tables and plots of evaluation runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from netgpt.core.episode import EpisodeResult
from netgpt.eval.harness import Aggregate

COLUMNS = (("score", "{:.3f}"), ("accuracy", "{:.3f}"), ("calls_per_task", "{:.2f}"),
           ("invalid_call_rate", "{:.3f}"), ("latency_ms", "{:.0f}"), ("bytes", "{:.0f}"), ("tokens", "{:.0f}"))


def summary_table(aggs: Sequence[Aggregate]) -> str:
    head = "| policy | n | " + " | ".join(c for c, _ in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for a in aggs:
        cells = [fmt.format(getattr(a, c)) for c, fmt in COLUMNS]
        rows.append(f"| {a.policy} | {a.n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def family_table(aggs: Sequence[Aggregate]) -> str:
    families = sorted({f for a in aggs for f in a.per_family})
    rows = ["| family | " + " | ".join(a.policy for a in aggs) + " |", "|" + "---|" * (len(aggs) + 1)]
    for f in families:
        cells = [f"{a.per_family[f].score:.3f}" if f in a.per_family else "–" for a in aggs]
        rows.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_markdown(path: Path, aggs: Sequence[Aggregate], title: str) -> None:
    path.write_text(f"# {title}\n\n{summary_table(aggs)}\n\n## Score by family\n\n{family_table(aggs)}\n")


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

    counts = Counter(sum(e.kind == "call" for e in r.events) for r in results)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = sorted(counts)
    ax.bar([str(x) for x in xs], [counts[x] for x in xs], color="#dd8452")
    ax.set_xlabel("agent calls in the episode")
    ax.set_ylabel("episodes")
    ax.set_title(f"{agg.policy}: calls per task")
    fig.tight_layout()
    fig.savefig(out / "calls_histogram.png", dpi=110)
    plt.close(fig)
