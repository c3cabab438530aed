"""Large-scale propagation per 3GPP TR 38.901 §7.4.1 (path loss) and §7.4.2 (LOS probability).

Conventions (TR 38.901 Table 7.4.1-1, notes 1-5):

* ``fc`` is the centre frequency in GHz inside the path-loss formulas; the breakpoint
  distances use ``fc`` in Hz and ``c = 3.0e8`` m/s.
* Distances and heights are in metres; ``log`` is ``log10``.
* ``d3D = sqrt(d2D^2 + (hBS - hUT)^2)``.
* NLOS path loss is ``max(PL_LOS, PL'_NLOS)`` (the optional simplified NLOS models of the
  table are not implemented).

Inputs outside the applicability ranges of the table raise :class:`RadioRangeError`;
the functions never extrapolate silently.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "SCENARIOS",
    "SPEED_OF_LIGHT_M_S",
    "RadioRangeError",
    "breakpoint_distance_m",
    "los_probability",
    "pathloss",
    "shadow_fading_std_db",
]

SPEED_OF_LIGHT_M_S = 3.0e8
"""Propagation velocity used by the 38.901 breakpoint formulas (notes 1 and 5)."""

SCENARIOS = ("uma", "umi", "rma", "inh")
"""UMa, UMi-Street Canyon, RMa and InH-Office."""

_NAMES = {"uma": "UMa", "umi": "UMi-Street Canyon", "rma": "RMa", "inh": "InH-Office"}

DEFAULT_H_BS_M = {"uma": 25.0, "umi": 10.0, "rma": 35.0, "inh": 3.0}
DEFAULT_H_UT_M = {"uma": 1.5, "umi": 1.5, "rma": 1.5, "inh": 1.0}

FC_RANGE_GHZ = {"uma": (0.5, 100.0), "umi": (0.5, 100.0), "rma": (0.5, 30.0), "inh": (0.5, 100.0)}
"""Frequency applicability of the path-loss models (RMa validated only up to 30 GHz)."""

H_UT_RANGE_M = {"uma": (1.5, 22.5), "umi": (1.5, 22.5), "rma": (1.0, 10.0)}
RMA_H_BS_RANGE_M = (10.0, 150.0)
RMA_H_AND_W_RANGE_M = (5.0, 50.0)
"""RMa average building height h and street width W applicability range."""
RMA_DEFAULT_H_BUILDING_M = 5.0
RMA_DEFAULT_STREET_WIDTH_M = 20.0

D2D_RANGE_M = {
    ("uma", True): (10.0, 5000.0),
    ("uma", False): (10.0, 5000.0),
    ("umi", True): (10.0, 5000.0),
    ("umi", False): (10.0, 5000.0),
    ("rma", True): (10.0, 10000.0),
    ("rma", False): (10.0, 5000.0),
}
INH_D3D_RANGE_M = (1.0, 150.0)

UMA_UMI_H_E_M = 1.0
"""Effective environment height h_E: always 1 m for UMi, 1 m with probability 1/(1+C) for UMa."""

SHADOW_FADING_STD_DB = {
    ("uma", True): 4.0,
    ("uma", False): 6.0,
    ("umi", True): 4.0,
    ("umi", False): 7.82,
    ("rma", False): 8.0,
    ("inh", True): 3.0,
    ("inh", False): 8.03,
}
RMA_LOS_SF_STD_DB = (4.0, 6.0)
"""RMa LOS shadow-fading sigma before / after the breakpoint (PL1 / PL2)."""

INH_VARIANTS = ("mixed", "open")


class RadioRangeError(ValueError):
    """A radio-model input lies outside the range for which the model is specified."""

    def __init__(self, name: str, value: object, low: float, high: float, context: str,
                 *, low_open: bool = False) -> None:
        self.name = name
        self.value = value
        self.low = low
        self.high = high
        bracket = "(" if low_open else "["
        super().__init__(
            f"{name}={value!r} is outside the valid range {bracket}{low:g}, {high:g}] for {context}"
        )


def _check(name: str, value: float, low: float, high: float, context: str,
           *, low_open: bool = False) -> float:
    """Return ``float(value)`` if it lies in [low, high] (or (low, high]); NaN always fails."""
    v = float(value)
    if not (low < v <= high if low_open else low <= v <= high):
        raise RadioRangeError(name, value, low, high, context, low_open=low_open)
    return v


def _scenario(scenario: str) -> str:
    key = str(scenario).lower()
    if key not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    return key


def _los_flag(los: bool) -> bool:
    """``los`` as a bool; strings such as "NLOS" are rejected rather than read as True."""
    if isinstance(los, str):
        raise TypeError(f"los must be a bool (True = LOS, False = NLOS), got {los!r}")
    return bool(los)


def _heights(sc: str, h_bs_m: float | None, h_ut_m: float | None) -> tuple[float, float]:
    """Apply Table 7.4.1-1 defaults and validate antenna heights."""
    h_bs = DEFAULT_H_BS_M[sc] if h_bs_m is None else float(h_bs_m)
    h_ut = DEFAULT_H_UT_M[sc] if h_ut_m is None else float(h_ut_m)
    context = f"{_NAMES[sc]} (TR 38.901 Table 7.4.1-1)"
    if sc in H_UT_RANGE_M:
        _check("h_ut_m", h_ut, *H_UT_RANGE_M[sc], context)
    else:
        _check("h_ut_m", h_ut, 0.0, math.inf, context, low_open=True)
    if sc == "rma":
        _check("h_bs_m", h_bs, *RMA_H_BS_RANGE_M, context)
    elif sc == "inh":
        _check("h_bs_m", h_bs, 0.0, math.inf, context, low_open=True)
    else:
        # The table fixes hBS (25 m UMa, 10 m UMi) and gives no range; other heights are
        # accepted as long as the effective height hBS - hE of the breakpoint stays positive.
        _check("h_bs_m", h_bs, UMA_UMI_H_E_M, math.inf, context, low_open=True)
    return h_bs, h_ut


def _check_uma_h_e(h_e_m: float, h_bs: float, h_ut: float) -> float:
    """h_E is 1 m or at most hUT - 1.5 m (note 1); it must also stay below hBS."""
    context = "UMa effective environment height (TR 38.901 Table 7.4.1-1 note 1)"
    h_e = _check("h_e_m", h_e_m, UMA_UMI_H_E_M, max(UMA_UMI_H_E_M, h_ut - 1.5), context)
    _check("h_bs_m", h_bs, h_e, math.inf, f"UMa with h_E = {h_e:g} m", low_open=True)
    return h_e


def _breakpoint(sc: str, fc_ghz: float, h_bs: float, h_ut: float, h_e: float) -> float:
    fc_hz = fc_ghz * 1e9
    if sc == "rma":
        return 2.0 * math.pi * h_bs * h_ut * fc_hz / SPEED_OF_LIGHT_M_S
    return 4.0 * (h_bs - h_e) * (h_ut - h_e) * fc_hz / SPEED_OF_LIGHT_M_S


def breakpoint_distance_m(
    scenario: str, fc_ghz: float, h_bs_m: float, h_ut_m: float, h_e_m: float = 1.0
) -> float:
    """Breakpoint distance of TR 38.901 Table 7.4.1-1 in metres.

    UMa/UMi (note 1): ``d'BP = 4 h'BS h'UT fc / c`` with ``h' = h - h_E`` (UMi: h_E = 1 m).
    RMa (note 5): ``dBP = 2 pi hBS hUT fc / c`` (no h_E). InH has no breakpoint.
    """
    sc = _scenario(scenario)
    if sc == "inh":
        raise ValueError("InH-Office path loss has no breakpoint distance")
    if sc == "umi" and h_e_m != UMA_UMI_H_E_M:
        raise ValueError(f"UMi uses h_E = 1 m (TR 38.901 Table 7.4.1-1 note 1), got {h_e_m!r}")
    if sc == "rma" and h_e_m != UMA_UMI_H_E_M:
        raise ValueError("RMa breakpoint (note 5) does not use an effective environment height")
    fc = _check("fc_ghz", fc_ghz, *FC_RANGE_GHZ[sc], f"{_NAMES[sc]} (TR 38.901 §7.4.1)")
    h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
    h_e = _check_uma_h_e(h_e_m, h_bs, h_ut) if sc == "uma" else UMA_UMI_H_E_M
    return _breakpoint(sc, fc, h_bs, h_ut, h_e)


def _uma_c(d2d: float, h_ut: float) -> float:
    """C(d2D, hUT) of Table 7.4.1-1 note 1 (same shape as C'(hUT)·g(d2D) of Table 7.4.2-1)."""
    if h_ut < 13.0 or d2d <= 18.0:
        return 0.0
    g = 1.25 * (d2d / 100.0) ** 3 * math.exp(-d2d / 150.0)
    return ((h_ut - 13.0) / 10.0) ** 1.5 * g


def _draw_uma_h_e(d2d: float, h_ut: float, rng: np.random.Generator) -> float:
    """Draw h_E: 1 m w.p. 1/(1+C(d2D,hUT)), else uniform on {12, 15, ..., hUT - 1.5}."""
    if rng.random() < 1.0 / (1.0 + _uma_c(d2d, h_ut)):
        return UMA_UMI_H_E_M
    # C > 0 needs hUT > 13 m; for 13 < hUT < 13.5 m the discrete set is empty -> keep 1 m.
    candidates = [12.0 + 3.0 * k for k in range(int((h_ut - 13.5) // 3.0) + 1)]
    return float(rng.choice(candidates)) if candidates else UMA_UMI_H_E_M


def _uma_umi_los(sc: str, d2d: float, d3d: float, fc: float, h_bs: float, h_ut: float,
                 h_e: float) -> float:
    a, b, c = (28.0, 22.0, 9.0) if sc == "uma" else (32.4, 21.0, 9.5)
    d_bp = _breakpoint(sc, fc, h_bs, h_ut, h_e)
    if d2d <= d_bp:
        return a + b * math.log10(d3d) + 20.0 * math.log10(fc)
    return (a + 40.0 * math.log10(d3d) + 20.0 * math.log10(fc)
            - c * math.log10(d_bp**2 + (h_bs - h_ut) ** 2))


def _rma_pl1(d3d: float, fc: float, h: float) -> float:
    return (20.0 * math.log10(40.0 * math.pi * d3d * fc / 3.0)
            + min(0.03 * h**1.72, 10.0) * math.log10(d3d)
            - min(0.044 * h**1.72, 14.77)
            + 0.002 * math.log10(h) * d3d)


def _rma_los(d2d: float, d3d: float, fc: float, h_bs: float, h_ut: float, h: float) -> float:
    d_bp = _breakpoint("rma", fc, h_bs, h_ut, 0.0)
    if d2d <= d_bp:
        return _rma_pl1(d3d, fc, h)
    # PL2 = PL1(dBP) + 40 log(d3D / dBP): PL1 evaluated at distance dBP, as written in the table.
    return _rma_pl1(d_bp, fc, h) + 40.0 * math.log10(d3d / d_bp)


def _rma_nlos_prime(d3d: float, fc: float, h_bs: float, h_ut: float, h: float, w: float) -> float:
    return (161.04 - 7.1 * math.log10(w) + 7.5 * math.log10(h)
            - (24.37 - 3.7 * (h / h_bs) ** 2) * math.log10(h_bs)
            + (43.42 - 3.1 * math.log10(h_bs)) * (math.log10(d3d) - 3.0)
            + 20.0 * math.log10(fc)
            - (3.2 * math.log10(11.75 * h_ut) ** 2 - 4.97))


def pathloss(
    scenario: str,
    d2d_m: float,
    fc_ghz: float,
    los: bool,
    h_bs_m: float | None = None,
    h_ut_m: float | None = None,
    *,
    h_building_m: float | None = None,
    street_width_m: float | None = None,
    rng: np.random.Generator | None = None,
    h_e_m: float | None = None,
) -> float:
    """Path loss in dB per TR 38.901 Table 7.4.1-1 (no shadow fading).

    Args:
        scenario: ``"uma"``, ``"umi"`` (street canyon), ``"rma"`` or ``"inh"`` (InH-Office).
        d2d_m: 2D BS-UT distance in metres.
        fc_ghz: centre frequency in GHz (0.5-100, RMa 0.5-30).
        los: ``True`` for LOS, ``False`` for NLOS (``max(PL_LOS, PL'_NLOS)``).
        h_bs_m, h_ut_m: antenna heights; default 25/10/35/3 m (BS) and 1.5 m (UT; InH 1 m).
        h_building_m, street_width_m: RMa only, average building height h (default 5 m)
            and street width W (default 20 m), both 5-50 m.
        rng: UMa only; if given, h_E is drawn per note 1 (1 m with probability
            1/(1+C(d2D, hUT)), otherwise uniform on {12, 15, ..., hUT-1.5}); else h_E = 1 m.
        h_e_m: UMa only; explicit effective environment height (exclusive with ``rng``).

    Raises:
        RadioRangeError: an input is outside the model's applicability range.
        ValueError: unknown scenario or an option that does not apply to the scenario.
    """
    sc = _scenario(scenario)
    los = _los_flag(los)
    name = f"{_NAMES[sc]} {'LOS' if los else 'NLOS'} (TR 38.901 Table 7.4.1-1)"
    if sc != "rma" and (h_building_m is not None or street_width_m is not None):
        raise ValueError("h_building_m / street_width_m only apply to the RMa scenario")
    if sc != "uma" and (rng is not None or h_e_m is not None):
        raise ValueError("rng / h_e_m only apply to the UMa scenario (UMi uses h_E = 1 m)")
    if rng is not None and h_e_m is not None:
        raise ValueError("give either rng or h_e_m, not both")

    fc = _check("fc_ghz", fc_ghz, *FC_RANGE_GHZ[sc], name)
    h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
    if sc == "inh":
        d2d = _check("d2d_m", d2d_m, 0.0, math.inf, name)
        d3d = _check("d3d_m", math.hypot(d2d, h_bs - h_ut), *INH_D3D_RANGE_M, name)
        pl_los = 32.4 + 17.3 * math.log10(d3d) + 20.0 * math.log10(fc)
        if los:
            return pl_los
        return max(pl_los, 38.3 * math.log10(d3d) + 17.30 + 24.9 * math.log10(fc))

    d2d = _check("d2d_m", d2d_m, *D2D_RANGE_M[(sc, los)], name)
    d3d = math.hypot(d2d, h_bs - h_ut)
    if sc == "rma":
        h = _check("h_building_m", RMA_DEFAULT_H_BUILDING_M if h_building_m is None
                   else h_building_m, *RMA_H_AND_W_RANGE_M, name)
        w = _check("street_width_m", RMA_DEFAULT_STREET_WIDTH_M if street_width_m is None
                   else street_width_m, *RMA_H_AND_W_RANGE_M, name)
        pl_los = _rma_los(d2d, d3d, fc, h_bs, h_ut, h)
        if los:
            return pl_los
        return max(pl_los, _rma_nlos_prime(d3d, fc, h_bs, h_ut, h, w))

    if h_e_m is not None:
        h_e = _check_uma_h_e(h_e_m, h_bs, h_ut)
    elif rng is not None:
        h_e = _check_uma_h_e(_draw_uma_h_e(d2d, h_ut, rng), h_bs, h_ut)
    else:
        h_e = UMA_UMI_H_E_M
    pl_los = _uma_umi_los(sc, d2d, d3d, fc, h_bs, h_ut, h_e)
    if los:
        return pl_los
    lf = math.log10(fc)
    if sc == "uma":
        pl_nlos = 13.54 + 39.08 * math.log10(d3d) + 20.0 * lf - 0.6 * (h_ut - 1.5)
    else:
        pl_nlos = 35.3 * math.log10(d3d) + 22.4 + 21.3 * lf - 0.3 * (h_ut - 1.5)
    return max(pl_los, pl_nlos)


def los_probability(
    scenario: str, d2d_m: float, h_ut_m: float = 1.5, inh_variant: str = "mixed"
) -> float:
    """LOS probability per TR 38.901 Table 7.4.2-1.

    ``d2d_m`` is d2D-out for UMa/UMi/RMa and d2D-in for InH. ``h_ut_m`` only matters for UMa
    (the C'(hUT) term, defined for hUT <= 23 m). ``inh_variant`` selects the InH-Office
    ``"mixed"`` or ``"open"`` office model.
    """
    sc = _scenario(scenario)
    if inh_variant not in INH_VARIANTS:
        raise ValueError(f"inh_variant must be one of {INH_VARIANTS}, got {inh_variant!r}")
    context = f"{_NAMES[sc]} LOS probability (TR 38.901 Table 7.4.2-1)"
    d = _check("d2d_m", d2d_m, 0.0, math.inf, context)
    if sc == "rma":
        return 1.0 if d <= 10.0 else math.exp(-(d - 10.0) / 1000.0)
    if sc == "umi":
        return 1.0 if d <= 18.0 else 18.0 / d + math.exp(-d / 36.0) * (1.0 - 18.0 / d)
    if sc == "uma":
        h_ut = _check("h_ut_m", h_ut_m, 0.0, 23.0, context, low_open=True)
        if d <= 18.0:
            return 1.0
        c_prime = 0.0 if h_ut <= 13.0 else ((h_ut - 13.0) / 10.0) ** 1.5
        base = 18.0 / d + math.exp(-d / 63.0) * (1.0 - 18.0 / d)
        return base * (1.0 + c_prime * 1.25 * (d / 100.0) ** 3 * math.exp(-d / 150.0))
    if inh_variant == "mixed":
        if d <= 1.2:
            return 1.0
        if d < 6.5:
            return math.exp(-(d - 1.2) / 4.7)
        return 0.32 * math.exp(-(d - 6.5) / 32.6)
    if d <= 5.0:
        return 1.0
    if d <= 49.0:
        return math.exp(-(d - 5.0) / 70.8)
    return 0.54 * math.exp(-(d - 49.0) / 211.7)


def shadow_fading_std_db(
    scenario: str,
    los: bool,
    d2d_m: float | None = None,
    fc_ghz: float | None = None,
    h_bs_m: float | None = None,
    h_ut_m: float | None = None,
) -> float:
    """Shadow-fading standard deviation sigma_SF in dB (TR 38.901 Table 7.4.1-1).

    RMa LOS depends on the side of the breakpoint (4 dB up to dBP, 6 dB beyond), so
    ``d2d_m`` and ``fc_ghz`` (and optionally the heights) are required there.
    """
    sc = _scenario(scenario)
    los = _los_flag(los)
    if (sc, los) in SHADOW_FADING_STD_DB:
        return SHADOW_FADING_STD_DB[(sc, los)]
    if d2d_m is None or fc_ghz is None:
        raise ValueError("RMa LOS sigma_SF needs d2d_m and fc_ghz (4 dB before dBP, 6 dB after)")
    context = "RMa LOS (TR 38.901 Table 7.4.1-1)"
    fc = _check("fc_ghz", fc_ghz, *FC_RANGE_GHZ[sc], context)
    d2d = _check("d2d_m", d2d_m, *D2D_RANGE_M[(sc, True)], context)
    h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
    before, after = RMA_LOS_SF_STD_DB
    return before if d2d <= _breakpoint(sc, fc, h_bs, h_ut, 0.0) else after
