"""Rollout throughput of the LLM core on this machine: generated tokens/s and seconds per task vs batch size.

    .venv/bin/python benchmarks/bench_generation.py --out results/bench_generation

Runs the prompt-only core (greedy) on the first ``--tasks`` dev tasks for each batch size, with the real agents
in-process, and writes ``bench_generation.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import typer

from netgpt.core.episode import EpisodeConfig, run_episodes
from netgpt.core.llm import LLMPolicy
from netgpt.core.model import load_model
from netgpt.eval.harness import SPLITS_DIR, environment_info
from netgpt.protocol import AgentRegistry
from netgpt.tasks import load_tasks


def main(out: Path = Path("results/bench_generation"), tasks: int = 32, batch_sizes: str = "8,16,32",
         max_new_tokens: int = 48, max_turns: int = 2) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model()
    work = load_tasks(SPLITS_DIR / "dev.jsonl")[:tasks]
    config = EpisodeConfig(max_turns=max_turns)
    rows = []
    with AgentRegistry.from_config(None) as registry:
        for batch in (int(b) for b in batch_sizes.split(",")):
            policy = LLMPolicy(model, tokenizer, batch_size=batch, max_new_tokens=max_new_tokens)
            start = time.perf_counter()
            results = run_episodes(work, policy, registry, config, lambda s: len(tokenizer(s).input_ids))
            wall = time.perf_counter() - start
            generated = sum(sum(r.trajectory.env_mask) for r in results)
            prompt = sum(len(r.trajectory.prompt_ids) for r in results)
            rows.append({"batch_size": batch, "wall_s": wall, "generated_tokens": generated,
                         "generated_tokens_per_s": generated / wall, "s_per_task": wall / len(work),
                         "mean_prompt_tokens": prompt / len(work)})
            print(json.dumps(rows[-1]))
    body = {"command": f"benchmarks/bench_generation.py --out {out} --tasks {tasks} --batch-sizes {batch_sizes} "
                       f"--max-new-tokens {max_new_tokens} --max-turns {max_turns}",
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "environment": environment_info(),
            "rows": rows}
    (out / "bench_generation.json").write_text(json.dumps(body, indent=2) + "\n")
    lines = ["# LLM rollout throughput", "", f"`{body['command']}`", "",
             "| batch | wall (s) | generated tokens | tokens/s | s/task | prompt tokens |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch_size']} | {r['wall_s']:.1f} | {r['generated_tokens']} | {r['generated_tokens_per_s']:.1f} "
              f"| {r['s_per_task']:.2f} | {r['mean_prompt_tokens']:.0f} |" for r in rows]
    (out / "bench_generation.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["batch_size"] for r in rows], [r["generated_tokens_per_s"] for r in rows], marker="o")
    ax.set_xlabel("batch size (episodes)")
    ax.set_ylabel("generated tokens/s")
    ax.set_title("prompt-only core, CPU")
    fig.tight_layout()
    fig.savefig(out / "bench_generation.png", dpi=120)


if __name__ == "__main__":
    typer.run(main)
