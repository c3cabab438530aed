"""The official OpenAI client against `netgpt serve` on loopback: plain and streaming, benchmark tasks with their
state and free-text questions, answered by the scripted oracle and by an LLM core."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from serve_testkit import MODEL, PATHLOSS_QUESTION, TBS_ANSWER, TBS_QUESTION, TOKEN, dev_task, serving

from netgpt import radio
from netgpt.core.episode import EpisodeConfig
from netgpt.core.llm import LLMPolicy
from netgpt.core.model import load_tokenizer, tiny_model
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry
from netgpt.tasks import score_answer


@pytest.fixture(scope="module")
def client(registry: AgentRegistry) -> Iterator[openai.OpenAI]:
    with serving(OraclePolicy(), registry) as url:
        yield openai.OpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=60)


def ask(client: openai.OpenAI, question: str, **netgpt):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                          extra_body={"netgpt": netgpt} if netgpt else None)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "netgpt"


@pytest.mark.parametrize("family", ["tbs", "path_latency", "slice_allocation", "kpi_anomaly", "agent_recovery"])
def test_bench_task_with_its_state_gets_the_reference_answer(client: openai.OpenAI, family: str) -> None:
    task = dev_task(family)
    reply = ask(client, task.question, task=task.model_dump(mode="json"))
    answer = reply.choices[0].message.content
    assert score_answer(task.answer, answer) == 1.0, (answer, task.answer.display())
    assert reply.choices[0].finish_reason == "stop" and reply.object == "chat.completion" and reply.model == MODEL
    trace = reply.netgpt
    calls = [e for e in trace["events"] if e["kind"] == "call"]
    assert [(c["agent"], c["skill"]) for c in calls if c["ok"]] == [
        (c.agent, c.skill) for c in task.reference_plan if c.expect_error is None]
    assert trace["recognised"]["family"] == family and "reward" not in trace
    assert trace["cost"]["bytes"] == sum(c["bytes"] for c in calls) > 0
    assert all(c["latency_ms"] > 0 and c["args"] is not None and c["reply"] for c in calls)
    assert reply.usage.completion_tokens == trace["cost"]["tokens"] > 0


def test_injected_fault_shows_in_the_trace(client: openai.OpenAI) -> None:
    task = dev_task("path_latency")
    reply = ask(client, task.question, task=task.model_dump(mode="json"),
                faults=[{"agent": "topology", "calls": 1, "code": "timeout"}])
    first, second = [e for e in reply.netgpt["events"] if e["kind"] == "call"]
    assert first["error_code"] == "timeout" and first["error"] and second["ok"]  # the oracle retried
    assert score_answer(task.answer, reply.choices[0].message.content) == 1.0


def test_free_text_tbs_and_pathloss(client: openai.OpenAI) -> None:
    tbs = ask(client, TBS_QUESTION)
    assert tbs.choices[0].message.content == TBS_ANSWER
    assert tbs.netgpt["recognised"] == {"family": "tbs", "template": "tbs/t1", "params": {
        "variant": "tbs", "mcs_index": 24, "mcs_table": 1, "n_prb": 76, "n_symb": 14, "n_dmrs_per_prb": 18,
        "n_oh_per_prb": 12, "layers": 1}}
    pathloss = ask(client, PATHLOSS_QUESTION)
    expected = radio.pathloss("uma", 250, 3.5, los=False, h_bs_m=25, h_ut_m=1.5)
    assert pathloss.choices[0].message.content == f"{expected:.2f} dB"
    [call] = [e for e in pathloss.netgpt["events"] if e["kind"] == "call"]
    assert (call["agent"], call["skill"], call["ok"]) == ("channel", "pathloss", True)


def test_observation_as_a_json_block_changes_the_plan(client: openai.OpenAI) -> None:
    # a fresh MCS entry in the observation: the oracle skips phy.mcs and calls phy.tbs once
    block = ('```json\n{"time": "Mon 10:00", "reports": [{"kind": "mcs_entry", "subject": "table1/24", '
             '"age_min": 0, "values": {"qm": 6, "code_rate_x1024": 772}}]}\n```')
    reply = ask(client, f"{TBS_QUESTION}\n{block}")
    assert reply.choices[0].message.content == TBS_ANSWER
    assert [e["skill"] for e in reply.netgpt["events"] if e["kind"] == "call"] == ["tbs"]


def test_streaming_sends_openai_chunks_then_done(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": TBS_QUESTION}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TBS_ANSWER
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason == "stop"
    assert [e["skill"] for e in final[0].netgpt["events"] if e["kind"] == "call"] == ["mcs", "tbs"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_streaming_over_raw_http_ends_with_done(client: openai.OpenAI) -> None:
    import httpx

    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": TBS_QUESTION}]}
    with httpx.stream("POST", f"{client.base_url}chat/completions", json=body, timeout=60,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_limits_per_request(client: openai.OpenAI) -> None:
    reply = ask(client, TBS_QUESTION, max_turns=1)
    assert reply.choices[0].finish_reason == "length" and reply.choices[0].message.content == ""
    assert reply.netgpt["finish_reason"] == "max_turns" and reply.netgpt["turns"] == 1
    tight = ask(client, TBS_QUESTION, deadline_ms=1)  # no simulated reply arrives within 1 ms
    calls = [e for e in tight.netgpt["events"] if e["kind"] == "call"]
    assert calls and all(c["error_code"] == "timeout" for c in calls)
    assert tight.choices[0].message.content == "unknown"
    broke = ask(client, TBS_QUESTION, budget={"latency_ms": 1})
    assert broke.netgpt["finish_reason"] == "budget" and broke.choices[0].finish_reason == "length"


def test_llm_core_reads_free_text(registry: AgentRegistry) -> None:
    """A tiny random LLM stands in for the trained core: any text is a task, and whatever it writes comes back
    as a well-formed completion with the episode's turns in the trace."""
    tokenizer = load_tokenizer()
    policy = LLMPolicy(tiny_model(tokenizer), tokenizer, name="tiny", max_new_tokens=8, batch_size=4)
    with serving(policy, registry, episode=EpisodeConfig(max_turns=2)) as url:
        client = openai.OpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=120)
        reply = ask(client, "Is cell-2 overloaded tonight? Be brief.", world_seed=5)
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert reply.netgpt["recognised"] is None and 1 <= reply.netgpt["turns"] <= 2
        assert reply.usage.completion_tokens == sum(e["tokens"] for e in reply.netgpt["events"]) > 0
