"""Every family generates valid, recomputable tasks with the decisions the benchmark promises."""

import string

import numpy as np
import pytest

from netgpt.tasks import FAMILIES, family, make_task, verify_task
from netgpt.tasks.families import compare_digits
from netgpt.tasks.generate import task_seed, training_stream
from netgpt.tasks.schema import Task


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("split", ["train", "ood"])
def test_family_tasks_verify(name, split):
    for index in range(3):
        task = make_task(family(name), split, 5, index)
        assert task.family == name and task.split == split
        assert verify_task(task) == []
        assert Task.model_validate_json(task.model_dump_json()) == task


def test_at_least_eight_families_with_three_templates_per_variant_and_disjoint_ood():
    assert len(FAMILIES) >= 8
    for fam in FAMILIES.values():
        for variant, templates in fam.templates.items():
            assert len(set(templates)) >= 3, (fam.name, variant)
        ood = {t for ts in fam.ood_templates.values() for t in ts}
        train = {t for ts in fam.templates.values() for t in ts}
        assert ood and not ood & train, fam.name
        for template in train | ood:  # every placeholder is filled by params or fields
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert names, template


def test_decisions_covered():
    tasks = [make_task(family(name), "train", 1, i) for name in FAMILIES for i in range(4)]
    plans = {t.family: [(c.agent, c.skill) for c in t.reference_plan] for t in tasks}
    assert plans["observation_lookup"] == []                                  # answer from the observation
    assert ("channel", "pathloss") in plans["pathloss"]                       # delegate with the right args
    assert len(plans["sla_check"]) == 2                                       # chain two agents
    recovery = [t for t in tasks if t.family == "agent_recovery"]
    assert all(t.faults and t.reference_plan[0].expect_error == "unavailable" for t in recovery)
    agents = {c.agent for t in tasks for c in t.reference_plan}
    assert {"channel", "channel_lite", "phy", "knowledge", "traffic", "ran", "topology", "kpi"} <= agents


def test_cheap_agent_only_when_precision_allows():
    for i in range(12):
        task = make_task(family("link_budget"), "train", 3, i)
        for call in task.reference_plan:
            assert call.agent == ("channel" if task.params["precision_db"] < 1 else "channel_lite")


def test_fresh_report_means_no_call_and_stale_report_means_call():
    seen = set()
    for i in range(60):
        task = make_task(family("link_budget"), "train", 9, i)
        ages = [r.age_min for r in task.observation.reports]
        if ages and ages[0] <= 15:
            assert task.reference_plan == [] and task.observability == "high"
            seen.add("fresh")
        elif ages:
            assert len(task.reference_plan) == 1
            seen.add("stale")
    assert seen == {"fresh", "stale"}


def test_tampered_answer_and_plan_are_detected():
    task = make_task(family("tbs"), "train", 0, 0)
    bad = task.model_copy(update={"answer": task.answer.model_copy(update={"value": task.answer.value + 8})})
    assert any("answer" in p for p in verify_task(bad))
    wrong_plan = task.model_copy(update={"reference_plan": task.reference_plan[:-1]})
    assert any("reference plan" in p for p in verify_task(wrong_plan))


def test_training_stream_is_deterministic_and_disjoint_from_committed_splits():
    first = [t.model_dump_json() for t, _ in zip(training_stream(0), range(6))]
    again = [t.model_dump_json() for t, _ in zip(training_stream(0), range(6))]
    assert first == again
    train_seeds = {task_seed("train", 0, i, a) for i in range(3000) for a in range(2)}
    test_seeds = {task_seed("test", 7, i, a) for i in range(600) for a in range(2)}
    assert not train_seeds & test_seeds


@pytest.mark.parametrize(("a", "b", "stated"), [
    (57.783, 69.3, ("0057.783", "0069.300", "0=0, 0=0, 5<6")),            # equal thousands and hundreds
    (250.39, 125.2, ("0250.390", "0125.200", "0=0, 2>1")),
    (109.146, 131.0, ("0109.146", "0131.000", "0=0, 1=1, 0<3")),         # equal hundreds: the tens decide
    (29.318, 2.0, ("0029.318", "0002.000", "0=0, 0=0, 2>0")),            # lengths differ: padding aligns them
    (584.108, 1000.5, ("0584.108", "1000.500", "0<1")),
    (1.11, 1.2, ("0001.110", "0001.200", "0=0, 0=0, 0=0, 1=1, 1<2")),    # equal units: the tenths decide
    (0.5, 1.2, ("0000.500", "0001.200", "0=0, 0=0, 0=0, 0<1")),
    (25.8, 25.8, ("0025.800", "0025.800", "0=0, 0=0, 2=2, 5=5, 8=8, 0=0, 0=0")),
    (12345.6, 9.0, ("12345.600", "00009.000", "1>0")),                   # beyond 4 digits both widen
])
def test_compare_digits_by_hand(a, b, stated):
    assert compare_digits(a, b) == stated


def test_compare_digits_agrees_with_the_numbers():
    """The stated order is the numeric one for every pair of rendered rates and targets (3 and 1 decimals)."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        rate = round(float(rng.uniform(0, 10 ** rng.integers(0, 4))), 3)
        target = round(rate * float(rng.choice([0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0])), 1)
        padded_rate, padded_target, walk = compare_digits(rate, target)
        assert float(padded_rate) == rate and float(padded_target) == target
        assert len(padded_rate) == len(padded_target)
        *equal_steps, last = walk.split(", ")
        assert all(step[0] == step[2] and step[1] == "=" for step in equal_steps)
        if rate == target:
            assert last[1] == "="
        else:
            assert last[1] == (">" if rate > target else "<"), (rate, target, walk)
