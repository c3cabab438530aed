"""Link-budget helpers: thermal noise, received power, SINR, Shannon capacity, CQI/MCS choice.

All functions are pure and work on plain floats (dB / dBm quantities in, dB / dBm out).

SINR -> CQI is *not* standardised by 3GPP (the UE derives CQI from its own receiver
performance, TS 38.214 §5.2.2.1). This module uses a documented engineering assumption:
CQI ``i`` is usable when the SINR reaches the AWGN SNR at which a capacity-approaching
code of spectral efficiency ``eta_i = Q_m·R`` works at ~10 % BLER, modelled as Shannon
capacity with a fixed SNR gap ``Gamma`` (gap approximation, e.g. Goldsmith, *Wireless
Communications*, 2005, §9.3.2)::

    SINR_th(i) [dB] = 10·log10(2^eta_i - 1) + Gamma [dB],   Gamma = SNR_GAP_DB = 3 dB

A 3 dB gap puts CQI 1 of Table 5.2.2.1-2 at about -6.5 dB and CQI 15 at about 19.6 dB,
within 1-2 dB of published 10 % BLER AWGN link-level curves for NR LDPC codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple

from .nr import MCS_TABLES

__all__ = [
    "CQI_TABLES",
    "NOISE_PSD_DBM_PER_HZ",
    "SNR_GAP_DB",
    "CqiEntry",
    "cqi_entry",
    "cqi_sinr_threshold_db",
    "dbm_to_mw",
    "mw_to_dbm",
    "received_power_dbm",
    "shannon_capacity_mbps",
    "sinr_db",
    "sinr_to_cqi",
    "sinr_to_mcs",
    "thermal_noise_dbm",
]

NOISE_PSD_DBM_PER_HZ = -174.0
"""Thermal noise density kT at T = 290 K, taken as exactly -174 dBm/Hz
(10·log10(k·290·1000) = -173.975 dBm/Hz; the rounded value is the industry convention)."""

SNR_GAP_DB = 3.0
"""SNR gap Gamma of the SINR -> CQI approximation (see module docstring)."""


class CqiEntry(NamedTuple):
    """One row of a TS 38.214 CQI table."""

    modulation: str
    qm: int
    code_rate_x1024: int
    efficiency: float
    """Efficiency as printed in the table (4 decimals)."""


def _rows(*rows: tuple[str, int, int, float]) -> tuple[CqiEntry, ...]:
    return tuple(CqiEntry(*row) for row in rows)


_QPSK, _QAM16, _QAM64, _QAM256 = "QPSK", "16QAM", "64QAM", "256QAM"

# TS 38.214 Tables 5.2.2.1-2 (cqi-Table table1), -3 (table2), -4 (table3): CQI 1..15;
# CQI 0 is "out of range". CQI table k pairs with MCS Table 5.1.3.1-k.
CQI_TABLES: dict[int, tuple[CqiEntry, ...]] = {
    1: _rows(
        (_QPSK, 2, 78, 0.1523), (_QPSK, 2, 120, 0.2344), (_QPSK, 2, 193, 0.3770),
        (_QPSK, 2, 308, 0.6016), (_QPSK, 2, 449, 0.8770), (_QPSK, 2, 602, 1.1758),
        (_QAM16, 4, 378, 1.4766), (_QAM16, 4, 490, 1.9141), (_QAM16, 4, 616, 2.4063),
        (_QAM64, 6, 466, 2.7305), (_QAM64, 6, 567, 3.3223), (_QAM64, 6, 666, 3.9023),
        (_QAM64, 6, 772, 4.5234), (_QAM64, 6, 873, 5.1152), (_QAM64, 6, 948, 5.5547),
    ),
    2: _rows(
        (_QPSK, 2, 78, 0.1523), (_QPSK, 2, 193, 0.3770), (_QPSK, 2, 449, 0.8770),
        (_QAM16, 4, 378, 1.4766), (_QAM16, 4, 490, 1.9141), (_QAM16, 4, 616, 2.4063),
        (_QAM64, 6, 466, 2.7305), (_QAM64, 6, 567, 3.3223), (_QAM64, 6, 666, 3.9023),
        (_QAM64, 6, 772, 4.5234), (_QAM64, 6, 873, 5.1152), (_QAM256, 8, 711, 5.5547),
        (_QAM256, 8, 797, 6.2266), (_QAM256, 8, 885, 6.9141), (_QAM256, 8, 948, 7.4063),
    ),
    3: _rows(
        (_QPSK, 2, 30, 0.0586), (_QPSK, 2, 50, 0.0977), (_QPSK, 2, 78, 0.1523),
        (_QPSK, 2, 120, 0.2344), (_QPSK, 2, 193, 0.3770), (_QPSK, 2, 308, 0.6016),
        (_QPSK, 2, 449, 0.8770), (_QPSK, 2, 602, 1.1758), (_QAM16, 4, 378, 1.4766),
        (_QAM16, 4, 490, 1.9141), (_QAM16, 4, 616, 2.4063), (_QAM64, 6, 466, 2.7305),
        (_QAM64, 6, 567, 3.3223), (_QAM64, 6, 666, 3.9023), (_QAM64, 6, 772, 4.5234),
    ),
}
MAX_CQI = 15


def dbm_to_mw(power_dbm: float) -> float:
    """dBm -> mW."""
    return 10.0 ** (power_dbm / 10.0)


def mw_to_dbm(power_mw: float) -> float:
    """mW -> dBm (0 mW gives -inf)."""
    return 10.0 * math.log10(power_mw) if power_mw > 0 else -math.inf


def thermal_noise_dbm(bandwidth_hz: float, noise_figure_db: float = 0.0) -> float:
    """Noise power ``-174 dBm/Hz + 10·log10(B) + NF`` in dBm (kT at 290 K, see NOISE_PSD)."""
    if not bandwidth_hz > 0:
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz!r}")
    return NOISE_PSD_DBM_PER_HZ + 10.0 * math.log10(bandwidth_hz) + noise_figure_db


def received_power_dbm(
    tx_power_dbm: float,
    pathloss_db: float,
    tx_gain_dbi: float = 0.0,
    rx_gain_dbi: float = 0.0,
    other_losses_db: float = 0.0,
) -> float:
    """Link budget ``P_rx = P_tx + G_tx + G_rx - PL - L_other`` in dBm."""
    return tx_power_dbm + tx_gain_dbi + rx_gain_dbi - pathloss_db - other_losses_db


def sinr_db(signal_dbm: float, interferers_dbm: Iterable[float], noise_dbm: float) -> float:
    """``S / (N + sum I)`` in dB, powers summed in linear mW."""
    denominator_mw = dbm_to_mw(noise_dbm) + math.fsum(dbm_to_mw(i) for i in interferers_dbm)
    return signal_dbm - mw_to_dbm(denominator_mw)


def shannon_capacity_mbps(bandwidth_hz: float, sinr_db: float) -> float:
    """Shannon capacity ``B·log2(1 + SINR)`` in Mbit/s."""
    if not bandwidth_hz > 0:
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz!r}")
    return bandwidth_hz * math.log2(1.0 + 10.0 ** (sinr_db / 10.0)) / 1e6


def _cqi_table(table: int) -> tuple[CqiEntry, ...]:
    if table not in CQI_TABLES:
        raise ValueError(f"CQI/MCS table must be one of {sorted(CQI_TABLES)}, got {table!r}")
    return CQI_TABLES[table]


def cqi_entry(cqi: int, table: int = 1) -> CqiEntry:
    """Row ``cqi`` (1-15) of TS 38.214 Table 5.2.2.1-2 (table=1), -3 (2) or -4 (3)."""
    rows = _cqi_table(table)
    if not 1 <= cqi <= MAX_CQI:
        raise ValueError(f"CQI must be 1-15 (0 means out of range), got {cqi!r}")
    return rows[cqi - 1]


def _exact_efficiency(qm: int, code_rate_x1024: float) -> Fraction:
    return qm * Fraction(code_rate_x1024) / 1024


def cqi_sinr_threshold_db(cqi: int, table: int = 1, snr_gap_db: float = SNR_GAP_DB) -> float:
    """SINR needed for ``cqi``: ``10·log10(2^eta - 1) + Gamma`` with eta = Q_m·R (assumption)."""
    entry = cqi_entry(cqi, table)
    eta = float(_exact_efficiency(entry.qm, entry.code_rate_x1024))
    return 10.0 * math.log10(2.0**eta - 1.0) + snr_gap_db


def sinr_to_cqi(sinr_db: float, table: int = 1, snr_gap_db: float = SNR_GAP_DB) -> int:
    """Highest CQI whose threshold (:func:`cqi_sinr_threshold_db`) is <= ``sinr_db``; 0 if none."""
    _cqi_table(table)
    best = 0
    for cqi in range(1, MAX_CQI + 1):
        if cqi_sinr_threshold_db(cqi, table, snr_gap_db) <= sinr_db:
            best = cqi
    return best


def sinr_to_mcs(sinr_db: float, table: int = 1, snr_gap_db: float = SNR_GAP_DB) -> int:
    """MCS index for a measured SINR (CQI table k paired with MCS Table 5.1.3.1-k).

    The SINR is mapped to a CQI with :func:`sinr_to_cqi`; the result is the highest
    non-reserved I_MCS whose spectral efficiency Q_m·R does not exceed the CQI's Q_m·R
    (compared exactly). When no MCS qualifies (CQI 0 = out of range, or CQI 1 of table 1
    whose 0.1523 b/s/Hz is below MCS 0) the most robust MCS, 0, is returned; check
    ``sinr_to_cqi(...) == 0`` to detect outage.
    """
    cqi = sinr_to_cqi(sinr_db, table, snr_gap_db)
    if cqi == 0:
        return 0
    entry = cqi_entry(cqi, table)
    target = _exact_efficiency(entry.qm, entry.code_rate_x1024)
    best = 0
    for index, (qm, rate_x1024) in enumerate(MCS_TABLES[table]):
        if _exact_efficiency(qm, rate_x1024) <= target:
            best = index
    return best
