"""Link budget, SINR, Shannon capacity and the documented SINR -> CQI -> MCS mapping.

Expected values computed independently with plain python ``math`` (see comments).
"""

import math

import numpy as np
import pytest

from netgpt.radio import (
    CQI_TABLES,
    MCS_TABLES,
    SNR_GAP_DB,
    cqi_entry,
    cqi_sinr_threshold_db,
    dbm_to_mw,
    mw_to_dbm,
    received_power_dbm,
    shannon_capacity_mbps,
    sinr_db,
    sinr_to_cqi,
    sinr_to_mcs,
    thermal_noise_dbm,
)

REL = 1e-9


def approx(value: float) -> object:
    return pytest.approx(value, rel=REL)


def test_thermal_noise() -> None:
    # -174 + 10 log10(20e6) + 9 = -174 + 73.0103 + 9 = -91.98970004336019 dBm
    assert thermal_noise_dbm(20e6, 9.0) == approx(-91.98970004336019)
    # -174 + 80 + 7 = -87 dBm exactly
    assert thermal_noise_dbm(100e6, 7.0) == approx(-87.0)
    assert thermal_noise_dbm(1.0) == approx(-174.0)
    with pytest.raises(ValueError):
        thermal_noise_dbm(0.0)


def test_received_power() -> None:
    # 46 + 17 + 0 - 120 - 3 = -60 dBm
    assert received_power_dbm(46, 120, tx_gain_dbi=17, other_losses_db=3) == approx(-60.0)
    assert received_power_dbm(23, 100) == approx(-77.0)
    # 23 + 5 + 3 - 110 - 0 = -79
    assert received_power_dbm(23, 110, 5, 3) == approx(-79.0)


def test_dbm_mw_roundtrip() -> None:
    assert dbm_to_mw(0.0) == 1.0 and dbm_to_mw(30.0) == approx(1000.0)
    assert mw_to_dbm(1e-3) == approx(-30.0)
    assert mw_to_dbm(0.0) == -math.inf


def test_sinr_no_interferers() -> None:
    # -80 - (-100) = 20 dB
    assert sinr_db(-80, [], -100) == approx(20.0)
    assert sinr_db(-80, (), -100) == approx(20.0)


def test_sinr_one_interferer() -> None:
    # N + I = 1e-10 + 1e-9 mW = 1.1e-9 mW = -89.586073 dBm -> SINR = 9.58607314841774 dB
    assert sinr_db(-80, [-90], -100) == approx(9.58607314841774)
    # Equal interferer and signal, negligible noise: ~0 dB
    assert sinr_db(-90, [-90], -200) == pytest.approx(0.0, abs=1e-9)


def test_sinr_several_interferers() -> None:
    # N + sum I = 1e-10 + 2 * 10^-9.5 + 1e-10 = 8.3246e-10 mW -> SINR = 10.796389562699247 dB
    assert sinr_db(-80, [-95, -95, -100], -100) == approx(10.796389562699247)
    assert sinr_db(-80, np.array([-95.0, -95.0, -100.0]), -100) == approx(10.796389562699247)
    # adding an interferer never increases SINR
    assert sinr_db(-80, [-95, -95, -100, -120], -100) < sinr_db(-80, [-95, -95, -100], -100)


def test_shannon() -> None:
    # 20 MHz at 0 dB: 20 * log2(2) = 20 Mbps
    assert shannon_capacity_mbps(20e6, 0.0) == approx(20.0)
    # 10 MHz at 20 dB: 10 * log2(101) = 66.58211482751796
    assert shannon_capacity_mbps(10e6, 20.0) == approx(66.58211482751796)
    # 100 MHz at 30 dB: 100 * log2(1001) = 996.7226258835993
    assert shannon_capacity_mbps(100e6, 30.0) == approx(996.7226258835993)
    assert shannon_capacity_mbps(1e6, -300.0) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- CQI tables (TS 38.214 §5.2.2.1)


def test_cqi_tables() -> None:
    assert cqi_entry(1) == ("QPSK", 2, 78, 0.1523)
    assert cqi_entry(9) == ("16QAM", 4, 616, 2.4063)
    assert cqi_entry(15) == ("64QAM", 6, 948, 5.5547)
    assert cqi_entry(12, table=2) == ("256QAM", 8, 711, 5.5547)
    assert cqi_entry(15, table=2) == ("256QAM", 8, 948, 7.4063)
    assert cqi_entry(1, table=3) == ("QPSK", 2, 30, 0.0586)
    assert cqi_entry(15, table=3) == ("64QAM", 6, 772, 4.5234)
    with pytest.raises(ValueError):
        cqi_entry(0)
    with pytest.raises(ValueError):
        cqi_entry(16)
    with pytest.raises(ValueError):
        cqi_entry(1, table=4)


@pytest.mark.parametrize("table", [1, 2, 3])
def test_cqi_printed_efficiency_matches_qm_times_rate(table: int) -> None:
    for row in CQI_TABLES[table]:
        assert row.efficiency == pytest.approx(row.qm * row.code_rate_x1024 / 1024, abs=5e-5)


def test_cqi_thresholds() -> None:
    assert SNR_GAP_DB == 3.0
    # 10 log10(2^(2*78/1024) - 1) + 3 = -6.532181 dB
    assert cqi_sinr_threshold_db(1) == pytest.approx(-6.532181, abs=1e-6)
    # CQI 9 (4*616/1024 = 2.40625): 10 log10(2^2.40625 - 1) + 3 = 9.33564
    assert cqi_sinr_threshold_db(9) == pytest.approx(9.33564, abs=1e-5)
    # CQI 15 (6*948/1024): 19.627882 dB ; table 2 CQI 15 (8*948/1024): 25.269356 dB
    assert cqi_sinr_threshold_db(15) == pytest.approx(19.627882, abs=1e-6)
    assert cqi_sinr_threshold_db(15, table=2) == pytest.approx(25.269356, abs=1e-6)


def test_sinr_to_cqi_and_mcs_points() -> None:
    assert sinr_to_cqi(-20.0) == 0 and sinr_to_mcs(-20.0) == 0
    # threshold CQI 9 = 9.336, CQI 10 = 10.510 -> CQI 9 (16QAM 616); MCS table 1 I_MCS 15 is
    # 16QAM 616 with exactly the same efficiency 2.40625 -> 15
    assert sinr_to_cqi(10.0) == 9
    assert sinr_to_mcs(10.0) == 15
    # CQI 10 (6*466 = 2796/1024): highest MCS <= 2796 is I_MCS 18 (6*466) -> 18
    assert sinr_to_mcs(10.6) == 18
    # above CQI 15 threshold (19.63 dB) -> CQI 15, MCS 28 (6*948)
    assert sinr_to_cqi(25.0) == 15 and sinr_to_mcs(25.0) == 28
    # table 2: CQI 14 (8*885, threshold 23.78 dB) at 25 dB -> I_MCS 25 (8*885); 30 dB -> 27
    assert sinr_to_cqi(25.0, table=2) == 14
    assert sinr_to_mcs(25.0, table=2) == 25
    assert sinr_to_mcs(30.0, table=2) == 27
    # CQI 1 of table 1 (0.1523) is below MCS 0 (0.2344) -> most robust MCS 0
    assert sinr_to_cqi(-6.0) == 1 and sinr_to_mcs(-6.0) == 0


@pytest.mark.parametrize("table", [1, 2, 3])
def test_cqi_and_mcs_monotonic_in_sinr(table: int) -> None:
    grid = np.arange(-15.0, 40.0, 0.05)
    cqis = [sinr_to_cqi(s, table) for s in grid]
    mcss = [sinr_to_mcs(s, table) for s in grid]
    assert cqis == sorted(cqis) and mcss == sorted(mcss)
    assert cqis[0] == 0 and cqis[-1] == 15
    assert mcss[-1] == len(MCS_TABLES[table]) - 1


@pytest.mark.parametrize("table", [1, 2, 3])
def test_chosen_mcs_never_exceeds_cqi_efficiency(table: int) -> None:
    for cqi in range(1, 16):
        row = cqi_entry(cqi, table)
        index = sinr_to_mcs(cqi_sinr_threshold_db(cqi, table) + 1e-9, table)
        qm, rate = MCS_TABLES[table][index]
        if index > 0:
            assert qm * rate <= row.qm * row.code_rate_x1024
        if index + 1 < len(MCS_TABLES[table]):
            nxt = MCS_TABLES[table][index + 1]
            assert nxt[0] * nxt[1] > row.qm * row.code_rate_x1024
