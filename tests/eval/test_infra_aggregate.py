"""``infra_error`` episodes in the harness and the reports: left out of every figure and counted, never kept by a
resumed run, reported in results.md, and a run with too many of them refused."""

import json
from pathlib import Path

import pytest

from netgpt.agents import default_agents
from netgpt.core.episode import EpisodeConfig, EpisodeResult, run_episodes
from netgpt.core.policies import AlwaysPolicy
from netgpt.eval.harness import (
    MAX_INFRA_ERROR_FRACTION,
    Aggregate,
    InfraErrorThresholdExceeded,
    aggregate,
    check_infra_errors,
    episodes_to_run,
    finished_episodes,
    infra_error_episodes,
    load_aggregate,
)
from netgpt.eval.report import summary_table
from netgpt.eval.run import write_run
from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import builtin_faults
from netgpt.reward import RewardTerms
from netgpt.tasks import load_tasks

TASKS = load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")[:24]
SETTINGS = {"policy": "always", "split": "dev"}


@pytest.fixture(scope="module")
def episodes() -> list[EpisodeResult]:
    with AgentRegistry(builtin_faults()) as registry:
        for agent in default_agents():
            registry.register(agent)
        return run_episodes(TASKS, AlwaysPolicy(), registry, EpisodeConfig(), lambda s: len(s) // 4)


def _failed(result: EpisodeResult) -> EpisodeResult:
    return result.model_copy(update={"finish_reason": "infra_error", "infra_error": "agent server gone",
                                     "reward": RewardTerms(quality=0.0, coordination=0.0, resource=0.0, total=0.0)})


def _with_failures(episodes, positions) -> list[EpisodeResult]:
    return [_failed(r) if i in positions else r for i, r in enumerate(episodes)]


def test_aggregate_leaves_infra_errors_out_of_every_figure(episodes):
    mixed = _with_failures(episodes, {1, 4, 9})
    agg = aggregate("always", mixed)
    rest = aggregate("always", [r for i, r in enumerate(episodes) if i not in {1, 4, 9}])
    assert agg.infra_errors == 3 and agg.n == len(episodes) - 3
    assert agg == rest.model_copy(update={"infra_errors": 3})
    assert infra_error_episodes(mixed) == [episodes[i].task_id for i in (1, 4, 9)]
    assert aggregate("always", episodes).infra_errors == 0
    everything_failed = aggregate("always", [_failed(r) for r in episodes])
    assert everything_failed.n == 0 and everything_failed.score == 0.0 and everything_failed.infra_errors == 24


def test_older_records_without_the_new_fields_still_load(episodes):
    row = json.loads(episodes[0].model_dump_json())
    del row["infra_error"]
    assert EpisodeResult.model_validate(row).infra_error is None
    stored = aggregate("always", episodes).model_dump()
    del stored["infra_errors"]
    assert Aggregate.model_validate(stored).infra_errors == 0


def test_the_threshold(episodes):
    check_infra_errors([])
    check_infra_errors(episodes)
    allowed = int(MAX_INFRA_ERROR_FRACTION * len(episodes))  # 1 of 24 is within 5 %
    check_infra_errors(_with_failures(episodes, set(range(allowed))))
    with pytest.raises(InfraErrorThresholdExceeded) as refused:
        check_infra_errors(_with_failures(episodes, set(range(allowed + 1))))
    assert refused.value.count == allowed + 1 and refused.value.fraction == (allowed + 1) / 24
    assert "agent server gone" in str(refused.value) and episodes[0].task_id in str(refused.value)
    check_infra_errors(_with_failures(episodes, {0, 1, 2}), max_fraction=0.5)
    with pytest.raises(ValueError, match="max_fraction"):
        check_infra_errors(episodes, max_fraction=1.5)


def test_a_finished_run_with_infra_errors_is_reported_and_resumed_without_them(tmp_path, episodes):
    mixed = _with_failures(episodes, {2, 3})
    agg = aggregate("always", mixed)
    write_run(tmp_path, mixed, agg, {**SETTINGS, "split": "dev"})
    assert load_aggregate(tmp_path).infra_errors == 2
    markdown = (tmp_path / "results.md").read_text()
    assert "infra_errors" in markdown and "Infrastructure failures** (always: 2)" in markdown
    assert "infra_errors" not in summary_table([aggregate("always", episodes)])
    kept, _ = finished_episodes(tmp_path, SETTINGS)
    assert len(kept) == 22 and not infra_error_episodes(kept.values())
    assert [t.id for t in episodes_to_run(TASKS, kept)] == [episodes[2].task_id, episodes[3].task_id]
    assert episodes_to_run(TASKS, {r.task_id: r for r in mixed}) == [TASKS[2], TASKS[3]]
