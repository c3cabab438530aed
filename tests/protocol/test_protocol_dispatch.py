"""Dispatch: every request gets a typed reply, checked before any work, with bytes measured as documented."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_testkit import ProbeAgent, request

from netgpt.protocol import (
    Agent,
    AgentCard,
    AgentError,
    AgentRegistry,
    CostModel,
    ErrorCode,
    LatencyModel,
    LocalDispatcher,
    Reply,
    Skill,
    reply_bytes,
    request_bytes,
)
from netgpt.world import World


class Recorder(ProbeAgent):
    """Counts handler calls, to prove that rejected requests never reach the agent."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle(self, skill: str, args: dict[str, Any], state: World | None) -> dict[str, Any]:
        self.calls += 1
        return super().handle(skill, args, state)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def dispatcher(recorder: Recorder) -> LocalDispatcher:
    return LocalDispatcher([recorder])


def error(reply: Reply) -> tuple[str, str]:
    assert not reply.ok and reply.result is None and reply.error is not None
    return reply.error.code, reply.error.message


def test_happy_path_and_byte_accounting(dispatcher: LocalDispatcher) -> None:
    req = request("echo", {"text": "ab", "times": 2})
    reply = dispatcher.dispatch(req)
    assert reply.ok and reply.result == {"text": "abab"} and reply.error is None
    assert (reply.request_id, reply.agent, reply.skill) == (req.id, "probe", "echo")
    assert reply.bytes_sent == len(req.model_dump_json().encode()) == request_bytes(req)
    unaccounted = reply.model_dump(exclude={"latency_ms", "bytes_sent", "bytes_received", "cost"})
    assert reply.bytes_received == len(json.dumps(unaccounted, separators=(",", ":")).encode()) == reply_bytes(reply)


def test_unknown_agent_and_skill_name_what_exists(dispatcher: LocalDispatcher, recorder: Recorder) -> None:
    code, message = error(dispatcher.dispatch(request("echo", {"text": "a"}, agent="ghost")))
    assert code == ErrorCode.UNKNOWN_AGENT and "'ghost'" in message and "probe" in message
    code, message = error(dispatcher.dispatch(request("fly")))
    assert code == ErrorCode.UNKNOWN_SKILL and "'fly'" in message and "echo" in message
    assert recorder.calls == 0


@pytest.mark.parametrize(("args", "fragments"), [
    ({}, ["missing required argument 'text'"]),
    ({"text": 3}, ["argument 'text'", "not of type 'string'"]),
    ({"text": "a", "times": "2"}, ["argument 'times'", "not of type 'integer'"]),
    ({"text": "a", "times": 9}, ["argument 'times'", "maximum of 5"]),
    ({"text": "a", "colour": "red"}, ["unexpected argument 'colour'", "allowed: text, times"]),
    ({"text": "a" * 201}, ["argument 'text'", "is too long"]),
    ({"text": None}, ["argument 'text'", "None is not of type 'string'"]),
])
def test_schema_violations_are_invalid_args_naming_the_field(dispatcher: LocalDispatcher, recorder: Recorder,
                                                             args: dict[str, Any], fragments: list[str]) -> None:
    code, message = error(dispatcher.dispatch(request("echo", args)))
    assert code == ErrorCode.INVALID_ARGS and message.startswith("invalid arguments for probe.echo: ")
    for fragment in fragments:
        assert fragment in message
    assert recorder.calls == 0


def test_huge_invalid_values_give_short_messages(dispatcher: LocalDispatcher) -> None:
    _, message = error(dispatcher.dispatch(request("echo", {"text": ["x" * 10_000] * 50})))
    assert len(message) < 700


def test_stateful_skill_needs_a_session(dispatcher: LocalDispatcher, recorder: Recorder, state: World) -> None:
    code, message = error(dispatcher.dispatch(request("cell_count")))
    assert code == ErrorCode.INVALID_ARGS and "reads the network state" in message and "no session id" in message
    code, message = error(dispatcher.dispatch(request("cell_count", session="ep-1")))
    assert code == ErrorCode.INVALID_ARGS and "'ep-1' is not open" in message
    assert recorder.calls == 0
    reply = dispatcher.dispatch(request("cell_count", session="ep-1"), state)
    assert reply.ok and reply.result == {"cells": len(state.cells), "scenario": state.scenario}


def test_agent_errors_keep_their_code_and_crashes_are_internal(dispatcher: LocalDispatcher, state: World) -> None:
    code, message = error(dispatcher.dispatch(request("cell_power", {"cell_id": "cell-99"}, session="s"), state))
    assert code == ErrorCode.INVALID_ARGS and "cell-99" in message
    code, message = error(dispatcher.dispatch(request("crash")))
    assert code == ErrorCode.INTERNAL and "ZeroDivisionError: boom" in message
    assert dispatcher.dispatch(request("echo", {"text": "still fine"})).ok


def _agent(result: Any = None, raises: BaseException | None = None) -> Agent:
    class Odd(Agent):
        card = AgentCard(name="odd", description="returns odd things",
                         cost=CostModel(latency=LatencyModel(median_ms=1)),
                         skills=[Skill(name="go", description="", args_schema={"type": "object"},
                                       result_schema={"type": "object"}, needs_state=False)])

        def handle(self, skill: str, args: dict[str, Any], state: World | None) -> Any:
            if raises is not None:
                raise raises
            return result

    return Odd()


@pytest.mark.parametrize(("result", "fragment"), [
    ([1, 2], "returned list"),
    ({"x": float("nan")}, "not JSON"),
    ({"x": object()}, "not JSON"),
])
def test_results_that_are_not_json_objects_are_internal(result: Any, fragment: str) -> None:
    code, message = error(LocalDispatcher([_agent(result)]).dispatch(request("go", agent="odd")))
    assert code == ErrorCode.INTERNAL and fragment in message


def test_results_are_plain_json_as_on_the_wire() -> None:
    reply = LocalDispatcher([_agent({"n": np.int64(3), "x": np.float32(0.5), "t": (1, 2), "ok": np.bool_(True)})]) \
        .dispatch(request("go", agent="odd"))
    assert reply.result == {"n": 3, "x": 0.5, "t": [1, 2], "ok": True}
    assert type(reply.result["n"]) is int and type(reply.result["ok"]) is bool


def test_agent_error_with_an_unknown_code_is_internal() -> None:
    reply = LocalDispatcher([_agent(raises=AgentError("weird", "odd code"))]).dispatch(request("go", agent="odd"))
    assert error(reply) == (ErrorCode.INTERNAL, "odd code")


def test_invalid_schemas_and_duplicates_fail_at_registration() -> None:
    bad = _agent()
    bad.card = bad.card.model_copy(update={"skills": [bad.card.skills[0].model_copy(
        update={"args_schema": {"type": "no-such-type"}})]})
    with pytest.raises(Exception, match="no-such-type"):
        LocalDispatcher([bad])
    with pytest.raises(ValueError, match="already registered"):
        LocalDispatcher([ProbeAgent(), ProbeAgent()])


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(skill=st.sampled_from(["echo", "measure", "cell_count", "cell_power", "crash", "nope", "__init__"]),
       args=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
       session=st.none() | st.text(max_size=5))
def test_arbitrary_requests_always_get_a_typed_reply(dispatcher: LocalDispatcher, state: World, skill: str,
                                                     args: dict[str, Any], session: str | None) -> None:
    reply = dispatcher.dispatch(request(skill, args, session=session), state if session else None)
    assert reply.ok == (reply.error is None) and (reply.result is not None) == reply.ok
    assert reply.bytes_sent > 0 and reply.bytes_received > 0


def test_requests_that_cannot_be_json_are_rejected_not_raised() -> None:
    lone_surrogate = request("echo", {"text": "\ud800"}, id="r-\udc00")
    not_json = request("echo", {"text": object()})
    reg = AgentRegistry()
    reg.register(ProbeAgent())
    for req in (lone_surrogate, not_json):
        for reply in (LocalDispatcher([ProbeAgent()]).dispatch(req), reg.call(req)):
            code, message = error(reply)
            assert code == ErrorCode.INVALID_ARGS and "cannot be serialised as JSON" in message
            reply.model_dump_json()  # the reply itself is valid JSON, its ids cleaned
    assert reg.call(lone_surrogate).request_id == "r-?"
