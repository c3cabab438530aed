"""Rollout throughput of the LLM core on this machine: generated tokens/s and seconds per task vs batch size and
weight dtype, and the projected time of a 600-task evaluation.

    .venv/bin/python benchmarks/bench_generation.py --out results/bench_generation

Runs the prompt-only core, or a trained one with ``--model runs/…/model`` (greedy), on the first ``--tasks`` test
tasks for each (dtype, batch size), with the real agents in-process, and writes ``bench_generation.json``, ``.md``
and ``.png``. For each dtype after the first it also reports how many episodes end with the same answer as under the
first dtype (greedy decoding in lower precision can take another path).
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
from netgpt.core.model import load_model, load_tokenizer
from netgpt.eval.harness import SPLITS_DIR
from netgpt.protocol import AgentRegistry
from netgpt.rundir import environment_info
from netgpt.tasks import load_tasks


def main(out: Path = Path("results/bench_generation"), tasks: int = 32, batch_sizes: str = "16,32",
         dtypes: str = "float32,bfloat16", max_new_tokens: int = 96, max_turns: int = 4,
         model: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = load_tasks(SPLITS_DIR / "test.jsonl")[:tasks]
    config = EpisodeConfig(max_turns=max_turns)
    rows, answers = [], {}
    dtype_list = dtypes.split(",")
    tokenizer = load_tokenizer(model)
    count_tokens = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    with AgentRegistry.from_config(None) as registry:
        for dtype in dtype_list:
            llm, _ = load_model(model, dtype=dtype)
            for batch in (int(b) for b in batch_sizes.split(",")):
                policy = LLMPolicy(llm, tokenizer, batch_size=batch, max_new_tokens=max_new_tokens)
                start = time.perf_counter()
                results = run_episodes(work, policy, registry, config, count_tokens)
                wall = time.perf_counter() - start
                generated = sum(sum(r.trajectory.env_mask) for r in results)
                prompt = sum(len(r.trajectory.prompt_ids) for r in results)
                answers.setdefault(dtype, [r.answer for r in results])
                first = answers[dtype_list[0]]
                rows.append({"dtype": dtype, "batch_size": batch, "wall_s": wall, "generated_tokens": generated,
                             "generated_tokens_per_s": generated / wall, "s_per_task": wall / len(work),
                             "projected_600_tasks_min": wall / len(work) * 600 / 60,
                             "mean_prompt_tokens": prompt / len(work),
                             "same_answer_as_first_dtype": sum(a == b for a, b in zip(answers[dtype], first))
                             / len(work)})
                print(json.dumps(rows[-1]))
    body = {"command": f"benchmarks/bench_generation.py --out {out} --tasks {tasks} --batch-sizes {batch_sizes} "
                       f"--dtypes {dtypes} --max-new-tokens {max_new_tokens} --max-turns {max_turns}"
                       + (f" --model {model}" if model else ""),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "environment": environment_info(),
            "rows": rows}
    (out / "bench_generation.json").write_text(json.dumps(body, indent=2) + "\n")
    core = f"core {model}" if model else "prompt-only core"
    lines = [f"# LLM rollout throughput ({core}, greedy, real agents)", "", f"`{body['command']}`", "",
             "| dtype | batch | wall (s) | generated tokens | tokens/s | s/task | 600 tasks (min) | prompt tokens "
             "| same answer as " + dtype_list[0] + " |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dtype']} | {r['batch_size']} | {r['wall_s']:.1f} | {r['generated_tokens']} "
              f"| {r['generated_tokens_per_s']:.1f} | {r['s_per_task']:.2f} | {r['projected_600_tasks_min']:.1f} "
              f"| {r['mean_prompt_tokens']:.0f} | {r['same_answer_as_first_dtype']:.2f} |" for r in rows]
    (out / "bench_generation.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for dtype in dtype_list:
        mine = [r for r in rows if r["dtype"] == dtype]
        ax.plot([r["batch_size"] for r in mine], [r["generated_tokens_per_s"] for r in mine], marker="o", label=dtype)
    ax.legend()
    ax.set_xlabel("batch size (episodes)")
    ax.set_ylabel("generated tokens/s")
    ax.set_title(f"{core}, CPU")
    fig.tight_layout()
    fig.savefig(out / "bench_generation.png", dpi=120)


if __name__ == "__main__":
    typer.run(main)
