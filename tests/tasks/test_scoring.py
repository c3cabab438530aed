"""Answer scoring: units, tolerance with partial credit, choices and ids."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netgpt.tasks.schema import AnswerSpec
from netgpt.tasks.scoring import PARTIAL_CREDIT_MULTIPLE, UnitError, convert, parse_number, score_answer


def number(value, unit, tol):
    return AnswerSpec(kind="number", value=value, unit=unit, tolerance=tol)


@pytest.mark.parametrize("text, unit, expected", [
    ("12.4 dB", "dB", 12.4),
    ("-91.99 dBm", "dBm", -91.99),
    ("-121.99 dBW", "dBm", -91.99),
    ("1.2 Gbps", "Mbps", 1200.0),
    ("2,336.07 Mbps", "Mbps", 2336.07),
    ("850 kbps", "Mbps", 0.85),
    ("1.5 Gbit/s", "Mbps", 1500.0),
    ("250 us", "ms", 0.25),
    ("0.125ms", "ms", 0.125),
    ("2 hours", "h", 2.0),
    ("90 min", "h", 1.5),
    ("63.5 %", "%", 63.5),
    ("47112 bits", "bits", 47112.0),
    ("5889 bytes", "bits", 47112.0),
    ("the TBS is 47112", "bits", 47112.0),
    ("106 RBs", "PRB", 106.0),
    ("1e3 Mbps", "Gbps", 1.0),
    ("−3.5 dB", "dB", -3.5),
])
def test_parse_and_convert(text, unit, expected):
    assert parse_number(text, unit) == pytest.approx(expected)


def test_foreign_dimension_scores_zero():
    assert parse_number("12 dBm", "dB") is None
    assert score_answer(number(12.0, "dB", 0.5), "12 dBm") == 0.0
    with pytest.raises(UnitError):
        convert(1.0, "ms", "Mbps")
    with pytest.raises(UnitError, match="unknown unit"):
        convert(1.0, "furlong", "m")


def test_tolerance_and_partial_credit():
    spec = number(10.0, "dB", 0.5)
    assert score_answer(spec, "10.5 dB") == 1.0
    assert score_answer(spec, "9.5") == 1.0
    # halfway between tol (0.5) and 3·tol (1.5): error 1.0 → credit 0.5
    assert score_answer(spec, "11.0 dB") == pytest.approx(0.5)
    assert score_answer(spec, f"{10 + 0.5 * PARTIAL_CREDIT_MULTIPLE} dB") == 0.0
    assert score_answer(spec, "25 dB") == 0.0
    assert score_answer(spec, "") == 0.0 and score_answer(spec, None) == 0.0
    assert score_answer(spec, "no idea") == 0.0


def test_exact_numbers():
    spec = number(47112.0, "bits", 0.0)
    assert score_answer(spec, "47112") == 1.0
    assert score_answer(spec, "47113") == 0.0
    assert score_answer(spec, "5889 bytes") == 1.0


def test_choices_and_ids():
    yes = AnswerSpec(kind="choice", label="yes", choices=["yes", "no"])
    assert score_answer(yes, "Yes") == 1.0
    assert score_answer(yes, "yes.") == 1.0
    assert score_answer(yes, "true") == 1.0
    assert score_answer(yes, "no") == 0.0
    assert score_answer(yes, "yes or no") == 0.0  # hedging names both candidates
    cell = AnswerSpec(kind="id", label="cell-3")
    assert score_answer(cell, "cell-3") == 1.0
    assert score_answer(cell, "Cell 3") == 1.0
    assert score_answer(cell, "The anomaly is on cell-3.") == 1.0
    assert score_answer(cell, "cell-3 or cell-4") == 0.0
    assert score_answer(cell, "cell-30") == 0.0
    metric = AnswerSpec(kind="choice", label="latency_ms", choices=["throughput_mbps", "latency_ms"])
    assert score_answer(metric, "latency_ms") == 1.0


def test_answer_spec_rejects_inconsistent_answers():
    with pytest.raises(ValueError):
        AnswerSpec(kind="number", value=1.0)  # no tolerance
    with pytest.raises(ValueError):
        AnswerSpec(kind="choice", label="maybe", choices=["yes", "no"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_scoring_never_raises_and_stays_in_range(text):
    for spec in (number(3.0, "Mbps", 0.1), AnswerSpec(kind="id", label="cell-2"),
                 AnswerSpec(kind="choice", label="no", choices=["yes", "no"])):
        assert 0.0 <= score_answer(spec, text) <= 1.0
