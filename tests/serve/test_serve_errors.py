"""Bad requests get OpenAI-style error objects with 4xx codes; the server keeps serving after each of them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from serve_testkit import MODEL, TBS_QUESTION, TOKEN, serving

from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry

LIMIT = 64 * 1024
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def url(registry: AgentRegistry) -> Iterator[str]:
    with serving(OraclePolicy(), registry, max_body_bytes=LIMIT) as base:
        yield base


def chat(url: str, body: bytes | dict, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/chat/completions", content=content, headers=headers if headers is not None else AUTH,
                      timeout=30)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    return error


def question(text: str = TBS_QUESTION, **fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def test_token_required_except_for_health(url: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}):
        error = error_of(chat(url, question(), headers), 401)
        assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=f"{url}/v1", max_retries=0).models.list()


def test_unknown_model_and_route(url: str) -> None:
    error = error_of(chat(url, {**question(), "model": "gpt-4o"}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model" and MODEL in error["message"]
    assert error_of(httpx.get(f"{url}/v1/models/gpt-4o", headers=AUTH, timeout=10), 404)["code"] == "model_not_found"
    assert error_of(httpx.get(f"{url}/v1/embeddings", headers=AUTH, timeout=10), 404)["code"] == "not_found"
    assert error_of(httpx.get(f"{url}/v1/chat/completions", headers=AUTH, timeout=10), 405)


def test_malformed_and_invalid_bodies(url: str) -> None:
    assert error_of(chat(url, b'{"model": "netgpt-test", "messages": ['), 400)["code"] == "invalid_json"
    assert error_of(chat(url, b"\xff\xfe not utf-8"), 400)["code"] == "invalid_json"
    for body, param in [({"model": MODEL}, "messages"), (question(messages=[]), "messages"),
                        ({**question(), "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
                        (question(n=2), "n"), (question(netgpt={"world_sed": 1}), "netgpt.world_sed"),
                        (question(netgpt={"max_turns": 0}), "netgpt.max_turns"),
                        (question(netgpt={"world_seed": 1, "state": None, "task": None, "deadline_ms": -1}),
                         "netgpt.deadline_ms"),
                        ([1, 2], None)]:
        error = error_of(chat(url, body), 422)
        assert error["code"] == "invalid_request" and error["param"] == param, (body, error)
    # the body is not echoed back in error messages
    assert "s3cr3t-in-body" not in error_of(chat(url, question(netgpt={"x": "s3cr3t-in-body"})), 422)["message"]


def test_unusable_tasks_are_400(url: str) -> None:
    assert error_of(chat(url, question("Who won the match?")), 400)["code"] == "unsupported_question"
    assert error_of(chat(url, question("  ")), 400)["code"] == "empty_question"
    assert error_of(chat(url, question(f"{TBS_QUESTION}\n```json\n[1]\n```")), 400)["code"] == "invalid_observation"
    last_assistant = {"model": MODEL, "messages": [{"role": "user", "content": TBS_QUESTION},
                                                   {"role": "assistant", "content": "47112 bits"}]}
    assert error_of(chat(url, last_assistant), 400)["code"] == "invalid_messages"


def test_oversized_bodies_are_413(url: str) -> None:
    big = question(TBS_QUESTION + " " * LIMIT)
    error = error_of(chat(url, big), 413)
    assert error["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield json.dumps(big).encode()

    assert error_of(httpx.post(f"{url}/v1/chat/completions", content=chunks(), headers=AUTH, timeout=30), 413)


def test_sampling_fields_and_content_parts_are_accepted(url: str) -> None:
    body = {"model": MODEL, "temperature": 0.7, "max_tokens": 5, "user": "noc", "seed": 1, "top_p": 0.9,
            "messages": [{"role": "system", "content": "You are helpful."},
                         {"role": "user", "content": [{"type": "text", "text": TBS_QUESTION}]}]}
    response = chat(url, body)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "47112 bits"
