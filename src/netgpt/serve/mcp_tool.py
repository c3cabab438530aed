"""The core itself as one MCP tool, ``solve_network_task``, so that MCP clients can delegate network tasks to it.

The tool goes through the same :class:`~netgpt.serve.solver.Solver` (and batches) as the HTTP API. Its
arguments are the question plus the ``netgpt`` request extension (:class:`~netgpt.serve.schema.SolveArgs`);
the result is the answer as text and ``{"answer", "trace"}`` as structured content. A question the policy
cannot take is an ``isError`` result, an unknown tool name the protocol error ``-32602``.
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
from netgpt.serve.solver import Solver
from netgpt.serve.tasks import TaskError

TOOL_NAME = "solve_network_task"


def _error(message: str, code: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=f"{code}: {message}")],
                                structured_content={"error": {"code": code, "message": message}}, is_error=True)


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
            return _error(exc.errors(include_url=False)[0]["msg"], "invalid_arguments")
        try:
            solved = await solver.solve(args.question, args)  # SolveArgs is the TaskOptions plus the question
        except TaskError as exc:
            return _error(str(exc), exc.code)
        result = SolveResult(answer=solved.answer, trace=solved.trace)
        text = solved.answer or f"(no answer: the episode ended by {solved.trace.finish_reason})"
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content=result.model_dump(mode="json"))

    return Server(name, version=netgpt.__version__, on_list_tools=list_tools, on_call_tool=call_tool,
                  instructions=f"NetGPT core: call {TOOL_NAME} with a 5G/6G network question.",
                  get_tool_input_schema={TOOL_NAME: tool.input_schema}.get)
