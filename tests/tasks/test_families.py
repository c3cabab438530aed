"""Every family generates valid, recomputable tasks with the decisions the benchmark promises."""

import json
import string

import pytest
from pydantic import ValidationError

from netgpt.tasks import FAMILIES, family, make_task, verify_task
from netgpt.tasks.generate import task_seed, training_stream
from netgpt.tasks.params import (
    FAMILY_PARAMS,
    FREE_TEXT,
    FamilyParams,
    LinkBudgetParams,
    PathLatencyParams,
    RecoveryLatencyParams,
    RecoverySinrParams,
    UnknownFamilyError,
    parse_params,
)
from netgpt.tasks.schema import Task


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("split", ["train", "ood"])
@pytest.mark.slow
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


@pytest.mark.slow
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
            assert call.agent == ("channel" if task.params.precision_db < 1 else "channel_lite")


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


def test_every_family_declares_a_frozen_strict_params_model_with_described_fields():
    assert set(FAMILY_PARAMS) == set(FAMILIES) | {FREE_TEXT}
    for name in FAMILIES:
        for index in range(4):
            params = make_task(family(name), "train", 2, index).params
            assert isinstance(params, FamilyParams) and parse_params(name, params.model_dump()) == params
            for field, info in type(params).model_fields.items():
                assert info.description, (name, field)
            with pytest.raises(ValidationError, match="frozen"):
                params.variant = "other"
            with pytest.raises(ValidationError, match="typo"):
                parse_params(name, {**params.model_dump(), "typo": 1})


def test_a_task_whose_params_do_not_fit_its_family_is_refused_naming_the_field():
    line = json.loads(make_task(family("tbs"), "train", 0, 0).model_dump_json())
    for change, loc in [({"params": {}}, ("params", "n_prb")),
                        ({"params": {**line["params"], "n_prb": "many"}}, ("params", "n_prb")),
                        ({"params": {**line["params"], "layers": 0}}, ("params", "layers")),
                        ({"family": "pathloss"}, ("params", "scenario")),
                        ({"family": "no_such_family"}, ("family",))]:
        with pytest.raises(ValidationError) as caught:
            Task.model_validate({**line, **change})
        assert loc in [e["loc"] for e in caught.value.errors()], (change, caught.value)
    with pytest.raises(UnknownFamilyError, match="no_such_family"):
        parse_params("no_such_family", line["params"])


@pytest.mark.parametrize(("name", "params", "field"), [
    ("kpi_anomaly", {"variant": "which_cell", "metric": None, "cell_id": "cell-1"}, "metric"),
    ("path_latency", {"variant": "failover", "src": "gnb-1", "dst": "upf-1", "failed_link": None}, "failed_link"),
    ("path_latency", {"variant": "latency", "src": "gnb-1", "dst": "upf-1", "failed_link": "gnb-1~agg-1"},
     "failed_link"),
    ("spec_fact", {"variant": "slot", "scs_khz": 30}, "mu"),
    ("spec_fact", {"variant": "slot", "mu": 1, "scs_khz": 60}, "scs_khz"),
    ("tbs", {"variant": "tbs", "mcs_table": 2, "mcs_index": 28, "n_prb": 10, "n_symb": 14, "n_dmrs_per_prb": 12,
             "n_oh_per_prb": 0, "layers": 1}, "mcs_index"),
    ("link_budget", {"variant": "sinr", "ue_id": "ue-1", "precision_db": 1.0}, "precision_db"),
    ("agent_recovery", {"variant": "sinr", "ue_id": "ue-1", "precision_db": 3.0}, "precision_db"),
    ("agent_recovery", {"variant": "failover", "src": "gnb-1", "dst": "upf-1", "failed_link": "x"}, "variant"),
])
def test_params_models_refuse_inconsistent_values(name, params, field):
    with pytest.raises(ValidationError, match=field):
        parse_params(name, params)


def test_agent_recovery_params_are_its_inner_families_params():
    tasks = [make_task(family("agent_recovery"), "train", 4, i) for i in range(12)]
    assert {type(t.params) for t in tasks} == {RecoveryLatencyParams, RecoverySinrParams}
    for task in tasks:
        inner = PathLatencyParams if task.params.variant == "latency" else LinkBudgetParams
        assert isinstance(task.params, inner)
