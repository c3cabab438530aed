"""``netgpt agents …``: serve the network agents over HTTP and MCP, and list their cards.

Mounted by ``netgpt.cli`` as ``app.add_typer(agents_app, name="agents")``; also runnable on its own as
``python -m netgpt.protocol.cli``.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from netgpt.protocol.http_server import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_STATE_BYTES,
    DEFAULT_SESSION,
    AuthConfigError,
    Timeouts,
    check_auth,
    serve,
)

agents_app = typer.Typer(help="Network agents: serve them over HTTP and MCP, list their cards.",
                         no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", exists=True, dir_okay=False, help="agents YAML (default: the built-in agents, in-process)")]
TOKEN_ENV = "NETGPT_AGENTS_TOKEN"
TokenOption = Annotated[str | None, typer.Option(
    envvar=TOKEN_ENV, help="bearer token clients must send (better: set NETGPT_AGENTS_TOKEN)")]
StateOption = Annotated[Path | None, typer.Option(
    exists=True, dir_okay=False, help="World JSON, or a task JSON whose state is used, for the default session")]
NoAuthOption = Annotated[bool, typer.Option(
    "--no-auth", help="serve without a token (loopback only); without it a non-empty token is required")]
HeaderTimeoutOption = Annotated[float, typer.Option(
    min=0.1, help="seconds a client has to send a request's headers before the connection is closed")]
ReadTimeoutOption = Annotated[float, typer.Option(
    min=0.1, help="seconds a client has to send a request's body before it is answered 408")]
KeepAliveOption = Annotated[float, typer.Option(min=1, help="seconds an idle kept-alive connection stays open")]


class McpTransport(StrEnum):
    STDIO = "stdio"
    STREAMABLE_HTTP = "streamable-http"


def _load_state(path: Path | None):
    """A world from a World JSON file or from the ``state`` of a task JSON file."""
    if path is None:
        return None
    from pydantic import ValidationError

    from netgpt.world import World

    try:
        data = json.loads(path.read_text())
        return World.model_validate(data["state"] if isinstance(data, dict) and "state" in data else data)
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(f"{path} holds neither a World nor a task: {exc}", param_hint="--state") from None


@agents_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8700,
    token: TokenOption = None,
    config: ConfigOption = None,
    faults: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="simulate this fault model server-side (default: measure real time)")] = None,
    no_auth: NoAuthOption = False,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="largest request body accepted")] = 1 << 20,
    max_state_bytes: Annotated[int, typer.Option(
        min=1024, help="largest session body (World JSON + faults); a session holds about 8x this in memory")]
    = DEFAULT_MAX_STATE_BYTES,
    max_sessions: Annotated[int, typer.Option(
        min=1, help="open sessions kept (least recently used go first); memory ≤ max-sessions × 8 × max-state-bytes")]
    = DEFAULT_MAX_SESSIONS,
    header_timeout_s: HeaderTimeoutOption = Timeouts.header_timeout_s,
    read_timeout_s: ReadTimeoutOption = Timeouts.read_timeout_s,
    keep_alive_s: KeepAliveOption = Timeouts.keep_alive_s,
    mcp: Annotated[bool, typer.Option(help="also serve the agents as MCP tools at /mcp")] = True,
    state: StateOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the agents over HTTP: GET /agents, POST /call, PUT|DELETE /sessions/{id}, GET /health, and /mcp.

    Closed by default: a non-empty token (NETGPT_AGENTS_TOKEN or --token) is required, or --no-auth on loopback.
    """
    from netgpt.protocol.faults import FaultConfig

    token = checked_token(token, no_auth=no_auth, host=host, env_var=TOKEN_ENV)
    serve(host, port, token, config, no_auth=no_auth, faults=FaultConfig.load(faults) if faults else None,
          max_body_bytes=max_body_bytes, max_state_bytes=max_state_bytes, max_sessions=max_sessions,
          timeouts=Timeouts(header_timeout_s, read_timeout_s, keep_alive_s), mcp=mcp, state=_load_state(state),
          log_level=log_level)


def checked_token(token: str | None, *, no_auth: bool, host: str, env_var: str) -> str | None:
    """:func:`~netgpt.protocol.http_server.check_auth` for a command: a refused start-up (no or empty token,
    open mode off loopback) is one line and exit code 2, not a traceback."""
    try:
        return check_auth(token, no_auth=no_auth, host=host, env_var=env_var)
    except AuthConfigError as exc:
        console.print(f"[red]refusing to start[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None


@agents_app.command("mcp")
def mcp_command(
    config: ConfigOption = None,
    state: StateOption = None,
    transport: Annotated[McpTransport, typer.Option(help="stdio, or streamable HTTP at http://HOST:PORT/mcp")]
    = McpTransport.STDIO,
    host: Annotated[str, typer.Option(help="streamable-http only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="streamable-http only")] = 8701,
    token: TokenOption = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="streamable-http only: serve without a token "
                                                              "(loopback only)")] = False,
) -> None:
    """Serve every agent skill as an MCP tool named <agent>__<skill> (stdio by default)."""
    world = _load_state(state)
    if transport is McpTransport.STREAMABLE_HTTP:
        token = checked_token(token, no_auth=no_auth, host=host, env_var=TOKEN_ENV)
        serve(host, port, token, config, no_auth=no_auth, state=world, log_level="warning")
        return
    from netgpt.protocol.faults import FaultConfig
    from netgpt.protocol.mcp_server import build_mcp_server, serve_stdio
    from netgpt.protocol.registry import AgentRegistry

    registry = AgentRegistry.from_config(config, faults=FaultConfig(simulate=False), max_sessions=DEFAULT_MAX_SESSIONS)
    if world is not None:
        registry.open_session(DEFAULT_SESSION, world)
    try:
        serve_stdio(build_mcp_server(registry, default_session=DEFAULT_SESSION if world is not None else None))
    finally:
        registry.close()


@agents_app.command("list")
def list_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the cards as JSON")] = False,
) -> None:
    """Show the agents a config reaches: skills, latency, cost, reliability and where they run."""
    from netgpt.protocol.registry import AgentRegistry

    try:
        registry = AgentRegistry.from_config(config)
    except Exception as exc:  # a config naming an unreachable server: say so, no traceback
        console.print(f"[red]cannot load agents[/]: {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    with registry:
        cards = registry.cards()
    if as_json:
        sys.stdout.write(json.dumps([c.model_dump(mode="json") for c in cards], indent=2) + "\n")
        return
    table = Table(title=f"{len(cards)} agents")
    for column in ("agent", "skills", "median ms", "cost/call", "reliability", "endpoint"):
        table.add_column(column)
    for card in cards:
        skills = ", ".join(s.name + ("*" if s.needs_state else "") for s in card.skills)
        table.add_row(card.name, skills, f"{card.cost.latency.median_ms:g}", f"{card.cost.per_call_cost:g}",
                      f"{card.cost.reliability:g}", card.endpoint or "in-process")
    Console().print(table)
    console.print("* reads the network state (needs a session)")


if __name__ == "__main__":
    agents_app()
