"""Requests/s and latency of ``netgpt serve`` under 1, 4 and 8 concurrent clients, with the scripted oracle and
with the real core (SmolLM2-135M, ``--policy prompt``).

Each policy runs as a real ``netgpt serve`` process on loopback; clients are threads of this process sending
chat completions over HTTP, each request a dev-split task with its state (round robin over the 12 families, other
tasks at each level), so one request = one full episode against the in-process agents and the default fault
model. Latency is the client's wall time per request; requests/s is requests over the wall time of the level.

    .venv/bin/python benchmarks/bench_serve.py --out results/bench_serve

writes ``bench_serve.json``, ``bench_serve.md`` and ``bench_serve.png``. The LLM run is kept short (few
requests, few new tokens, two turns): on a CPU its time is generation time.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import numpy as np
import typer

from netgpt.tasks import Task, load_tasks, score_answer

DEV = Path(__file__).resolve().parents[1] / "data" / "bench" / "dev.jsonl"
WARM_UP = "TBS for I_MCS = 24 (Table 5.1.3.1-1 (64QAM)), n_PRB = 76, N_symb = 14, N_DMRS = 18, N_oh = 12, v = 1?"


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server(policy: str, batch_size: int, max_new_tokens: int, max_turns: int) -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "netgpt.cli", "serve", "--policy", policy, "--port", str(port), "--batch-size",
           str(batch_size), "--max-new-tokens", str(max_new_tokens), "--max-turns", str(max_turns),
           "--log-level", "warning", "--no-auth"]  # open, on loopback only
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"netgpt serve exited: {proc.stderr.read().decode()[-800:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("netgpt serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _mix(n: int) -> list[Task]:
    """``n`` dev tasks, round robin over the families."""
    by_family: dict[str, list[Task]] = {}
    for task in load_tasks(DEV):
        by_family.setdefault(task.family, []).append(task)
    groups = list(by_family.values())
    return [groups[i % len(groups)][i // len(groups)] for i in range(n)]


def _level(client: httpx.Client, model: str, tasks: list[Task], concurrency: int) -> dict:
    bodies = [json.dumps({"model": model, "messages": [{"role": "user", "content": t.question}],
                          "netgpt": {"task": t.model_dump(mode="json")}}) for t in tasks]

    def one(i: int) -> tuple[float, dict]:
        start = time.perf_counter()
        response = client.post("/v1/chat/completions", content=bodies[i], headers={"content-type": "application/json"})
        elapsed = (time.perf_counter() - start) * 1e3
        response.raise_for_status()
        return elapsed, response.json()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(one, range(len(tasks))))
    wall = time.perf_counter() - start
    latencies = [ms for ms, _ in outcomes]
    replies = [reply for _, reply in outcomes]
    return {"concurrency": concurrency, "requests": len(tasks), "wall_s": wall,
            "requests_per_s": len(tasks) / wall, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "mean_ms": float(np.mean(latencies)),
            "mean_batch": float(np.mean([r["netgpt"]["batch_size"] for r in replies])),
            "accuracy": float(np.mean([score_answer(t.answer, r["choices"][0]["message"]["content"])
                                       for t, r in zip(tasks, replies)]))}


def main(out: Path = Path("results/bench_serve"), policies: str = "oracle,prompt", oracle_requests: int = 64,
         llm_requests: int = 16, concurrency: str = "1,4,8", batch_size: int = 8, max_new_tokens: int = 32,
         max_turns: int = 2) -> None:
    out.mkdir(parents=True, exist_ok=True)
    levels = [int(c) for c in concurrency.split(",")]
    results: dict = {"command": " ".join(["benchmarks/bench_serve.py", *sys.argv[1:]]),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "server": {"batch_size": batch_size, "max_wait_ms": 5.0}, "runs": []}
    for policy in policies.split(","):
        llm = policy not in ("oracle", "always", "random")
        n = llm_requests if llm else oracle_requests
        turns = max_turns if llm else 4
        # fresh tasks at every level: the forecast agent caches its fits per load history
        tasks = _mix(n * len(levels))
        with _server(policy, batch_size, max_new_tokens, turns) as url, \
                httpx.Client(base_url=url, timeout=600, limits=httpx.Limits(max_connections=16)) as client:
            model = client.get("/v1/models").json()["data"][0]["id"]
            warm = {"model": model, "messages": [{"role": "user", "content": WARM_UP}]}
            client.post("/v1/chat/completions", json=warm).raise_for_status()  # first-request imports and caches
            for k, c in enumerate(levels):
                row = {"policy": policy, "model": model, "max_new_tokens": max_new_tokens if llm else None,
                       "max_turns": turns, **_level(client, model, tasks[k * n:(k + 1) * n], c)}
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
                _report(out, results)  # after every level: a long LLM run that is cut short keeps what it measured


def _report(out: Path, r: dict) -> None:
    (out / "bench_serve.json").write_text(json.dumps(r, indent=2) + "\n")
    lines = ["# `netgpt serve` throughput and latency", "",
             f"`{r['command']}` — {r['machine']['cpus']} CPUs, server batch size {r['server']['batch_size']}, "
             f"max wait {r['server']['max_wait_ms']:g} ms. One request = one episode of a dev task with its state.",
             "", "| policy | clients | requests | requests/s | p50 (ms) | p99 (ms) | mean batch | accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["runs"]:
        lines.append(f"| {row['policy']} | {row['concurrency']} | {row['requests']} | {row['requests_per_s']:.2f} | "
                     f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['mean_batch']:.1f} | {row['accuracy']:.2f} |")
    (out / "bench_serve.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for policy in dict.fromkeys(row["policy"] for row in r["runs"]):
        rows = [row for row in r["runs"] if row["policy"] == policy]
        clients = [row["concurrency"] for row in rows]
        axes[0].plot(clients, [row["requests_per_s"] for row in rows], marker="o", label=policy)
        axes[1].plot(clients, [row["p50_ms"] for row in rows], marker="o", label=f"{policy} p50")
        axes[1].plot(clients, [row["p99_ms"] for row in rows], marker="x", linestyle="--", label=f"{policy} p99")
    axes[0].set(xlabel="concurrent clients", ylabel="requests/s", title="throughput", yscale="log")
    axes[1].set(xlabel="concurrent clients", ylabel="ms per request", title="latency", yscale="log")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bench_serve.png", dpi=120)


if __name__ == "__main__":
    typer.run(main)
