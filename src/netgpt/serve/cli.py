"""``netgpt serve``: the command's body (registered in :mod:`netgpt.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.protocol.cli import HeaderTimeoutOption, KeepAliveOption, NoAuthOption, ReadTimeoutOption, checked_token
from netgpt.protocol.http_server import DEFAULT_MAX_STATE_BYTES, Timeouts, run_uvicorn
from netgpt.serve.solver import DEFAULT_MAX_PENDING, DEFAULT_REQUEST_TIMEOUT_S

console = Console(stderr=True)


def serve_command(
    policy: Annotated[str, typer.Option(help="prompt | never | always | oracle | random | CHECKPOINT_DIR")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    agents: Annotated[Path | None, typer.Option(help="agents YAML (default: built-in agents in-process)")] = None,
    faults: Annotated[Path | None, typer.Option(help="fault model YAML (default: configs/faults.yaml values)")] = None,
    token: Annotated[str | None, typer.Option(envvar="NETGPT_SERVE_TOKEN",
                                              help="bearer token clients must send (or NETGPT_SERVE_TOKEN)")] = None,
    no_auth: NoAuthOption = False,
    batch_size: Annotated[int, typer.Option(min=1, help="most requests run as one episode batch")] = 8,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="how long a batch waits for more requests")] = 5.0,
    mcp: Annotated[bool, typer.Option(help="also serve the MCP tool solve_network_task at /mcp")] = False,
    model: Annotated[str | None, typer.Option(help="transformers model id or path (default: SmolLM2-135M)")] = None,
    served_model_name: Annotated[str | None, typer.Option(help="model id clients ask for (default "
                                                                "netgpt-<policy>)")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 | float16")] = "float32",
    max_new_tokens: Annotated[int, typer.Option(min=8, help="tokens the core may generate per turn")] = MAX_NEW_TOKENS,
    max_turns: Annotated[int, typer.Option(min=1, help="default turns per episode")] = 4,
    seed: Annotated[int, typer.Option(help="seed of the fault model and of the random policy")] = 0,
    max_body_bytes: Annotated[int | None, typer.Option(min=1024, help="request body limit (default 1 MiB)")] = None,
    max_state_bytes: Annotated[int, typer.Option(min=1024, help="largest netgpt.state (World JSON) of a request")]
    = DEFAULT_MAX_STATE_BYTES,
    request_timeout_s: Annotated[float, typer.Option(
        min=0.1, help="wall-clock limit of one request's episode (504 past it)")] = DEFAULT_REQUEST_TIMEOUT_S,
    max_pending: Annotated[int, typer.Option(min=1, help="requests queued or running at once (429 past it)")]
    = DEFAULT_MAX_PENDING,
    header_timeout_s: HeaderTimeoutOption = Timeouts.header_timeout_s,
    read_timeout_s: ReadTimeoutOption = Timeouts.read_timeout_s,
    keep_alive_s: KeepAliveOption = Timeouts.keep_alive_s,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Serve the core behind an OpenAI-compatible API (POST /v1/chat/completions, GET /v1/models); see
    docs/serve.md. Closed by default: a non-empty token (NETGPT_SERVE_TOKEN or --token) is required, or
    --no-auth on loopback."""
    from netgpt.core.episode import EpisodeConfig
    from netgpt.core.factory import SCRIPTED, PolicySpec, UnknownPolicyError, build_policy, check_policy_name
    from netgpt.core.model import policy_token_counter
    from netgpt.protocol import AgentRegistry, FaultConfig
    from netgpt.protocol.config import builtin_faults
    from netgpt.serve.app import create_app
    from netgpt.serve.solver import Solver

    # before the model loads: a refused start-up should take a moment, not minutes
    token = checked_token(token, no_auth=no_auth, host=host, env_var="NETGPT_SERVE_TOKEN")
    timeouts = Timeouts(header_timeout_s, read_timeout_s, keep_alive_s)
    try:
        check_policy_name(policy)
    except UnknownPolicyError as err:
        raise typer.BadParameter(str(err), param_hint="--policy") from None
    fault_config = (FaultConfig.load(faults) if faults else builtin_faults()).model_copy(update={"seed": seed})
    with AgentRegistry.from_config(agents, faults=fault_config) as registry:
        spec = PolicySpec(name=policy, model=model, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
                          seed=seed, batch_size=None if policy in SCRIPTED else batch_size)  # scripted: their own
        runner = build_policy(spec, registry, status=lambda m: console.print(f"[dim]{m}"))
        solver = Solver(runner, registry, policy_token_counter(runner, model),
                        model_id=served_model_name or f"netgpt-{runner.name}",
                        episode=EpisodeConfig(max_turns=max_turns), batch_size=batch_size, max_wait_ms=max_wait_ms,
                        request_timeout_s=request_timeout_s, max_state_bytes=max_state_bytes, max_pending=max_pending)
        limit = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
        app = create_app(solver, token=token, mcp=mcp, host=host, read_timeout_s=read_timeout_s, **limit)
        console.print(f"serving [bold]{solver.model_id}[/] on http://{host}:{port}/v1"
                      + (f" and MCP at http://{host}:{port}/mcp" if mcp else "")
                      + (" (bearer token required)" if token else ""))
        run_uvicorn(app, host, port, timeouts, log_level)
