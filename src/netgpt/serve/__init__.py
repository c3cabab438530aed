"""``netgpt serve``: the core behind an OpenAI-compatible HTTP API and as the MCP tool ``solve_network_task``."""

from netgpt.serve.app import create_app
from netgpt.serve.schema import ChatCompletion, ChatCompletionRequest, SolveArgs, TaskOptions, Trace
from netgpt.serve.solver import Solved, Solver
from netgpt.serve.tasks import TaskError, build_task, recognise

__all__ = ["ChatCompletion", "ChatCompletionRequest", "SolveArgs", "Solved", "Solver", "TaskError", "TaskOptions",
           "Trace", "build_task", "create_app", "recognise"]
