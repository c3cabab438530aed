"""TS 38.101-1/-2 N_RB, TS 38.214 MCS/TBS and TS 38.306 peak rate: values worked out by hand.

TBS expectations were derived step by step from TS 38.214 §5.1.3.2 (arithmetic in the
comments) and cross-checked with an independent integer-only calculation in the shell.
"""

import math

import pytest

from netgpt.radio import (
    MCS_TABLES,
    TBS_TABLE,
    RadioRangeError,
    carrier_max_data_rate_mbps,
    default_overhead,
    max_data_rate_ca_mbps,
    max_data_rate_mbps,
    mcs,
    mu_for_scs,
    n_rb,
    scs_khz_for_mu,
    tbs,
)

# ---------------------------------------------------------------- N_RB (Table 5.3.2-1)


@pytest.mark.parametrize(
    ("fr", "scs", "bw", "expected"),
    [
        (1, 15, 5, 25), (1, 15, 20, 106), (1, 15, 50, 270), (1, 15, 3, 15),
        (1, 15, 35, 188), (1, 15, 45, 242),
        (1, 30, 5, 11), (1, 30, 40, 106), (1, 30, 100, 273), (1, 30, 35, 92), (1, 30, 45, 119),
        (1, 60, 10, 11), (1, 60, 100, 135), (1, 60, 35, 44), (1, 60, 45, 58),
        (2, 60, 50, 66), (2, 60, 100, 132), (2, 60, 200, 264),
        (2, 120, 50, 32), (2, 120, 100, 66), (2, 120, 200, 132), (2, 120, 400, 264),
    ],
)
def test_n_rb(fr: int, scs: int, bw: int, expected: int) -> None:
    assert n_rb(fr, scs, bw) == expected


@pytest.mark.parametrize(
    ("fr", "scs", "bw"),
    [(1, 15, 60), (1, 15, 100), (1, 60, 5), (1, 30, 3), (1, 120, 100), (2, 60, 400),
     (2, 15, 50), (2, 120, 800), (3, 30, 100), (1, 30, 55)],
)
def test_n_rb_invalid(fr: int, scs: int, bw: int) -> None:
    with pytest.raises(ValueError):
        n_rb(fr, scs, bw)


def test_n_rb_error_lists_valid_bandwidths() -> None:
    valid = "5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100"
    with pytest.raises(ValueError, match=valid):
        n_rb(1, 30, 75)


def test_numerology() -> None:
    assert [scs_khz_for_mu(m) for m in range(5)] == [15, 30, 60, 120, 240]
    assert mu_for_scs(30) == 1 and mu_for_scs(120) == 3
    with pytest.raises(ValueError):
        mu_for_scs(45)
    with pytest.raises(RadioRangeError):
        scs_khz_for_mu(7)


# ---------------------------------------------------------------- MCS (Tables 5.1.3.1-1/-2/-3)


def test_mcs_table_64qam() -> None:
    assert mcs(1, 0) == (2, 120)
    assert mcs(1, 9) == (2, 679)
    assert mcs(1, 10) == (4, 340)
    assert mcs(1, 16) == (4, 658)
    assert mcs(1, 17) == (6, 438)
    assert mcs(1, 28) == (6, 948)
    assert len(MCS_TABLES[1]) == 29


def test_mcs_table_256qam() -> None:
    assert mcs(2, 0) == (2, 120)
    assert mcs(2, 4) == (2, 602)
    assert mcs(2, 5) == (4, 378)
    assert mcs(2, 11) == (6, 466)
    assert mcs(2, 19) == (6, 873)
    assert mcs(2, 20) == (8, 682.5)
    assert mcs(2, 26) == (8, 916.5)
    assert mcs(2, 27) == (8, 948)
    assert len(MCS_TABLES[2]) == 28


def test_mcs_table_low_se() -> None:
    assert mcs(3, 0) == (2, 30)
    assert mcs(3, 15) == (4, 340)
    assert mcs(3, 28) == (6, 772)


@pytest.mark.parametrize(("table", "index"), [(1, 29), (1, 30), (1, 31), (2, 28), (2, 31), (3, 29)])
def test_mcs_reserved(table: int, index: int) -> None:
    with pytest.raises(ValueError, match="reserved"):
        mcs(table, index)


def test_mcs_invalid() -> None:
    with pytest.raises(RadioRangeError):
        mcs(1, 32)
    with pytest.raises(RadioRangeError):
        mcs(1, -1)
    with pytest.raises(ValueError):
        mcs(4, 0)


@pytest.mark.parametrize("table", [1, 2, 3])
def test_mcs_efficiency_non_decreasing(table: int) -> None:
    eff = [qm * r for qm, r in MCS_TABLES[table]]
    if table == 1:
        # The spec itself is not monotonic here: I_MCS 16 = 4*658/1024 = 2.5703 b/s/Hz,
        # I_MCS 17 = 6*438/1024 = 2.5664 b/s/Hz (Table 5.1.3.1-1 efficiency column).
        assert eff[16] == 2632 and eff[17] == 2628
        del eff[16]
    assert eff == sorted(eff)


# ---------------------------------------------------------------- TBS (§5.1.3.2)


def test_tbs_table_shape() -> None:
    assert len(TBS_TABLE) == 93 and TBS_TABLE[0] == 24 and TBS_TABLE[-1] == 3824
    assert list(TBS_TABLE) == sorted(set(TBS_TABLE))


def test_tbs_small_minimum() -> None:
    # N'_RE = 12*12 - 12 = 132; N_RE = 132; N_info = 132 * 120/1024 * 2 * 1 = 30.9375
    # n = max(3, floor(log2 30.94) - 6 = -2) = 3; N'_info = max(24, 8*floor(3.87)) = 24 -> 24
    assert tbs(2, 120, 1, 1, 12, 12) == 24


def test_tbs_small_rounds_up_to_table_entry() -> None:
    # N'_RE = 120 - 6 = 114; N_RE = 342; N_info = 342 * 517/1024 * 6 = 1036.0195
    # n = max(3, 10 - 6) = 4; N'_info = 16 * floor(64.75) = 1024 -> smallest entry >= 1024 = 1032
    assert tbs(6, 517, 1, 3, 10, 6) == 1032


def test_tbs_small_exact_table_entry() -> None:
    # N_RE = 156 * 5 = 780; N_info = 780 * 490/1024 * 4 * 2 = 2985.9375
    # n = max(3, 11 - 6) = 5; N'_info = 32 * floor(93.31) = 2976 -> 2976 (in the table)
    assert tbs(4, 490, 2, 5, 14, 12) == 2976


def test_tbs_small_half_code_rate() -> None:
    # N_RE = 156; N_info = 156 * 682.5/1024 * 8 = 831.796875; n = 3;
    # N'_info = 8 * floor(103.97) = 824 -> next entry 848
    assert tbs(8, 682.5, 1, 1, 14, 12) == 848


def test_tbs_low_rate_segmented() -> None:
    # R = 120/1024 <= 1/4. N_RE = 156 * 273 = 42588; N_info = 42588 * 120/1024 * 2 * 4 = 39926.25
    # n = floor(log2 39902.25) - 5 = 15 - 5 = 10; round(39902.25/1024 = 38.97) = 39 -> 39936
    # C = ceil(39960/3816) = 11; TBS = 88 * ceil(39960/88 = 454.09) - 24 = 88*455 - 24 = 40016
    assert tbs(2, 120, 4, 273, 14, 12) == 40016


def test_tbs_large_segmented() -> None:
    # 256QAM MCS 20 (R = 682.5/1024), 4 layers, 273 PRB: N_info = 42588 * 682.5/1024 * 32
    #   = 908322.1875; n = floor(log2 908298.1875) - 5 = 19 - 5 = 14
    # round(908298.1875 / 16384 = 55.44) = 55 -> N'_info = 901120 > 8424
    # C = ceil(901144/8424 = 106.97) = 107; TBS = 856 * ceil(901144/856 = 1052.74) - 24
    #   = 856*1053 - 24 = 901344
    assert tbs(8, 682.5, 4, 273, 14, 12) == 901344


def test_tbs_large_segmented_916_5() -> None:
    # N'_RE = 144 - 24 - 6 = 114; N_RE = 2280; N_info = 2280 * 916.5/1024 * 8 * 2 = 32650.3125
    # n = floor(log2 32626.3125) - 5 = 14 - 5 = 9; round(32626.3125/512 = 63.72) = 64 -> 32768
    # C = ceil(32792/8424) = 4; TBS = 32 * ceil(32792/32 = 1024.75) - 24 = 32800 - 24 = 32776
    assert tbs(8, 916.5, 2, 20, 12, 24, n_oh_per_prb=6) == 32776


def test_tbs_else_branch() -> None:
    # N_RE = 156 * 8 = 1248; N_info = 1248 * 490/1024 * 4 * 2 = 4777.5
    # n = floor(log2 4753.5) - 5 = 12 - 5 = 7; round(4753.5/128 = 37.14) = 37 -> 4736
    # R > 1/4, N'_info <= 8424: TBS = 8 * ceil(4760/8) - 24 = 4736
    assert tbs(4, 490, 2, 8, 14, 12) == 4736


def test_tbs_floor_3840() -> None:
    # N_RE = 156 * 13 = 2028; N_info = 2028 * 490/1024 * 4 = 3881.71875 > 3824
    # n = floor(log2 3857.72) - 5 = 6; 64 * round(60.28) = 3840 -> max(3840, 3840)
    # TBS = 8 * ceil(3864/8) - 24 = 3840
    assert tbs(4, 490, 1, 13, 14, 12) == 3840
    # N_RE = 156 * 40 = 6240; N_info = 6240 * 157/1024 * 2 * 2 = 3826.875
    # n = floor(log2 3802.875) - 5 = 6; 64 * round(59.42) = 3776 -> max(3840, 3776) = 3840;
    # R = 157/1024 <= 1/4: C = ceil(3864/3816) = 2; TBS = 16 * ceil(241.5) - 24 = 3848
    assert tbs(2, 157, 2, 40, 14, 12) == 3848


# Tie cases: (N_info - 24)/2^n is exactly k + 0.5 with k even, so round-half-up gives k+1
# while Python's round() (half to even) would give k and a different TBS.


def test_tbs_tie_else_branch() -> None:
    # N'_RE = 36 - 6 - 6 = 24; N_RE = 24 * 128 = 3072; N_info = 3072 * 434/1024 * 4 = 5208
    # n = floor(log2 5184) - 5 = 7; 5184/128 = 40.5 -> 41 (half-to-even: 40)
    # N'_info = 5248: TBS = 8 * ceil(5272/8) - 24 = 5248  (banker's: 5120 -> 5120)
    assert tbs(4, 434, 1, 128, 3, 6, n_oh_per_prb=6) == 5248
    assert round(5184 / 128) == 40  # Python would round the tie down


def test_tbs_tie_segmented() -> None:
    # N'_RE = 132 - 6 = 126; N_RE = 126 * 256 = 32256; N_info = 32256 * 378/1024 * 4 * 2 = 95256
    # n = floor(log2 95232) - 5 = 16 - 5 = 11; 95232/2048 = 46.5 -> 47 -> N'_info = 96256
    # C = ceil(96280/8424 = 11.43) = 12; TBS = 96 * ceil(96280/96 = 1002.92) - 24 = 96264
    # (banker's: 46 -> 94208; C = 12; 96 * ceil(981.58) - 24 = 94248)
    assert tbs(4, 378, 2, 256, 11, 6) == 96264
    assert round(95232 / 2048) == 46


def test_tbs_tie_low_rate() -> None:
    # MCS Table 5.1.3.1-3 index 1: Q_m = 2, R = 40/1024 <= 1/4
    # N'_RE = 108 - 12 = 96; N_RE = 96 * 148 = 14208; N_info = 14208 * 40/1024 * 2 * 4 = 4440
    # n = floor(log2 4416) - 5 = 7; 4416/128 = 34.5 -> 35 -> N'_info = 4480
    # C = ceil(4504/3816) = 2; TBS = 16 * ceil(4504/16 = 281.5) - 24 = 4488 (banker's: 4360)
    assert tbs(2, 40, 4, 148, 9, 12) == 4488
    assert round(4416 / 128) == 34


def test_tbs_scaling_half() -> None:
    # Tie with S = 0.5: N_RE = 24 * 256 = 6144; N_info = 0.5 * 6144 * 434/1024 * 4 = 5208 -> 5248
    assert tbs(4, 434, 1, 256, 3, 6, n_oh_per_prb=6, scaling=0.5) == 5248
    # S = 0.5 on the 901344 case: N_info = 454161.09375; n = floor(log2 454137.09) - 5 = 13
    # round(454137.09/8192 = 55.44) = 55 -> 450560; C = ceil(450584/8424 = 53.49) = 54
    # TBS = 432 * ceil(450584/432 = 1043.02) - 24 = 432*1044 - 24 = 450984
    assert tbs(8, 682.5, 4, 273, 14, 12, scaling=0.5) == 450984


def test_tbs_scaling_quarter() -> None:
    # S = 0.25: N_info = 0.25 * 1248 * 490/1024 * 4 * 2 = 1194.375; n = max(3, 10 - 6) = 4
    # N'_info = 16 * floor(74.65) = 1184 -> smallest entry >= 1184 is 1192
    assert tbs(4, 490, 2, 8, 14, 12, scaling=0.25) == 1192


def test_tbs_caps_re_per_prb_at_156() -> None:
    # N'_RE = 168 - 0 = 168 -> min(156, 168) = 156: same as 14 symbols with 12 DMRS REs
    assert tbs(4, 490, 2, 8, 14, 0) == tbs(4, 490, 2, 8, 14, 12) == 4736


@pytest.mark.parametrize(
    "kwargs",
    [
        {"qm": 3}, {"code_rate_x1024": 0}, {"code_rate_x1024": 1024}, {"layers": 0},
        {"layers": 9}, {"n_prb": 0}, {"n_prb": 276}, {"n_symb": 15}, {"n_symb": 0},
        {"n_dmrs_per_prb": -6}, {"n_oh_per_prb": 3}, {"scaling": 0.75}, {"n_dmrs_per_prb": 48},
    ],
)
def test_tbs_invalid(kwargs: dict) -> None:
    args = {"qm": 4, "code_rate_x1024": 490, "layers": 2, "n_prb": 8, "n_symb": 4,
            "n_dmrs_per_prb": 12} | kwargs
    with pytest.raises(ValueError):
        tbs(**args)


def test_tbs_monotonic_in_prb() -> None:
    sizes = [tbs(6, 567, 2, p, 14, 12) for p in range(1, 276)]
    assert sizes == sorted(sizes)
    assert all(t % 8 == 0 for t in sizes)


# ---------------------------------------------------------------- peak rate (TS 38.306 §4.1.2)


def test_max_data_rate_fr1_100mhz() -> None:
    # 4 * 8 * 1 * 948/1024 * (273*12 / (1e-3/28)) * (1 - 0.14) * 1e-6
    # = 4*8*948*3276*28000*86 / (1024*100*1e6) = 2337.00012 Mbps
    assert max_data_rate_mbps(4, 8, 1, 273, 1, 0.14) == pytest.approx(2337.00012, rel=1e-9)


def test_max_data_rate_fr2_and_ul() -> None:
    # FR2 400 MHz @120 kHz: 2 * 6 * 948/1024 * (264*12 / (1e-3/112)) * 0.82 * 1e-6 = 3232.26288
    assert max_data_rate_mbps(2, 6, 1, 264, 3, default_overhead(2, "dl")) == pytest.approx(
        3232.26288, rel=1e-9)
    # FR1 UL, f = 0.75: 1 * 6 * 0.75 * 948/1024 * (273*12*28000) * 0.92 * 1e-6 = 351.56905875
    assert max_data_rate_mbps(1, 6, 0.75, 273, 1, default_overhead(1, "ul")) == pytest.approx(
        351.56905875, rel=1e-9)


def test_carrier_max_data_rate_does_the_spec_lookups() -> None:
    # FR1 100 MHz @30 kHz: N_RB = 273 (TS 38.101-1 Table 5.3.2-1), mu = 1, OH(FR1, DL) = 0.14: the figure above
    assert carrier_max_data_rate_mbps(4, 8, 1, fr=1, scs_khz=30, bandwidth_mhz=100, direction="dl") == pytest.approx(
        2337.00012, rel=1e-9)
    # FR2 400 MHz @120 kHz: N_RB = 264 (TS 38.101-2 Table 5.3.2-1), mu = 3, OH(FR2, DL) = 0.18
    assert carrier_max_data_rate_mbps(2, 6, 1, fr=2, scs_khz=120, bandwidth_mhz=400, direction="dl") == pytest.approx(
        3232.26288, rel=1e-9)
    # FR1 20 MHz @15 kHz uplink, f = 0.8: 2 * 2 * 0.8 * 948/1024 * (106*12*14000) * (1 - 0.08) * 1e-6 = 48.535704
    assert carrier_max_data_rate_mbps(2, 2, 0.8, fr=1, scs_khz=15, bandwidth_mhz=20, direction="ul") == pytest.approx(
        2 * 2 * 0.8 * 948 / 1024 * 106 * 12 * 14000 * 0.92 * 1e-6, rel=1e-12)
    carrier = {"fr": 1, "scs_khz": 15, "bandwidth_mhz": 20, "direction": "dl"}
    for bad in ({"scs_khz": 45}, {"direction": "sl"}, {"bandwidth_mhz": 7}):
        with pytest.raises(ValueError):
            carrier_max_data_rate_mbps(1, 2, 1, **{**carrier, **bad})


def test_max_data_rate_ca() -> None:
    # 2337.00012 + (2 * 8 * 948/1024 * 106*12*14000 * 0.86 * 1e-6 = 226.85166) = 2563.85178
    carriers = [
        {"layers": 4, "qm": 8, "scaling": 1, "n_prb": 273, "mu": 1, "overhead": 0.14},
        {"layers": 2, "qm": 8, "scaling": 1, "n_prb": 106, "mu": 0, "overhead": 0.14},
    ]
    assert max_data_rate_ca_mbps(carriers) == pytest.approx(2563.85178, rel=1e-9)
    with pytest.raises(ValueError):
        max_data_rate_ca_mbps([])


def test_default_overhead() -> None:
    assert default_overhead(1, "dl") == 0.14
    assert default_overhead(2, "DL") == 0.18
    assert default_overhead(1, "ul") == 0.08
    assert default_overhead(2, "ul") == 0.10
    with pytest.raises(ValueError):
        default_overhead(3, "dl")


@pytest.mark.parametrize(
    "args",
    [(0, 8, 1, 273, 1, 0.14), (9, 8, 1, 273, 1, 0.14), (4, 10, 1, 273, 1, 0.14),
     (4, 8, 0.5, 273, 1, 0.14), (4, 8, 1, 0, 1, 0.14), (4, 8, 1, 273, 7, 0.14),
     (4, 8, 1, 273, 1, 1.0), (4, 8, 1, 273, 1, -0.1)],
)
def test_max_data_rate_invalid(args: tuple) -> None:
    with pytest.raises(ValueError):
        max_data_rate_mbps(*args)


def test_max_data_rate_scales_linearly() -> None:
    base = max_data_rate_mbps(1, 2, 1, 100, 0, 0.0)
    # 2 * 948/1024 * 100*12*14000 * 1e-6 = 31.10625
    assert base == pytest.approx(31.10625, rel=1e-9)
    assert max_data_rate_mbps(4, 2, 1, 100, 0, 0.0) == pytest.approx(4 * base, rel=1e-12)
    assert math.isclose(max_data_rate_mbps(1, 2, 1, 100, 2, 0.0), 4 * base, rel_tol=1e-12)
