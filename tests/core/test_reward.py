"""Multi-objective reward: terms in [0, 1], gating, penalties and budgets."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netgpt.reward import Budget, CallRecord, EpisodeCost, multi_objective_reward
from netgpt.tasks import load_tasks

TASKS = load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")
TBS = next(t for t in TASKS if t.family == "tbs")
LOOKUP = next(t for t in TASKS if t.family == "observation_lookup")
RIGHT = TBS.answer.display()
OK = CallRecord(agent="phy", skill="tbs", args_key="{}", outcome="ok")


def test_cheap_wrong_answer_never_beats_an_expensive_right_one():
    cheap_wrong = multi_objective_reward(TBS, "1 bits", [], EpisodeCost())
    expensive_right = multi_objective_reward(TBS, RIGHT, [OK] * 3, EpisodeCost(latency_ms=2900, bytes=7900,
                                                                                 tokens=250))
    assert cheap_wrong.total == 0.0 and cheap_wrong.coordination == 1.0 and cheap_wrong.resource > 0.9
    assert expensive_right.total >= 0.7 > cheap_wrong.total


def test_terms_and_weights():
    r = multi_objective_reward(TBS, RIGHT, [OK], EpisodeCost(latency_ms=300, bytes=800, tokens=64))
    assert r.quality == 1.0 and r.coordination == 1.0
    assert r.resource == pytest.approx(1 - (300 / 3000 + 800 / 8000 + 64 / 256) / 3)  # 0.85
    assert r.total == pytest.approx(0.7 + 0.15 + 0.15 * 0.85)


def test_penalties():
    invalid = CallRecord(agent=None, skill=None, outcome="invalid")
    assert multi_objective_reward(TBS, RIGHT, [invalid, OK], EpisodeCost()).coordination == pytest.approx(0.75)
    assert multi_objective_reward(TBS, RIGHT, [OK, OK], EpisodeCost()).coordination == pytest.approx(0.75)
    failed = CallRecord(agent="phy", skill="tbs", args_key="{}", outcome="failed")
    assert multi_objective_reward(TBS, RIGHT, [failed, OK], EpisodeCost()).coordination == 1.0  # a retry is fine
    assert multi_objective_reward(LOOKUP, LOOKUP.answer.display(), [OK], EpisodeCost()).coordination == 0.5
    assert multi_objective_reward(TBS, None, [], EpisodeCost(), ran_out_of_turns=True).coordination == 0.5


def test_over_budget_means_no_resource_credit():
    over = multi_objective_reward(TBS, RIGHT, [OK], EpisodeCost(latency_ms=Budget().latency_ms + 1))
    assert over.resource == 0.0 and over.total == pytest.approx(0.85)


@given(st.floats(0, 1e5), st.integers(0, 10**6), st.integers(0, 10**4), st.lists(st.sampled_from(["ok", "invalid",
                                                                                                     "failed"])))
def test_terms_stay_in_unit_interval(latency, n_bytes, tokens, outcomes):
    calls = [CallRecord(agent="phy", skill="tbs", args_key=str(i % 2), outcome=o) for i, o in enumerate(outcomes)]
    r = multi_objective_reward(TBS, RIGHT, calls, EpisodeCost(latency_ms=latency, bytes=n_bytes, tokens=tokens))
    for value in (r.quality, r.coordination, r.resource, r.total):
        assert 0.0 <= value <= 1.0
