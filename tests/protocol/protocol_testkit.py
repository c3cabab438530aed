"""Fixtures shared by the protocol tests: a small real agent, a world, and servers on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loopback import free_port, uvicorn_thread, wait_until_healthy  # noqa: F401  (re-exported)

from netgpt.protocol import Agent, AgentCard, AgentError, CostModel, ErrorCode, LatencyModel, Request, Skill
from netgpt.world import World, WorldConfig, generate_world

HERE = Path(__file__).resolve().parent
PROBE_CONFIG = HERE / "probe_agents.yaml"

_OBJECT: dict[str, Any] = {"type": "object"}


TOKEN = "s3cret-token"

def _args(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


class ProbeAgent(Agent):
    """A real agent with one skill per behaviour the protocol must handle."""

    card = AgentCard(
        name="probe",
        description="test agent",
        skills=[
            Skill(name="echo", description="repeat a text",
                  args_schema=_args({"text": {"type": "string", "maxLength": 200},
                                     "times": {"type": "integer", "minimum": 1, "maximum": 5}}, ["text"]),
                  result_schema=_args({"text": {"type": "string"}}, ["text"]), needs_state=False),
            Skill(name="measure", description="a number and a list of numbers, for the noise model",
                  args_schema=_args({"value": {"type": "number"}}, ["value"]),
                  result_schema=_OBJECT, needs_state=False),
            Skill(name="cell_count", description="how many cells the world has (reads the state)",
                  args_schema=_args({}), result_schema=_OBJECT, needs_state=True),
            Skill(name="cell_power", description="a cell's transmit power; unknown cell ids are invalid_args",
                  args_schema=_args({"cell_id": {"type": "string"}}, ["cell_id"]),
                  result_schema=_args({"tx_power_dbm": {"type": "number"}}, ["tx_power_dbm"]), needs_state=True),
            Skill(name="crash", description="raises an arbitrary exception", args_schema=_args({}),
                  result_schema=_OBJECT, needs_state=False),
            Skill(name="sleep", description="takes real time", args_schema=_args({"ms": {"type": "number",
                                                                                      "maximum": 3000}}, ["ms"]),
                  result_schema=_OBJECT, needs_state=False),
        ],
        cost=CostModel(latency=LatencyModel(median_ms=20.0, sigma=0.5, floor_ms=1.0), per_call_cost=2.0),
    )

    def __init__(self, pidfile: str | None = None) -> None:
        if pidfile:  # lets a test find and kill the server process hosting this agent
            Path(pidfile).write_text(str(os.getpid()))

    def handle(self, skill: str, args: dict[str, Any], state: World | None) -> dict[str, Any]:
        if skill == "echo":
            return {"text": args["text"] * args.get("times", 1)}
        if skill == "measure":
            return {"value": args["value"], "series": [args["value"], 2 * args["value"]], "label": "x",
                    "nested": {"value": args["value"]}}
        if skill == "cell_count":
            assert state is not None
            return {"cells": len(state.cells), "scenario": state.scenario}
        if skill == "cell_power":
            assert state is not None
            try:
                return {"tx_power_dbm": state.cell(args["cell_id"]).tx_power_dbm}
            except KeyError as exc:
                raise AgentError(ErrorCode.INVALID_ARGS, exc.args[0]) from None
        if skill == "crash":
            raise ZeroDivisionError("boom")
        if skill == "sleep":
            time.sleep(args["ms"] / 1e3)
            return {"slept_ms": args["ms"]}
        raise AssertionError(skill)


def world(seed: int = 3) -> World:
    return generate_world(WorldConfig(seed=seed))


def request(skill: str, args: dict[str, Any] | None = None, **fields: Any) -> Request:
    fields.setdefault("id", f"r-{skill}")
    fields.setdefault("agent", "probe")
    return Request(skill=skill, args=args or {}, **fields)


def subprocess_env() -> dict[str, str]:
    """The environment of a server subprocess: it must import this module by name."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@contextmanager
def server_process(*args: str, token: str | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``netgpt agents serve`` in a subprocess on a free port; yields its URL and process. Without a ``token`` it
    runs open (``--no-auth``, loopback)."""
    port = free_port()
    cmd = [sys.executable, "-m", "netgpt.protocol.cli", "serve", "--port", str(port),
           "--config", str(PROBE_CONFIG), "--log-level", "warning", *args]
    env = subprocess_env()
    env.pop("NETGPT_AGENTS_TOKEN", None)
    if token:
        env["NETGPT_AGENTS_TOKEN"] = token
    else:
        cmd.append("--no-auth")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, 30, "agent server")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
