"""``netgpt serve``: the command's body (registered in :mod:`netgpt.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from netgpt.core.actions import MAX_NEW_TOKENS


def serve_command(
    policy: Annotated[str, typer.Option(help="prompt | never | always | oracle | random | CHECKPOINT_DIR")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    agents: Annotated[Path | None, typer.Option(help="agents YAML (default: built-in agents in-process)")] = None,
    faults: Annotated[Path | None, typer.Option(help="fault model YAML (default: configs/faults.yaml values)")] = None,
    token: Annotated[str | None, typer.Option(envvar="NETGPT_SERVE_TOKEN",
                                              help="bearer token clients must send (or NETGPT_SERVE_TOKEN)")] = None,
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
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Serve the core behind an OpenAI-compatible API (POST /v1/chat/completions, GET /v1/models); see
    docs/serve.md."""
    import uvicorn

    from netgpt.cli import build_policy, console
    from netgpt.core.episode import EpisodeConfig
    from netgpt.core.model import policy_token_counter
    from netgpt.protocol import AgentRegistry, FaultConfig
    from netgpt.protocol.config import builtin_faults
    from netgpt.serve.app import create_app
    from netgpt.serve.solver import Solver

    fault_config = (FaultConfig.load(faults) if faults else builtin_faults()).model_copy(update={"seed": seed})
    with AgentRegistry.from_config(agents, faults=fault_config) as registry:
        runner = build_policy(policy, registry, model, device, dtype, batch_size, max_new_tokens, seed)
        solver = Solver(runner, registry, policy_token_counter(runner, model),
                        model_id=served_model_name or f"netgpt-{runner.name}",
                        episode=EpisodeConfig(max_turns=max_turns), batch_size=batch_size, max_wait_ms=max_wait_ms)
        limit = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
        app = create_app(solver, token=token, mcp=mcp, host=host, **limit)
        console.print(f"serving [bold]{solver.model_id}[/] on http://{host}:{port}/v1"
                      + (f" and MCP at http://{host}:{port}/mcp" if mcp else "")
                      + (" (bearer token required)" if token else ""))
        uvicorn.run(app, host=host, port=port, log_level=log_level)
