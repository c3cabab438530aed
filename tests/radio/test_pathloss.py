"""TR 38.901 §7.4.1 path loss and §7.4.2 LOS probability: values worked out by hand.

Expected numbers were computed independently (plain python ``math``/bc, not this package)
from the formulas quoted next to each value. log = log10, fc in GHz, d'BP uses fc in Hz
and c = 3e8 m/s, d3D = sqrt(d2D^2 + (hBS - hUT)^2).
"""

import math

import numpy as np
import pytest

from netgpt.radio import (
    RadioRangeError,
    breakpoint_distance_m,
    los_probability,
    pathloss,
    shadow_fading_std_db,
)

REL = 1e-9


def approx(value: float) -> object:
    return pytest.approx(value, rel=REL)


# ---------------------------------------------------------------- breakpoints (notes 1, 5)


def test_breakpoint_distances() -> None:
    # UMa: d'BP = 4 (25-1)(1.5-1) 3.5e9 / 3e8 = 4*24*0.5*11.6667 = 560 m
    assert breakpoint_distance_m("uma", 3.5, 25, 1.5) == approx(560.0)
    # UMi: d'BP = 4 (10-1)(1.5-1) 3.5e9 / 3e8 = 210 m
    assert breakpoint_distance_m("umi", 3.5, 10, 1.5) == approx(210.0)
    # RMa: dBP = 2 pi 35 1.5 3.5e9 / 3e8 = 2 pi * 612.5 = 3848.4510006475 m
    assert breakpoint_distance_m("rma", 3.5, 35, 1.5) == approx(3848.4510006474966)
    # UMa with h_E = 12 m, hUT = 22.5: 4 (25-12)(22.5-12) 3.5e9/3e8 = 4*13*10.5*11.6667 = 6370 m
    assert breakpoint_distance_m("uma", 3.5, 25, 22.5, h_e_m=12.0) == approx(6370.0)


def test_breakpoint_invalid() -> None:
    with pytest.raises(ValueError):
        breakpoint_distance_m("inh", 3.5, 3, 1)
    with pytest.raises(ValueError):
        breakpoint_distance_m("umi", 3.5, 10, 1.5, h_e_m=12.0)  # UMi: h_E is always 1 m
    with pytest.raises(RadioRangeError):
        breakpoint_distance_m("uma", 3.5, 25, 1.5, h_e_m=12.0)  # h_E > hUT - 1.5
    with pytest.raises(RadioRangeError):
        breakpoint_distance_m("rma", 31.0, 35, 1.5)


# ---------------------------------------------------------------- UMa


def test_uma_los_pl1_default_heights() -> None:
    # d3D = sqrt(100^2 + 23.5^2) = 102.724145; PL1 = 28 + 22 log(102.724145) + 20 log(3.5)
    #     = 28 + 44.2565 + 10.8814 = 83.1381566769
    assert pathloss("uma", 100, 3.5, True) == approx(83.1381566769)


def test_uma_los_around_breakpoint() -> None:
    # d'BP = 560 m (see above).
    # d2D = 559 (PL1): d3D = 559.493744; 28 + 22 log d3D + 20 log 3.5 = 99.3328560593
    assert pathloss("uma", 559, 3.5, True) == approx(99.3328560593)
    # d2D = 561 (PL2): d3D = 561.491986;
    # 28 + 40 log d3D + 20 log 3.5 - 9 log(560^2 + 23.5^2) = 99.3808417904
    assert pathloss("uma", 561, 3.5, True) == approx(99.3808417904)
    # At d2D = d'BP: 40 log d3D - 9 log(d'BP^2 + dh^2) = 40 log d3D - 18 log d3D -> PL1 == PL2.
    assert pathloss("uma", 560, 3.5, True) == approx(99.3499028069)
    eps = 1e-6
    assert pathloss("uma", 560 - eps, 3.5, True) == pytest.approx(
        pathloss("uma", 560 + eps, 3.5, True), abs=1e-6)
    # Far side: d2D = 1000, d3D = 1000.276087: PL2 = 109.4118947747 (PL1 would be 104.88)
    assert pathloss("uma", 1000, 3.5, True) == approx(109.4118947747)


def test_uma_nlos_prime_wins() -> None:
    # PL' = 13.54 + 39.08 log(102.724145) + 20 log 3.5 - 0.6 (1.5 - 1.5) = 103.0375235901
    # > PL_LOS = 83.138 -> NLOS = PL'
    assert pathloss("uma", 100, 3.5, False) == approx(103.0375235901)


def test_uma_nlos_los_wins() -> None:
    # hUT = 22.5, d2D = 10: d3D = sqrt(10^2 + 2.5^2) = 10.307764;
    # d'BP = 4*24*21.5*3.5e9/3e8 = 24080 m -> PL1 = 28 + 22 log d3D + 20 log 3.5 = 61.1709792130
    # PL' = 13.54 + 39.08 log d3D + 20 log 3.5 - 0.6*21 = 51.4158283496 -> max is PL_LOS
    assert pathloss("uma", 10, 3.5, False, h_ut_m=22.5) == approx(61.1709792130)
    assert pathloss("uma", 10, 3.5, True, h_ut_m=22.5) == approx(61.1709792130)


def test_uma_explicit_effective_height() -> None:
    # h_E = 21, hUT = 22.5: d'BP = 4 (25-21)(22.5-21) 3.5e9/3e8 = 280 m; d2D = 300 > d'BP
    # d3D = sqrt(300^2 + 2.5^2) = 300.010416; PL2 = 28 + 40 log d3D + 20 log 3.5
    #   - 9 log(280^2 + 2.5^2) = 93.9176580947 (with h_E = 1 it is PL1 = 93.3783602320)
    assert pathloss("uma", 300, 3.5, True, h_ut_m=22.5, h_e_m=21.0) == approx(93.9176580947)
    assert pathloss("uma", 300, 3.5, True, h_ut_m=22.5) == approx(93.3783602320)


def test_uma_rng_draws_from_allowed_effective_heights() -> None:
    # hUT = 1.5 < 13 m -> C = 0 -> h_E = 1 m always: same as deterministic result.
    rng = np.random.default_rng(0)
    assert pathloss("uma", 100, 3.5, True, rng=rng) == approx(83.1381566769)
    # hUT = 22.5, d2D = 300: h_E in {1, 12, 15, 18, 21} only; both kinds must occur.
    allowed = {h_e: pathloss("uma", 300, 3.5, True, h_ut_m=22.5, h_e_m=h_e)
               for h_e in (1.0, 12.0, 15.0, 18.0, 21.0)}
    rng = np.random.default_rng(1)
    draws = [pathloss("uma", 300, 3.5, True, h_ut_m=22.5, rng=rng) for _ in range(200)]
    assert all(any(math.isclose(d, v, rel_tol=1e-12) for v in allowed.values()) for d in draws)
    assert len({round(d, 9) for d in draws}) >= 2
    with pytest.raises(ValueError):
        pathloss("uma", 300, 3.5, True, rng=rng, h_e_m=1.0)


def test_uma_high_frequency_no_breakpoint_inside_range() -> None:
    # 28 GHz: d'BP = 4*24*0.5*28e9/3e8 = 4480 m > 4000 -> PL1:
    # d3D = sqrt(4000^2 + 23.5^2); 28 + 22 log d3D + 20 log 28 = 136.1886453226
    assert pathloss("uma", 4000, 28, True) == approx(136.1886453226)


# ---------------------------------------------------------------- UMi-Street Canyon


def test_umi_los_and_breakpoint() -> None:
    # d3D = sqrt(100^2 + 8.5^2) = 100.360600; PL1 = 32.4 + 21 log d3D + 20 log 3.5 = 85.3141891025
    assert pathloss("umi", 100, 3.5, True) == approx(85.3141891025)
    # d'BP = 210 m. d2D = 209 (PL1): d3D = 209.172775 -> 92.0119692264
    assert pathloss("umi", 209, 3.5, True) == approx(92.0119692264)
    # d2D = 211 (PL2): 32.4 + 40 log(211.171139) + 20 log 3.5 - 9.5 log(210^2 + 8.5^2)
    #   = 92.1378229394
    assert pathloss("umi", 211, 3.5, True) == approx(92.1378229394)
    # At d'BP: 40 - 2*9.5 = 21 -> PL1 == PL2 = 92.0554308623
    assert pathloss("umi", 210, 3.5, True) == approx(92.0554308623)


def test_umi_nlos_prime_wins() -> None:
    # PL' = 35.3 log(100.360600) + 22.4 + 21.3 log 3.5 - 0 = 104.6438320117 > 85.31
    assert pathloss("umi", 100, 3.5, False) == approx(104.6438320117)
    # hUT = 10 (hBS = 10 -> d3D = 300): PL' = 35.3 log 300 + 22.4 + 21.3 log 3.5 - 0.3*8.5
    #   = 118.8810296363
    assert pathloss("umi", 300, 3.5, False, h_ut_m=10) == approx(118.8810296363)


def test_umi_nlos_los_wins() -> None:
    # hBS = 5, hUT = 1.5, fc = 0.5: d'BP = 4*4*0.5*0.5e9/3e8 = 13.333 m; d2D = 5000 -> PL2
    # d3D = sqrt(5000^2 + 3.5^2) = 5000.001225
    # PL2 = 32.4 + 40 log d3D + 20 log 0.5 - 9.5 log(13.333^2 + 3.5^2) = 152.6894421645
    # PL' = 35.3 log d3D + 22.4 + 21.3 log 0.5 = 146.5617060014 -> max is PL_LOS
    assert pathloss("umi", 5000, 0.5, False, h_bs_m=5) == approx(152.6894421645)


# ---------------------------------------------------------------- RMa


def test_rma_los_pl1_and_breakpoint() -> None:
    # h = 5 -> 0.03*5^1.72 = 0.4772 (< 10), 0.044*5^1.72 = 0.6999 (< 14.77)
    # PL1(d3D) = 20 log(40 pi d3D 3.5 / 3) + 0.4772 log d3D - 0.6999 + 0.002 log(5) d3D
    # d2D = 1000, d3D = 1000.560968 -> 105.4596461306
    assert pathloss("rma", 1000, 3.5, True) == approx(105.4596461306)
    # dBP = 3848.4510 m. Just below: d2D = 3848, d3D = 3848.145820 -> PL1 = 121.4201416364
    assert pathloss("rma", 3848, 3.5, True) == approx(121.4201416364)
    # Just above: d2D = 3849, d3D = 3849.145782
    # PL2 = PL1(dBP) + 40 log(d3D / dBP) = 121.4244094724 (PL1 here would be 121.4238502344)
    assert pathloss("rma", 3849, 3.5, True) == approx(121.4244094724)
    # PL1 evaluated at distance dBP (not at d3D(dBP)) -> tiny step across dBP, < 0.001 dB
    assert abs(pathloss("rma", 3848.45, 3.5, True) - pathloss("rma", 3848.46, 3.5, True)) < 1e-3
    # 8 km (LOS valid to 10 km): d3D = 8000.070140 -> PL2 = 134.1335868672
    assert pathloss("rma", 8000, 3.5, True) == approx(134.1335868672)


def test_rma_nlos_prime_wins() -> None:
    # PL' = 161.04 - 7.1 log 20 + 7.5 log 5 - (24.37 - 3.7 (5/35)^2) log 35
    #   + (43.42 - 3.1 log 35)(log d3D - 3) + 20 log 3.5 - (3.2 (log(11.75*1.5))^2 - 4.97)
    # d2D = 1000, d3D = 1000.560968 -> 130.4243060762 (> PL_LOS 105.46)
    assert pathloss("rma", 1000, 3.5, False) == approx(130.4243060762)


def test_rma_nlos_los_wins() -> None:
    # hBS = 150, hUT = 10, h = 50 (min(0.03 h^1.72, 10) = 10, min(0.044 h^1.72, 14.77) = 14.77),
    # W = 5, fc = 3.5, d2D = 1000: d3D = sqrt(1000^2 + 140^2);
    # dBP = 2 pi 150 10 3.5e9/3e8 = 109956 m -> PL1
    # PL1 = 122.1106587064 ; PL' = 118.9766167671 -> max is PL_LOS
    pl = pathloss("rma", 1000, 3.5, False, h_bs_m=150, h_ut_m=10, h_building_m=50,
                  street_width_m=5)
    assert pl == approx(122.1106587064)


def test_rma_far_los_valid_but_nlos_not() -> None:
    assert pathloss("rma", 9999, 3.5, True) > pathloss("rma", 8000, 3.5, True)
    with pytest.raises(RadioRangeError, match="d2d_m"):
        pathloss("rma", 5001, 3.5, False)
    with pytest.raises(RadioRangeError, match="d2d_m"):
        pathloss("rma", 10001, 3.5, True)


# ---------------------------------------------------------------- InH-Office


def test_inh() -> None:
    # hBS = 3, hUT = 1: d2D = 20 -> d3D = sqrt(400 + 4) = 20.099751
    # LOS = 32.4 + 17.3 log d3D + 20 log 3.5 = 65.8265596952
    assert pathloss("inh", 20, 3.5, True) == approx(65.8265596952)
    # PL' = 38.3 log d3D + 17.30 + 24.9 log 3.5 = 80.7594974462 -> NLOS' wins
    assert pathloss("inh", 20, 3.5, False) == approx(80.7594974462)
    # d2D = 1 -> d3D = sqrt(5) = 2.236068, fc = 0.5:
    # LOS = 32.4 + 17.3 log d3D + 20 log 0.5 = 32.4254906242;  PL' = 23.1896286910 -> LOS wins
    assert pathloss("inh", 1, 0.5, False) == approx(32.4254906242)
    # 28 GHz, d2D = 10: d3D = 10.198039; LOS 78.7904990118, PL' = 91.9604234280
    assert pathloss("inh", 10, 28, True) == approx(78.7904990118)
    assert pathloss("inh", 10, 28, False) == approx(91.9604234280)


def test_inh_d3d_range() -> None:
    # d3D = sqrt(149.98^2 + 4) = 149.99333 <= 150 (ok); d2D = 150 -> d3D = 150.0133 (too far)
    assert pathloss("inh", 149.98, 3.5, True) > 0
    with pytest.raises(RadioRangeError, match="d3d_m"):
        pathloss("inh", 150, 3.5, True)
    with pytest.raises(RadioRangeError, match="d3d_m"):
        pathloss("inh", 0.0, 3.5, True, h_bs_m=1.5, h_ut_m=1.0)  # d3D = 0.5 < 1


# ---------------------------------------------------------------- generic checks


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma", "inh"])
def test_nlos_never_below_los(scenario: str) -> None:
    for d in (10.0, 35.0, 120.0, 149.0):
        for fc in (0.5, 3.5, 28.0):
            assert pathloss(scenario, d, fc, False) >= pathloss(scenario, d, fc, True)


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
def test_los_monotonic_in_distance(scenario: str) -> None:
    d = np.linspace(10, 5000, 400)
    pl = [pathloss(scenario, x, 3.5, True) for x in d]
    assert all(b > a for a, b in zip(pl, pl[1:]))


@pytest.mark.parametrize(
    ("scenario", "los", "d2d"),
    [("uma", True, 9.99), ("uma", True, 5000.1), ("uma", False, 9.0), ("umi", True, 5001),
     ("umi", False, 1.0), ("rma", True, 5.0), ("uma", True, -1.0), ("uma", True, math.nan)],
)
def test_distance_out_of_range(scenario: str, los: bool, d2d: float) -> None:
    with pytest.raises(RadioRangeError, match="d2d_m"):
        pathloss(scenario, d2d, 3.5, los)


@pytest.mark.parametrize(("scenario", "fc"), [("uma", 0.49), ("umi", 100.1), ("inh", 0.1),
                                               ("rma", 30.1), ("rma", 0.4)])
def test_frequency_out_of_range(scenario: str, fc: float) -> None:
    with pytest.raises(RadioRangeError, match="fc_ghz"):
        pathloss(scenario, 100, fc, True)


def test_frequency_edges_are_valid() -> None:
    assert pathloss("uma", 100, 100.0, True) > pathloss("uma", 100, 0.5, True)
    assert pathloss("rma", 100, 30.0, True) > 0


@pytest.mark.parametrize(
    ("scenario", "kwargs", "name"),
    [
        ("uma", {"h_ut_m": 1.4}, "h_ut_m"),
        ("uma", {"h_ut_m": 22.6}, "h_ut_m"),
        ("umi", {"h_ut_m": 23.0}, "h_ut_m"),
        ("uma", {"h_bs_m": 1.0}, "h_bs_m"),
        ("rma", {"h_ut_m": 0.9}, "h_ut_m"),
        ("rma", {"h_ut_m": 10.1}, "h_ut_m"),
        ("rma", {"h_bs_m": 9.0}, "h_bs_m"),
        ("rma", {"h_bs_m": 151.0}, "h_bs_m"),
        ("rma", {"h_building_m": 4.0}, "h_building_m"),
        ("rma", {"street_width_m": 51.0}, "street_width_m"),
        ("inh", {"h_ut_m": 0.0}, "h_ut_m"),
    ],
)
def test_heights_out_of_range(scenario: str, kwargs: dict, name: str) -> None:
    with pytest.raises(RadioRangeError, match=name):
        pathloss(scenario, 100, 3.5, False, **kwargs)


def test_error_message_and_type() -> None:
    with pytest.raises(RadioRangeError) as info:
        pathloss("uma", 6000, 3.5, True)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.name, err.value, err.low, err.high) == ("d2d_m", 6000, 10.0, 5000.0)
    assert "d2d_m=6000" in str(err) and "[10, 5000]" in str(err) and "UMa" in str(err)


def test_unknown_scenario_and_misplaced_options() -> None:
    with pytest.raises(ValueError, match="scenario"):
        pathloss("suburban", 100, 3.5, True)
    with pytest.raises(ValueError):
        pathloss("uma", 100, 3.5, True, street_width_m=20)
    with pytest.raises(ValueError):
        pathloss("umi", 100, 3.5, True, h_e_m=1.0)
    assert pathloss("UMa", 100, 3.5, True) == approx(83.1381566769)
    with pytest.raises(TypeError):
        pathloss("uma", 100, 3.5, "NLOS")  # a non-empty string would otherwise read as LOS


# ---------------------------------------------------------------- LOS probability (Table 7.4.2-1)


def test_los_probability_uma() -> None:
    assert los_probability("uma", 18) == 1.0
    # d = 100, hUT = 1.5 (C' = 0): 18/100 + exp(-100/63)(1 - 18/100) = 0.3476708368
    assert los_probability("uma", 100) == approx(0.3476708368442312)
    # hUT = 20 > 13: C' = (7/10)^1.5 = 0.585662; factor 1 + C' 5/4 (1)^3 exp(-2/3) = 1.375872
    # -> 0.3476708368 * 1.375872 = 0.4783467914
    assert los_probability("uma", 100, h_ut_m=20) == approx(0.47834679144940695)
    # d = 200, hUT = 23: base 18/200 + exp(-200/63)(0.91) = 0.1280477300;
    # C' = 1, factor 1 + 1.25 * 8 * exp(-4/3) = 3.636042 -> 0.4655778818
    assert los_probability("uma", 200, h_ut_m=23) == approx(0.4655778818023031)
    assert los_probability("uma", 200, h_ut_m=13) == approx(0.12804773002754427)  # C'(13) = 0
    with pytest.raises(RadioRangeError, match="h_ut_m"):
        los_probability("uma", 200, h_ut_m=23.5)


def test_los_probability_umi_rma() -> None:
    assert los_probability("umi", 10) == 1.0
    # 18/50 + exp(-50/36)(1 - 18/50) = 0.5195854136
    assert los_probability("umi", 50) == approx(0.5195854136174696)
    assert los_probability("rma", 10) == 1.0
    # exp(-(500 - 10)/1000) = exp(-0.49) = 0.6126263942
    assert los_probability("rma", 500) == approx(0.6126263941844161)


def test_los_probability_inh() -> None:
    assert los_probability("inh", 1.0) == 1.0
    # mixed: exp(-(3 - 1.2)/4.7) = 0.6818274061; at 6.5: 0.32; at 10: 0.32 exp(-3.5/32.6)
    assert los_probability("inh", 3.0) == approx(0.6818274060977494)
    assert los_probability("inh", 6.5) == approx(0.32)
    assert los_probability("inh", 10.0) == approx(0.2874241595601194)
    # open: 1 up to 5 m; exp(-(20-5)/70.8) = 0.8090743951; 49 m: exp(-44/70.8);
    # 100 m: 0.54 exp(-51/211.7) = 0.4243939689
    assert los_probability("inh", 5.0, inh_variant="open") == 1.0
    assert los_probability("inh", 20.0, inh_variant="open") == approx(0.8090743951319385)
    assert los_probability("inh", 49.0, inh_variant="open") == approx(0.5371548168153397)
    assert los_probability("inh", 100.0, inh_variant="open") == approx(0.4243939689072336)
    with pytest.raises(ValueError):
        los_probability("inh", 10.0, inh_variant="closed")
    with pytest.raises(RadioRangeError):
        los_probability("inh", -1.0)


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma", "inh"])
def test_los_probability_is_a_probability(scenario: str) -> None:
    for d in np.linspace(0, 5000, 501):
        assert 0.0 <= los_probability(scenario, d) <= 1.0


# ---------------------------------------------------------------- shadow fading


def test_shadow_fading_std() -> None:
    assert shadow_fading_std_db("uma", True) == 4.0
    assert shadow_fading_std_db("uma", False) == 6.0
    assert shadow_fading_std_db("umi", True) == 4.0
    assert shadow_fading_std_db("umi", False) == 7.82
    assert shadow_fading_std_db("rma", False) == 8.0
    assert shadow_fading_std_db("inh", True) == 3.0
    assert shadow_fading_std_db("inh", False) == 8.03
    # RMa LOS: dBP = 3848.45 m at 3.5 GHz -> 4 dB before, 6 dB after
    assert shadow_fading_std_db("rma", True, d2d_m=3848, fc_ghz=3.5) == 4.0
    assert shadow_fading_std_db("rma", True, d2d_m=3849, fc_ghz=3.5) == 6.0
    with pytest.raises(ValueError):
        shadow_fading_std_db("rma", True)
