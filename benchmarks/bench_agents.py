"""Per-call overhead of the agent protocol, in-process and over HTTP on loopback, and calls/s under concurrency.

Overhead = wall time of ``AgentRegistry.call`` for ``phy.mcs`` (a table lookup, microseconds of work) in measured
mode (no simulated latency or faults), so it is the protocol's own cost: validation, dispatch, (de)serialisation
and, over HTTP, the loopback round trip. The HTTP server runs in a separate process, as in a deployment.

    .venv/bin/python benchmarks/bench_agents.py --out results/bench_agents

writes ``bench_agents.json``, ``bench_agents.md`` and ``bench_agents.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import numpy as np
import typer
from rich.progress import Progress

from netgpt.agents import default_agents
from netgpt.protocol import AgentRegistry, FaultConfig, Request
from netgpt.protocol.http_client import HttpAgentClient

MEASURED = FaultConfig(simulate=False)
ARGS = {"table": 2, "index": 20}


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "netgpt.protocol.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning", "--no-auth"],  # open, on loopback only
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"agent server did not start: {proc.stderr.read().decode()[-500:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _sequential(registry: AgentRegistry, n: int, progress: Progress, label: str) -> list[float]:
    times = []
    for k in progress.track(range(n), description=label):
        start = time.perf_counter()
        reply = registry.call(Request(id=f"b{k}", agent="phy", skill="mcs", args=ARGS))
        times.append((time.perf_counter() - start) * 1e3)
        assert reply.ok, reply.error
    return times[n // 10:]  # drop warm-up


async def _concurrent(registry: AgentRegistry, n: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(k: int) -> None:
        async with semaphore:
            reply = await registry.acall(Request(id=f"c{k}", agent="phy", skill="mcs", args=ARGS))
            assert reply.ok, reply.error

    start = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(n)))
    return n / (time.perf_counter() - start)


def _stats(times: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "mean_ms": float(np.mean(times)), "n": len(times)}


def main(out: Path = Path("results/bench_agents"), calls: int = 2000, concurrent_calls: int = 1000) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": f"benchmarks/bench_agents.py --out {out} --calls {calls}",
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "skill": "phy.mcs", "mode": "measured (no simulated latency or faults)"}
    with Progress() as progress:
        local = AgentRegistry(MEASURED)
        for agent in default_agents():
            local.register(agent)
        results["in_process"] = _stats(_sequential(local, calls, progress, "in-process"))
        with _server() as url:
            remote = AgentRegistry(MEASURED)
            remote.add_endpoint(HttpAgentClient(url))
            results["http"] = _stats(_sequential(remote, calls, progress, "http loopback"))

            async def sweep() -> dict[str, float]:
                async with AgentRegistry(MEASURED) as reg:
                    await reg.aadd_endpoint(HttpAgentClient(url))
                    return {str(c): await _concurrent(reg, concurrent_calls, c) for c in (1, 4, 16)}

            results["http_calls_per_s"] = asyncio.run(sweep())
            remote.close()
        local.close()
    results["targets"] = {"in_process_p50_ms": 1.0, "http_p50_ms": 5.0,
                          "in_process_met": results["in_process"]["p50_ms"] <= 1.0,
                          "http_met": results["http"]["p50_ms"] <= 5.0}
    (out / "bench_agents.json").write_text(json.dumps(results, indent=2) + "\n")
    _report(out, results)
    print(json.dumps(results, indent=2))


def _report(out: Path, r: dict) -> None:
    lines = ["# Agent protocol overhead", "", f"`{r['command']}` — {r['mode']}, skill `{r['skill']}`, "
             f"{r['machine']['cpus']} CPUs.", "", "| transport | p50 (ms) | p99 (ms) | mean (ms) | target p50 |",
             "|---|---|---|---|---|"]
    for key, target in (("in_process", 1.0), ("http", 5.0)):
        s = r[key]
        lines.append(f"| {key} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['mean_ms']:.3f} | ≤ {target} |")
    lines += ["", "| HTTP concurrency | calls/s |", "|---|---|"]
    lines += [f"| {c} | {v:.0f} |" for c, v in r["http_calls_per_s"].items()]
    (out / "bench_agents.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = ["in_process", "http"]
    a.bar([n + " p50" for n in names], [r[n]["p50_ms"] for n in names], color="#4c72b0")
    a.bar([n + " p99" for n in names], [r[n]["p99_ms"] for n in names], color="#dd8452")
    a.set_ylabel("ms per call")
    a.set_title("per-call overhead")
    conc = r["http_calls_per_s"]
    b.plot([int(c) for c in conc], list(conc.values()), marker="o")
    b.set_xlabel("concurrent requests")
    b.set_ylabel("calls/s")
    b.set_title("HTTP throughput (loopback)")
    fig.tight_layout()
    fig.savefig(out / "bench_agents.png", dpi=120)


if __name__ == "__main__":
    typer.run(main)
