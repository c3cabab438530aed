"""Paired comparison of two runs over the tasks both ran: mean per-task difference, bootstrap CI, counts."""

import pytest

from netgpt.eval.report import paired_difference, paired_table


def test_a_constant_difference_has_a_zero_width_interval():
    a = {f"t{i}": 0.5 for i in range(10)}
    b = {f"t{i}": 0.6 for i in range(10)}
    d = paired_difference("a", a, "b", b)
    assert (d.n, d.better, d.worse) == (10, 10, 0)
    assert d.mean == pytest.approx(0.1) and d.ci_low == pytest.approx(0.1) and d.ci_high == pytest.approx(0.1)


def test_only_shared_tasks_count_and_the_interval_brackets_the_mean():
    a = {"t0": 1.0, "t1": 0.0, "t2": 0.0, "t3": 1.0, "t4": 0.0, "t5": 0.0, "only-a": 1.0}
    b = {"t0": 1.0, "t1": 1.0, "t2": 1.0, "t3": 0.0, "t4": 1.0, "t5": 0.0, "only-b": 0.0}
    d = paired_difference("a", a, "b", b, metric="accuracy")
    # differences over t0..t5: 0, +1, +1, -1, +1, 0 → mean 2/6; resampled means lie in [-1, +1]
    assert (d.n, d.better, d.worse, d.metric) == (6, 3, 1, "accuracy")
    assert d.mean == pytest.approx(2 / 6)
    assert -1.0 <= d.ci_low < d.mean < d.ci_high <= 1.0
    assert paired_difference("a", a, "b", b, seed=0) == paired_difference("a", a, "b", b, seed=0)  # reproducible
    assert "| b | a | score | 6 | +0.333 |" in paired_table([paired_difference("a", a, "b", b)])


def test_a_clear_difference_excludes_zero_and_a_noisy_one_does_not():
    clear = paired_difference("a", {f"t{i}": 0.0 for i in range(40)}, "b",
                              {f"t{i}": 1.0 if i % 4 else 0.0 for i in range(40)})
    assert clear.ci_low > 0
    noisy = paired_difference("a", {f"t{i}": float(i % 2) for i in range(40)}, "b",
                              {f"t{i}": float((i // 2) % 2) for i in range(40)})
    assert noisy.ci_low < 0 < noisy.ci_high


def test_runs_over_different_tasks_are_refused():
    with pytest.raises(ValueError, match="share no task"):
        paired_difference("a", {"t0": 1.0}, "b", {"t1": 1.0})
