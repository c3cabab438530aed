"""Answer scoring: the ``quality`` term of the reward, in [0, 1].

* Choices and ids are exact after normalisation (case, surrounding punctuation, ``cell 2`` ≡ ``cell-2``).
* Numbers are parsed with their unit and converted to the expected unit ("1.2 Gbps" vs Mbps, "250 us" vs ms).
  A bare number is read in the expected unit; a unit of another dimension ("12 dBm" for a dB answer) scores 0.
  An error within the tolerance scores 1; beyond it the credit falls linearly to 0 at
  ``PARTIAL_CREDIT_MULTIPLE`` × tolerance. A tolerance of 0 means exact (integers such as TBS, N_RB, PRBs).

Units are a small closed table rather than a general units library: the benchmark's answers use a dozen units,
two of them logarithmic (dB, dBm), which general libraries treat very differently from what engineers write.
"""

from __future__ import annotations

import re

from netgpt.tasks.schema import AnswerSpec

PARTIAL_CREDIT_MULTIPLE = 3.0

# unit alias -> (dimension, scale to the dimension's base unit, offset added after scaling)
_UNITS: dict[str, tuple[str, float, float]] = {}


def _alias(dimension: str, scale: float, *names: str, offset: float = 0.0) -> None:
    for name in names:
        _UNITS[name.lower()] = (dimension, scale, offset)


_alias("db", 1.0, "db")
_alias("dbm", 1.0, "dbm")
_alias("dbm", 1.0, "dbw", offset=30.0)
_alias("rate", 1.0, "bps", "bit/s", "b/s")
_alias("rate", 1e3, "kbps", "kbit/s", "kb/s")
_alias("rate", 1e6, "mbps", "mbit/s", "mb/s")
_alias("rate", 1e9, "gbps", "gbit/s", "gb/s")
_alias("rate", 1e12, "tbps", "tbit/s")
_alias("time", 1.0, "s", "sec", "second", "seconds")
_alias("time", 1e-3, "ms", "msec", "millisecond", "milliseconds")
_alias("time", 1e-6, "us", "µs", "μs", "microsecond", "microseconds")
_alias("time", 60.0, "min", "mins", "minute", "minutes")
_alias("time", 3600.0, "h", "hr", "hrs", "hour", "hours")
_alias("ratio", 1.0, "%", "percent", "pct")
_alias("bits", 1.0, "bit", "bits")
_alias("bits", 8.0, "byte", "bytes")
_alias("bits", 1e3, "kbit", "kbits")
_alias("bits", 1e6, "mbit", "mbits")
_alias("freq", 1.0, "hz")
_alias("freq", 1e3, "khz")
_alias("freq", 1e6, "mhz")
_alias("freq", 1e9, "ghz")
_alias("prb", 1.0, "prb", "prbs", "rb", "rbs", "resource blocks")
_alias("layers", 1.0, "layer", "layers")

_NUMBER = re.compile(
    r"(?P<num>[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+)"
    r"\s*(?P<unit>resource blocks|[A-Za-zµμ%]+(?:/s)?)?"
)


class UnitError(ValueError):
    pass


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between two units of the same dimension of the table above."""
    try:
        dim_a, scale_a, offset_a = _UNITS[from_unit.lower()]
        dim_b, scale_b, offset_b = _UNITS[to_unit.lower()]
    except KeyError as exc:
        raise UnitError(f"unknown unit {exc.args[0]!r}") from None
    if dim_a != dim_b:
        raise UnitError(f"cannot convert {from_unit} to {to_unit}")
    return ((value * scale_a + offset_a) - offset_b) / scale_b


def parse_number(text: str, expected_unit: str | None) -> float | None:
    """First number in ``text``, converted to ``expected_unit``; None if there is none or its unit is foreign."""
    for match in _NUMBER.finditer(text):
        value = float(match["num"].replace(",", "").replace("−", "-"))
        unit = match["unit"]
        if unit and unit.lower() not in _UNITS:
            unit = None  # a word after the number ("5 hours" is handled; "5 cells" is not a unit)
        if expected_unit is None or unit is None:
            return value
        try:
            return convert(value, unit, expected_unit)
        except UnitError:
            return None
    return None


def normalise_label(text: str) -> str:
    text = text.strip().strip("\"'`.,;:!()[]{}").lower()
    return re.sub(r"[\s_]+", "-", text)


_SYNONYMS = {"true": "yes", "false": "no"}


def score_answer(expected: AnswerSpec, response: str | None) -> float:
    """Quality in [0, 1] of a response (the text of the core's final answer) against the expected answer."""
    if response is None or not response.strip():
        return 0.0
    if expected.kind == "number":
        value = parse_number(response, expected.unit)
        if value is None:
            return 0.0
        error = abs(value - expected.value)
        tol = expected.tolerance
        if tol == 0:
            return 1.0 if error <= 1e-9 * max(1.0, abs(expected.value)) else 0.0
        if error <= tol:
            return 1.0
        return max(0.0, 1.0 - (error - tol) / ((PARTIAL_CREDIT_MULTIPLE - 1.0) * tol))
    got = normalise_label(response)
    got = _SYNONYMS.get(got, got)
    want = normalise_label(expected.label)
    if got == want:
        return 1.0
    # accept a short sentence that names exactly one candidate ("the anomaly is on cell 3")
    text = response.lower()
    candidates = [normalise_label(c) for c in expected.choices] if expected.choices else [want]
    mentioned = {c for c in candidates if re.search(_label_pattern(c), text)}
    if expected.kind == "id":  # any other id of the same kind counts as a second candidate
        prefix = want.rsplit("-", 1)[0]
        other_ids = re.findall(_label_pattern(prefix + "-") + r"\w+(?![\w-])", text)
        mentioned |= {normalise_label(m) for m in other_ids}
    return 1.0 if mentioned == {want} else 0.0


def _label_pattern(label: str) -> str:
    """Regex for a normalised label inside free text, where '-' may also be written as a space or '_'."""
    body = r"[\s_-]+".join(re.escape(part) for part in label.split("-"))
    if label.endswith("-"):  # a prefix such as "cell-": the caller appends the rest
        return rf"(?<![\w-]){body}"
    return rf"(?<![\w-]){body}(?![\w-])"
