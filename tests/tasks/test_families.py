"""Every family generates valid, recomputable tasks with the decisions the benchmark promises."""

import string

import pytest

from netgpt.tasks import FAMILIES, family, make_task, verify_task
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
