"""The action parser never raises, and each way model output goes wrong is a typed issue."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netgpt.agents import default_agents
from netgpt.core.actions import Answer, Call, IssueKind, parse_turn, render_answer, render_call

CARDS = {a.name: a.card for a in default_agents()}


def kinds(text, truncated=False):
    return [i.kind for i in parse_turn(text, CARDS, truncated).issues]


def test_valid_call_and_answer():
    turn = parse_turn('Let me ask. <call agent="phy" skill="mcs">{"table": 1, "index": 5}</call>', CARDS)
    assert turn.action == Call(agent="phy", skill="mcs", args={"table": 1, "index": 5}) and turn.issues == []
    turn = parse_turn("<answer>47112 bits</answer>", CARDS)
    assert turn.action == Answer(text="47112 bits")
    single = parse_turn("<call agent='kpi' skill='latest'>{\"cell_id\": \"cell-1\"}</call>", CARDS)
    assert single.action.agent == "kpi"
    assert parse_turn('<CALL agent="phy" skill="mcs">{}</Call>', CARDS).action.args == {}


@pytest.mark.parametrize("text, kind", [
    ("The answer is 5 dB.", IssueKind.NO_ACTION),
    ('<call agent="phy">{"table": 1}</call>', IssueKind.MALFORMED_CALL),
    ('<call agent="phy" skill="mcs">{"table": 1}', IssueKind.MALFORMED_CALL),
    ('<call agent="phy" skill="mcs">{table: 1}</call>', IssueKind.BAD_JSON),
    ('<call agent="phy" skill="mcs">[1, 2]</call>', IssueKind.ARGS_NOT_OBJECT),
    ('<call agent="oracle" skill="mcs">{}</call>', IssueKind.UNKNOWN_AGENT),
    ('<call agent="phy" skill="guess">{}</call>', IssueKind.UNKNOWN_SKILL),
    ("<answer>  </answer>", IssueKind.EMPTY_ANSWER),
])
def test_each_failure_is_typed(text, kind):
    turn = parse_turn(text, CARDS)
    assert turn.action is None and kinds(text) == [kind]
    assert turn.issues[0].message


def test_truncation_and_extra_actions():
    assert kinds('<call agent="phy" skill="mcs">{"table": 1, "ind', truncated=True) == [IssueKind.OVERLONG]
    assert kinds("I think the value is", truncated=True) == [IssueKind.OVERLONG]
    assert kinds("<answer>12 d", truncated=True) == [IssueKind.OVERLONG]
    both = parse_turn('<answer>3 ms</answer><call agent="phy" skill="mcs">{}</call>', CARDS)
    assert both.action == Answer(text="3 ms") and [i.kind for i in both.issues] == [IssueKind.EXTRA_ACTIONS]


def test_render_round_trip():
    call = Call(agent="topology", skill="shortest_path", args={"src": "gnb-1", "dst": "upf-1", "failed_links": []})
    assert parse_turn(render_call(call), CARDS).action == call
    assert parse_turn(render_answer("yes"), CARDS).action == Answer(text="yes")


_fragments = st.sampled_from(['<call agent="phy" skill="mcs">', "</call>", "<answer>", "</answer>", '{"table": 1}',
                              "{", "}", '"', "<call", "agent=", "skill=", "phy", "<", ">", "\\", "\x00", "é"])


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(st.one_of(_fragments, st.text(max_size=8)), max_size=12).map("".join)),
       st.booleans())
@pytest.mark.slow
def test_fuzz_parser_never_raises(text, truncated):
    turn = parse_turn(text, CARDS, truncated)
    assert (turn.action is None) == any(i.kind != IssueKind.EXTRA_ACTIONS for i in turn.issues) or turn.action
    if turn.action is None:
        assert turn.issues
