"""The agent server under hostile input: bounded sizes, slow clients, closed-by-default start-up (issue 47)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from mcp import Client
from protocol_testkit import TOKEN, ProbeAgent, request, server_process, uvicorn_thread
from typer.testing import CliRunner

from netgpt.protocol import AgentRegistry, ErrorCode, FaultConfig, Reply
from netgpt.protocol.cli import agents_app
from netgpt.protocol.dispatch import MAX_ARGS_DEPTH
from netgpt.protocol.faults import MAX_INJECTED_FAULTS, InjectedFaults
from netgpt.protocol.http_server import AuthConfigError, check_auth, create_app, is_loopback
from netgpt.protocol.mcp_server import build_mcp_server
from netgpt.world import World

AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
STATE_LIMIT = 32 * 1024


@pytest.fixture(scope="module")
def hosted() -> Iterator[tuple[str, AgentRegistry]]:
    """A server whose body limit (1 MiB) is far above its session-state limit (32 KiB)."""
    registry = AgentRegistry(FaultConfig(simulate=False), max_sessions=8, offload_local=True)
    registry.register(ProbeAgent())
    with uvicorn_thread(create_app(registry, token=TOKEN, max_state_bytes=STATE_LIMIT)) as url:
        yield url, registry
    registry.close()


def call(url: str, body: bytes | str) -> httpx.Response:
    return httpx.post(f"{url}/call", content=body, headers=AUTH, timeout=10)


def put_session(url: str, sid: str, body: dict) -> httpx.Response:
    return httpx.put(f"{url}/sessions/{sid}", content=json.dumps(body), headers=AUTH, timeout=10)


def test_fault_counts_are_counters_never_expanded(hosted: tuple[str, AgentRegistry], state: World) -> None:
    url, registry = hosted
    started = time.perf_counter()
    faults = [{"agent": "probe", "calls": 10**9, "code": "timeout"}, {"agent": "probe", "calls": 10**12}]
    assert put_session(url, "huge", {"state": state.model_dump(mode="json"), "faults": faults}).status_code == 200
    echo = request("echo", {"text": "a"}, session="huge").model_dump_json()
    reply = Reply.model_validate_json(call(url, echo).content)
    assert time.perf_counter() - started < 2.0  # a list of 10^9 codes would take minutes and gigabytes
    assert not reply.ok and reply.error.code == ErrorCode.TIMEOUT
    schedule = InjectedFaults([{"agent": "a", "calls": 2}, {"agent": "a", "calls": 10**9, "code": "internal"}])
    assert [schedule.code("a", i) for i in (0, 1, 2, 10**9 + 1, 10**9 + 2)] == \
        [ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.INTERNAL, None]
    assert schedule.code("b", 0) is None


def test_session_state_and_fault_lists_are_capped(hosted: tuple[str, AgentRegistry], state: World) -> None:
    url, registry = hosted
    padded = state.model_dump(mode="json") | {"scenario": "x" * STATE_LIMIT}
    response = put_session(url, "big", {"state": padded})
    assert response.status_code == 413 and response.json()["field"] == "state"
    assert str(STATE_LIMIT) in response.json()["message"] and not registry.has_session("big")
    many = [{"agent": "probe"}] * (MAX_INJECTED_FAULTS + 1)
    response = put_session(url, "many", {"state": state.model_dump(mode="json"), "faults": many})
    assert response.status_code == 422 and response.json()["field"] == "faults"
    assert put_session(url, "fine", {"state": state.model_dump(mode="json")}).status_code == 200


def test_sessions_beyond_the_cap_evict_the_oldest(hosted: tuple[str, AgentRegistry], state: World) -> None:
    url, registry = hosted
    for i in range(registry.max_sessions + 3):
        assert put_session(url, f"s{i}", {"state": state.model_dump(mode="json")}).status_code == 200
    open_now = [i for i in range(registry.max_sessions + 3) if registry.has_session(f"s{i}")]
    assert open_now == list(range(3, registry.max_sessions + 3))


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_non_finite_arguments_are_invalid_args(hosted: tuple[str, AgentRegistry], literal: str) -> None:
    body = '{"id": "x", "agent": "probe", "skill": "measure", "args": {"value": ' + literal + "}}"
    response = call(hosted[0], body)
    if response.status_code == 422:  # the JSON parser itself refused the literal: also a 4xx naming it
        assert "malformed JSON" in response.json()["message"]
        return
    reply = Reply.model_validate_json(response.content)
    assert not reply.ok and reply.error.code == ErrorCode.INVALID_ARGS and "finite" in reply.error.message


def test_deep_arguments_are_refused_before_validation(hosted: tuple[str, AgentRegistry]) -> None:
    nested: dict = {"text": "a"}
    for _ in range(MAX_ARGS_DEPTH + 1):
        nested = {"x": nested}
    reply = Reply.model_validate_json(call(hosted[0], request("echo", nested).model_dump_json()).content)
    assert not reply.ok and reply.error.code == ErrorCode.INVALID_ARGS and "nested deeper" in reply.error.message
    deep = '{"id": "x", "agent": "probe", "skill": "echo", "args": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    response = call(hosted[0], deep)
    assert response.status_code == 422 and "recursion limit" in response.json()["message"]
    infinite_deadline = '{"id": "x", "agent": "probe", "skill": "echo", "deadline_ms": Infinity}'
    response = call(hosted[0], infinite_deadline)
    assert response.status_code == 422 and "deadline_ms" in response.json()["message"]


def _closed_within(sock: socket.socket, limit_s: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (reading whatever it sends), and what it sent."""
    started, received = time.monotonic(), b""
    sock.settimeout(limit_s)
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


@pytest.fixture(scope="module")
def fast_timeouts() -> Iterator[str]:
    """The real server process with one-second header, read and keep-alive timeouts."""
    with server_process("--header-timeout-s", "1", "--read-timeout-s", "1", "--keep-alive-s", "1",
                        token=TOKEN) as (url, _):
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


@pytest.mark.slow
def test_silent_and_slowloris_connections_are_closed(fast_timeouts: str) -> None:
    with _connect(fast_timeouts) as silent:
        elapsed, sent = _closed_within(silent, 10)
    assert elapsed < 3 and sent == b""
    with _connect(fast_timeouts) as drip:
        drip.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        with pytest.raises((ConnectionError, BrokenPipeError, OSError)):
            for i in range(20):  # one header line every 0.3 s: never complete
                time.sleep(0.3)
                drip.sendall(f"X-Drip-{i}: 1\r\n".encode())
                drip.settimeout(0.01)
                try:
                    if drip.recv(1) == b"":
                        raise ConnectionResetError("closed by the server")
                except TimeoutError:
                    pass
        assert time.monotonic() - started < 4


def test_a_body_that_never_completes_gets_408(fast_timeouts: str) -> None:
    with _connect(fast_timeouts) as partial:
        partial.sendall(b"POST /call HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
                        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": \"x")
        elapsed, sent = _closed_within(partial, 10)
    assert elapsed < 3 and sent.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in sent


def _drip_after_answer(url: str, request: bytes) -> tuple[float, bytes]:
    """Send ``request`` (headers promising a body), then drip body bytes: the server has already answered, so it
    must close the connection instead of waiting for a body it will never read."""
    with _connect(url) as drip:
        drip.sendall(request)
        started, received = time.monotonic(), b""
        drip.settimeout(0.3)
        for _ in range(20):
            try:
                chunk = drip.recv(4096)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:  # closed with unread bytes pending: a reset is a close too
                chunk = b""
            if chunk == b"":
                return time.monotonic() - started, received
            received += chunk or b""
            try:
                drip.sendall(b"x")
            except OSError:
                return time.monotonic() - started, received
        return time.monotonic() - started, received


@pytest.mark.parametrize("request_head", [
    b"POST /call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n",  # no token: 401 before the body
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n",  # answered, body never read
])
def test_a_body_dripped_after_the_answer_does_not_hold_the_connection(fast_timeouts: str,
                                                                        request_head: bytes) -> None:
    elapsed, sent = _drip_after_answer(fast_timeouts, request_head)
    assert sent.startswith((b"HTTP/1.1 401 ", b"HTTP/1.1 200 ")) and elapsed < 4


def test_a_token_with_surrounding_whitespace_still_matches_clients() -> None:
    assert check_auth(" tok \n", no_auth=False, host="127.0.0.1", env_var="X") == "tok"


def test_idle_kept_alive_connections_are_closed(fast_timeouts: str) -> None:
    with _connect(fast_timeouts) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        elapsed, sent = _closed_within(idle, 10)
    assert sent.startswith(b"HTTP/1.1 200 ") and elapsed < 3
    assert httpx.get(f"{fast_timeouts}/health", timeout=5).status_code == 200  # and it still serves


runner = CliRunner()


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--token", ""], {}, "the token is empty"),
    ([], {"NETGPT_AGENTS_TOKEN": ""}, "the token is empty"),
    ([], {}, "no token: set NETGPT_AGENTS_TOKEN"),
    (["--host", "0.0.0.0"], {}, "no token"),
    (["--host", "0.0.0.0", "--no-auth"], {}, "not a loopback address"),
    (["--no-auth", "--token", "t"], {}, "contradict"),
])
def test_the_agent_server_refuses_to_start_open(args: list[str], env: dict[str, str], says: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETGPT_AGENTS_TOKEN", raising=False)
    result = runner.invoke(agents_app, ["serve", "--port", "1", *args], env=env)
    assert result.exit_code == 2 and "refusing to start" in result.output and says in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_open_mode_only_on_loopback() -> None:
    assert check_auth(None, no_auth=True, host="127.0.0.1", env_var="V") is None
    assert check_auth("t", no_auth=False, host="0.0.0.0", env_var="V") == "t"
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "example.org"))
    for token in ("", "  "):
        with pytest.raises(AuthConfigError, match="empty"):
            check_auth(token, no_auth=False, host="127.0.0.1", env_var="V")


@pytest.mark.anyio
async def test_mcp_tool_calls_get_the_same_argument_checks() -> None:
    registry = AgentRegistry(FaultConfig(simulate=False))
    registry.register(ProbeAgent())
    nested: dict = {"value": 1.0}
    for _ in range(MAX_ARGS_DEPTH + 1):
        nested = {"x": nested}
    async with Client(build_mcp_server(registry)) as client:
        # the SDK client writes Infinity and NaN as null; over raw JSON-RPC the server reads them (bench_hardening)
        for args, says in [({"value": float("inf")}, "value"), ({"value": float("nan")}, "value"),
                           (nested, "nested deeper")]:
            result = await client.call_tool("probe__measure", args)
            error = result.structured_content["error"]
            assert result.is_error and error["code"] == ErrorCode.INVALID_ARGS and says in error["message"]
        assert not (await client.call_tool("probe__measure", {"value": 2.5})).is_error
    registry.close()
