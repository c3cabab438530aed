"""Hostile-input probe of both servers (issue 47): malformed and oversized requests, slow clients, and a normal
client's latency while capped worst-case requests run. Loopback only; bounded in count and in wall time.

Starts a real agent server (``netgpt agents serve``) and a real ``netgpt serve --policy oracle --mcp`` as
subprocesses with tokens, then:

1. idle latency: a normal chat completion (a TBS question), sequentially, ``--victim-requests`` times;
2. slow clients, on both servers at once: a silent connection, a header line dripped every second, and
   ``Content-Length: 100`` with 10 bytes sent; the time until the server closes (or answers 408) each;
3. fuzz: ``--requests`` generated malformed or hostile requests over ``--concurrency`` connections, spread over
   ``/call``, ``/sessions``, ``/v1/chat/completions`` and both ``/mcp`` endpoints (raw JSON-RPC over streamable
   HTTP); a request unanswered ``--client-timeout-s`` after it was sent counts as a hang;
4. under attack: the normal request again while ``--attackers`` clients send, back to back, the largest requests
   the limits allow (a state near the 256 KiB cap, 10^9 injected faults on every agent, 16 turns, the largest
   budget, the longest question).

The RSS of each server is sampled throughout and compared with its cap: the RSS at start plus what its limits
let requests hold, at about 8 bytes of memory per byte of JSON (agent server: ``max_sessions × 8 ×
max_state_bytes`` of sessions plus one body being parsed; ``netgpt serve``: ``(max_pending + 1) × 8 ×
max_body_bytes``, the queued requests plus one being parsed; see docs/protocol.md and docs/serve.md).

    .venv/bin/python benchmarks/bench_hardening.py --out results/bench_hardening.json

writes the JSON and a short ``bench_hardening.md`` next to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import typer

from netgpt.protocol.http_server import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_STATE_BYTES, SESSION_MEMORY_FACTOR
from netgpt.serve.schema import MAX_QUESTION_CHARS
from netgpt.serve.solver import DEFAULT_MAX_PENDING
from netgpt.tasks import Task, load_tasks

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "data" / "bench" / "dev.jsonl"
TOKEN = "bench-hardening-token"
MODEL = "netgpt-oracle"
TBS = "TBS for I_MCS = 24 (Table 5.1.3.1-1 (64QAM)), n_PRB = 76, N_symb = 14, N_DMRS = 18, N_oh = 12, v = 1?"
AGENT_MAX_SESSIONS = 64
MIB = 1 << 20
MCP_ACCEPT = "application/json, text/event-stream"
MCP_VERSION = "2025-06-18"  # the last version with the initialize handshake a raw client can do in two posts

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process(cmd: list[str], env_token: str, what: str, log: Path) -> Iterator[tuple[str, psutil.Process]]:
    """The server ``cmd`` on a free loopback port with a token; its stderr goes to ``log`` (a pipe nobody reads
    would fill up with the warnings hostile requests cause, and block the server)."""
    port = _free_port()
    env = {**os.environ, env_token: TOKEN}
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited: {log.read_text()[-800:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up")
            time.sleep(0.2)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class RssSampler:
    """The peak RSS of some processes, sampled every 100 ms in a thread."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.peak_mb = {name: p.memory_info().rss / MIB for name, p in processes.items()}
        self.start_mb = dict(self.peak_mb)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for name, proc in self.processes.items():
                try:
                    self.peak_mb[name] = max(self.peak_mb[name], proc.memory_info().rss / MIB)
                except psutil.Error:
                    pass

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- slow clients

def _time_to_close(url: str, send: Callable[[socket.socket], None], limit_s: float) -> float:
    """Seconds from the first byte until the server closes the connection (its answer, if any, is read)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=limit_s) as sock:
        started = time.monotonic()
        send(sock)
        sock.settimeout(limit_s)
        try:
            while sock.recv(4096):
                pass
        except (TimeoutError, ConnectionError):
            pass
        return time.monotonic() - started


def _drip(sock: socket.socket) -> None:
    """Start a request, then keep it incomplete in a background thread: one header line a second."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    def more() -> None:
        for i in range(60):
            time.sleep(1)
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                return

    threading.Thread(target=more, daemon=True).start()


def _partial_body(path: str) -> Callable[[socket.socket], None]:
    def send(sock: socket.socket) -> None:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": \"x".encode())
    return send


def slow_clients(urls: dict[str, tuple[str, str]], limit_s: float) -> dict[str, dict[str, float]]:
    """Every slow-client kind against every server, all at once; seconds until each was closed."""
    kinds: dict[str, Callable[[str], Callable[[socket.socket], None]]] = {
        "silent": lambda _: (lambda sock: None), "header_drip": lambda _: _drip, "partial_body": _partial_body}
    results: dict[str, dict[str, float]] = {name: {} for name in urls}

    def run(name: str, kind: str) -> None:
        url, post_path = urls[name]
        results[name][kind] = round(_time_to_close(url, kinds[kind](post_path), limit_s), 2)

    threads = [threading.Thread(target=run, args=(n, k)) for n in urls for k in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --------------------------------------------------------------------------- the fuzz corpus

@dataclass
class Probe:
    target: str
    method: str
    url: str
    content: bytes | None
    headers: dict[str, str] = field(default_factory=dict)


def _nest(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


class Corpus:
    """Seeded generator of hostile requests: each starts from a valid request and breaks it one way."""

    def __init__(self, agents_url: str, serve_url: str, tasks: list[Task], seed: int) -> None:
        self.agents, self.serve = agents_url, serve_url
        self.tasks = tasks
        self.rng = random.Random(seed)
        self.auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        self.mcp_sessions: dict[str, list[str]] = {}

    def pick(self, options: list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def junk(self) -> bytes:
        return self.pick([b"", b"{", b"\xff\xfe\x00", b"null", b"[]", b"1e999", b'"x"', b"[" * 50_000,
                          bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(1, 400))),
                          b'{"a": 1,}', b"{" * 3000, "\ud800".encode("utf-8", "surrogatepass")])

    def auth_headers(self) -> dict[str, str]:
        if self.rng.random() < 0.04:
            return self.pick([{}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                              {"authorization": "Basic " + TOKEN}]) | {"content-type": "application/json"}
        return self.auth

    # ----------------------------------------------------------------- agent server
    def call(self) -> Probe:
        body: dict[str, Any] = {"id": f"f{self.rng.randrange(10**6)}", "agent": "phy", "skill": "tbs",
                                "args": {"mcs": 10, "n_prb": 50}}
        kind = self.rng.randrange(14)
        raw: bytes | None = None
        if kind == 0:
            raw = self.junk()
        elif kind == 1:
            body["args"] = {"x": self.pick(["Infinity", "NaN", "-Infinity"])}
            raw = json.dumps(body).replace(f'"{body["args"]["x"]}"', body["args"]["x"]).encode()
        elif kind == 2:
            raw = json.dumps(body).replace('"args": {', '"args": {"deep": ' + _nest(self.rng.choice([40, 300, 5000]))
                                           + ", ").encode()
        elif kind == 3:
            body["agent"] = self.pick(["ghost", "", "a" * 5000, "../phy", "phy\u0000"])
        elif kind == 4:
            body["skill"] = self.pick(["fly", "", "__init__", "handle"])
        elif kind == 5:
            body["args"] = self.pick([[1], "x", None, {"mcs": "ten"}, {"mcs": 10**40}, {"mcs": -1, "n_prb": 1e308},
                                      {"x" * 100: 1}, {str(i): i for i in range(2000)}])
        elif kind == 6:
            body["deadline_ms"] = self.pick([-1, 0, 1e308, "soon", None])
        elif kind == 7:
            body["session"] = self.pick(["no-such", "../../etc", "x" * 10_000, 5, {"a": 1}])
            body["skill"], body["agent"], body["args"] = "cell_load", "ran", {"cell_id": "c0"}
        elif kind == 8:
            body[self.pick(["extra", "__class__", "eval"])] = "__import__('os').system('true')"
        elif kind == 9:
            raw = b'{"id": "big", "agent": "knowledge", "skill": "lookup", "args": {"q": "' + b"x" * (1 << 20) + b'"}}'
        elif kind == 10:
            body["args"] = {"ue_id": "u0"}
            body["agent"], body["skill"] = self.pick([("channel", "sinr"), ("channel_lite", "sinr"), ("kpi", "x")])
        elif kind == 11:
            del body[self.pick(["id", "agent", "skill"])]
        elif kind == 12:
            body["args"] = {"text": "\ud800"}
            raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        else:
            body["caller"] = self.pick([None, 1, "x" * 50_000])
        content = raw if raw is not None else json.dumps(body).encode()
        return Probe("call", "POST", f"{self.agents}/call", content, self.auth_headers())

    def session(self) -> Probe:
        task = self.pick(self.tasks)
        state = task.state.model_dump(mode="json")
        sid = self.pick(["s1", "s2", f"s{self.rng.randrange(200)}", "bad id", "x" * 300, "%2e%2e", "-"])
        body: dict[str, Any] = {"state": state, "faults": [{"agent": "ran", "calls": 1}]}
        kind = self.rng.randrange(10)
        raw: bytes | None = None
        if kind == 0:
            body["faults"] = [{"agent": a, "calls": self.pick([10**9, 10**18, 1e9])} for a in ("ran", "phy", "kpi")]
        elif kind == 1:
            body["faults"] = [{"agent": "ran"}] * self.pick([257, 5000])
        elif kind == 2:
            state["series"] = state["series"] * self.pick([20, 60])  # ~220 KB under the cap, ~660 KB over it
        elif kind == 3:
            raw = self.junk()
        elif kind == 4:
            body["faults"] = [{"agent": "ran", "calls": self.pick([0, -1, "many", None]), "code": "boom"}]
        elif kind == 5:
            body = {"state": self.pick([None, 1, [], {"cells": "x"}])}
        elif kind == 6:
            return Probe("sessions", "DELETE", f"{self.agents}/sessions/{sid}", None, self.auth_headers())
        elif kind == 7:
            state["cells"] = [{"a": 1}] * 3
        elif kind == 8:
            raw = json.dumps(body).replace('"state": {', '"state": {"deep": ' + _nest(5000) + ", ", 1).encode()
        content = raw if raw is not None else json.dumps(body).encode()
        return Probe("sessions", "PUT", f"{self.agents}/sessions/{sid}", content, self.auth_headers())

    # ----------------------------------------------------------------- netgpt serve
    def chat(self) -> Probe:
        task = self.pick(self.tasks)
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": TBS}]}
        kind = self.rng.randrange(20)
        raw: bytes | None = None
        if kind == 0:
            raw = self.junk()
        elif kind == 1:
            body[self.pick(["tools", "tool_choice", "response_format", "logprobs", "top_logprobs", "functions"])] = \
                self.pick([[{"type": "function", "function": {"name": "f"}}], "required", {"type": "json_object"},
                           True, 5])
        elif kind == 2:
            body["messages"][0]["content"] = "x" * self.pick([MAX_QUESTION_CHARS + 1, 200_000])
        elif kind == 3:
            body["messages"][0]["content"] = TBS + "\n```json\n" + "[" * 5000 + "]" * 5000 + "\n```"
        elif kind == 4:
            body["netgpt"] = {"faults": [{"agent": "phy", "calls": self.pick([1e9, 10**18])}]}
        elif kind == 5:
            body["netgpt"] = {"faults": [{"agent": "phy"}] * 300}
        elif kind == 6:
            broken = task.model_dump(mode="json")
            broken[self.pick(["family", "params", "template", "id", "answer"])] = self.pick(
                ["nope", {}, None, "../../x", {"kind": "nope"}])
            body["netgpt"] = {"task": broken}
        elif kind == 7:
            state = task.state.model_dump(mode="json")
            state["series"] = state["series"] * 30
            body["netgpt"] = {"state": state}
        elif kind == 8:
            body["model"] = self.pick(["gpt-4o", "", None, 5])
        elif kind == 9:
            body["messages"] = self.pick([[], [{"role": "assistant", "content": "hi"}], [{"role": "wizard"}],
                                          [{"role": "user", "content": [{"type": "image_url"}]}], "hello"])
        elif kind == 10:
            body["netgpt"] = self.pick([{"max_turns": 99}, {"budget": {"tokens": 1e12}}, {"deadline_ms": 1e9},
                                        {"world_seed": -1}, {"world_seed": 1, "state": {}}, {"typo": 1},
                                        {"observation": {"x": _nest(3)}}])
        elif kind == 11:
            body["n"] = self.pick([2, 0, 10**9])
        elif kind == 12:
            body["stream"] = True
            body["messages"][0]["content"] = self.pick([TBS, "What is the meaning of life?"])
        elif kind == 13:
            body["messages"][0]["content"] = "What is love?"  # not a task the oracle can plan: 400
        elif kind == 14:
            raw = json.dumps(body).replace('"model"', '"netgpt": ' + _nest(self.pick([100, 5000])) + ', "model"',
                                           1).encode()
        elif kind == 15:
            body["netgpt"] = {"task": task.model_dump(mode="json"), "max_turns": self.pick([1, 16])}
            body["messages"][0]["content"] = task.question
        elif kind == 16:
            body["temperature"], body["top_p"], body["max_tokens"] = 2.0, 0.1, 1  # ignored sampling hints: 200
        elif kind == 17:
            body["netgpt"] = {"world_seed": self.rng.randrange(10**6)}
        elif kind == 18:
            body["messages"][0]["content"] = None
        else:
            body["messages"][0]["content"] = TBS + "\n```json\n{\"time\": Infinity}\n```"
        content = raw if raw is not None else json.dumps(body).encode()
        return Probe("chat", "POST", f"{self.serve}/v1/chat/completions", content, self.auth_headers())

    # ----------------------------------------------------------------- MCP (both servers)
    def mcp(self) -> Probe:
        target = self.pick(["agents", "serve"])
        base = self.agents if target == "agents" else self.serve
        sessions = self.mcp_sessions[target]
        headers = {**self.auth, "accept": MCP_ACCEPT, "mcp-session-id": self.pick(sessions),
                   "mcp-protocol-version": MCP_VERSION}
        tool = "phy__tbs" if target == "agents" else "solve_network_task"
        args: Any = {"mcs": 10, "n_prb": 50} if target == "agents" else {"question": TBS}
        kind = self.rng.randrange(12)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.rng.randrange(10**9), "method": "tools/call",
                                   "params": {"name": tool, "arguments": args}}
        raw: bytes | None = None
        if kind == 0:
            raw = self.junk()
        elif kind == 1:
            message["params"]["name"] = self.pick(["ghost", "", "x" * 5000, "phy.tbs"])
        elif kind == 2:
            message["params"]["arguments"] = self.pick([[1], "x", {"mcs": "ten"}, {"question": "x" * 9000},
                                                        {"question": TBS, "max_turns": 99}, {"mcs": 10**40}])
        elif kind == 3:
            raw = json.dumps(message).replace('"arguments": {', '"arguments": {"d": ' + _nest(5000) + ", ").encode()
        elif kind == 4:
            raw = json.dumps(message).replace('"arguments": {', '"arguments": {"mcs": Infinity, ').encode()
        elif kind == 5:
            message["method"] = self.pick(["tools/list", "resources/list", "prompts/get", "nope", "initialize"])
        elif kind == 6:
            headers.pop("mcp-session-id")  # not an initialize: refused without a session
        elif kind == 7:
            headers["mcp-session-id"] = self.pick(["unknown", "x" * 1000])
        elif kind == 8:
            message["params"]["_meta"] = {"netgpt/session": self.pick(["nope", 5, "x" * 500]),
                                          "netgpt/deadline_ms": self.pick([-1, "x", 1e308])}
        elif kind == 9:
            message = [message] * 3  # type: ignore[assignment]  # a JSON-RPC batch
        elif kind == 10:
            headers["accept"] = self.pick(["text/html", "*/*", ""])
        else:
            message["jsonrpc"] = "1.0"
        content = raw if raw is not None else json.dumps(message).encode()
        return Probe(f"mcp_{target}", "POST", f"{base}/mcp", content, headers)

    def next(self) -> Probe:
        draw = self.rng.random()
        if draw < 0.33:
            return self.call()
        if draw < 0.50:
            return self.session()
        if draw < 0.82:
            return self.chat()
        return self.mcp()


async def open_mcp_session(client: httpx.AsyncClient, base: str) -> str:
    """The raw streamable-HTTP handshake: initialize, then the initialized notification; the session's id."""
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json", "accept": MCP_ACCEPT}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": MCP_VERSION, "capabilities": {},
                       "clientInfo": {"name": "bench_hardening", "version": "0"}}}
    response = await client.post(f"{base}/mcp", json=init, headers=headers)
    response.raise_for_status()
    sid = response.headers["mcp-session-id"]
    headers |= {"mcp-session-id": sid, "mcp-protocol-version": MCP_VERSION}
    done = await client.post(f"{base}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                             headers=headers)
    done.raise_for_status()
    return sid


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    hangs: int = 0
    closed: int = 0


async def fuzz(corpus: Corpus, total: int, concurrency: int, client_timeout_s: float, max_seconds: float) -> Tally:
    tally = Tally()
    stop_at = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=client_timeout_s, limits=limits) as client:
        for target, base in (("agents", corpus.agents), ("serve", corpus.serve)):
            corpus.mcp_sessions[target] = [await open_mcp_session(client, base) for _ in range(4)]
        probes = iter(corpus.next, None)

        async def worker() -> None:
            while tally.sent < total and time.monotonic() < stop_at:
                probe = next(probes)
                tally.sent += 1
                try:
                    response = await client.request(probe.method, probe.url, content=probe.content,
                                                    headers=probe.headers)
                    tally.statuses[f"{probe.target} {response.status_code}"] += 1
                    if response.status_code >= 500:
                        tally.server_errors.append(f"{probe.target} {response.status_code}: {response.text[:200]}")
                except httpx.TimeoutException:
                    tally.hangs += 1
                except httpx.TransportError as exc:  # the server closed the connection (e.g. mid-way through a 413)
                    tally.closed += 1
                    tally.statuses[f"{probe.target} closed ({type(exc).__name__})"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


# --------------------------------------------------------------------------- victim latency

VICTIM_TIMEOUT_S = 60.0


def _victim(url: str, n: int) -> tuple[list[float], int]:
    """Latencies of ``n`` normal requests one after another, and how many were unanswered within the timeout
    (counted at the timeout)."""
    latencies, hangs = [], 0
    with httpx.Client(headers={"authorization": f"Bearer {TOKEN}"}, timeout=VICTIM_TIMEOUT_S) as client:
        for _ in range(n):
            started = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/chat/completions",
                                       json={"model": MODEL, "messages": [{"role": "user", "content": TBS}]})
                response.raise_for_status()
            except httpx.TimeoutException:
                hangs += 1
            latencies.append((time.perf_counter() - started) * 1e3)
    return latencies, hangs


def worst_case_body(task: Task, state_bytes: int) -> bytes:
    """The largest request the limits let through: a state just under the cap, 10^9 injected faults on every
    agent, 16 turns, the largest budget and the longest question."""
    state = task.state.model_dump(mode="json")
    unit = len(json.dumps(state["series"]))
    state["series"] = state["series"] * max(1, int(state_bytes * 0.9) // unit)
    faults = [{"agent": a, "calls": 10**9} for a in ("channel", "channel_lite", "phy", "ran", "traffic", "kpi",
                                                       "topology", "knowledge", "traffic_lite")]
    options = {"task": task.model_dump(mode="json") | {"state": state}, "faults": faults, "max_turns": 16,
               "budget": {"latency_ms": 600_000, "bytes": 10_000_000, "tokens": 16_384}}
    question = (task.question + " ") * (MAX_QUESTION_CHARS // (len(task.question) + 1))
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": question}],
                       "netgpt": options}).encode()


def under_attack(url: str, body: bytes, attackers: int, victim_requests: int
                 ) -> tuple[list[float], int, Counter[str]]:
    """The victim's latencies and hangs while ``attackers`` clients send ``body`` back to back; the attack's
    answers by status (``hang`` for one unanswered within the victim's timeout)."""
    stop = threading.Event()
    statuses: Counter[str] = Counter()

    def attack() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
                          timeout=VICTIM_TIMEOUT_S) as client:
            while not stop.is_set():
                try:
                    statuses[str(client.post(f"{url}/v1/chat/completions", content=body).status_code)] += 1
                except httpx.TimeoutException:
                    statuses["hang"] += 1

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(attackers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the attack fill the queue first
    try:
        latencies, hangs = _victim(url, victim_requests)
    finally:
        stop.set()
        for thread in threads:
            thread.join(2 * VICTIM_TIMEOUT_S)
    return latencies, hangs, statuses


# --------------------------------------------------------------------------- main

@app.command()
def main(
    out: Path = typer.Option(ROOT / "results" / "bench_hardening.json", help="JSON to write (and .md beside it)"),
    requests: int = typer.Option(12_000, min=1, help="fuzz requests to send"),
    concurrency: int = typer.Option(16, min=1, help="fuzz connections in flight"),
    client_timeout_s: float = typer.Option(30.0, help="a request unanswered this long is a hang"),
    max_seconds: float = typer.Option(240.0, help="stop fuzzing after this long even if fewer were sent"),
    victim_requests: int = typer.Option(30, min=5, help="normal requests timed idle and under attack"),
    attackers: int = typer.Option(2, min=1, help="clients sending worst-case requests back to back during the attack "
                                                 "(two: one is always running while the other is sent)"),
    seed: int = typer.Option(0),
) -> None:
    """Probe both servers with hostile input and write results/bench_hardening.{json,md}."""
    started = time.monotonic()
    tasks = [t for t in load_tasks(DEV) if t.state is not None][:60]
    agents_cmd = [sys.executable, "-m", "netgpt.protocol.cli", "serve", "--max-sessions", str(AGENT_MAX_SESSIONS)]
    serve_cmd = [sys.executable, "-m", "netgpt.cli", "serve", "--policy", "oracle", "--mcp"]
    logs = Path(tempfile.mkdtemp(prefix="bench_hardening-"))
    with _process(agents_cmd, "NETGPT_AGENTS_TOKEN", "agent server", logs / "agents.log") as (agents_url, agents), \
            _process(serve_cmd, "NETGPT_SERVE_TOKEN", "netgpt serve", logs / "serve.log") as (serve_url, serve):
        _say(f"servers up (logs in {logs})")
        _victim(serve_url, 3)  # warm-up: the first requests fill caches
        with RssSampler({"agent_server": agents, "netgpt_serve": serve}) as rss:
            idle, idle_hangs = _victim(serve_url, victim_requests)
            _say(f"idle p50 {np.median(idle):.1f} ms; slow clients and fuzz")
            slow_result: dict[str, dict[str, float]] = {}
            slow = threading.Thread(target=lambda: slow_result.update(slow_clients(
                {"agent_server": (agents_url, "/call"), "netgpt_serve": (serve_url, "/v1/chat/completions")}, 60)))
            slow.start()
            tally = asyncio.run(fuzz(Corpus(agents_url, serve_url, tasks, seed), requests, concurrency,
                                     client_timeout_s, max_seconds))
            slow.join()
            _say(f"fuzz: {tally.sent} sent, {len(tally.server_errors)} 5xx, {tally.hangs} hangs; attack")
            attack_body = worst_case_body(next(t for t in tasks if t.family == "path_latency"),
                                          DEFAULT_MAX_STATE_BYTES)
            attacked, attack_hangs, attack_statuses = under_attack(serve_url, attack_body, attackers, victim_requests)
        alive = {name: httpx.get(f"{url}/health", timeout=5).status_code == 200
                 for name, url in (("agent_server", agents_url), ("netgpt_serve", serve_url))}
    per_session = SESSION_MEMORY_FACTOR * DEFAULT_MAX_STATE_BYTES / MIB
    per_body = SESSION_MEMORY_FACTOR * DEFAULT_MAX_BODY_BYTES / MIB
    caps = {"agent_server": rss.start_mb["agent_server"] + AGENT_MAX_SESSIONS * per_session + per_body,
            "netgpt_serve": rss.start_mb["netgpt_serve"] + (DEFAULT_MAX_PENDING + 1) * per_body}
    result = {
        "fuzz_requests": tally.sent,
        "status_5xx": len(tally.server_errors),
        "hangs": tally.hangs + idle_hangs + attack_hangs + attack_statuses["hang"],
        "max_rss_mb": {name: {"max": round(rss.peak_mb[name], 1), "start": round(rss.start_mb[name], 1),
                              "cap": round(caps[name], 1)} for name in caps},
        "slowloris_closed_s": max(v for kinds in slow_result.values() for v in kinds.values()),
        "victim_p50_ms_under_attack": round(float(np.median(attacked)), 1),
        "victim_p50_ms_idle": round(float(np.median(idle)), 1),
    }
    detail = {
        "statuses": dict(sorted(tally.statuses.items())), "closed_by_server": tally.closed,
        "server_errors": tally.server_errors[:20], "slow_clients_s": slow_result,
        "attack": {"requests": sum(attack_statuses.values()), "statuses": dict(attack_statuses),
                   "body_bytes": len(attack_body), "attackers": attackers},
        "alive_after": alive, "wall_s": round(time.monotonic() - started, 1),
        "settings": {"requests": requests, "concurrency": concurrency, "client_timeout_s": client_timeout_s,
                     "max_seconds": max_seconds, "seed": seed, "agent_max_sessions": AGENT_MAX_SESSIONS,
                     "max_state_bytes": DEFAULT_MAX_STATE_BYTES, "serve_max_pending": DEFAULT_MAX_PENDING},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(_report(result, detail, out))
    print(json.dumps(result, indent=2))


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _report(result: dict[str, Any], detail: dict[str, Any], out: Path) -> str:
    rss = result["max_rss_mb"]
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    lines = [
        "# Hostile-input probe of both servers (issue 47)", "",
        f"    .venv/bin/python benchmarks/bench_hardening.py --out {shown}",
        "",
        f"Loopback, {detail['machine']}, {detail['wall_s']} s in all. A real agent server (`netgpt agents serve`,"
        f" --max-sessions {AGENT_MAX_SESSIONS}) and a real `netgpt serve --policy oracle --mcp`, both with tokens.", "",
        "| measure | value |", "|---|---|",
        f"| fuzz requests (/call, /sessions, /v1/chat/completions, both /mcp) | {result['fuzz_requests']} |",
        f"| 5xx answers | {result['status_5xx']} |",
        f"| hangs (unanswered after {detail['settings']['client_timeout_s']:g} s) | {result['hangs']} |",
        *(f"| peak RSS {name} (start; cap) | {v['max']} MB ({v['start']}; {v['cap']}) |" for name, v in rss.items()),
        f"| slowest slow client closed after | {result['slowloris_closed_s']} s |",
        f"| normal request p50, idle | {result['victim_p50_ms_idle']} ms |",
        f"| normal request p50, under attack | {result['victim_p50_ms_under_attack']} ms |",
        "",
        f"Slow clients (seconds until closed or answered 408): `{json.dumps(detail['slow_clients_s'])}`. "
        f"Under attack, {detail['attack']['attackers']} clients sent {detail['attack']['requests']} worst-case "
        f"requests ({detail['attack']['body_bytes']} bytes each: a state near the cap, 10^9 injected faults on "
        f"every agent, 16 turns, the longest question), answered `{json.dumps(detail['attack']['statuses'])}`. "
        f"Both servers answered /health afterwards: `{json.dumps(detail['alive_after'])}`. Connections the "
        f"server closed instead of answering: {detail['closed_by_server']} (a body over 1 MiB is cut off at the "
        "413 while the client is still sending it; a kept-alive connection can close as the client reuses it).",
        "", "| endpoint | status | requests |", "|---|---|---|",
        *(f"| {key.split(' ', 1)[0]} | {key.split(' ', 1)[1]} | {n} |" for key, n in detail["statuses"].items()),
        "",
    ]
    if detail["server_errors"]:
        lines += ["5xx answers (first 20):", "", *(f"- `{e}`" for e in detail["server_errors"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    app()
