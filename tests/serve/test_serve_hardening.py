"""`netgpt serve` under hostile input: bounded sizes, refused fields, time limits, closed start-up (issue 47)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mcp import Client
from serve_testkit import MODEL, TBS_ANSWER, TBS_QUESTION, TOKEN, dev_task, oracle_mcp_client, serving
from typer.testing import CliRunner

from netgpt.cli import app as netgpt_app
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import builtin_faults
from netgpt.protocol.faults import MAX_INJECTED_FAULTS
from netgpt.serve.mcp_tool import TOOL_NAME
from netgpt.serve.schema import MAX_BUDGET, MAX_QUESTION_CHARS, UNSUPPORTED_FIELDS

AUTH = {"authorization": f"Bearer {TOKEN}"}
STATE_LIMIT = 32 * 1024


@pytest.fixture(scope="module")
def url(registry: AgentRegistry) -> Iterator[str]:
    with serving(OraclePolicy(), registry, read_timeout_s=1.0,
                 solver_options={"max_state_bytes": STATE_LIMIT, "max_prompt_tokens": 600}) as base:
        yield base


def chat(url: str, text: str = TBS_QUESTION, **fields) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}
    return httpx.post(f"{url}/v1/chat/completions", content=json.dumps(body), headers=AUTH, timeout=30)


def refused(response: httpx.Response, status: int, code: str, param: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param, error
    return error["message"]


@pytest.mark.parametrize(("field", "value"), [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "required"),
    ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ("functions", [{"name": "f"}]),
    ("function_call", {"name": "f"}),
    ("response_format", {"type": "json_object"}),
    ("logprobs", True),
    ("top_logprobs", 3),
])
def test_fields_that_change_the_answer_are_400(url: str, field: str, value) -> None:
    assert field in UNSUPPORTED_FIELDS
    message = refused(chat(url, **{field: value}), 400, "unsupported_parameter", field)
    assert field in message


def test_their_harmless_values_and_sampling_hints_are_accepted(url: str) -> None:
    response = chat(url, tools=[], tool_choice="none", response_format={"type": "text"}, logprobs=False,
                    top_logprobs=0, temperature=0.3, top_p=0.9, max_tokens=5, seed=1, stop=["x"], user="u")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == TBS_ANSWER


def test_question_length_and_context_are_checked_before_the_episode(url: str) -> None:
    message = refused(chat(url, "x" * (MAX_QUESTION_CHARS + 1)), 400, "question_too_long", "messages")
    assert str(MAX_QUESTION_CHARS) in message
    # under the character cap but over the 600 tokens the context leaves (4 characters a token here)
    task = dev_task("tbs").model_dump(mode="json")
    message = refused(chat(url, "y" * 3000, netgpt={"task": task}), 400, "context_length_exceeded", "messages")
    assert "600" in message
    assert chat(url).status_code == 200


def test_faults_are_counters_and_their_number_is_capped(url: str) -> None:
    started = time.perf_counter()
    huge = chat(url, netgpt={"faults": [{"agent": "phy", "calls": 1e9}]})
    assert huge.status_code == 200 and time.perf_counter() - started < 5  # no list of 10^9 codes
    calls = [e for e in huge.json()["netgpt"]["events"] if e["kind"] == "call"]
    assert calls and all(e["agent"] == "phy" and e["error_code"] == "unavailable" for e in calls)
    many = [{"agent": "phy"}] * (MAX_INJECTED_FAULTS + 1)
    refused(chat(url, netgpt={"faults": many}), 422, "invalid_request", "netgpt.faults")


def test_state_size_turns_and_budgets_are_capped(url: str) -> None:
    task = dev_task("slice_allocation")
    state = task.state.model_dump(mode="json")
    state["series"] *= 4  # ~45 KB of JSON
    message = refused(chat(url, netgpt={"state": state}), 413, "state_too_large", "netgpt.state")
    assert str(STATE_LIMIT) in message
    big_task = task.model_dump(mode="json") | {"state": state}
    refused(chat(url, task.question, netgpt={"task": big_task}), 413, "state_too_large", "netgpt.task.state")
    refused(chat(url, netgpt={"max_turns": 17}), 422, "invalid_request", "netgpt.max_turns")
    over = {"tokens": MAX_BUDGET.tokens + 1}
    refused(chat(url, netgpt={"budget": over}), 422, "invalid_request", "netgpt.budget")


def test_deeply_nested_observation_is_a_400_not_a_500(url: str) -> None:
    block = "```json\n" + "[" * 5000 + "]" * 5000 + "\n```"
    response = chat(url, f"{TBS_QUESTION}\n{block}")
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages", response.text
    assert chat(url).status_code == 200


def test_a_body_that_never_completes_gets_408(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"model\": ")
        started, received = time.monotonic(), b""
        while chunk := sock.recv(4096):
            received += chunk
    assert time.monotonic() - started < 5
    assert received.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in received


@pytest.fixture(scope="module")
def slow_registry() -> Iterator[AgentRegistry]:
    """Agents that sleep their simulated latency (tens of milliseconds a call)."""
    with AgentRegistry.from_config(None, faults=builtin_faults().model_copy(update={"realtime": True})) as reg:
        yield reg


def test_an_episode_past_the_request_time_limit_is_504(slow_registry: AgentRegistry) -> None:
    with serving(OraclePolicy(), slow_registry, solver_options={"request_timeout_s": 0.01}) as base:
        message = refused(chat(base), 504, "episode_timeout", None)
        assert "0.01 s" in message and "--request-timeout-s" in message
        with httpx.stream("POST", f"{base}/v1/chat/completions", headers=AUTH, timeout=30, json={
                "model": MODEL, "messages": [{"role": "user", "content": TBS_QUESTION}], "stream": True}) as stream:
            events = [line.removeprefix("data: ") for line in stream.iter_lines() if line]
        assert json.loads(events[1])["error"]["code"] == "episode_timeout" and events[-1] == "[DONE]"


def test_requests_past_the_pending_cap_are_429(slow_registry: AgentRegistry) -> None:
    with serving(OraclePolicy(), slow_registry, solver_options={"max_pending": 1}) as base, \
            ThreadPoolExecutor(6) as pool:
        statuses = sorted(r.status_code for r in pool.map(lambda _: chat(base), range(6)))
        assert statuses[0] == 200 and 429 in statuses and set(statuses) <= {200, 429}
        assert chat(base).status_code == 200  # the cap frees as requests finish


@pytest.fixture
async def mcp_client(registry: AgentRegistry) -> AsyncIterator[Client]:
    async with oracle_mcp_client(registry, max_prompt_tokens=600) as connected:
        yield connected


@pytest.mark.anyio
async def test_mcp_shares_the_question_cap_and_names_the_field(mcp_client: Client) -> None:
    long = await mcp_client.call_tool(TOOL_NAME, {"question": "x" * (MAX_QUESTION_CHARS + 1)})
    assert long.is_error and long.structured_content["error"]["field"] == "question"
    task = dev_task("tbs").model_dump(mode="json")
    context = await mcp_client.call_tool(TOOL_NAME, {"question": "y" * 3000, "task": task})
    error = context.structured_content["error"]
    assert context.is_error and error["code"] == "context_length_exceeded" and error["field"] == "question"
    turns = await mcp_client.call_tool(TOOL_NAME, {"question": TBS_QUESTION, "max_turns": 99})
    assert turns.is_error and turns.structured_content["error"]["field"] == "max_turns"


runner = CliRunner()


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--token", ""], {}, "the token is empty"),
    ([], {"NETGPT_SERVE_TOKEN": ""}, "the token is empty"),
    ([], {}, "no token: set NETGPT_SERVE_TOKEN"),
    (["--host", "0.0.0.0"], {}, "no token"),
    (["--host", "0.0.0.0", "--no-auth"], {}, "not a loopback address"),
])
def test_netgpt_serve_refuses_to_start_open(args: list[str], env: dict[str, str], says: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETGPT_SERVE_TOKEN", raising=False)
    result = runner.invoke(netgpt_app, ["serve", "--policy", "oracle", "--port", "1", *args], env=env)
    assert result.exit_code == 2 and "refusing to start" in result.output and says in " ".join(result.output.split())
    assert "Traceback" not in result.output
