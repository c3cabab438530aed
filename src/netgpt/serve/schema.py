"""Wire types of ``netgpt serve``: the OpenAI chat-completions subset it speaks, and the ``netgpt`` extensions.

Requests accept (and ignore) the OpenAI sampling fields clients habitually send, but refuse the fields that
would change what the answer means (:data:`UNSUPPORTED_FIELDS`); the ``netgpt`` extension object is strict
(``extra="forbid"``), so a typo there is a 422 instead of a silently ignored option. Every size a request
controls is bounded here or in the app: the question (:data:`MAX_QUESTION_CHARS`, on HTTP and MCP alike), the
faults (``MAX_INJECTED_FAULTS``), turns, budgets and the deadline.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from netgpt.core.episode import Event, FinishReason
from netgpt.protocol.faults import MAX_INJECTED_FAULTS
from netgpt.reward import Budget, EpisodeCost
from netgpt.tasks.schema import InjectedFault, Observation, Task
from netgpt.world import World

MAX_QUESTION_CHARS = 8000
"""Longest question, in characters, over HTTP (the last user message) and MCP (``question``) alike."""
MAX_BUDGET = Budget(latency_ms=600_000.0, bytes=10_000_000.0, tokens=16_384.0)
"""The largest episode budget a request may ask for, field by field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskOptions(_Strict):
    """How the question becomes a task: the hidden network state, what the core observes, injected faults, and
    per-request episode limits. Sent as the ``netgpt`` field of a chat request (``extra_body`` in the OpenAI
    client) or as the arguments of the MCP tool ``solve_network_task``."""

    task: Task | None = Field(None, description="a whole NetGPT-Bench task (a line of data/bench/*.jsonl): its "
                                                "state, observation, faults, family and parameters are used")
    state: World | None = Field(None, description="the hidden network state the agents read")
    world_seed: int | None = Field(None, ge=0, description="generate the state with netgpt.world (seeded)")
    observation: Observation | None = Field(None, description="what the core sees (or a ```json block in the "
                                                              "message)")
    faults: list[InjectedFault] | None = Field(None, max_length=MAX_INJECTED_FAULTS,
                                               description="make the first calls to an agent fail")
    deadline_ms: float | None = Field(None, gt=0, le=60_000, description="deadline of every agent request")
    max_turns: int | None = Field(None, ge=1, le=16)
    budget: Budget | None = Field(None, description="episode budget: agent latency, bytes, generated tokens")

    @model_validator(mode="after")
    def _one_state(self) -> TaskOptions:
        if sum(x is not None for x in (self.task, self.state, self.world_seed)) > 1:
            raise ValueError("give at most one of task, state and world_seed")
        return self

    @field_validator("task")
    @classmethod
    def _few_task_faults(cls, task: Task | None) -> Task | None:
        if task is not None and len(task.faults) > MAX_INJECTED_FAULTS:
            raise ValueError(f"faults: {len(task.faults)} entries, at most {MAX_INJECTED_FAULTS}")
        return task

    @field_validator("budget")
    @classmethod
    def _bounded_budget(cls, budget: Budget | None) -> Budget | None:
        for name in Budget.model_fields:
            if budget is not None and getattr(budget, name) > getattr(MAX_BUDGET, name):
                raise ValueError(f"{name}: at most {getattr(MAX_BUDGET, name):g}")
        return budget


class SolveArgs(TaskOptions):
    """Arguments of the MCP tool ``solve_network_task``."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the network task in free text")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. tool_calls / refusal on replayed assistant turns
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


UNSUPPORTED_FIELDS = ("tools", "tool_choice", "functions", "function_call", "response_format", "logprobs",
                      "top_logprobs")
"""Request fields that would change what the reply means, refused with a 400 naming the field when they ask for
anything (see :meth:`ChatCompletionRequest.unsupported_field`)."""


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send sampling fields (temperature, top_p, max_tokens, …) that do not apply to an episode:
    # they are accepted and ignored; generation settings belong to the server (`netgpt serve --max-new-tokens`).
    # Fields that change the reply's meaning (UNSUPPORTED_FIELDS) are parsed so that they can be refused.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="one episode per request")
    netgpt: TaskOptions = Field(default_factory=TaskOptions)
    tools: list[Any] | None = Field(None, description="refused unless empty: the core calls its own agents")
    tool_choice: Any = Field(None, description="refused unless 'none' or 'auto'")
    functions: list[Any] | None = Field(None, description="refused unless empty (legacy tools)")
    function_call: Any = Field(None, description="refused unless 'none' or 'auto' (legacy tool_choice)")
    response_format: Any = Field(None, description="refused unless {'type': 'text'}")
    logprobs: bool | None = Field(None, description="refused when true")
    top_logprobs: int | None = Field(None, description="refused when above 0")

    def unsupported_field(self) -> str | None:
        """The first field that asks for something an episode cannot give (tool calls to the client, a JSON
        format, log-probabilities), or ``None``; their empty or default values are accepted."""
        asks = {
            "tools": bool(self.tools),
            "tool_choice": self.tool_choice not in (None, "none", "auto"),
            "functions": bool(self.functions),
            "function_call": self.function_call not in (None, "none", "auto"),
            "response_format": self.response_format not in (None, {"type": "text"}),
            "logprobs": bool(self.logprobs),
            "top_logprobs": bool(self.top_logprobs),
        }
        return next((name for name in UNSUPPORTED_FIELDS if asks[name]), None)


class Recognised(_Strict):
    family: str
    template: str
    params: dict[str, Any]


class Trace(BaseModel):
    """The episode behind an answer: every call with its arguments, reply, latency, bytes and error. No reward:
    a served question has no reference answer."""

    finish_reason: FinishReason
    turns: int
    events: list[Event]
    cost: EpisodeCost = Field(description="agent latency (simulated, ms), bytes on the wire, generated tokens")
    recognised: Recognised | None = Field(None, description="the benchmark family the question was recognised as")
    queue_ms: float = Field(description="time the request waited for its batch")
    run_ms: float = Field(description="wall time of the batch that ran the episode")
    batch_size: int = Field(description="episodes run together in that batch")


class SolveResult(BaseModel):
    """Structured result of the MCP tool ``solve_network_task``."""

    answer: str = Field(description="the core's final answer ('' when it gave none)")
    trace: Trace


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    netgpt: Trace


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}  # OpenAI deltas carry what changed


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    netgpt: Trace | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None or k not in ("usage", "netgpt")}


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "netgpt"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
