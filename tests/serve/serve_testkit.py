"""Helpers shared by the serve tests: a Solver behind a real uvicorn server on loopback, and bench tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from loopback import free_port, uvicorn_thread  # noqa: F401  (re-exported)
from mcp import Client

from netgpt.core.episode import EpisodeConfig, Policy
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry
from netgpt.serve import Solver, create_app
from netgpt.serve.mcp_tool import build_solver_mcp_server
from netgpt.tasks import Task, load_tasks

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "serve-s3cret"
MODEL = "netgpt-test"
TBS_QUESTION = ("TBS for I_MCS = 24 (Table 5.1.3.1-1 (64QAM)), n_PRB = 76, N_symb = 14, N_DMRS = 18, N_oh = 12, "
                "v = 1?")
TBS_ANSWER = "47112 bits"  # TS 38.214 §5.1.3.2 by hand, also in README and tests/radio
PATHLOSS_QUESTION = ("Compute the 3GPP UMa NLOS path loss for d2D = 250 m, fc = 3.5 GHz, hBS = 25 m, "
                     "hUT = 1.5 m.")


def count_tokens(text: str) -> int:
    return len(text) // 4


_DEV: list[Task] = []


def dev_tasks() -> list[Task]:
    if not _DEV:
        _DEV.extend(load_tasks(ROOT / "data" / "bench" / "dev.jsonl"))
    return _DEV


def dev_task(family: str, index: int = 0) -> Task:
    return [t for t in dev_tasks() if t.family == family][index]


@contextmanager
def serving(policy: Policy, registry: AgentRegistry, *, token: str | None = TOKEN, mcp: bool = False,
            episode: EpisodeConfig | None = None, solver_options: dict[str, Any] | None = None,
            **app_options: Any) -> Iterator[str]:
    solver = Solver(policy, registry, count_tokens, model_id=MODEL, episode=episode, batch_size=8, max_wait_ms=5,
                    **(solver_options or {}))
    with uvicorn_thread(create_app(solver, token=token, mcp=mcp, **app_options)) as url:
        yield url


@asynccontextmanager
async def oracle_mcp_client(registry: AgentRegistry, **solver_options: Any) -> AsyncIterator[Client]:
    """An MCP client connected in memory to the solver tool over the oracle policy."""
    solver = Solver(OraclePolicy(), registry, count_tokens, model_id=MODEL, **solver_options)
    await solver.start()
    try:
        async with Client(build_solver_mcp_server(solver)) as connected:
            yield connected
    finally:
        await solver.stop()
