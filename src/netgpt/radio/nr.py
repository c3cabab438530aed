"""NR numerology, resource grid and throughput helpers.

* TS 38.101-1 / 38.101-2 Table 5.3.2-1: maximum transmission bandwidth configuration N_RB.
* TS 38.214 §5.1.3.1: PDSCH MCS tables 5.1.3.1-1 (64QAM), -2 (256QAM), -3 (64QAM low-SE).
* TS 38.214 §5.1.3.2: transport block size determination (exact rational arithmetic).
* TS 38.306 §4.1.2: approximate maximum data rate.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from fractions import Fraction

from .pathloss import RadioRangeError

__all__ = [
    "MCS_TABLES",
    "N_RB_FR1",
    "N_RB_FR2",
    "R_MAX",
    "TBS_TABLE",
    "carrier_max_data_rate_mbps",
    "default_overhead",
    "max_data_rate_ca_mbps",
    "max_data_rate_mbps",
    "mcs",
    "mu_for_scs",
    "n_rb",
    "scs_khz_for_mu",
    "tbs",
]

# TS 38.101-1 Table 5.3.2-1 (FR1), {SCS kHz: {channel bandwidth MHz: N_RB}}, incl. the
# 3 MHz (15 kHz only), 35 MHz and 45 MHz columns added in later releases.
N_RB_FR1: dict[int, dict[int, int]] = {
    15: {3: 15, 5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 35: 188, 40: 216, 45: 242,
         50: 270},
    30: {5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 35: 92, 40: 106, 45: 119, 50: 133,
         60: 162, 70: 189, 80: 217, 90: 245, 100: 273},
    60: {10: 11, 15: 18, 20: 24, 25: 31, 30: 38, 35: 44, 40: 51, 45: 58, 50: 65, 60: 79,
         70: 93, 80: 107, 90: 121, 100: 135},
}
# TS 38.101-2 Table 5.3.2-1 (FR2-1).
N_RB_FR2: dict[int, dict[int, int]] = {
    60: {50: 66, 100: 132, 200: 264},
    120: {50: 32, 100: 66, 200: 132, 400: 264},
}
_N_RB_TABLES = {1: N_RB_FR1, 2: N_RB_FR2}

# TS 38.214 Tables 5.1.3.1-1/-2/-3: I_MCS -> (Q_m, R x 1024). Indices past the end of each
# tuple (29-31, 28-31, 29-31) are reserved (retransmission with the previous TBS).
MCS_TABLES: dict[int, tuple[tuple[int, float], ...]] = {
    1: (
        (2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526),
        (2, 602), (2, 679), (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616),
        (4, 658), (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719),
        (6, 772), (6, 822), (6, 873), (6, 910), (6, 948),
    ),
    2: (
        (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 434), (4, 490),
        (4, 553), (4, 616), (4, 658), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666),
        (6, 719), (6, 772), (6, 822), (6, 873), (8, 682.5), (8, 711), (8, 754), (8, 797),
        (8, 841), (8, 885), (8, 916.5), (8, 948),
    ),
    3: (
        (2, 30), (2, 40), (2, 50), (2, 64), (2, 78), (2, 99), (2, 120), (2, 157),
        (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526), (2, 602), (4, 340),
        (4, 378), (4, 434), (4, 490), (4, 553), (4, 616), (6, 438), (6, 466), (6, 517),
        (6, 567), (6, 616), (6, 666), (6, 719), (6, 772),
    ),
}
_MCS_TABLE_NAMES = {1: "Table 5.1.3.1-1", 2: "Table 5.1.3.1-2", 3: "Table 5.1.3.1-3"}
MAX_MCS_INDEX = 31

# TS 38.214 Table 5.1.3.2-1: TBS for N_info <= 3824.
TBS_TABLE: tuple[int, ...] = (
    24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176,
    184, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 352, 368, 384, 408, 432, 456, 480,
    504, 528, 552, 576, 608, 640, 672, 704, 736, 768, 808, 848, 888, 928, 984, 1032, 1064,
    1128, 1160, 1192, 1224, 1256, 1288, 1320, 1352, 1416, 1480, 1544, 1608, 1672, 1736, 1800,
    1864, 1928, 2024, 2088, 2152, 2216, 2280, 2408, 2472, 2536, 2600, 2664, 2728, 2792, 2856,
    2976, 3104, 3240, 3368, 3496, 3624, 3752, 3824,
)

VALID_QM = (1, 2, 4, 6, 8)
"""Modulation orders: pi/2-BPSK (PUSCH with transform precoding), QPSK ... 256QAM."""
VALID_N_OH_PER_PRB = (0, 6, 12, 18)
VALID_TBS_SCALING = (Fraction(1), Fraction(1, 2), Fraction(1, 4))
"""TS 38.214 Table 5.1.3.2-2 TB scaling factor S."""
MAX_N_PRB = 275
MAX_LAYERS = 8
MAX_RE_PER_PRB = 156

R_MAX = 948 / 1024
"""TS 38.306 §4.1.2: maximum LDPC code rate."""
VALID_RATE_SCALING = (1.0, 0.8, 0.75, 0.4)
"""TS 38.306 §4.1.2 scaling factor f (signalled by scalingFactor)."""
DEFAULT_OVERHEAD = {(1, "dl"): 0.14, (2, "dl"): 0.18, (1, "ul"): 0.08, (2, "ul"): 0.10}
MAX_MU = 6
"""Numerologies 0-6 (15-960 kHz) as used by TS 38.306 §4.1.2 (FR1, FR2-1 and FR2-2)."""

_SPEC_TBS = "TBS determination (TS 38.214 §5.1.3.2)"


def _integer(name: str, value: int, low: int, high: float, context: str) -> int:
    """``operator.index(value)`` checked against [low, high]; non-integers raise TypeError."""
    v = operator.index(value)
    if not low <= v <= high:
        raise RadioRangeError(name, value, low, high, context)
    return v


def scs_khz_for_mu(mu: int) -> int:
    """Subcarrier spacing 15·2^mu kHz (TS 38.211 §4.2, Table 4.2-1)."""
    return 15 * 2 ** _integer("mu", mu, 0, MAX_MU, "NR numerology (TS 38.211 Table 4.2-1)")


def mu_for_scs(scs_khz: int) -> int:
    """Numerology mu with 15·2^mu == ``scs_khz``."""
    for mu in range(MAX_MU + 1):
        if 15 * 2**mu == scs_khz:
            return mu
    valid = ", ".join(str(15 * 2**m) for m in range(MAX_MU + 1))
    raise ValueError(f"subcarrier spacing {scs_khz!r} kHz is not an NR numerology ({valid})")


def n_rb(fr: int, scs_khz: int, bandwidth_mhz: float) -> int:
    """Maximum transmission bandwidth N_RB (TS 38.101-1 / 38.101-2 Table 5.3.2-1)."""
    if fr not in _N_RB_TABLES:
        raise ValueError(f"fr must be 1 (FR1) or 2 (FR2), got {fr!r}")
    table = _N_RB_TABLES[fr]
    spec = "TS 38.101-1" if fr == 1 else "TS 38.101-2"
    if scs_khz not in table:
        raise ValueError(f"SCS {scs_khz!r} kHz not defined for FR{fr} ({spec} Table 5.3.2-1); "
                         f"valid SCS: {', '.join(map(str, table))} kHz")
    column = table[scs_khz]
    if bandwidth_mhz not in column:
        raise ValueError(f"channel bandwidth {bandwidth_mhz!r} MHz not defined for FR{fr} "
                         f"SCS {scs_khz} kHz ({spec} Table 5.3.2-1); valid bandwidths: "
                         f"{', '.join(map(str, column))} MHz")
    return column[bandwidth_mhz]


def mcs(table: int, index: int) -> tuple[int, float]:
    """(Q_m, R x 1024) of I_MCS ``index`` in TS 38.214 Table 5.1.3.1-``table``."""
    if table not in MCS_TABLES:
        raise ValueError(f"MCS table must be one of {sorted(MCS_TABLES)}, got {table!r}")
    name = f"I_MCS in TS 38.214 {_MCS_TABLE_NAMES[table]}"
    i = _integer("index", index, 0, MAX_MCS_INDEX, name)
    entries = MCS_TABLES[table]
    if i >= len(entries):
        raise ValueError(f"I_MCS {i} is reserved in TS 38.214 {_MCS_TABLE_NAMES[table]} "
                         f"(valid data indices 0-{len(entries) - 1})")
    qm, rate_x1024 = entries[i]
    return qm, float(rate_x1024)


def _floor_log2(x: Fraction) -> int:
    """Exact floor(log2(x)) for a positive rational (no floating-point log)."""
    if x >= 1:
        return math.floor(x).bit_length() - 1
    return -(math.ceil(1 / x) - 1).bit_length()


def tbs(
    qm: int,
    code_rate_x1024: float,
    layers: int,
    n_prb: int,
    n_symb: int,
    n_dmrs_per_prb: int,
    n_oh_per_prb: int = 0,
    scaling: float = 1.0,
) -> int:
    """Transport block size in bits per TS 38.214 §5.1.3.2 (PDSCH; PUSCH §6.1.4.2 is identical).

    Args:
        qm: modulation order Q_m.
        code_rate_x1024: target code rate R times 1024 (e.g. 682.5), taken exactly.
        layers: number of layers v (1-8).
        n_prb: number of allocated PRBs (1-275).
        n_symb: number of scheduled OFDM symbols N_symb^sh (1-14).
        n_dmrs_per_prb: DM-RS REs per PRB in the allocation, incl. CDM-group overhead.
        n_oh_per_prb: xOverhead N_oh^PRB in {0, 6, 12, 18}.
        scaling: TB scaling factor S in {1, 0.5, 0.25} (Table 5.1.3.2-2).

    The quantisation ``round()`` of step 4 breaks ties towards the next largest integer.
    """
    if qm not in VALID_QM:
        raise ValueError(f"qm must be one of {VALID_QM}, got {qm!r}")
    rate = Fraction(code_rate_x1024) / 1024
    if not 0 < rate < 1:
        raise RadioRangeError("code_rate_x1024", code_rate_x1024, 0, 1024,
                              _SPEC_TBS + " (0 < R < 1)", low_open=True)
    v = _integer("layers", layers, 1, MAX_LAYERS, _SPEC_TBS)
    prbs = _integer("n_prb", n_prb, 1, MAX_N_PRB, _SPEC_TBS)
    symbols = _integer("n_symb", n_symb, 1, 14, _SPEC_TBS)
    if n_oh_per_prb not in VALID_N_OH_PER_PRB:
        raise ValueError(f"n_oh_per_prb must be one of {VALID_N_OH_PER_PRB}, got {n_oh_per_prb!r}")
    s = Fraction(scaling)
    if s not in VALID_TBS_SCALING:
        raise ValueError(f"scaling must be one of 1, 0.5, 0.25 (Table 5.1.3.2-2), got {scaling!r}")
    n_re_prime = (12 * symbols - _integer("n_dmrs_per_prb", n_dmrs_per_prb, 0, 12 * symbols,
                                          _SPEC_TBS) - int(n_oh_per_prb))
    if n_re_prime <= 0:
        raise ValueError(f"no data REs left: 12*{symbols} - {n_dmrs_per_prb} - {n_oh_per_prb} "
                         f"= {n_re_prime} (step 1 of TS 38.214 §5.1.3.2)")

    n_re = min(MAX_RE_PER_PRB, n_re_prime) * prbs
    n_info = s * n_re * rate * int(qm) * v
    if n_info <= 3824:
        n = max(3, _floor_log2(n_info) - 6)
        n_info_q = max(24, 2**n * math.floor(n_info / 2**n))
        return next(t for t in TBS_TABLE if t >= n_info_q)

    n = _floor_log2(n_info - 24) - 5
    n_info_q = max(3840, 2**n * math.floor((n_info - 24) / 2**n + Fraction(1, 2)))
    if rate <= Fraction(1, 4):
        c = math.ceil(Fraction(n_info_q + 24, 3816))
    elif n_info_q > 8424:
        c = math.ceil(Fraction(n_info_q + 24, 8424))
    else:
        c = 1
    return 8 * c * math.ceil(Fraction(n_info_q + 24, 8 * c)) - 24


def default_overhead(fr: int, direction: str) -> float:
    """TS 38.306 §4.1.2 overhead OH: 0.14 FR1 DL, 0.18 FR2 DL, 0.08 FR1 UL, 0.10 FR2 UL."""
    key = (fr, str(direction).lower())
    if key not in DEFAULT_OVERHEAD:
        raise ValueError(f"need fr in (1, 2) and direction in ('dl', 'ul'), got {fr!r}, "
                         f"{direction!r}")
    return DEFAULT_OVERHEAD[key]


def max_data_rate_mbps(
    layers: int, qm: int, scaling: float, n_prb: int, mu: int, overhead: float
) -> float:
    """Approximate maximum data rate of one carrier in Mbps (TS 38.306 §4.1.2).

    ``1e-6 · v · Q_m · f · R_max · (N_PRB · 12 / T_s) · (1 - OH)`` with R_max = 948/1024 and
    T_s = 1e-3 / (14 · 2^mu) (normal cyclic prefix).
    """
    context = "max data rate (TS 38.306 §4.1.2)"
    v = _integer("layers", layers, 1, MAX_LAYERS, context)
    if qm not in VALID_QM:
        raise ValueError(f"qm must be one of {VALID_QM}, got {qm!r}")
    if scaling not in VALID_RATE_SCALING:
        raise ValueError(f"scaling factor f must be one of {VALID_RATE_SCALING}, got {scaling!r}")
    prbs = _integer("n_prb", n_prb, 1, MAX_N_PRB, context)
    numerology = _integer("mu", mu, 0, MAX_MU, context)
    if not 0.0 <= overhead < 1.0:
        raise RadioRangeError("overhead", overhead, 0.0, 1.0, context + " (0 <= OH < 1)")
    t_s = 1e-3 / (14 * 2**numerology)
    return 1e-6 * v * qm * scaling * R_MAX * (prbs * 12 / t_s) * (1.0 - overhead)


def carrier_max_data_rate_mbps(
    layers: int, qm: int, scaling: float, fr: int, scs_khz: int, bandwidth_mhz: float, direction: str
) -> float:
    """TS 38.306 §4.1.2 maximum data rate of one carrier given as it is configured, not as the formula's symbols.

    The formula's N_PRB is "the maximum RB allocation in bandwidth BW(j) with numerology mu" of TS 38.101-1/-2
    §5.3 (:func:`n_rb`), mu follows from the subcarrier spacing (:func:`mu_for_scs`) and OH is fixed by the
    frequency range and the link direction (:func:`default_overhead`): all three are lookups the spec defines, so
    a caller states the carrier and this function does the lookups.
    """
    return max_data_rate_mbps(layers, qm, scaling, n_rb(fr, scs_khz, bandwidth_mhz), mu_for_scs(scs_khz),
                              default_overhead(fr, direction))


def max_data_rate_ca_mbps(carriers: Iterable[Mapping[str, float]]) -> float:
    """Sum of :func:`max_data_rate_mbps` over aggregated carriers j (TS 38.306 §4.1.2).

    Each carrier is a mapping with the keyword arguments of :func:`max_data_rate_mbps`
    (``layers, qm, scaling, n_prb, mu, overhead``).
    """
    rates = [max_data_rate_mbps(**carrier) for carrier in carriers]
    if not rates:
        raise ValueError("at least one carrier is required")
    return math.fsum(rates)
