"""Hazard ratios from what papers report: conversions, their log and consistency checks.

Each survival result becomes a log hazard ratio (experimental vs control) and its standard
error by the best method its numbers allow, following Tierney et al. (2007) [1]_ and, for
digitised Kaplan-Meier curves, Guyot et al. (2012) [2]_ (:mod:`metapool.km`). Every
conversion returns an :class:`HRConversion` record that says how the number was obtained
(method, inputs, formula, inversion, notes): the per-study conversion log of PRISMA 2020
item 13b [6]_.

Methods, best evidence first
----------------------------
============ ======== ====================================================================
code         strength inputs and formula
============ ======== ====================================================================
``hr_ci``    1        HR and its CI at any level: ``yi = ln HR``,
                      ``SE = (ln U - ln L) / (2 z)``, ``z = Phi^-1(1 - (1 - level)/2)``.
``oe_v``     2        log-rank O-E (experimental arm) and its variance V:
                      ``yi = (O-E)/V``, ``SE = 1/sqrt(V)``; with an HR and V instead of
                      O-E (Tierney's "HR and variance"), ``yi = ln HR``,
                      ``SE = 1/sqrt(V)``.
``p_events`` 3        p-value, events and the direction of the effect:
                      ``V = Oe Oc / (Oe + Oc)`` from the events per arm, or
                      ``V = D r / (1 + r)^2`` from the total events ``D`` and the
                      allocation ratio ``r`` (``n_exp / n_ctrl`` when not given);
                      ``|O-E| = z sqrt(V)``; ``yi = (O-E)/V``, ``SE = 1/sqrt(V)`` [1]_.
``hr_p``     3        HR and its p-value alone: ``yi = ln HR``, ``SE = |ln HR| / z``.
``km``       4        Cox model on data reconstructed from a digitised Kaplan-Meier curve
                      and its numbers at risk (:func:`metapool.km.reconstruct_hr`).
``medians``  5        medians only, exponential survival assumed:
                      ``HR = median_ctrl / median_exp``; SE from the p-value
                      (``|ln HR| / z``) when one is given, else from the events,
                      ``SE = sqrt(1/Oe + 1/Oc)`` [4]_. Weakest: never in
                      :data:`PRIMARY_METHODS`.
============ ======== ====================================================================

``p_events`` comes before ``hr_p`` (both Tierney's third kind of evidence): with events,
V rests on the events rather than on the reported HR; a reported HR then gives the sign
only. The order is fixed; an analysis chooses which methods it allows, not their order.

``z`` from a p-value: ``Phi^-1(1 - p/2)`` for a two-sided p (the default),
``Phi^-1(1 - p)`` for a one-sided p (Trials 2013;14:391 [3]_: two-sided p = 0.075 is
z = 1.78). A p-value reported as a bound (``p < x``) is used at ``x``: the smallest z the
report allows, so ``hr_p`` and ``medians`` give the largest SE consistent with it and
``p_events`` an effect shrunk towards the null; the record's notes say so.

Direction
---------
Every result is experimental vs control as the ``comparison`` label is written
(``TARE vs cTACE``: HR < 1 favours TARE, i.e. fewer events with TARE). Numbers reported the
other way round (control vs experimental) are given with ``orientation="control vs
experimental"`` and inverted (:func:`invert_hr`: HR -> 1/HR, the bounds swapped and
inverted; O-E changes sign, V is unchanged); the record has ``inverted=True`` and a note
showing both. ``p_events`` needs the sign of the effect, which comes from a reported HR
(ln HR < 0 or > 0) or, without an HR, from a stated direction: ``"favours
experimental"`` (the experimental arm has fewer events: log HR < 0) or ``"favours
control"`` (log HR > 0); a direction and an HR that disagree are refused ("direction
unclear"). Medians are never used to guess a direction.

Consistency checks
------------------
:func:`check_row` returns :class:`ConsistencyCheck` records, each naming the row:

* ``ci_asymmetric`` (warning): the CI is not symmetric around the HR on the log scale
  beyond rounding, by the rule of :mod:`metapool.io` (whose function is called, not
  copied): with ``a = ln HR``, ``m`` the log midpoint and ``w`` the log half-width,
  ``|a - m| <= 0.1 w`` must hold for some HR, L, U within half a unit of the last
  reported decimal of each;
* ``hr_outside_ci`` (error): the HR lies outside its CI; :func:`best_conversion` raises;
* ``p_vs_ci`` (warning): the p-value implied by the CI (``z = |ln HR| / SE``) and the
  reported one disagree beyond rounding: over every reading of HR, L and U within half a
  unit of their last decimal, and of p within half a unit of its last decimal (``(0, x)``
  for a bound ``<x``), the two z ranges are further apart than a factor 1.1 (a CI from a
  Wald test and a log-rank p-value differ a little in good data);
* ``median_ratio`` (warning): the median ratio ``median_ctrl / median_exp`` is far from
  the HR: it differs by more than a factor 1.5 *and* no Weibull shape ``k`` in [0.5, 2]
  reconciles the two (under proportional hazards with Weibull survival the median ratio
  is ``HR^(1/k)``, so a median ratio between ``HR^2`` and ``HR^0.5`` is explainable);
* ``direction_unclear`` (warning): a ``treatment`` comparison whose label does not name
  the arms as ``A vs B``; a stated direction, an O-E or the medians pointing the other
  way from the HR; or a p-value with events but neither an HR nor a stated direction.

References
----------
.. [1] Tierney JF, Stewart LA, Ghersi D, Burdett S, Sydes MR. Practical methods for
   incorporating summary time-to-event data into meta-analysis. Trials 2007;8:16.
.. [2] Guyot P, Ades AE, Ouwens MJNM, Welton NJ. Enhanced secondary analysis of survival
   data: reconstructing the data from published Kaplan-Meier survival curves. BMC Med Res
   Methodol 2012;12:9.
.. [3] Wang Y, Zeng T. Response to: Practical methods for incorporating summary
   time-to-event data into meta-analysis. Trials 2013;14:391 (a two-sided p = 0.075 is
   z = 1.78, i.e. ``Phi^-1(1 - p/2)``; a one-sided p is used as it is).
.. [4] Michiels S, Piedbois P, Burdett S, Syz N, Stewart L, Pignon JP. Meta-analysis when
   only the median survival times are known: a comparison with individual patient data
   results. Int J Technol Assess Health Care 2005;21:119-125.
.. [5] Parmar MKB, Torri V, Stewart L. Extracting summary statistics to perform
   meta-analyses of the published literature for survival endpoints. Stat Med
   1998;17:2815-2834.
.. [6] Page MJ, McKenzie JE, Bossuyt PM, et al. The PRISMA 2020 statement: an updated
   guideline for reporting systematic reviews. BMJ 2021;372:n71 (item 13b).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

# io's rounding-aware CI symmetry rule is reused, not copied (see the module docstring).
from .io import _ci_asymmetry, _half_unit, parse_p_value

__all__ = [
    "DESCRIPTIONS",
    "DIRECTIONS",
    "METHODS",
    "ORIENTATIONS",
    "PRIMARY_METHODS",
    "STRENGTH",
    "ConsistencyCheck",
    "ConversionOutcome",
    "HRConversion",
    "MedianEstimate",
    "best_conversion",
    "check_ci_symmetry",
    "check_direction",
    "check_hr_in_ci",
    "check_median_ratio",
    "check_p_vs_ci",
    "check_row",
    "hr_from_ci",
    "hr_from_hr_p",
    "hr_from_medians",
    "hr_from_oe_v",
    "hr_from_p_events",
    "invert_hr",
    "median_from_ci",
    "z_from_p",
]

#: Conversion methods in the order of the evidence they rest on, best first.
METHODS = ("hr_ci", "oe_v", "p_events", "hr_p", "km", "medians")
#: Strength rank of each method: 1 best ... 5 weakest (medians).
STRENGTH = {"hr_ci": 1, "oe_v": 2, "p_events": 3, "hr_p": 3, "km": 4, "medians": 5}
#: One-line description of each method, for methods texts and reports.
DESCRIPTIONS = {
    "hr_ci": "HR with confidence interval (any level): SE = (ln U - ln L) / (2 z)",
    "oe_v": "log-rank O-E and variance V: ln HR = (O-E)/V, SE = 1/sqrt(V)",
    "p_events": ("p-value with events and the direction of effect (Tierney et al. "
                 "2007): V from the events, |O-E| = z sqrt(V), ln HR = (O-E)/V, "
                 "SE = 1/sqrt(V)"),
    "hr_p": "HR with p-value: SE = |ln HR| / z",
    "km": ("Cox model on individual data reconstructed from the digitised Kaplan-Meier "
           "curve and numbers at risk (Guyot et al. 2012)"),
    "medians": ("ratio of medians under exponential survival, HR = median_ctrl / "
                "median_exp (weakest; SE from the p-value or the events)"),
}
#: Methods a primary analysis may use; medians (exponential assumption) are excluded
#: unless an analysis enables them explicitly.
PRIMARY_METHODS = ("hr_ci", "oe_v", "p_events", "hr_p", "km")
#: How a reported HR (or O-E) is oriented; the first is the table's convention.
ORIENTATIONS = ("experimental vs control", "control vs experimental")
#: A stated direction and the sign of log HR (experimental vs control) it implies.
DIRECTIONS = {"favours experimental": -1, "favours control": 1}
SIDES = ("two", "one")

#: "Far" for the median-ratio check: a factor beyond which, and Weibull shapes within
#: which, a median ratio and an HR are judged reconcilable.
MEDIAN_FACTOR = 1.5
MEDIAN_SHAPES = (0.5, 2.0)
#: Factor by which the z implied by a CI and the z of the reported p may differ.
P_Z_TOLERANCE = 1.1


# --------------------------------------------------------------------------- records
def _plain(value):
    """Plain Python value for a record: floats (never NaN), ints, str, lists, dicts."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class HRConversion:
    """How one hazard ratio (experimental vs control) was obtained.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    yi, sei : float
        log HR (experimental vs control) and its standard error.
    hr, ci_lower, ci_upper : float
        ``exp(yi)`` and the Wald CI ``exp(yi -/+ z sei)`` at ``level``. For ``hr_ci`` this
        is the interval the pooling uses, recomputed from the SE (the reported bounds are
        in ``inputs``).
    level : float
        Level of ``ci_lower, ci_upper``.
    inputs : dict
        The reported numbers used, as given (before any inversion), plus the options.
    formula : str
        The formula applied, with its numbers.
    inverted : bool
        The numbers were reported control vs experimental and were inverted.
    strength : int
        :data:`STRENGTH` of the method (1 best ... 5 weakest).
    notes : tuple of str
        Everything a reader of the log should know (inversion, bounds, assumptions).
    """

    method: str
    yi: float
    sei: float
    hr: float
    ci_lower: float
    ci_upper: float
    level: float
    inputs: dict
    formula: str
    inverted: bool = False
    strength: int = 0
    notes: tuple = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain Python types (None where absent, never NaN)."""
        return {
            "method": self.method, "yi": _plain(self.yi), "sei": _plain(self.sei),
            "hr": _plain(self.hr), "ci_lower": _plain(self.ci_lower),
            "ci_upper": _plain(self.ci_upper), "level": _plain(self.level),
            "inputs": _plain(self.inputs), "formula": self.formula,
            "inverted": bool(self.inverted), "strength": int(self.strength),
            "notes": list(self.notes),
        }


def _z_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _record(method, yi, sei, level, inputs, formula, inverted=False, notes=()):
    if not (math.isfinite(yi) and math.isfinite(sei) and sei > 0):
        raise ValueError(f"{method}: the numbers give no finite log HR with a positive "
                         f"SE (log HR {yi!r}, SE {sei!r})")
    z = _z_level(level)
    return HRConversion(
        method=method, yi=float(yi), sei=float(sei), hr=math.exp(yi),
        ci_lower=math.exp(yi - z * sei), ci_upper=math.exp(yi + z * sei),
        level=float(level), inputs=dict(inputs), formula=formula,
        inverted=bool(inverted), strength=STRENGTH[method], notes=tuple(notes),
    )


# --------------------------------------------------------------------------- helpers
def z_from_p(p, sided="two"):
    """Standard normal deviate of a p-value.

    Parameters
    ----------
    p : float
        The p-value: two-sided in (0, 1], one-sided in (0, 0.5].
    sided : {"two", "one"}
        ``"two"``: ``z = Phi^-1(1 - p/2)``; ``"one"``: ``z = Phi^-1(1 - p)``.

    Returns
    -------
    float
        ``z >= 0``.

    References
    ----------
    Wang & Zeng 2013 (Trials 14:391), on Tierney et al. 2007: a two-sided p = 0.075 is
    z = 1.78.
    """
    if sided not in SIDES:
        raise ValueError(f"sided must be 'two' or 'one', got {sided!r}")
    p = float(p)
    if sided == "two":
        if not 0 < p <= 1:
            raise ValueError(f"a two-sided p-value must lie in (0, 1], got {p:g}")
        return float(stats.norm.isf(p / 2.0))
    if not 0 < p <= 0.5:
        raise ValueError(
            f"a one-sided p-value must lie in (0, 0.5], got {p:g} (above 0.5 the effect "
            "lies in the direction opposite to the one tested; give the two-sided p)")
    return float(stats.norm.isf(p))


def _p_from_z(z, sided="two"):
    return float(2.0 * stats.norm.sf(z) if sided == "two" else stats.norm.sf(z))


def invert_hr(hr, lower=None, upper=None):
    """Turn an HR reported control vs experimental into experimental vs control.

    ``HR -> 1/HR``; the CI ``(L, U)`` becomes ``(1/U, 1/L)``.

    Parameters
    ----------
    hr : float
        Hazard ratio (> 0).
    lower, upper : float, optional
        Its confidence limits (> 0).

    Returns
    -------
    hr, lower, upper : float or None
        The inverted HR and CI (None where not given).
    """
    for name, value in (("hr", hr), ("lower", lower), ("upper", upper)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive to be inverted, got {value!r}")
    return (1.0 / hr, None if upper is None else 1.0 / upper,
            None if lower is None else 1.0 / lower)


def _inverted(orientation):
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return orientation == ORIENTATIONS[1]


def _fmt(x):
    return f"{x:.4g}"


def _ci_text(lo, hi):
    return f"{_fmt(lo)}-{_fmt(hi)}"


def _p_notes(p, p_is_bound, sided, effect):
    notes = []
    if sided == "one":
        notes.append(f"p = {p:g} is one-sided: z = Phi^-1(1 - p)")
    if p_is_bound:
        notes.append(f"p reported as <{p:g}: used at the bound, which {effect}")
    return notes


def _sign_of_effect(hr, direction):
    """Sign of log HR (experimental vs control) from an HR and/or a stated direction."""
    s_hr = None
    if hr is not None:
        if not hr > 0:
            raise ValueError(f"HR must be positive, got {hr!r}")
        s_hr = (hr > 1) - (hr < 1)
    s_dir = None
    if direction is not None:
        key = _direction_key(direction)
        s_dir = DIRECTIONS[key]
    if s_hr == 0 and s_dir is None:
        raise ValueError("direction unclear: an HR of exactly 1 gives no sign to a "
                         "p-value below 1 and no direction is stated")
    if s_hr not in (None, 0) and s_dir is not None and s_hr != s_dir:
        raise ValueError(f"direction unclear: HR {hr:g} but the stated direction is "
                         f"'{_direction_key(direction)}'")
    if s_hr in (None, 0) and s_dir is None:
        raise ValueError("direction unclear: neither an HR nor a stated direction "
                         "('favours experimental' or 'favours control') gives the sign "
                         "of log HR")
    return s_hr if s_hr not in (None, 0) else s_dir


def _direction_key(direction):
    key = " ".join(str(direction).strip().lower().replace("favors", "favours").split())
    if key not in DIRECTIONS:
        raise ValueError(f"direction must be 'favours experimental' or 'favours control', "
                         f"got {direction!r}")
    return key


# --------------------------------------------------------------------------- conversions
def hr_from_ci(hr, lower, upper, ci_level=0.95, *, level=0.95,
               orientation="experimental vs control"):
    """log HR and SE from an HR and its confidence interval at any level (``hr_ci``).

    Parameters
    ----------
    hr, lower, upper : float
        Reported HR and CI (> 0, ``lower <= hr <= upper``, ``lower < upper``).
    ci_level : float
        Level of the reported CI, e.g. 0.95 or 0.90.
    level : float
        Level of the CI in the returned record.
    orientation : {"experimental vs control", "control vs experimental"}
        How the HR was reported; the second is inverted.

    Returns
    -------
    HRConversion
        ``yi = ln HR``, ``SE = (ln U - ln L) / (2 z)``, ``z = Phi^-1(1 - (1 - ci_level)/2)``.

    References
    ----------
    Tierney et al. 2007, Trials 8:16; Parmar et al. 1998, Stat Med 17:2815-2834.
    """
    inverted = _inverted(orientation)
    for name, value in (("HR", hr), ("lower confidence limit", lower),
                        ("upper confidence limit", upper)):
        if value is None or not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if not lower < upper:
        raise ValueError(f"the lower confidence limit {lower:g} must be below the upper "
                         f"one {upper:g}")
    if not lower <= hr <= upper:
        raise ValueError(f"HR {hr:g} lies outside its CI {lower:g}-{upper:g}")
    z_ci = _z_level(ci_level)
    inputs = {"hr": hr, "hr_lower": lower, "hr_upper": upper, "ci_level": ci_level,
              "orientation": orientation}
    notes = []
    h, lo, hi = hr, lower, upper
    if inverted:
        h, lo, hi = invert_hr(hr, lower, upper)
        notes.append(f"reported control vs experimental: HR {_fmt(hr)} "
                     f"({_ci_text(lower, upper)}) inverted to {_fmt(h)} ({_ci_text(lo, hi)})"
                     " (HR -> 1/HR, bounds swapped and inverted)")
    yi = math.log(h)
    sei = (math.log(hi) - math.log(lo)) / (2.0 * z_ci)
    formula = (f"yi = ln HR = ln {_fmt(h)} = {yi:.4f}; SE = (ln U - ln L) / (2 z) = "
               f"(ln {_fmt(hi)} - ln {_fmt(lo)}) / (2 x {z_ci:.4f}) = {sei:.4f}")
    if ci_level != level:
        notes.append(f"reported {100 * ci_level:g}% CI; the record's CI is at "
                     f"{100 * level:g}%")
    return _record("hr_ci", yi, sei, level, inputs, formula, inverted, notes)


def hr_from_oe_v(oe=None, v=None, *, hr=None, level=0.95,
                 orientation="experimental vs control"):
    """log HR and SE from the log-rank O-E and its variance V (``oe_v``).

    Parameters
    ----------
    oe : float, optional
        Observed minus expected events in the experimental arm (log-rank).
    v : float
        The log-rank variance V (> 0).
    hr : float, optional
        A reported HR, used with V when O-E is not reported (Tierney's "HR and variance":
        ``yi = ln HR``); ignored (and noted) when O-E is given.
    level : float
        Level of the CI in the returned record.
    orientation : {"experimental vs control", "control vs experimental"}
        ``"control vs experimental"``: O-E is the control arm's (its sign is changed) or the
        HR is control vs experimental (inverted). V is the same for both arms.

    Returns
    -------
    HRConversion
        ``yi = (O-E)/V`` (or ``ln HR``), ``SE = 1/sqrt(V)``.

    References
    ----------
    Tierney et al. 2007, Trials 8:16 (worked example: HR 0.88 with V = 128.81 gives a 95%
    CI of 0.74 to 1.05).
    """
    inverted = _inverted(orientation)
    if v is None or not (math.isfinite(v) and v > 0):
        raise ValueError(f"the log-rank variance V must be positive, got {v!r}")
    if oe is None and hr is None:
        raise ValueError("oe_v needs O-E (or an HR) together with V")
    sei = 1.0 / math.sqrt(v)
    notes = []
    inputs = {"oe": oe, "v": v, "hr": hr, "orientation": orientation}
    if oe is not None:
        if not math.isfinite(oe):
            raise ValueError(f"O-E must be a finite number, got {oe!r}")
        o = -oe if inverted else oe
        if inverted:
            notes.append(f"O-E {_fmt(oe)} reported for the control arm: the experimental "
                         f"arm's O-E is {_fmt(o)} (V unchanged)")
        if hr is not None:
            notes.append(f"reported HR {_fmt(hr)} not used: O-E and V give the estimate")
        yi = o / v
        formula = (f"yi = (O-E)/V = {_fmt(o)} / {_fmt(v)} = {yi:.4f}; SE = 1/sqrt(V) = "
                   f"{sei:.4f}")
    else:
        if not hr > 0:
            raise ValueError(f"HR must be positive, got {hr!r}")
        h = 1.0 / hr if inverted else hr
        if inverted:
            notes.append(f"reported control vs experimental: HR {_fmt(hr)} inverted to "
                         f"{_fmt(h)}")
        yi = math.log(h)
        formula = f"yi = ln HR = ln {_fmt(h)} = {yi:.4f}; SE = 1/sqrt(V) = {sei:.4f}"
    return _record("oe_v", yi, sei, level, inputs, formula, inverted, notes)


def _variance_from_events(events_exp, events_ctrl, events_total, allocation_ratio,
                          n_exp, n_ctrl):
    """Tierney's approximation of the log-rank variance V; returns (V, text, notes)."""
    if events_exp is not None and events_ctrl is not None:
        oe_, oc = int(events_exp), int(events_ctrl)
        if oe_ < 0 or oc < 0:
            raise ValueError("event counts must not be negative")
        if oe_ == 0 or oc == 0:
            raise ValueError(f"events {oe_} and {oc}: V = Oe Oc / (Oe + Oc) is 0 when an "
                             "arm has no events")
        v = oe_ * oc / (oe_ + oc)
        notes = []
        if events_total is not None and int(events_total) != oe_ + oc:
            notes.append(f"events_total {int(events_total)} differs from events_exp + "
                         f"events_ctrl = {oe_ + oc}; the events per arm are used")
        return v, f"V = Oe Oc / (Oe + Oc) = {oe_} x {oc} / {oe_ + oc} = {v:.4f}", notes
    d = events_total
    if d is None:
        raise ValueError("p_events needs the events per arm, or the total events")
    d = int(d)
    if d <= 0:
        raise ValueError(f"total events must be positive, got {d}")
    notes = []
    if allocation_ratio is not None:
        r = float(allocation_ratio)
        source = "allocation ratio"
    elif n_exp is not None and n_ctrl is not None:
        r = n_exp / n_ctrl
        source = f"n_exp / n_ctrl = {n_exp} / {n_ctrl}"
        notes.append("allocation ratio not reported: taken as n_exp / n_ctrl")
    else:
        raise ValueError("p_events with total events needs the allocation ratio (or "
                         "n_exp and n_ctrl)")
    if not r > 0:
        raise ValueError(f"the allocation ratio must be positive, got {r!r}")
    v = d * r / (1.0 + r) ** 2
    return v, (f"V = D r / (1 + r)^2 = {d} x {r:.4g} / {1 + r:.4g}^2 = {v:.4f} "
               f"(r: {source})"), notes


def hr_from_p_events(p, *, events_exp=None, events_ctrl=None, events_total=None,
                     allocation_ratio=None, n_exp=None, n_ctrl=None, hr=None,
                     direction=None, sided="two", p_is_bound=False, level=0.95,
                     orientation="experimental vs control"):
    """log HR and SE from a p-value, the events and the direction (``p_events``).

    Parameters
    ----------
    p : float
        Reported p-value of the comparison (log-rank or Cox), ``sided`` as stated.
    events_exp, events_ctrl : int, optional
        Events per arm: ``V = Oe Oc / (Oe + Oc)``.
    events_total : int, optional
        Total events D, used when the events per arm are not both given:
        ``V = D r / (1 + r)^2``.
    allocation_ratio : float, optional
        ``r``, patients allocated experimental : control; when absent,
        ``n_exp / n_ctrl``. (V is the same for ``r`` and ``1/r``.)
    n_exp, n_ctrl : int, optional
        Patients per arm (for ``r``).
    hr : float, optional
        A reported HR: gives the sign of log HR only (noted; the estimate is Tierney's).
    direction : {"favours experimental", "favours control"}, optional
        The sign when no HR is reported: "favours experimental" means fewer events in the
        experimental arm, log HR < 0.
    sided : {"two", "one"}
        Sidedness of ``p``.
    p_is_bound : bool
        ``p`` was reported as ``< p``: the estimate is shrunk towards the null (noted).
    level : float
        Level of the CI in the returned record.
    orientation : {"experimental vs control", "control vs experimental"}
        Orientation of the reported ``hr`` (inverted before its sign is read).

    Returns
    -------
    HRConversion
        ``O-E = sign x z sqrt(V)``, ``yi = (O-E)/V = sign z / sqrt(V)``,
        ``SE = 1/sqrt(V)``.

    References
    ----------
    Tierney et al. 2007, Trials 8:16 (methods with p-values and events); Parmar et al.
    1998, Stat Med 17:2815-2834; Wang & Zeng 2013, Trials 14:391 (sidedness).
    """
    inverted = _inverted(orientation)
    z = z_from_p(p, sided)
    v, v_text, notes = _variance_from_events(events_exp, events_ctrl, events_total,
                                             allocation_ratio, n_exp, n_ctrl)
    h = None if hr is None else (1.0 / hr if inverted else hr)
    if inverted and hr is not None:
        notes.append(f"reported control vs experimental: HR {_fmt(hr)} read as "
                      f"{_fmt(h)} for its sign")
    if z == 0.0:
        sign = 0
        sign_text = "p = 1: O-E = 0"
    else:
        sign = _sign_of_effect(h, direction)
        sign_text = (f"sign {'+' if sign > 0 else '-'} from "
                     + (f"HR {_fmt(h)}" if h is not None and h != 1
                        else f"'{_direction_key(direction)}'"))
    oe = sign * z * math.sqrt(v)
    yi = oe / v
    sei = 1.0 / math.sqrt(v)
    if h is not None and h != 1:
        notes.append(f"reported HR {_fmt(h)} gives the sign only; Tierney's estimate "
                     f"exp((O-E)/V) = {_fmt(math.exp(yi))} is used")
    notes += _p_notes(p, p_is_bound, sided,
                      "understates |O-E| (an estimate shrunk towards HR = 1)")
    inputs = {"p_value": p, "p_is_bound": bool(p_is_bound), "sided": sided,
              "events_exp": events_exp, "events_ctrl": events_ctrl,
              "events_total": events_total, "allocation_ratio": allocation_ratio,
              "n_exp": n_exp, "n_ctrl": n_ctrl, "hr": hr,
              "direction": None if direction is None else _direction_key(direction),
              "orientation": orientation}
    formula = (f"{v_text}; z = {z:.4f} ({sided}-sided p = {p:g}); |O-E| = z sqrt(V) = "
               f"{abs(oe):.4f} ({sign_text}); yi = (O-E)/V = {yi:.4f}; SE = 1/sqrt(V) = "
               f"{sei:.4f}")
    return _record("p_events", yi, sei, level, inputs, formula, inverted, notes)


def hr_from_hr_p(hr, p, *, sided="two", p_is_bound=False, level=0.95,
                 orientation="experimental vs control"):
    """log HR and SE from an HR and its p-value alone (``hr_p``).

    Parameters
    ----------
    hr : float
        Reported HR (> 0, != 1).
    p : float
        Its p-value (< 1), ``sided`` as stated.
    sided : {"two", "one"}
        Sidedness of ``p``.
    p_is_bound : bool
        ``p`` was reported as ``< p``: the SE is the largest consistent with the report.
    level : float
        Level of the CI in the returned record.
    orientation : {"experimental vs control", "control vs experimental"}
        How the HR was reported; the second is inverted.

    Returns
    -------
    HRConversion
        ``yi = ln HR``, ``SE = |ln HR| / z``.

    References
    ----------
    Tierney et al. 2007, Trials 8:16; Altman DG, Bland JM. How to obtain the confidence
    interval from a P value. BMJ 2011;343:d2090.
    """
    inverted = _inverted(orientation)
    if hr is None or not hr > 0:
        raise ValueError(f"HR must be positive, got {hr!r}")
    if hr == 1:
        raise ValueError("an HR of exactly 1 carries no information on its SE")
    z = z_from_p(p, sided)
    if z == 0:
        raise ValueError("p = 1 gives z = 0 and no SE from |ln HR| / z")
    notes = []
    h = 1.0 / hr if inverted else hr
    if inverted:
        notes.append(f"reported control vs experimental: HR {_fmt(hr)} inverted to "
                     f"{_fmt(h)}")
    yi = math.log(h)
    sei = abs(yi) / z
    notes += _p_notes(p, p_is_bound, sided,
                      "gives the largest SE consistent with the report (conservative)")
    inputs = {"hr": hr, "p_value": p, "p_is_bound": bool(p_is_bound), "sided": sided,
              "orientation": orientation}
    formula = (f"yi = ln HR = {yi:.4f}; SE = |ln HR| / z = {abs(yi):.4f} / {z:.4f} = "
               f"{sei:.4f} ({sided}-sided p = {p:g})")
    return _record("hr_p", yi, sei, level, inputs, formula, inverted, notes)


def hr_from_medians(median_exp, median_ctrl, *, p=None, sided="two", p_is_bound=False,
                    events_exp=None, events_ctrl=None, level=0.95):
    """HR from the two medians under exponential survival (``medians``, weakest).

    Parameters
    ----------
    median_exp, median_ctrl : float
        Median time to event per arm (> 0, same unit).
    p : float, optional
        p-value of the comparison: ``SE = |ln HR| / z`` (needs unequal medians).
    sided : {"two", "one"}
        Sidedness of ``p``.
    p_is_bound : bool
        ``p`` was reported as ``< p`` (conservative SE, noted).
    events_exp, events_ctrl : int, optional
        Events per arm, used when no p-value is given: under the exponential model
        ``var(ln hazard) = 1/events`` per arm, so ``SE = sqrt(1/Oe + 1/Oc)``.
    level : float
        Level of the CI in the returned record.

    Returns
    -------
    HRConversion
        ``HR = median_ctrl / median_exp`` (constant hazards ``ln 2 / median``); strength 5.
        Not a primary-analysis method (:data:`PRIMARY_METHODS`).

    References
    ----------
    Michiels et al. 2005, Int J Technol Assess Health Care 21:119-125; Tierney et al.
    2007, Trials 8:16.
    """
    for name, value in (("median_exp", median_exp), ("median_ctrl", median_ctrl)):
        if value is None or not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    yi = math.log(median_ctrl / median_exp)
    notes = [("weakest evidence: assumes exponential survival (constant hazards) in both "
              "arms; not used in the primary analysis unless the analysis enables "
              "'medians'")]
    inputs = {"median_exp": median_exp, "median_ctrl": median_ctrl, "p_value": p,
              "p_is_bound": bool(p_is_bound), "sided": sided, "events_exp": events_exp,
              "events_ctrl": events_ctrl}
    head = (f"HR = median_ctrl / median_exp = {_fmt(median_ctrl)} / {_fmt(median_exp)} = "
            f"{_fmt(math.exp(yi))}; yi = {yi:.4f}")
    if p is not None:
        z = z_from_p(p, sided)
        if z == 0 or yi == 0:
            raise ValueError("medians: SE = |ln HR| / z needs unequal medians and p < 1")
        sei = abs(yi) / z
        formula = f"{head}; SE = |ln HR| / z = {abs(yi):.4f} / {z:.4f} = {sei:.4f}"
        notes += _p_notes(p, p_is_bound, sided,
                          "gives the largest SE consistent with the report (conservative)")
    elif events_exp is not None and events_ctrl is not None:
        if not (events_exp > 0 and events_ctrl > 0):
            raise ValueError("medians: SE = sqrt(1/Oe + 1/Oc) needs events in both arms")
        sei = math.sqrt(1.0 / events_exp + 1.0 / events_ctrl)
        formula = (f"{head}; SE = sqrt(1/Oe + 1/Oc) = sqrt(1/{events_exp} + "
                   f"1/{events_ctrl}) = {sei:.4f}")
    else:
        raise ValueError("medians need a p-value or the events in both arms for the SE")
    return _record("medians", yi, sei, level, inputs, formula, False, notes)


@dataclass(frozen=True)
class MedianEstimate:
    """A single-arm median on the log scale, for pooling medians (not an HR).

    Attributes
    ----------
    yi, sei : float
        ``ln median`` and ``SE = (ln U - ln L) / (2 z)``.
    median, ci_lower, ci_upper, ci_level : float
        As reported.
    formula : str
        The formula with its numbers.
    notes : tuple of str
        E.g. a CI symmetric on the natural rather than the log scale.
    """

    yi: float
    sei: float
    median: float
    ci_lower: float
    ci_upper: float
    ci_level: float
    formula: str
    notes: tuple = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain Python types."""
        return {"measure": "log median", "yi": self.yi, "sei": self.sei,
                "median": self.median, "ci_lower": self.ci_lower,
                "ci_upper": self.ci_upper, "ci_level": self.ci_level,
                "formula": self.formula, "notes": list(self.notes)}


def median_from_ci(median, lower, upper, level=0.95):
    """Log median and its SE from a single-arm median and its CI.

    For pooling medians of single-arm series as a secondary outcome (pooled medians,
    not an HR) with ``metapool.pool_generic(yi, sei, measure="log")``.

    Parameters
    ----------
    median, lower, upper : float
        Median time to event and its CI (> 0, ``lower <= median <= upper``,
        ``lower < upper``).
    level : float
        Level of that CI.

    Returns
    -------
    MedianEstimate
        ``yi = ln median``, ``SE = (ln U - ln L) / (2 z)``.

    References
    ----------
    Brookmeyer R, Crowley J. A confidence interval for the median survival time.
    Biometrics 1982;38:29-41 (CIs of medians are usually not symmetric, hence the log
    scale); Tierney et al. 2007 (the same SE-from-CI rule for HRs).
    """
    for name, value in (("median", median), ("lower", lower), ("upper", upper)):
        if value is None or not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if not lower < upper:
        raise ValueError(f"the lower confidence limit {lower:g} must be below the upper "
                         f"one {upper:g}")
    if not lower <= median <= upper:
        raise ValueError(f"median {median:g} lies outside its CI {lower:g}-{upper:g}")
    z = _z_level(level)
    yi = math.log(median)
    sei = (math.log(upper) - math.log(lower)) / (2.0 * z)
    notes = []
    width = upper - lower
    if abs(median - (lower + upper) / 2.0) <= 0.02 * width and \
            abs(yi - (math.log(lower) + math.log(upper)) / 2.0) > \
            0.1 * (math.log(upper) - math.log(lower)) / 2.0:
        notes.append("the CI is symmetric on the natural scale (median +/- z SE?): the "
                     "log-scale SE is an approximation")
    formula = (f"yi = ln {_fmt(median)} = {yi:.4f}; SE = (ln U - ln L) / (2 z) = "
               f"(ln {_fmt(upper)} - ln {_fmt(lower)}) / (2 x {z:.4f}) = {sei:.4f}")
    return MedianEstimate(yi, sei, float(median), float(lower), float(upper),
                          float(level), formula, tuple(notes))


# --------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class ConsistencyCheck:
    """One finding of a consistency check on a survival row.

    Attributes
    ----------
    check : str
        ``ci_asymmetric``, ``hr_outside_ci``, ``p_vs_ci``, ``median_ratio`` or
        ``direction_unclear``.
    severity : {"warning", "error"}
        Only ``hr_outside_ci`` is an error.
    row : str or None
        The row it concerns (study, outcome, comparison, row number).
    message : str
        What is inconsistent, with the numbers.
    values : dict
        The numbers the check computed.
    """

    check: str
    severity: str
    row: str | None
    message: str
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain Python types."""
        return {"check": self.check, "severity": self.severity, "row": self.row,
                "message": self.message, "values": _plain(self.values)}

    def __str__(self) -> str:
        return f"{self.row}: {self.message}" if self.row else self.message


def _as_text(x):
    """Number as reported: text is kept (its decimals are the rounding), floats shortest."""
    if isinstance(x, str):
        return x.strip()
    return repr(float(x))


def check_hr_in_ci(hr, lower, upper, *, row=None):
    """Error record when the HR lies outside its CI, else None."""
    h, lo, hi = (float(_as_text(v)) for v in (hr, lower, upper))
    if lo <= h <= hi:
        return None
    return ConsistencyCheck(
        "hr_outside_ci", "error", row,
        f"HR {_as_text(hr)} lies outside its CI {_as_text(lower)}-{_as_text(upper)}",
        {"hr": h, "hr_lower": lo, "hr_upper": hi})


def check_ci_symmetry(hr, lower, upper, *, row=None):
    """Warning when the CI is not symmetric around the HR on the log scale beyond rounding.

    The rule is :mod:`metapool.io`'s (``_ci_asymmetry``, called here): pass the numbers as
    reported text (``"0.50"``) to keep their decimals; floats are read with their shortest
    representation (``0.5`` -> one decimal), which can only widen the rounding allowance.

    Returns
    -------
    ConsistencyCheck or None
    """
    th, tl, tu = (_as_text(v) for v in (hr, lower, upper))
    h, lo, hi = float(th), float(tl), float(tu)
    if not (lo < hi and lo <= h <= hi):
        return None
    excess = _ci_asymmetry(th, tl, tu)
    if excess <= 0:
        return None
    centre = math.exp((math.log(lo) + math.log(hi)) / 2.0)
    return ConsistencyCheck(
        "ci_asymmetric", "warning", row,
        f"CI {tl}-{tu} is not symmetric around HR {th} on the log scale (its geometric "
        f"midpoint is {centre:.3g}) beyond what rounding explains; check the numbers",
        {"hr": h, "hr_lower": lo, "hr_upper": hi, "geometric_midpoint": centre,
         "excess": excess})


def _box(text):
    x, e = float(text), _half_unit(text)
    return max(x - e, 0.0), x + e


def check_p_vs_ci(hr, lower, upper, ci_level, p, *, p_is_bound=False, sided="two",
                  row=None, tolerance=P_Z_TOLERANCE):
    """Warning when the reported p-value and the one implied by the CI disagree.

    The CI implies ``z = |ln HR| / SE`` with ``SE = (ln U - ln L) / (2 z_level)``. Its range
    is taken over every HR, L, U within half a unit of their last reported decimal; the
    reported p gives a z range from ``p`` within half a unit of its last decimal (or
    ``z >= z(x)`` for ``p < x``). They are consistent when the ranges overlap after
    widening by the factor ``tolerance`` (1.1: a Wald CI and a log-rank p-value of the
    same data differ a little).

    Parameters
    ----------
    hr, lower, upper : float or str
        HR and CI (text keeps the reported decimals).
    ci_level : float
        Level of the CI.
    p : float or str
        Reported p-value (or the bound ``x`` of ``p < x``).
    p_is_bound : bool
        ``p`` is a bound.
    sided : {"two", "one"}
        Sidedness of ``p``.
    row : str, optional
        Row label for the record.
    tolerance : float
        Factor allowed between the z ranges.

    Returns
    -------
    ConsistencyCheck or None

    References
    ----------
    Altman DG, Bland JM. How to obtain the P value from a confidence interval. BMJ
    2011;343:d2304.
    """
    th, tl, tu, tp = (_as_text(v) for v in (hr, lower, upper, p))
    if sided not in SIDES:
        raise ValueError(f"sided must be 'two' or 'one', got {sided!r}")
    zl = _z_level(ci_level)
    tiny = 1e-300
    zs = []
    for h in _box(th):
        for lo in _box(tl):
            for hi in _box(tu):
                h_, lo_, hi_ = max(h, tiny), max(lo, tiny), max(hi, tiny)
                if hi_ <= lo_:
                    continue
                zs.append(abs(math.log(h_)) / ((math.log(hi_) - math.log(lo_)) / (2 * zl)))
    # |ln h| is not monotone across h = 1: include it when the box straddles 1
    h_lo, h_hi = _box(th)
    if h_lo <= 1.0 <= h_hi:
        zs.append(0.0)
    if not zs:
        return None
    z_ci = (min(zs), max(zs))
    pv = float(tp)
    p_lo, p_hi = (0.0, pv) if p_is_bound else _box(tp)
    p_hi = min(p_hi, 1.0 if sided == "two" else 0.5)

    def z_of(q):
        if q <= 0:
            return math.inf
        return float(stats.norm.isf(q / 2.0) if sided == "two" else stats.norm.isf(q))

    z_rep = (z_of(p_hi), z_of(p_lo))
    consistent = z_ci[0] / tolerance <= z_rep[1] and z_rep[0] <= z_ci[1] * tolerance
    if consistent:
        return None
    zc = abs(math.log(float(th))) / ((math.log(float(tu)) - math.log(float(tl))) / (2 * zl))
    p_ci = _p_from_z(zc, sided)
    shown = f"<{tp}" if p_is_bound else tp
    return ConsistencyCheck(
        "p_vs_ci", "warning", row,
        f"p = {shown} ({sided}-sided) does not match the p = {p_ci:.2g} implied by HR {th} "
        f"({tl}-{tu}) (z {z_ci[0]:.2f}-{z_ci[1]:.2f} from the CI within rounding, "
        f"{z_rep[0]:.2f}-{z_rep[1]:.2f} from p); check the numbers or which test the p "
        "belongs to",
        {"p_reported": pv, "p_is_bound": bool(p_is_bound), "p_implied": p_ci,
         "z_ci_min": z_ci[0], "z_ci_max": z_ci[1], "z_p_min": z_rep[0],
         "z_p_max": z_rep[1] if math.isfinite(z_rep[1]) else None})


def check_median_ratio(hr, median_exp, median_ctrl, *, row=None, factor=MEDIAN_FACTOR,
                       shapes=MEDIAN_SHAPES):
    """Warning when the median ratio is far from the HR.

    "Far": ``median_ctrl / median_exp`` differs from the HR by more than ``factor`` (1.5)
    and lies outside ``[HR^b, HR^a]`` (for ``shapes = (a, b) = (0.5, 2)``), the median
    ratios that proportional hazards with Weibull survival of shape between ``a`` and
    ``b`` produce (median ratio ``= HR^(1/shape)``). A median ratio on the other side of
    1 is far as soon as the factor is exceeded.

    Returns
    -------
    ConsistencyCheck or None
    """
    for name, value in (("hr", hr), ("median_exp", median_exp),
                        ("median_ctrl", median_ctrl)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    ratio = median_ctrl / median_exp
    gap = abs(math.log(ratio) - math.log(hr))
    lo_shape, hi_shape = shapes
    band = sorted((hr ** (1.0 / lo_shape), hr ** (1.0 / hi_shape)))
    explainable = band[0] <= ratio <= band[1]
    if gap <= math.log(factor) or explainable:
        return None
    return ConsistencyCheck(
        "median_ratio", "warning", row,
        f"the median ratio {_fmt(median_ctrl)}/{_fmt(median_exp)} = {ratio:.3g} is far "
        f"from HR {_fmt(hr)} (a factor {math.exp(gap):.2f} > {factor:g}, and outside "
        f"{band[0]:.3g}-{band[1]:.3g}, the range Weibull shapes {lo_shape:g}-{hi_shape:g} "
        "explain under proportional hazards); check the numbers",
        {"hr": hr, "median_ratio": ratio, "factor": math.exp(gap),
         "weibull_band_lower": band[0], "weibull_band_upper": band[1]})


def check_direction(*, hr=None, direction=None, oe=None, median_exp=None,
                    median_ctrl=None, comparison=None, needs_sign=False, row=None):
    """Warning when the direction of the effect is unclear.

    Flags, in one record: a ``treatment:`` comparison whose label does not read
    ``A vs B``; a stated direction or the sign of O-E disagreeing with the HR (all
    experimental vs control); medians favouring the other arm than the HR (or the stated
    direction); and, with ``needs_sign``, neither an HR nor a stated direction.

    Returns
    -------
    ConsistencyCheck or None
    """
    reasons = []
    if comparison is not None:
        kind, _, label = str(comparison).partition(":")
        if kind.strip() == "treatment" and " vs " not in f" {label.strip()} ".replace(
                " vs. ", " vs "):
            reasons.append(f"the comparison '{comparison}' does not name the arms as "
                           "'experimental vs control'")
    s_hr = None if hr is None or hr == 1 else (1 if hr > 1 else -1)
    s_dir = None if direction is None else DIRECTIONS[_direction_key(direction)]
    if s_hr is not None and s_dir is not None and s_hr != s_dir:
        reasons.append(f"HR {_fmt(hr)} but the stated direction is "
                       f"'{_direction_key(direction)}'")
    if oe is not None and oe != 0 and s_hr is not None and (oe > 0) != (s_hr > 0):
        reasons.append(f"O-E {_fmt(oe)} and HR {_fmt(hr)} point in opposite directions")
    effect = s_hr if s_hr is not None else s_dir
    if median_exp is not None and median_ctrl is not None and effect is not None \
            and median_exp != median_ctrl:
        s_med = 1 if median_exp < median_ctrl else -1
        if s_med != effect:
            reasons.append(f"the medians ({_fmt(median_exp)} vs {_fmt(median_ctrl)}) "
                           "favour the other arm than the "
                           + ("HR" if s_hr is not None else "stated direction"))
    if needs_sign and s_hr is None and s_dir is None:
        reasons.append("a p-value with events but neither an HR nor a stated direction "
                       "('favours experimental' or 'favours control')")
    if not reasons:
        return None
    return ConsistencyCheck("direction_unclear", "warning", row,
                            "direction unclear: " + "; ".join(reasons),
                            {"reasons": reasons})


# --------------------------------------------------------------------------- rows
def _cell(row, key):
    """A row value, None when absent, empty, NaN or NA."""
    if key not in row:
        return None
    value = row[key]
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    try:
        if pd.isna(value):  # NaN, None, pandas.NA, NaT
            return None
    except (TypeError, ValueError):  # not a scalar
        pass
    if hasattr(value, "item"):
        value = value.item()
    return value


def _num(row, key):
    value = _cell(row, key)
    return None if value is None else float(value)


def _int(row, key):
    value = _cell(row, key)
    if value is None:
        return None
    if float(value) != int(float(value)):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    return int(float(value))


def _row_label(row):
    parts = [str(_cell(row, k)) for k in ("study_id", "outcome", "comparison")
             if _cell(row, k) is not None]
    label = " / ".join(parts) or "row"
    adjusted = _cell(row, "adjusted")
    if adjusted is not None:
        label += f" (adjusted={adjusted})"
    source_row = _cell(row, "source_row")
    if source_row is not None:
        label += f" [row {int(source_row)}]"
    return label


def _p_of(row):
    text = _cell(row, "p_value")
    if text is None:
        return None, False, None
    text = str(text) if isinstance(text, str) else _as_text(text)
    value, is_bound = parse_p_value(text)
    return value, is_bound, text.lstrip("<").strip()


#: survival.csv spellings of the row options (metapool/schemas/survival.schema.json) and
#: the names used in this module; the module's own names are accepted as well.
CSV_ORIENTATIONS = {"exp_vs_ctrl": ORIENTATIONS[0], "ctrl_vs_exp": ORIENTATIONS[1]}
CSV_SIDES = {2: "two", 1: "one"}
CSV_DIRECTIONS = {"experimental": "favours experimental", "control": "favours control"}


def _options(row):
    """(orientation, sided, direction) of a row, from the survival.csv columns
    ``hr_orientation`` (exp_vs_ctrl | ctrl_vs_exp), ``p_sided`` (2 | 1) and ``direction``
    (experimental | control), or from this module's names for them."""
    orientation = _cell(row, "hr_orientation") or ORIENTATIONS[0]
    orientation = CSV_ORIENTATIONS.get(str(orientation).strip(), orientation)
    sided = _cell(row, "p_sided") or "two"
    if isinstance(sided, (int, float)) and float(sided) in (1.0, 2.0):
        sided = CSV_SIDES[int(sided)]
    elif isinstance(sided, str) and sided.strip() in ("1", "2"):
        sided = CSV_SIDES[int(sided)]
    direction = _cell(row, "direction")
    if direction is not None:
        direction = CSV_DIRECTIONS.get(str(direction).strip().lower(), direction)
    return orientation, sided, direction


def check_row(row, conversion=None):
    """Run every consistency check that the row's numbers allow.

    Parameters
    ----------
    row : mapping
        A survival row (``survival.csv`` columns and the optional ``oe``, ``v``,
        ``events_total``, ``allocation_ratio``, ``direction``, ``hr_orientation``,
        ``p_sided``; ``source_row`` names the row).
    conversion : HRConversion, optional
        The conversion chosen: its HR is compared with the medians when the row reports
        no HR (and the conversion is not itself from the medians).

    Returns
    -------
    list of ConsistencyCheck
        In the order hr_outside_ci, ci_asymmetric, p_vs_ci, median_ratio,
        direction_unclear. HRs are compared as reported (before inversion), except the
        median check, which uses the experimental-vs-control HR.
    """
    label = _row_label(row)
    orientation, sided, direction = _options(row)
    inverted = _inverted(orientation)
    hr, lo, hi = _cell(row, "hr"), _cell(row, "hr_lower"), _cell(row, "hr_upper")
    ci_level = _num(row, "ci_level") or 0.95
    p, p_is_bound, p_text = _p_of(row)
    out = []
    if None not in (hr, lo, hi):
        bad = check_hr_in_ci(hr, lo, hi, row=label)
        if bad is not None:
            return [bad]
        for found in (check_ci_symmetry(hr, lo, hi, row=label),
                      check_p_vs_ci(hr, lo, hi, ci_level, p_text, p_is_bound=p_is_bound,
                                    sided=sided, row=label) if p is not None else None):
            if found is not None:
                out.append(found)
    hr_ec = None
    if hr is not None:
        hr_ec = 1.0 / float(hr) if inverted else float(hr)
    elif conversion is not None and conversion.method != "medians":
        hr_ec = conversion.hr
    m_e, m_c = _num(row, "median_exp"), _num(row, "median_ctrl")
    if hr_ec is not None and m_e is not None and m_c is not None:
        found = check_median_ratio(hr_ec, m_e, m_c, row=label)
        if found is not None:
            out.append(found)
    oe = _num(row, "oe")
    if oe is not None and inverted:
        oe = -oe
    has_events = (_cell(row, "events_exp") is not None and _cell(row, "events_ctrl")
                  is not None) or _cell(row, "events_total") is not None
    found = check_direction(
        hr=None if hr is None else (1.0 / float(hr) if inverted else float(hr)),
        direction=direction, oe=oe, median_exp=m_e, median_ctrl=m_c,
        comparison=_cell(row, "comparison"),
        needs_sign=p is not None and has_events and hr is None and oe is None,
        row=label)
    if found is not None:
        out.append(found)
    return out


@dataclass(frozen=True)
class ConversionOutcome:
    """The result of :func:`best_conversion`: one entry of the conversion log.

    Attributes
    ----------
    row : str
        The row label.
    conversion : HRConversion or None
        The method used, or None when no allowed method applies.
    rejected : tuple of (method, reason)
        Allowed methods tried before it (better evidence) and why they did not apply.
    not_allowed : tuple of (method, what it would give)
        Better methods the row's numbers allow but the analysis does not enable.
    checks : tuple of ConsistencyCheck
        Consistency findings for the row.
    """

    row: str
    conversion: HRConversion | None
    rejected: tuple = ()
    not_allowed: tuple = ()
    checks: tuple = ()

    @property
    def status(self) -> str:
        if self.conversion is not None:
            return f"converted ({self.conversion.method})"
        reasons = "; ".join(f"{m}: {r}" for m, r in self.rejected) or "no method allowed"
        return f"not converted: {reasons}"

    def to_dict(self) -> dict[str, Any]:
        """The log entry as plain Python types."""
        return {
            "row": self.row, "status": self.status,
            "conversion": None if self.conversion is None else self.conversion.to_dict(),
            "rejected": [{"method": m, "reason": r} for m, r in self.rejected],
            "not_allowed": [{"method": m, "would_give": r} for m, r in self.not_allowed],
            "checks": [c.to_dict() for c in self.checks],
        }


def _attempt(method, row, level, km):
    """One method on one row: (HRConversion, None) or (None, reason)."""
    orientation, sided, direction = _options(row)
    hr, lo, hi = _num(row, "hr"), _num(row, "hr_lower"), _num(row, "hr_upper")
    p, p_is_bound, _ = _p_of(row)
    ev_e, ev_c = _int(row, "events_exp"), _int(row, "events_ctrl")

    def missing(*keys):
        gone = [k for k in keys if _cell(row, k) is None]
        return f"needs {', '.join(keys)} (missing: {', '.join(gone)})" if gone else None

    try:
        if method == "hr_ci":
            why = missing("hr", "hr_lower", "hr_upper")
            if why:
                return None, why
            ci_level = _num(row, "ci_level")
            conv = hr_from_ci(hr, lo, hi, ci_level or 0.95, level=level,
                              orientation=orientation)
            if ci_level is None:
                conv = _with_note(conv, "ci_level not given: taken as 0.95")
            return conv, None
        if method == "oe_v":
            if _cell(row, "v") is None:
                return None, "needs v (the log-rank variance) with oe or hr"
            if _cell(row, "oe") is None and hr is None:
                return None, "needs oe or hr with v"
            return hr_from_oe_v(_num(row, "oe"), _num(row, "v"), hr=hr, level=level,
                                orientation=orientation), None
        if method == "p_events":
            if p is None:
                return None, "needs a p-value"
            if (ev_e is None or ev_c is None) and _cell(row, "events_total") is None:
                return None, "needs events_exp and events_ctrl, or events_total"
            return hr_from_p_events(
                p, events_exp=ev_e, events_ctrl=ev_c,
                events_total=_int(row, "events_total"),
                allocation_ratio=_num(row, "allocation_ratio"),
                n_exp=_int(row, "n_exp"), n_ctrl=_int(row, "n_ctrl"), hr=hr,
                direction=direction, sided=sided, p_is_bound=p_is_bound, level=level,
                orientation=orientation), None
        if method == "hr_p":
            why = missing("hr", "p_value")
            if why:
                return None, why
            return hr_from_hr_p(hr, p, sided=sided, p_is_bound=p_is_bound, level=level,
                                orientation=orientation), None
        if method == "km":
            if km is None:
                return None, "no reconstructed Kaplan-Meier data for this row"
            if km.method != "km":
                raise TypeError(f"km must be a 'km' HRConversion, got {km.method!r}")
            return km, None
        if method == "medians":
            why = missing("median_exp", "median_ctrl")
            if why:
                return None, why
            if p is None and (ev_e is None or ev_c is None):
                return None, "needs a p-value or events in both arms for the SE"
            return hr_from_medians(_num(row, "median_exp"), _num(row, "median_ctrl"),
                                   p=p, sided=sided, p_is_bound=p_is_bound,
                                   events_exp=ev_e, events_ctrl=ev_c, level=level), None
    except ValueError as err:
        if "outside its CI" in str(err):
            raise
        return None, str(err)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def _with_note(conv, note):
    return HRConversion(**{**conv.__dict__, "notes": conv.notes + (note,)})


def best_conversion(row, allowed_methods=("hr_ci", "hr_p"), level=0.95, *, km=None):
    """Convert a survival row by the best allowed method its numbers permit.

    Methods are tried in evidence order (:data:`METHODS`: hr_ci, oe_v, p_events, hr_p,
    km, medians), skipping those not in ``allowed_methods``; the first that applies is
    used.

    Parameters
    ----------
    row : mapping
        A ``survival.csv`` row (dict, or pandas Series) with optional extra keys:
        ``oe`` and ``v`` (log-rank O-E of the experimental arm and its variance),
        ``events_total`` (D), ``allocation_ratio`` (experimental : control),
        ``direction`` ("favours experimental" | "favours control"; in survival.csv
        ``experimental`` | ``control``), ``hr_orientation`` (:data:`ORIENTATIONS`, default
        experimental vs control; in survival.csv ``exp_vs_ctrl`` | ``ctrl_vs_exp``),
        ``p_sided`` ("two" default | "one"; in survival.csv ``2`` | ``1``), ``source_row``.
        Empty cells, None and NaN are absent.
    allowed_methods : sequence of str
        Subset of :data:`METHODS`.
    level : float
        Level of the CI in the record.
    km : HRConversion, optional
        The row's Kaplan-Meier reconstruction
        (:meth:`metapool.km.KMReconstruction.to_conversion`), used by ``km``.

    Returns
    -------
    ConversionOutcome
        The conversion (or None), the reasons better allowed methods did not apply, the
        better methods that would apply but are not allowed, and the consistency checks.

    Raises
    ------
    ValueError
        An unknown method, or an HR outside its CI (the row is named).
    """
    allowed = list(allowed_methods)
    unknown = [m for m in allowed if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown HR methods {unknown}; expected a subset of {METHODS}")
    _z_level(level)
    label = _row_label(row)
    orientation, sided, direction = _options(row)
    try:
        _inverted(orientation)
        if sided not in SIDES:
            raise ValueError(f"p_sided must be 'two' or 'one', got {sided!r}")
        if direction is not None:
            _direction_key(direction)
    except ValueError as err:
        raise ValueError(f"{label}: {err}") from None
    rejected, not_allowed = [], []
    chosen = None
    for method in METHODS:
        try:
            conv, reason = _attempt(method, row, level, km)
        except ValueError as err:
            raise ValueError(f"{label}: {err}") from None
        if method not in allowed:
            if conv is not None:
                not_allowed.append(
                    (method, f"HR {_fmt(conv.hr)} ({_ci_text(conv.ci_lower, conv.ci_upper)})"))
            continue
        if conv is not None:
            chosen = conv
            break
        rejected.append((method, reason))
    checks = check_row(row, chosen)
    errors = [c for c in checks if c.severity == "error"]
    if errors:
        raise ValueError(str(errors[0]))
    return ConversionOutcome(label, chosen, tuple(rejected), tuple(not_allowed),
                             tuple(checks))
