"""The HTTP transport against a real uvicorn server on loopback: status codes, typed replies, sessions, failures."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from protocol_testkit import TOKEN, free_port, request, server_process

from netgpt.protocol import AgentRegistry, ErrorCode, FaultConfig, Reply, TransportError
from netgpt.protocol.http_client import HttpAgentClient, status_error
from netgpt.world import World

AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def http(server: tuple[str, AgentRegistry]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], headers=AUTH, timeout=10) as client:
        yield client


def post_call(http: httpx.Client, body: bytes | str, **headers: str) -> httpx.Response:
    return http.post("/call", content=body, headers={"content-type": "application/json", **headers})


def test_health_is_open_everything_else_needs_the_token(server: tuple[str, AgentRegistry]) -> None:
    url = server[0]
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "agents": 1}
    body = request("echo", {"text": "a"}).model_dump_json()
    for headers in [{}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                    {"authorization": f"Basic {TOKEN}"}, {"authorization": f"Bearer {TOKEN}x"}]:
        for method, path in [("GET", "/agents"), ("POST", "/call"), ("DELETE", "/sessions/x")]:
            content = body if method == "POST" else None
            response = httpx.request(method, f"{url}{path}", headers=headers, content=content)
            assert response.status_code == 401, (headers, path)
            assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/agents", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200


def test_cards_and_a_call(http: httpx.Client) -> None:
    cards = http.get("/agents").json()
    assert [c["name"] for c in cards] == ["probe"] and cards[0]["skills"][0]["name"] == "echo"
    response = post_call(http, request("echo", {"text": "hi", "times": 2}).model_dump_json())
    assert response.status_code == 200
    reply = Reply.model_validate_json(response.content)
    assert reply.ok and reply.result == {"text": "hihi"} and reply.request_id == "r-echo"


@pytest.mark.parametrize(("req", "code"), [
    (request("echo", {"text": "a"}, agent="ghost"), ErrorCode.UNKNOWN_AGENT),
    (request("fly"), ErrorCode.UNKNOWN_SKILL),
    (request("echo", {"text": 5}), ErrorCode.INVALID_ARGS),
    (request("echo", {"text": "a", "extra": 1}), ErrorCode.INVALID_ARGS),
    (request("cell_count"), ErrorCode.INVALID_ARGS),
    (request("crash"), ErrorCode.INTERNAL),
])
def test_failures_past_the_http_layer_are_200_with_a_typed_reply(http: httpx.Client, req, code: ErrorCode) -> None:
    response = post_call(http, req.model_dump_json())
    assert response.status_code == 200
    reply = Reply.model_validate_json(response.content)
    assert not reply.ok and reply.error.code == code


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "malformed JSON: key must be a string"),
    (b"", "malformed JSON: EOF"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[" * 5000, "malformed JSON: recursion limit exceeded"),
    (b'{"id": "x", "agent": "probe", "skill": "echo", "args": {"text": "\\ud800"}}', "malformed JSON"),
    (b"[1, 2]", "Input should be an object"),
    (b'{"id": "x"}', "agent: Field required; skill: Field required"),
    (b'{"id": "x", "agent": "probe", "skill": "echo", "args": [1]}', "args: Input should be an object"),
    (b'{"id": "x", "agent": "probe", "skill": "echo", "deadline_ms": -1}', "deadline_ms: Input should be greater"),
    (b'{"id": "x", "agent": "probe", "skill": "echo", "sneaky": "__import__(\'os\')"}', "sneaky: Extra inputs"),
])
def test_malformed_or_schema_invalid_requests_are_422(http: httpx.Client, body: bytes, fragment: str) -> None:
    response = post_call(http, body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "invalid_request" and fragment in payload["message"], payload["message"]
    assert all(set(d) == {"type", "loc", "msg"} for d in payload["detail"])  # the body is not echoed back


def test_the_body_is_json_whatever_the_content_type_says(http: httpx.Client) -> None:
    response = http.post("/call", content=request("echo", {"text": "a"}).model_dump_json())
    assert response.status_code == 200 and Reply.model_validate_json(response.content).ok


def test_oversized_bodies_are_413_whether_declared_or_streamed(http: httpx.Client) -> None:
    big = request("echo", {"text": "x" * 200_000}).model_dump_json()
    response = post_call(http, big)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while the body streams in
        for _ in range(64):
            yield b" " * 8192

    response = http.post("/call", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    just_under = request("echo", {"text": "a"}).model_dump_json().ljust(64 * 1024)
    assert post_call(http, just_under).status_code == 200


def test_the_server_keeps_serving_after_bad_input(http: httpx.Client) -> None:
    for body in [b"\xff\xfe", b"{" * 10_000, b"[" * 60_000, b'{"id": 1}', request("crash").model_dump_json().encode()]:
        assert post_call(http, body).status_code in (200, 422)
    assert Reply.model_validate_json(post_call(http, request("echo", {"text": "ok"}).model_dump_json()).content).ok


def test_sessions_over_http(http: httpx.Client, state: World) -> None:
    body = json.dumps({"state": state.model_dump(mode="json"), "faults": [{"agent": "probe", "calls": 1}]})
    assert http.put("/sessions/ep-1", content=body, headers={"content-type": "application/json"}).json() == \
        {"session": "ep-1"}
    call = request("cell_count", session="ep-1").model_dump_json()
    first = Reply.model_validate_json(post_call(http, call).content)
    assert first.error.code == ErrorCode.UNAVAILABLE  # the injected fault, applied by the server's registry
    assert Reply.model_validate_json(post_call(http, call).content).result["cells"] == len(state.cells)
    assert http.delete("/sessions/ep-1").json() == {"session": "ep-1", "closed": True}
    assert http.delete("/sessions/ep-1").status_code == 404
    assert Reply.model_validate_json(post_call(http, call).content).error.code == ErrorCode.INVALID_ARGS
    assert http.put("/sessions/bad%20id", content=body, headers={"content-type": "application/json"}) \
        .status_code == 422
    assert http.put("/sessions/ep-2", content=b'{"state": {}}', headers={"content-type": "application/json"}) \
        .status_code == 422


@pytest.mark.anyio
async def test_client_happy_path_and_typed_failures(server: tuple[str, AgentRegistry]) -> None:
    async with HttpAgentClient(server[0], token=TOKEN) as client:
        cards = await client.connect()
        assert [c.name for c in cards] == ["probe"] and cards[0].endpoint == server[0]
        assert await client.health()
        ok = await client.send(request("echo", {"text": "a"}))
        assert ok.ok and ok.latency_ms > 0 and ok.bytes_sent > 0
        assert (await client.send(request("crash"))).error.code == ErrorCode.INTERNAL
        late = await client.send(request("sleep", {"ms": 500}, deadline_ms=100.0))
        assert late.error.code == ErrorCode.TIMEOUT and "100 ms" in late.error.message
        assert (await client.send(request("echo", {"text": "after the timeout"}))).ok
    async with HttpAgentClient(server[0], token="wrong") as client:
        with pytest.raises(TransportError, match="401"):
            await client.connect()
        refused = await client.send(request("echo", {"text": "a"}))
        assert refused.error.code == ErrorCode.UNAVAILABLE and "401" in refused.error.message


@pytest.mark.anyio
async def test_nothing_listening_is_unavailable() -> None:
    async with HttpAgentClient(f"http://127.0.0.1:{free_port()}") as client:
        reply = await client.send(request("echo", {"text": "a"}))
        assert reply.error.code == ErrorCode.UNAVAILABLE and "unreachable" in reply.error.message
        with pytest.raises(TransportError):
            await client.connect()


def test_status_codes_map_to_error_codes() -> None:
    assert [status_error(s) for s in (400, 401, 403, 404, 408, 413, 422, 500, 502, 503, 504)] == [
        ErrorCode.INVALID_ARGS, ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE,
        ErrorCode.TIMEOUT, ErrorCode.INVALID_ARGS, ErrorCode.INVALID_ARGS, ErrorCode.INTERNAL,
        ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT]


def test_registry_over_http_hands_sessions_over_lazily(server: tuple[str, AgentRegistry], state: World) -> None:
    url, hosted = server
    with AgentRegistry(FaultConfig(seed=5)) as reg:
        reg.add_endpoint(HttpAgentClient(url, token=TOKEN))
        assert [c.endpoint for c in reg.cards()] == [url]
        reg.open_session("lazy", state)
        assert reg.call(request("echo", {"text": "a"}, session="lazy")).ok
        assert not hosted.has_session("lazy")  # stateless calls need no state on the server
        counted = reg.call(request("cell_count", session="lazy"))
        assert counted.result == {"cells": len(state.cells), "scenario": state.scenario}
        assert hosted.has_session("lazy")
        assert counted.cost == 2.0 and counted.latency_ms > 1.0  # simulated by the core's registry
        reg.close_session("lazy")
        assert not hosted.has_session("lazy")


def test_the_server_process_dying_mid_episode_is_unavailable(state: World) -> None:
    with server_process(token=TOKEN) as (url, proc), AgentRegistry(FaultConfig(simulate=False)) as reg:
        reg.add_endpoint(HttpAgentClient(url, token=TOKEN))
        reg.open_session("ep", state)
        assert reg.call(request("cell_count", session="ep")).ok
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for _ in range(2):
            reply = reg.call(request("cell_count", session="ep"))
            assert reply.error.code == ErrorCode.UNAVAILABLE and reply.cost == 0
        assert reg.close_session("ep")  # the dead server's copy cannot be released, and that is fine


def test_config_entries_pick_agents_of_a_server(server: tuple[str, AgentRegistry], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agents.yaml"
    monkeypatch.setenv("PROBE_TOKEN", TOKEN)
    config.write_text(f"agents:\n  - {{kind: http, url: '{server[0]}', token_env: PROBE_TOKEN, only: [probe]}}\n")
    with AgentRegistry.from_config(config) as reg:
        assert [c.name for c in reg.cards()] == ["probe"]
    config.write_text(f"agents:\n  - {{kind: http, url: '{server[0]}', token_env: PROBE_TOKEN, only: [nope]}}\n")
    with pytest.raises(ValueError, match="does not host nope"):
        AgentRegistry.from_config(config)
    monkeypatch.delenv("PROBE_TOKEN")
    with pytest.raises(ValueError, match="PROBE_TOKEN"):
        AgentRegistry.from_config(config)


@pytest.mark.anyio
async def test_async_config_loading_connects_in_the_running_loop(server: tuple[str, AgentRegistry], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agents.yaml"
    monkeypatch.setenv("PROBE_TOKEN", TOKEN)
    config.write_text(f"agents:\n  - {{kind: http, url: '{server[0]}', token_env: PROBE_TOKEN, only: [probe]}}\n")
    async with await AgentRegistry.afrom_config(config, faults=FaultConfig(simulate=False)) as reg:
        assert [c.name for c in reg.cards()] == ["probe"]
        reply = await reg.acall(request("echo", {"text": "a"}, session="async"))
        assert reply.ok and reply.latency_ms > 0
    config.write_text(f"agents:\n  - {{kind: http, url: '{server[0]}', token_env: PROBE_TOKEN, only: [nope]}}\n")
    with pytest.raises(ValueError, match="does not host nope"):
        await AgentRegistry.afrom_config(config)
