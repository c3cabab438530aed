"""The OpenAI-compatible HTTP API of ``netgpt serve`` (FastAPI), and the MCP tool at ``/mcp``.

``POST /v1/chat/completions`` runs one episode per request and answers with the core's final answer as the
assistant message and the episode trace in the extension field ``netgpt``; ``stream=true`` sends the same as
server-sent ``chat.completion.chunk`` events ending with ``data: [DONE]``. ``GET /v1/models`` lists the one
served model. Every error is an OpenAI error object ``{"error": {"message", "type", "code", "param"}}``: 400
malformed JSON, an unusable task, a question over :data:`~netgpt.serve.schema.MAX_QUESTION_CHARS` or the
model's context, or a field the server does not support (``tools``, ``response_format``, ``logprobs``…), 401
token, 404 unknown model or route, 408 a body that did not arrive in time, 413 a body or state too large, 422 a
body that does not fit the schema, 429 too many requests queued, 504 an episode past the request time limit.
A failing agent is part of the episode (an error reply in the trace), never an HTTP error.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.routing import Route

import netgpt
from netgpt.protocol.http_server import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SESSIONS, GuardMiddleware, Timeouts
from netgpt.serve.schema import (
    MAX_QUESTION_CHARS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorResponse,
    ModelCard,
    ModelList,
    Usage,
)
from netgpt.serve.solver import EpisodeTimeout, Overloaded, RequestError, Solved, Solver
from netgpt.serve.tasks import TaskError

logger = logging.getLogger(__name__)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 408: "invalid_request_error", 413: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 504: "timeout_error"}
_GUARD_CODES = {401: "invalid_api_key", 408: "request_timeout", 413: "request_too_large"}


def error_response(status: int, message: str, code: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=_ERROR_TYPES.get(status, "invalid_request_error"),
                                         code=code, param=param))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class OpenAIGuard(GuardMiddleware):
    """The agent server's token check, streamed body limit and body deadline, answering in OpenAI's error format."""

    def error_payload(self, status: int, message: str) -> dict[str, Any]:
        return ErrorResponse(error=ErrorBody(message=message, type=_ERROR_TYPES[status],
                                             code=_GUARD_CODES[status])).model_dump()


def _invalid(exc: ValidationError) -> JSONResponse:
    """400 for a body that is not JSON, 422 for JSON that does not fit the schema (the body is not echoed)."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    if errors[0]["type"] == "json_invalid":
        return error_response(400, f"malformed JSON: {errors[0]['msg'].removeprefix('Invalid JSON: ')}",
                              "invalid_json")
    parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"] for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return error_response(422, "; ".join(parts) + more, "invalid_request",
                          param=".".join(map(str, errors[0]["loc"])) or None)


def _usage(solved: Solved) -> Usage:
    completion = solved.result.cost.tokens
    return Usage(prompt_tokens=solved.prompt_tokens, completion_tokens=completion,
                 total_tokens=solved.prompt_tokens + completion)


def _sse(chunk: BaseModel | str) -> str:
    return f"data: {chunk if isinstance(chunk, str) else chunk.model_dump_json()}\n\n"


def _refused(exc: TaskError) -> JSONResponse:
    """A request that cannot become a task: 413 for a state over the limit, else 400, naming the field."""
    param = exc.param if isinstance(exc, RequestError) else "messages"
    return error_response(413 if exc.code == "state_too_large" else 400, str(exc), exc.code, param=param)


def create_app(solver: Solver, *, token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               mcp: bool = False, host: str = "127.0.0.1", read_timeout_s: float = Timeouts.read_timeout_s,
               max_mcp_sessions: int = DEFAULT_MAX_SESSIONS) -> FastAPI:
    """The API for ``solver`` (started and stopped with the app); ``mcp`` adds ``solve_network_task`` at ``/mcp``.

    ``host`` is where the server listens; loopback hosts turn on the MCP transport's DNS-rebinding protection.
    """
    manager = None
    if mcp:
        from netgpt.protocol.mcp_server import streamable_http
        from netgpt.serve.mcp_tool import build_solver_mcp_server

        mcp_app, manager = streamable_http(build_solver_mcp_server(solver), host, max_sessions=max_mcp_sessions)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await solver.start()
            stack.push_async_callback(solver.stop)
            if manager is not None:
                await stack.enter_async_context(manager.run())
            yield

    app = FastAPI(title="NetGPT", version=netgpt.__version__, lifespan=lifespan,
                  description="The NetGPT core behind an OpenAI-compatible chat-completions API (docs/serve.md).")

    @app.exception_handler(HTTPException)
    async def http_error(_: HttpRequest, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else "error"
        return error_response(exc.status_code, str(exc.detail), code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(_: HttpRequest, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(500, "internal error of the NetGPT server", "internal_error")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": solver.model_id}

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=solver.model_id, created=solver.created)])

    @app.get("/v1/models/{model_id}", response_model=ModelCard)
    async def model(model_id: str) -> ModelCard | JSONResponse:
        if model_id != solver.model_id:
            return _unknown_model(model_id)
        return ModelCard(id=solver.model_id, created=solver.created)

    def _unknown_model(name: str) -> JSONResponse:
        return error_response(404, f"the model {name!r} does not exist; this server serves {solver.model_id!r}",
                              "model_not_found", param="model")

    @app.post("/v1/chat/completions", response_model=ChatCompletion,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": ChatCompletionRequest.model_json_schema()}}}})
    async def chat_completions(http: HttpRequest) -> Any:
        try:
            request = ChatCompletionRequest.model_validate_json(await http.body())
        except ValidationError as exc:
            return _invalid(exc)
        if request.model != solver.model_id:
            return _unknown_model(request.model)
        unsupported = request.unsupported_field()
        if unsupported is not None:
            return error_response(400, f"{unsupported} is not supported: the NetGPT core answers in text and calls "
                                       "its own network agents (docs/serve.md lists the fields it ignores)",
                                  "unsupported_parameter", param=unsupported)
        last = request.messages[-1]
        if last.role != "user":
            return error_response(400, "the last message must be the user's network task", "invalid_messages",
                                  param="messages")
        text = last.text()
        if len(text) > MAX_QUESTION_CHARS:
            return error_response(400, f"the question is {len(text)} characters, over the {MAX_QUESTION_CHARS}-"
                                       "character limit", "question_too_long", param="messages")
        try:
            task, config, recognised = solver.prepare(text, request.netgpt)
        except TaskError as exc:
            return _refused(exc)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not request.stream:
            try:
                solved = await solver.submit(task, config, recognised)
            except EpisodeTimeout as exc:
                return error_response(504, str(exc), "episode_timeout")
            except Overloaded as exc:
                return error_response(429, str(exc), "overloaded", headers={"retry-after": "1"})
            choice = Choice(message=AssistantMessage(content=solved.answer), finish_reason=_finish(solved))
            return ChatCompletion(id=completion_id, created=created, model=solver.model_id, choices=[choice],
                                  usage=_usage(solved), netgpt=solved.trace)

        include_usage = request.stream_options is not None and request.stream_options.include_usage

        def chunk(delta: Delta, **fields: Any) -> ChatCompletionChunk:
            choices = [ChunkChoice(delta=delta, finish_reason=fields.pop("finish_reason", None))]
            return ChatCompletionChunk(id=completion_id, created=created, model=solver.model_id, choices=choices,
                                       **fields)

        async def events() -> AsyncIterator[str]:
            # The role chunk goes out at once; the answer follows when the episode ends (an episode's turns
            # are not visible to the client until then).
            yield _sse(chunk(Delta(role="assistant", content="")))
            try:
                solved = await solver.submit(task, config, recognised)
            except (EpisodeTimeout, RuntimeError) as exc:  # Overloaded too; the 200 is sent: the error is an event
                status, code = (504, "episode_timeout") if isinstance(exc, EpisodeTimeout) else \
                    (429, "overloaded") if isinstance(exc, Overloaded) else (500, "internal_error")
                message = "internal error of the NetGPT server" if status == 500 else str(exc)
                body = ErrorBody(message=message, type=_ERROR_TYPES[status], code=code)
                yield _sse(ErrorResponse(error=body))
                yield _sse("[DONE]")
                return
            if solved.answer:
                yield _sse(chunk(Delta(content=solved.answer)))
            yield _sse(chunk(Delta(), finish_reason=_finish(solved), netgpt=solved.trace))
            if include_usage:
                yield _sse(ChatCompletionChunk(id=completion_id, created=created, model=solver.model_id,
                                               choices=[], usage=_usage(solved)))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    if manager is not None:
        app.router.routes.append(Route("/mcp", endpoint=mcp_app))
    app.add_middleware(OpenAIGuard, token=token, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s)
    return app


def _finish(solved: Solved) -> str:
    return "stop" if solved.result.finish_reason == "answer" else "length"
