"""The core itself as one MCP tool, ``solve_network_task``, so that MCP clients can delegate network tasks to it.

The tool goes through the same :class:`~netgpt.serve.solver.Solver` (and batches) as the HTTP API. Its
arguments are the question plus the ``netgpt`` request extension (:class:`~netgpt.serve.schema.SolveArgs`);
the result is the answer as text and ``{"answer", "trace"}`` as structured content. A question the policy
cannot take, one over a limit (the same limits as the HTTP API: question length, context, state size) and an
episode past the request time limit are ``isError`` results naming the field or the limit; an unknown tool name
is the protocol error ``-32602``.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from pydantic import ValidationError

import netgpt
from netgpt.serve.schema import SolveArgs, SolveResult
from netgpt.serve.solver import EpisodeTimeout, Overloaded, RequestError, Solver
from netgpt.serve.tasks import TaskError

TOOL_NAME = "solve_network_task"


def _error(message: str, code: str, field: str | None = None) -> types.CallToolResult:
    error = {"code": code, "message": message} | ({"field": field} if field else {})
    return types.CallToolResult(content=[types.TextContent(text=f"{code}: {message}")],
                                structured_content={"error": error}, is_error=True)


def _argument(param: str) -> str:
    """The tool argument behind an HTTP request field: the question is the message, the options are flat."""
    return "question" if param == "messages" else param.removeprefix("netgpt.")


def build_solver_mcp_server(solver: Solver, *, name: str = "netgpt-core") -> Server[Any]:
    tool = types.Tool(
        name=TOOL_NAME, title="Solve a 5G network task with NetGPT",
        description=("Hand a network task to the NetGPT core: it answers it itself or calls its network agents "
                     "(propagation, PHY, traffic, RAN, topology, KPI, 3GPP knowledge) and returns the answer with "
                     "the trace of every call. Optional: an observation, the hidden network state (state, "
                     "world_seed or a whole NetGPT-Bench task), injected faults, deadline_ms, max_turns, budget."),
        input_schema=SolveArgs.model_json_schema(), output_schema=SolveResult.model_json_schema(),
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=True))

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult:
        if params.name != TOOL_NAME:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r}")
        try:
            args = SolveArgs.model_validate(params.arguments or {})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(map(str, first["loc"])) or None
            return _error(f"{field}: {first['msg']}" if field else first["msg"], "invalid_arguments", field)
        try:
            solved = await solver.solve(args.question, args)  # SolveArgs is the TaskOptions plus the question
        except TaskError as exc:
            return _error(str(exc), exc.code, _argument(exc.param) if isinstance(exc, RequestError) else "question")
        except EpisodeTimeout as exc:
            return _error(str(exc), "episode_timeout")
        except Overloaded as exc:
            return _error(str(exc), "overloaded")
        result = SolveResult(answer=solved.answer, trace=solved.trace)
        text = solved.answer or f"(no answer: the episode ended by {solved.trace.finish_reason})"
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content=result.model_dump(mode="json"))

    return Server(name, version=netgpt.__version__, on_list_tools=list_tools, on_call_tool=call_tool,
                  instructions=f"NetGPT core: call {TOOL_NAME} with a 5G/6G network question.",
                  get_tool_input_schema={TOOL_NAME: tool.input_schema}.get)
