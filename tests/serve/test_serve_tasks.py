"""Requests as tasks: free text recognised as benchmark families, observations in ```json blocks, states."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError
from serve_testkit import MODEL, ROOT, TBS_ANSWER, TBS_QUESTION, TOKEN, dev_task, serving

from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry
from netgpt.serve import TaskError, TaskOptions, build_task, recognise
from netgpt.serve.schema import ChatCompletionRequest
from netgpt.serve.tasks import FREE_TEXT, RECOGNISED_FAMILIES, seeded_world
from netgpt.tasks import family, load_tasks
from netgpt.tasks.params import parse_params


@pytest.fixture(scope="module")
def served(registry: AgentRegistry) -> Iterator[str]:
    """The oracle behind the real app on a loopback port."""
    with serving(OraclePolicy(), registry) as url:
        yield url


@pytest.mark.parametrize("split", ["dev", "ood"])
def test_every_stateless_bench_question_is_recognised_with_its_plan(split: str) -> None:
    tasks = [t for t in load_tasks(ROOT / "data" / "bench" / f"{split}.jsonl") if t.family in RECOGNISED_FAMILIES]
    assert {t.family for t in tasks} == set(RECOGNISED_FAMILIES)
    for task in tasks:
        found = recognise(task.question)
        assert found is not None and found.family == task.family, task.question
        assert found.template == task.template
        plan = family(task.family).plan(task.state, parse_params(found.family, found.params), task.observation)
        assert plan == task.reference_plan, task.question


def test_recognition_is_lenient_about_case_spacing_and_final_punctuation() -> None:
    messy = "  tbs for i_mcs = 24 (table 5.1.3.1-1 (64qam)),   n_PRB = 76, N_symb = 14, N_DMRS = 18, N_oh = 12, v = 1"
    assert recognise(messy) == recognise(TBS_QUESTION)
    assert recognise("What is the slot duration for numerology mu = 1 with normal cyclic prefix?").params == {
        "variant": "slot", "mu": 1, "scs_khz": 30}
    for text in ["What is the TBS?", "TBS for I_MCS = x (Table 5.1.3.1-1 (64QAM)), n_PRB = 76?",
                 "How long is one NR slot at 17 kHz subcarrier spacing?"]:  # 17 kHz is no numerology
        assert recognise(text) is None


def test_free_text_gets_a_world_and_a_minimal_observation() -> None:
    task, found = build_task("r1", "How loaded is the network?", TaskOptions(), needs_plan=False)
    assert found is None and task.family == FREE_TEXT and task.reference_plan == []
    assert task.state == seeded_world(0) and task.observation.time and not task.observation.cells
    seeded, _ = build_task("r2", "x?", TaskOptions(world_seed=7), needs_plan=False)
    assert seeded.state == seeded_world(7) != task.state
    state = dev_task("kpi_anomaly").state
    given, _ = build_task("r3", "x?", TaskOptions(state=state), needs_plan=False)
    assert given.state is state


def test_a_bench_task_keeps_its_state_and_plan_and_takes_the_message() -> None:
    bench = dev_task("agent_recovery")
    task, found = build_task("r4", "reworded?", TaskOptions(task=bench), needs_plan=True)
    assert task.id == "r4" and task.question == "reworded?" and task.faults == bench.faults
    assert task.reference_plan == bench.reference_plan and found.family == "agent_recovery"


def test_message_errors() -> None:
    for text, code in [("", "empty_question"), ("```json\n{\"time\": \"x\"}\n```", "empty_question"),
                       ("q?\n```json\n{not json}\n```", "invalid_observation"),
                       ("q?\n```json\n{\"time\": \"x\", \"secret\": 1}\n```", "invalid_observation"),
                       ("q?\n```json\n{\"time\": \"x\"}\n```\n```json\n{\"time\": \"y\"}\n```", "invalid_observation"),
                       ("Who are you?", "unsupported_question"),
                       # a peak_rate question on a carrier TS 38.101-1 Table 5.3.2-1 does not define (7 MHz)
                       ("Peak downlink throughput (TS 38.306 §4.1.2) for FR1, 7 MHz, 15 kHz SCS, 2 layers, QPSK, "
                        "f = 0.8?", "unsupported_question")]:
        with pytest.raises(TaskError) as caught:
            build_task("r", text, TaskOptions(), needs_plan=True)
        assert caught.value.code == code, text
    with pytest.raises(TaskError, match="twice"):
        build_task("r", "q?\n```json\n{\"time\": \"x\"}\n```", TaskOptions(observation={"time": "y"}),
                   needs_plan=False)
    with pytest.raises(ValueError, match="at most one"):
        TaskOptions(world_seed=1, state=seeded_world(1))


BAD_TASKS = [({"params": {}}, "netgpt.task.params.mcs_table"),  # empty
             ({"params": None}, "netgpt.task.params"),  # missing
             ({"params": {"n_prb": 76}}, "netgpt.task.params.variant"),  # partial
             ({"params": "tbs"}, "netgpt.task.params"),  # not an object
             ("n_prb", "netgpt.task.params.n_prb"),  # a wrong value: see _bad_task
             ({"family": "no_such_family"}, "netgpt.task.family")]


def _bad_task(change: dict | str) -> dict:
    bench = dev_task("tbs").model_dump(mode="json")
    if change == "n_prb":
        return {**bench, "params": {**bench["params"], "n_prb": -5}}
    task = {**bench, **change}
    return {k: v for k, v in task.items() if v is not None}


@pytest.mark.parametrize(("change", "field"), BAD_TASKS)
def test_a_bench_task_whose_family_or_params_do_not_fit_is_refused_naming_the_field(change, field) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "q?"}],
                                              "netgpt": {"task": _bad_task(change)}})
    assert field in [".".join(map(str, e["loc"])) for e in caught.value.errors()], caught.value


def test_a_free_text_task_runs_only_on_a_policy_that_reads_text() -> None:
    free = {**dev_task("tbs").model_dump(mode="json"), "family": FREE_TEXT, "params": {}}
    with pytest.raises(TaskError, match="netgpt.task.family") as caught:
        build_task("r", "q?", TaskOptions(task=free), needs_plan=True)
    assert caught.value.code == "unsupported_question"
    task, found = build_task("r", "q?", TaskOptions(task=free), needs_plan=False)
    assert task.family == FREE_TEXT and found.params == {}


def test_recognised_numbers_must_fit_the_family_model() -> None:
    # the template matches, but 33 layers and a fractional PRB count are no TBS question
    assert recognise(TBS_QUESTION.replace("v = 1", "v = 33")) is None
    assert recognise(TBS_QUESTION.replace("n_PRB = 76", "n_PRB = 76.5")) is None
    assert recognise(TBS_QUESTION) is not None


@pytest.mark.parametrize(("change", "field"), BAD_TASKS)
def test_served_bad_task_is_a_4xx_naming_the_field(served: str, change, field) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "q?"}], "netgpt": {"task": _bad_task(change)}}
    response = httpx.post(f"{served}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {TOKEN}"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert field in error["message"] and error["param"].startswith("netgpt.task."), error
    healthy = httpx.post(f"{served}/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {TOKEN}"},
                         json={"model": MODEL, "messages": [{"role": "user", "content": TBS_QUESTION}]})
    assert healthy.json()["choices"][0]["message"]["content"] == TBS_ANSWER
