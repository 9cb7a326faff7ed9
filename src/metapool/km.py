"""Hazard ratios from digitised Kaplan-Meier curves (Guyot et al. 2012).

Where a paper shows only Kaplan-Meier curves, the individual patient data (IPD) of each arm
are reconstructed from the digitised curve and the numbers at risk by the algorithm of
Guyot et al. (2012) [1]_; a Cox model on the reconstructed data gives the HR and its SE
(``method = "km"``, strength 4 in :mod:`metapool.survival`), with the log-rank O-E and V,
the restricted mean survival time (RMST) per arm and their difference, and fit
diagnostics.

Input files (``data/raw/km/``)
------------------------------
One pair of UTF-8 CSV files per study x outcome, named by a stem (letters, digits, ``_``,
``.``, ``-``), e.g. ``Yu2015_PFS``:

``<stem>.curve.csv`` - the digitised curve, one row per point read off the figure:

======== ========================================================================
column   meaning
======== ========================================================================
arm      ``experimental`` or ``control`` (as the survival.csv comparison is written)
time     time of the point, in months (the unit of the medians), >= 0
survival survival probability in [0, 1] (a fraction, not a percentage)
======== ========================================================================

``<stem>.risk.csv`` - the numbers at risk printed under the figure:

======== ========================================================================
column   meaning
======== ========================================================================
arm      ``experimental`` or ``control``
time     time of the risk-table column, in months; the first is 0
n_risk   number at risk at that time (integer, >= 0, never increasing)
======== ========================================================================

Within an arm the rows are in time order: times never decrease, and survival never
increases (a point above the previous one is an error unless ``fix_monotone=True``, which
replaces the readings by their isotonic (non-increasing) regression and says so). Points
read at the same time (the top and bottom of a vertical drop) are merged into the lowest
reading. A point (0, 1) is added when the curve does not start at time 0; survival at
time 0 is 1 by definition. The risk table must start at 0 and must not go beyond the last
point of the curve. Total events per arm, when reported, are passed separately
(``events_exp``/``events_ctrl`` of survival.csv) and used as in [1]_.

Algorithm
---------
For each interval between consecutive risk-table times (step 1 to 5 of [1]_):

1. a point is inserted at each risk-table time that the curve lacks (the survival of the
   last point before it: the curve is a step function), so the intervals start on a
   point;
2. first guess of the number censored in interval ``i``:
   ``round(n_i S(t_{i+1}) / S(t_i) - n_{i+1})``;
3. the censored are spread evenly over the interval (censoring assumed uniform within an
   interval) and counted between consecutive points; the events at each point are
   ``d_k = round(n_k (1 - S_k / KM_last))``, with ``KM_last`` the reconstructed KM at the
   last point with an event, and ``n_{k+1} = n_k - d_k - c_k``;
4. the number censored is adjusted by the difference between the reconstructed and the
   reported number at risk at the start of the next interval and step 3 repeated, until
   they agree (or no censoring is left to remove, or the adjustment cycles, in which case
   the reading closest from below is kept); when the reported number cannot be reached,
   the reconstructed one carries on and the notes say so;
5. last interval: censoring at the average rate of the previous intervals (per unit of
   time), capped at the number at risk; if the total number of events is given, the
   censoring in the last interval is adjusted until the reconstructed total matches
   (when the events before the last interval already reach it, the last interval gets no
   events and no censoring).

Events are placed at the point's time, censorings at the midpoint between the two points
they fall between, and those still at risk after the last point are censored there.
Rounding is half-to-even (as R's ``round`` in the published code). Negative event counts
(a reading above the reconstructed curve) are set to 0.

Estimates
---------
* Cox model: ``statsmodels`` ``PHReg``, experimental = 1, Efron's method for ties (R
  ``coxph``'s default; the reconstructed data are tied at the digitised times); Wald SE.
* Log-rank: O-E of the experimental arm and the hypergeometric variance V.
* RMST up to a horizon (default: the earlier of the two arms' last times; it may not
  exceed it): the area under the KM curve; variance
  ``sum_j A_j^2 d_j / (n_j (n_j - d_j))`` over event times ``t_j <= tau`` with
  ``A_j = int_{t_j}^{tau} S(u) du`` (Klein & Moeschberger [3]_; survRM2 [4]_), the
  difference experimental - control with ``SE = sqrt(SE_e^2 + SE_c^2)`` (independent
  arms).
* Diagnostics per arm: RMSE and maximum absolute difference between the KM curve of the
  reconstructed data and the digitised points (after merging equal times and the optional
  monotone fix; inserted risk-time points excluded), and the reconstructed (``time >= t``)
  vs the reported numbers at risk.

References
----------
.. [1] Guyot P, Ades AE, Ouwens MJNM, Welton NJ. Enhanced secondary analysis of survival
   data: reconstructing the data from published Kaplan-Meier survival curves. BMC Med Res
   Methodol 2012;12:9.
.. [2] Tierney JF, Stewart LA, Ghersi D, Burdett S, Sydes MR. Practical methods for
   incorporating summary time-to-event data into meta-analysis. Trials 2007;8:16.
.. [3] Klein JP, Moeschberger ML. Survival Analysis: Techniques for Censored and Truncated
   Data. 2nd ed. Springer; 2003 (section 4.5, mean survival time).
.. [4] Uno H, Claggett B, Tian L, et al. Moving beyond the hazard ratio in quantifying the
   between-group difference in survival analysis. J Clin Oncol 2014;32:2380-2385.
.. [5] Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat
   Assoc 1977;72:557-565.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .survival import HRConversion, _plain, _record

__all__ = [
    "ARMS",
    "ArmReconstruction",
    "KMCurve",
    "KMReconstruction",
    "kaplan_meier",
    "km_paths",
    "logrank",
    "read_km",
    "reconstruct_hr",
    "reconstruct_ipd",
    "rmst",
]

#: Arm names of the KM input files, as the survival.csv comparison is written.
ARMS = ("experimental", "control")
_STEM_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MAX_ITER = 10_000


# --------------------------------------------------------------------------- input
@dataclass(frozen=True)
class KMCurve:
    """Digitised Kaplan-Meier curve and risk table of one arm.

    Attributes
    ----------
    arm : str
        ``experimental`` or ``control``.
    time, survival : ndarray
        Digitised points, in file order.
    risk_time, n_risk : ndarray
        The risk table.
    """

    arm: str
    time: np.ndarray
    survival: np.ndarray
    risk_time: np.ndarray
    n_risk: np.ndarray


def km_paths(directory, stem):
    """Paths of the curve and risk-table files of one stem.

    Returns
    -------
    curve, risk : pathlib.Path
        ``<directory>/<stem>.curve.csv`` and ``<directory>/<stem>.risk.csv``.
    """
    if not _STEM_RE.match(str(stem)):
        raise ValueError(f"KM file stem {stem!r} may use letters, digits, '_', '.' and "
                         "'-' only")
    base = Path(directory)
    return base / f"{stem}.curve.csv", base / f"{stem}.risk.csv"


def _read_csv(path, columns, kinds):
    path = os.fspath(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: file is empty (no header row)") from None
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in columns if c not in raw.columns]
    unknown = [c for c in raw.columns if c not in columns]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise ValueError(f"{path}: {'; '.join(parts)} (expected {', '.join(columns)})")
    out = {c: [] for c in columns}
    for number, (_, rec) in enumerate(raw.iterrows(), start=1):
        cells = {c: str(rec[c]).strip() for c in columns}
        if all(v == "" for v in cells.values()):
            continue
        for c in columns:
            text = cells[c]
            where = f"{path}, row {number}, column '{c}'"
            if text == "":
                raise ValueError(f"{where}: empty cell")
            if kinds[c] == "arm":
                if text not in ARMS:
                    raise ValueError(f"{where}: '{text}' is not an arm; expected "
                                     f"{' or '.join(ARMS)}")
                out[c].append(text)
            elif kinds[c] == "int":
                try:
                    value = int(text)
                except ValueError:
                    raise ValueError(f"{where}: '{text}' is not an integer") from None
                out[c].append(value)
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{where}: '{text}' is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(f"{where}: '{text}' is not a finite number")
                out[c].append(value)
    return out


def read_km(curve_path, risk_path):
    """Read a digitised curve file and its risk-table file (format in the module docstring).

    Parameters
    ----------
    curve_path, risk_path : path-like
        ``<stem>.curve.csv`` (arm, time, survival) and ``<stem>.risk.csv``
        (arm, time, n_risk).

    Returns
    -------
    dict of str to KMCurve
        One entry per arm present in the files (each arm must be in both).

    Raises
    ------
    ValueError
        File, row and column of the first problem; arms present in one file only.
    """
    curve = _read_csv(curve_path, ("arm", "time", "survival"),
                      {"arm": "arm", "time": "num", "survival": "num"})
    risk = _read_csv(risk_path, ("arm", "time", "n_risk"),
                     {"arm": "arm", "time": "num", "n_risk": "int"})
    arms_c = [a for a in ARMS if a in curve["arm"]]
    arms_r = [a for a in ARMS if a in risk["arm"]]
    if not arms_c:
        raise ValueError(f"{os.fspath(curve_path)}: no curve points")
    if arms_c != arms_r:
        raise ValueError(f"arms differ between {os.fspath(curve_path)} ({', '.join(arms_c)})"
                         f" and {os.fspath(risk_path)} ({', '.join(arms_r) or 'none'})")
    out = {}
    for arm in arms_c:
        ci = [i for i, a in enumerate(curve["arm"]) if a == arm]
        ri = [i for i, a in enumerate(risk["arm"]) if a == arm]
        out[arm] = KMCurve(
            arm,
            np.array([curve["time"][i] for i in ci], dtype=float),
            np.array([curve["survival"][i] for i in ci], dtype=float),
            np.array([risk["time"][i] for i in ri], dtype=float),
            np.array([risk["n_risk"][i] for i in ri], dtype=int),
        )
    return out


# --------------------------------------------------------------------------- KM tools
def kaplan_meier(time, event):
    """Kaplan-Meier estimate.

    Parameters
    ----------
    time : array_like
        Follow-up times (>= 0).
    event : array_like of {0, 1}
        1 for an event, 0 for censoring.

    Returns
    -------
    t, n_risk, n_event, survival : ndarray
        At each distinct event time: the time, number at risk (``time >= t``), events and
        the KM survival just after it.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    if time.shape != event.shape or time.ndim != 1:
        raise ValueError("time and event must be 1-D arrays of the same length")
    order = np.sort(time)
    t = np.unique(time[event == 1])
    n_risk = len(time) - np.searchsorted(order, t, side="left")
    ev_sorted = np.sort(time[event == 1])
    n_event = (np.searchsorted(ev_sorted, t, side="right")
               - np.searchsorted(ev_sorted, t, side="left"))
    surv = np.cumprod(1.0 - n_event / n_risk)
    return t, n_risk, n_event, surv


def _km_at(points, t, surv):
    """Right-continuous KM step function evaluated at ``points``."""
    idx = np.searchsorted(t, points, side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)] if len(surv) else 1.0, 1.0)


def rmst(time, event, horizon):
    """Restricted mean survival time to ``horizon`` and its standard error.

    ``RMST = int_0^tau S(u) du`` under the KM curve; ``var = sum_{t_j <= tau} A_j^2 d_j /
    (n_j (n_j - d_j))`` with ``A_j = int_{t_j}^tau S(u) du`` (a term is 0 when
    ``n_j = d_j``, as survRM2).

    Returns
    -------
    rmst, se : float

    References
    ----------
    Klein & Moeschberger 2003, section 4.5; Uno et al. 2014, J Clin Oncol 32:2380.
    """
    if not horizon > 0:
        raise ValueError(f"the RMST horizon must be positive, got {horizon!r}")
    t, n, d, s = kaplan_meier(time, event)
    keep = t <= horizon
    t, n, d, s = t[keep], n[keep], d[keep], s[keep]
    grid = np.concatenate([[0.0], t, [horizon]])
    level = np.concatenate([[1.0], s])
    pieces = level * np.diff(grid)
    area = float(pieces.sum())
    # area after each event time t_j: the pieces from t_j to tau
    after = np.cumsum(pieces[::-1])[::-1][1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n > d, d / (n * (n - d)), 0.0)
    var = float(np.sum(after ** 2 * w))
    return area, math.sqrt(var)


def logrank(time, event, group):
    """Log-rank O-E of group 1 and its hypergeometric variance.

    Returns
    -------
    oe, v, p : float
        Observed minus expected events in group 1, the variance V and the two-sided
        p-value of ``(O-E)^2 / V`` on 1 df.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    group = np.asarray(group, dtype=int)
    t = np.unique(time[event == 1])
    s_all = np.sort(time)
    s_1 = np.sort(time[group == 1])
    n = len(time) - np.searchsorted(s_all, t, side="left")
    n1 = len(s_1) - np.searchsorted(s_1, t, side="left")
    e_all = np.sort(time[event == 1])
    e_1 = np.sort(time[(event == 1) & (group == 1)])
    d = np.searchsorted(e_all, t, "right") - np.searchsorted(e_all, t, "left")
    d1 = np.searchsorted(e_1, t, "right") - np.searchsorted(e_1, t, "left")
    frac = n1 / n
    oe = float(np.sum(d1 - d * frac))
    with np.errstate(divide="ignore", invalid="ignore"):
        v_terms = np.where(n > 1, d * frac * (1 - frac) * (n - d) / (n - 1), 0.0)
    v = float(np.sum(v_terms))
    p = float(stats.chi2.sf(oe ** 2 / v, 1)) if v > 0 else None
    return oe, v, p


# --------------------------------------------------------------------------- Guyot
def _isotonic_decreasing(y):
    """Least-squares non-increasing fit (pool adjacent violators)."""
    values, counts = [], []
    for v in -np.asarray(y, dtype=float):
        values.append(v)
        counts.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            c = counts[-2] + counts[-1]
            values[-2] = (values[-2] * counts[-2] + values[-1] * counts[-1]) / c
            counts[-2] = c
            values.pop()
            counts.pop()
    return -np.repeat(values, counts)


def _prepare(time, survival, risk_time, n_risk, fix_monotone):
    """Validate and normalise one arm's input; returns (t, s, digitised mask, lower, n, notes)."""
    t = np.atleast_1d(np.asarray(time, dtype=float))
    s = np.atleast_1d(np.asarray(survival, dtype=float))
    rt = np.atleast_1d(np.asarray(risk_time, dtype=float))
    nr = np.atleast_1d(np.asarray(n_risk, dtype=float))
    notes = []
    if t.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"time and survival must be 1-D and of the same length, got "
                         f"{t.shape} and {s.shape}")
    if len(t) < 2:
        raise ValueError("the digitised curve needs at least 2 points")
    if rt.shape != nr.shape or rt.ndim != 1 or len(rt) < 1:
        raise ValueError("risk_time and n_risk must be 1-D, non-empty and of the same "
                         "length")
    for name, a in (("time", t), ("survival", s), ("risk_time", rt), ("n_risk", nr)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite numbers")
    if np.any(t < 0):
        raise ValueError(f"time must be >= 0, got {t.min():g}")
    if np.any(s < 0) or np.any(s > 1):
        hint = " (give fractions, not percentages)" if s.max() > 1 else ""
        raise ValueError(f"survival must lie in [0, 1], got {s.min():g} to "
                         f"{s.max():g}{hint}")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        k = back[0] + 1
        raise ValueError(f"time must not decrease: point {k + 1} (t = {t[k]:g}) comes "
                         f"after t = {t[k - 1]:g}; give the points in time order")
    # merge points read at the same time: the bottom of a vertical drop
    if np.any(np.diff(t) == 0):
        uniq, first = np.unique(t, return_index=True)
        merged = np.minimum.reduceat(s, first)
        notes.append(f"{len(t) - len(uniq)} point(s) at an already used time merged into "
                     "the lowest reading")
        t, s = uniq, merged
    up = np.flatnonzero(np.diff(s) > 0)
    if up.size:
        if not fix_monotone:
            k = up[0] + 1
            raise ValueError(
                f"survival must not increase with time: S = {s[k]:g} at t = {t[k]:g} is "
                f"above S = {s[k - 1]:g} at t = {t[k - 1]:g}; correct the reading, or "
                "pass fix_monotone=True to use the isotonic regression")
        fixed = _isotonic_decreasing(s)
        notes.append(f"survival readings made non-increasing by isotonic regression "
                     f"({int(np.sum(fixed != s))} of {len(s)} points changed, largest "
                     f"change {np.max(np.abs(fixed - s)):.4f})")
        s = fixed
    # risk table
    if np.any(nr != np.round(nr)) or np.any(nr < 0):
        raise ValueError("n_risk must be whole numbers >= 0")
    nr = nr.astype(int)
    if rt[0] != 0:
        raise ValueError(f"the risk table must start at time 0 (the number randomised), "
                         f"its first time is {rt[0]:g}")
    if np.any(np.diff(rt) <= 0):
        raise ValueError("risk-table times must be strictly increasing")
    if nr[0] < 1:
        raise ValueError("the number at risk at time 0 must be at least 1")
    if np.any(np.diff(nr) > 0):
        k = int(np.flatnonzero(np.diff(nr) > 0)[0]) + 1
        raise ValueError(f"numbers at risk must not increase: {nr[k]} at t = {rt[k]:g} "
                         f"after {nr[k - 1]} at t = {rt[k - 1]:g}")
    if rt[-1] > t[-1]:
        raise ValueError(f"the risk table goes beyond the curve: n at risk given at "
                         f"t = {rt[-1]:g} but the last digitised point is at t = "
                         f"{t[-1]:g}; drop the risk-table columns after the curve ends")
    digitised = np.ones(len(t), dtype=bool)
    if t[0] > 0:
        t = np.concatenate([[0.0], t])
        s = np.concatenate([[1.0], s])
        digitised = np.concatenate([[False], digitised])
        notes.append("point (0, 1) added: the curve starts at survival 1 at time 0")
    elif s[0] != 1.0:
        notes.append(f"survival at time 0 read as {s[0]:g}: set to 1")
        s = s.copy()
        s[0] = 1.0
        digitised[0] = False
    # a point at every risk-table time (the step function's value there)
    missing = rt[~np.isin(rt, t)]
    if missing.size:
        idx = np.searchsorted(t, missing, side="right") - 1
        t = np.concatenate([t, missing])
        s = np.concatenate([s, s[idx]])
        digitised = np.concatenate([digitised, np.zeros(missing.size, dtype=bool)])
        order = np.argsort(t, kind="mergesort")
        t, s, digitised = t[order], s[order], digitised[order]
    lower = np.searchsorted(t, rt, side="left")
    return t, s, digitised, lower, nr, notes


class _Guyot:
    """Working state of the reconstruction of one arm (0-based port of [1]'s steps)."""

    def __init__(self, t, s, lower, n_risk):
        self.t, self.s = t, s
        self.n_t = len(t)
        self.lower = lower
        self.n_int = len(n_risk)
        self.upper = np.append(lower[1:] - 1, self.n_t - 1)
        self.n_risk = n_risk.copy()
        self.n_censor = np.zeros(self.n_int, dtype=int)
        self.n_hat = np.full(self.n_t + 1, n_risk[0] + 1, dtype=int)
        self.cen = np.zeros(self.n_t, dtype=int)
        self.d = np.zeros(self.n_t, dtype=int)
        self.km = np.ones(self.n_t)
        self.last_i = np.zeros(self.n_int, dtype=int)
        self.notes = []

    def spread(self, n_c, a, b):
        """Spread n_c censorings evenly over (t[a], t[b]); count them between points."""
        self.cen[a:b] = 0
        if n_c <= 0 or b <= a:
            return
        ct = self.t[a] + np.arange(1, n_c + 1) * (self.t[b] - self.t[a]) / (n_c + 1)
        breaks = self.t[a:b + 1]
        # bins (b_j, b_j+1], the first closed on the left (R's hist)
        idx = np.clip(np.searchsorted(breaks, ct, side="left") - 1, 0, b - a - 1)
        self.cen[a:b] = np.bincount(idx, minlength=b - a)

    def fill(self, i, last):
        """Events and numbers at risk over interval i, starting from KM_last = km[last]."""
        t_first = self.lower[i]
        self.n_hat[t_first] = self.n_risk[i]
        for k in range(t_first, self.upper[i] + 1):
            n_k = self.n_hat[k]
            if i == 0 and k == 0:
                d_k, km_k = 0, 1.0
            elif n_k <= 0 or self.km[last] <= 0:
                d_k, km_k = 0, self.km[last]
            else:
                d_k = int(np.rint(n_k * (1.0 - self.s[k] / self.km[last])))
                d_k = min(max(d_k, 0), n_k)
                km_k = self.km[last] * (1.0 - d_k / n_k)
            self.d[k], self.km[k] = d_k, km_k
            nxt = n_k - d_k - self.cen[k]
            if nxt < 0:  # no more censored than at risk
                self.cen[k] = n_k - d_k
                nxt = 0
            self.n_hat[k + 1] = nxt
            if d_k != 0:
                last = k
        return last

    def interval(self, i):
        """Steps 2-4 for interval i < n_int - 1."""
        a, b = self.lower[i], self.lower[i + 1]
        target = int(self.n_risk[i + 1])
        s0 = self.s[a]
        n_c = int(np.rint(self.n_risk[i] * self.s[b] / s0 - target)) if s0 > 0 else 0
        seen = {}
        for _ in range(_MAX_ITER):
            n_c = max(n_c, 0)
            self.spread(n_c, a, b)
            last = self.fill(i, self.last_i[i])
            end = int(self.n_hat[b])
            seen[n_c] = end
            if end == target or (end < target and n_c == 0):
                break
            nxt = max(n_c + end - target, 0)
            if nxt in seen:  # cycling between two readings: keep the closest from below
                below = [c for c, e in seen.items() if e <= target]
                n_c = (max(below, key=lambda c: seen[c]) if below
                       else min(seen, key=lambda c: seen[c]))
                self.spread(n_c, a, b)
                last = self.fill(i, self.last_i[i])
                end = int(self.n_hat[b])
                break
            n_c = nxt
        self.n_censor[i] = int(self.cen[a:b].sum())
        if end != target:
            self.notes.append(
                f"n at risk at t = {self.t[b]:g}: reconstructed {end}, reported {target} "
                "(not reachable with the digitised drops); the reconstruction carries on "
                f"from {end}")
            self.n_risk[i + 1] = end
        self.last_i[i + 1] = last

    def last_interval(self, total_events):
        """Step 5."""
        i = self.n_int - 1
        a, b = self.lower[i], self.upper[i]
        if self.n_int > 1:
            span = self.t[self.upper[i - 1]] - self.t[self.lower[0]]
            rate = self.n_censor[:i].sum() / span if span > 0 else 0.0
            n_c = min(int(np.rint(rate * (self.t[b] - self.t[a]))), int(self.n_risk[i]))
        else:
            n_c = 0
        self.spread(n_c, a, b)
        self.fill(i, self.last_i[i])
        if total_events is None:
            self.n_censor[i] = int(self.cen[a:b].sum())
            return
        total_events = int(total_events)
        before = int(self.d[:a].sum()) if self.n_int > 1 else 0
        if self.n_int > 1 and before >= total_events:
            self.d[a:] = 0
            self.cen[a:b] = 0
            self.n_hat[a:] = self.n_risk[i]
            self.n_censor[i] = 0
            if before > total_events:
                self.notes.append(
                    f"{before} events reconstructed before t = {self.t[a]:g} exceed the "
                    f"reported total {total_events}: no events after it")
            return
        seen = {}
        for _ in range(_MAX_ITER):
            n_d = int(self.d.sum())
            seen[n_c] = n_d
            if n_d == total_events or (n_d < total_events and n_c == 0):
                break
            nxt = max(n_c + n_d - total_events, 0)
            if nxt in seen:
                below = [c for c, e in seen.items() if e <= total_events]
                n_c = (max(below, key=lambda c: seen[c]) if below
                       else min(seen, key=lambda c: seen[c]))
                self.spread(n_c, a, b)
                self.fill(i, self.last_i[i])
                break
            n_c = nxt
            self.spread(n_c, a, b)
            self.fill(i, self.last_i[i])
        self.n_censor[i] = int(self.cen[a:b].sum())
        n_d = int(self.d.sum())
        if n_d != total_events:
            self.notes.append(f"reconstructed total events {n_d}, reported "
                              f"{total_events} (not reachable by censoring in the last "
                              "interval)")

    def ipd(self, n0):
        t_ev = np.repeat(self.t, self.d)
        mid = (self.t[:-1] + self.t[1:]) / 2.0
        t_cen = np.repeat(mid, self.cen[:-1])
        rest = n0 - len(t_ev) - len(t_cen)
        if rest < 0:  # pragma: no cover - excluded by the n at risk bookkeeping
            raise RuntimeError("reconstruction assigned more patients than randomised")
        time = np.concatenate([t_ev, t_cen, np.full(rest, self.t[-1])])
        event = np.concatenate([np.ones(len(t_ev), int), np.zeros(len(t_cen) + rest, int)])
        return time, event


@dataclass(frozen=True)
class ArmReconstruction:
    """Reconstructed individual data of one arm and how well they fit.

    Attributes
    ----------
    arm : str
    time, event : ndarray
        The reconstructed IPD (event 1, censored 0).
    risk_time, n_risk_reported, n_risk_reconstructed : ndarray
        The risk table and the numbers at risk of the reconstructed data (``time >= t``).
    n_events, n_censored : int
    rmse, max_abs_diff : float
        Between the KM curve of the reconstructed data and the digitised points.
    n_points : int
        Digitised points compared.
    total_events : int or None
        The reported total events used, if any.
    notes : tuple of str
    """

    arm: str
    time: np.ndarray
    event: np.ndarray
    risk_time: np.ndarray
    n_risk_reported: np.ndarray
    n_risk_reconstructed: np.ndarray
    n_events: int
    n_censored: int
    rmse: float
    max_abs_diff: float
    n_points: int
    total_events: int | None = None
    notes: tuple = ()

    def to_dict(self, include_ipd=False) -> dict[str, Any]:
        """Plain-type summary (the IPD itself only with ``include_ipd``)."""
        out = {
            "arm": self.arm, "n": len(self.time), "n_events": int(self.n_events),
            "n_censored": int(self.n_censored),
            "total_events_reported": self.total_events,
            "risk_time": [float(x) for x in self.risk_time],
            "n_risk_reported": [int(x) for x in self.n_risk_reported],
            "n_risk_reconstructed": [int(x) for x in self.n_risk_reconstructed],
            "rmse": _plain(self.rmse), "max_abs_diff": _plain(self.max_abs_diff),
            "n_points": int(self.n_points), "notes": list(self.notes),
        }
        if include_ipd:
            out["ipd"] = {"time": [float(x) for x in self.time],
                          "event": [int(x) for x in self.event]}
        return out


def reconstruct_ipd(time, survival, risk_time, n_risk, *, total_events=None,
                    fix_monotone=False, arm="arm"):
    """Reconstruct one arm's individual data from a digitised KM curve (Guyot et al. 2012).

    Parameters
    ----------
    time, survival : array_like
        Digitised points in time order (survival as a fraction).
    risk_time, n_risk : array_like
        Numbers at risk; the first time is 0.
    total_events : int, optional
        Reported total events of the arm: the last interval's censoring is adjusted to
        match it.
    fix_monotone : bool
        Replace survival readings that increase by their isotonic regression (noted)
        instead of raising.
    arm : str
        Label for the record.

    Returns
    -------
    ArmReconstruction

    Raises
    ------
    ValueError
        Times that decrease, survival that increases (without ``fix_monotone``) or lies
        outside [0, 1], a risk table that does not start at 0, increases, or goes beyond
        the last point of the curve.

    References
    ----------
    Guyot et al. 2012, BMC Med Res Methodol 12:9 (algorithm and published R code).
    """
    if total_events is not None and (total_events != int(total_events) or total_events < 0):
        raise ValueError(f"total_events must be a whole number >= 0, got {total_events!r}")
    t, s, digitised, lower, nr, notes = _prepare(time, survival, risk_time, n_risk,
                                                 fix_monotone)
    g = _Guyot(t, s, lower, nr)
    for i in range(g.n_int - 1):
        g.interval(i)
    g.last_interval(total_events)
    ipd_t, ipd_e = g.ipd(int(nr[0]))
    rt = np.asarray(risk_time, dtype=float)
    srt = np.sort(ipd_t)
    n_rec = len(ipd_t) - np.searchsorted(srt, rt, side="left")
    km_t, _, _, km_s = kaplan_meier(ipd_t, ipd_e)
    pts_t, pts_s = t[digitised], s[digitised]
    diff = _km_at(pts_t, km_t, km_s) - pts_s
    rmse = float(np.sqrt(np.mean(diff ** 2))) if diff.size else None
    mad = float(np.max(np.abs(diff))) if diff.size else None
    return ArmReconstruction(
        arm=arm, time=ipd_t, event=ipd_e, risk_time=rt,
        n_risk_reported=np.asarray(n_risk, dtype=int), n_risk_reconstructed=n_rec,
        n_events=int(ipd_e.sum()), n_censored=int(len(ipd_e) - ipd_e.sum()),
        rmse=rmse, max_abs_diff=mad, n_points=int(digitised.sum()),
        total_events=None if total_events is None else int(total_events),
        notes=tuple(notes + g.notes))


# --------------------------------------------------------------------------- two arms
@dataclass(frozen=True)
class KMReconstruction:
    """HR, log-rank and RMST from two reconstructed arms.

    Attributes
    ----------
    log_hr, se : float
        Cox log HR (experimental vs control) and its Wald SE.
    hr, ci_lower, ci_upper, level : float
        ``exp(log_hr)`` and its Wald CI at ``level``.
    p_value : float
        Wald p-value of the Cox coefficient.
    ties : str
        Tie handling of the Cox model.
    logrank_oe, logrank_v, logrank_p : float
        Log-rank O-E of the experimental arm, its variance and p-value.
    horizon : float
        RMST horizon.
    rmst_exp, rmst_exp_se, rmst_ctrl, rmst_ctrl_se : float
    rmst_diff, rmst_diff_se, rmst_diff_lower, rmst_diff_upper : float
        Experimental - control, with its Wald CI at ``level``.
    arms : dict of str to ArmReconstruction
    notes : tuple of str
    """

    log_hr: float
    se: float
    hr: float
    ci_lower: float
    ci_upper: float
    level: float
    p_value: float
    ties: str
    logrank_oe: float
    logrank_v: float
    logrank_p: float | None
    horizon: float
    rmst_exp: float
    rmst_exp_se: float
    rmst_ctrl: float
    rmst_ctrl_se: float
    rmst_diff: float
    rmst_diff_se: float
    rmst_diff_lower: float
    rmst_diff_upper: float
    arms: dict = field(default_factory=dict)
    notes: tuple = ()

    def to_dict(self, include_ipd=False) -> dict[str, Any]:
        """Plain-type record (None where absent, never NaN)."""
        out = {k: _plain(getattr(self, k)) for k in (
            "log_hr", "se", "hr", "ci_lower", "ci_upper", "level", "p_value", "ties",
            "logrank_oe", "logrank_v", "logrank_p", "horizon", "rmst_exp", "rmst_exp_se",
            "rmst_ctrl", "rmst_ctrl_se", "rmst_diff", "rmst_diff_se", "rmst_diff_lower",
            "rmst_diff_upper")}
        out["arms"] = {a: r.to_dict(include_ipd) for a, r in self.arms.items()}
        out["notes"] = list(self.notes)
        return out

    def to_conversion(self, level=None, source=None) -> HRConversion:
        """The Cox HR as an :class:`~metapool.survival.HRConversion` (``method="km"``).

        Parameters
        ----------
        level : float, optional
            Level of the record's CI (default: this reconstruction's).
        source : str, optional
            Where the curves come from (e.g. the file stem), kept in ``inputs``.
        """
        e, c = self.arms["experimental"], self.arms["control"]
        inputs = {
            "source": source, "n_exp": len(e.time), "n_ctrl": len(c.time),
            "events_exp": e.n_events, "events_ctrl": c.n_events,
            "total_events_exp": e.total_events, "total_events_ctrl": c.total_events,
            "rmse_exp": e.rmse, "rmse_ctrl": c.rmse,
            "max_abs_diff_exp": e.max_abs_diff, "max_abs_diff_ctrl": c.max_abs_diff,
            "n_risk_reported_exp": [int(x) for x in e.n_risk_reported],
            "n_risk_reconstructed_exp": [int(x) for x in e.n_risk_reconstructed],
            "n_risk_reported_ctrl": [int(x) for x in c.n_risk_reported],
            "n_risk_reconstructed_ctrl": [int(x) for x in c.n_risk_reconstructed],
            "ties": self.ties,
        }
        formula = (f"Cox model (statsmodels PHReg, {self.ties} ties) on IPD reconstructed "
                   f"from the digitised KM curves (Guyot et al. 2012): yi = ln HR = "
                   f"{self.log_hr:.4f}, SE = {self.se:.4f} (Wald)")
        if self.logrank_v > 0:
            peto = math.exp(self.logrank_oe / self.logrank_v)
            logrank_note = (f"log-rank O-E = {self.logrank_oe:.3f}, "
                            f"V = {self.logrank_v:.3f} (Peto HR {peto:.3f})")
        else:
            logrank_note = "log-rank V = 0"
        rmst_note = (f"RMST to {self.horizon:g}: {self.rmst_exp:.2f} vs "
                     f"{self.rmst_ctrl:.2f}, difference {self.rmst_diff:.2f} "
                     f"(SE {self.rmst_diff_se:.2f})")
        fit_note = "curve fit RMSE " + ", ".join(
            f"{'n/a' if a.rmse is None else f'{a.rmse:.4f}'} ({a.arm})" for a in (e, c))
        notes = [logrank_note, rmst_note, fit_note]
        notes += [f"experimental: {n}" for n in e.notes]
        notes += [f"control: {n}" for n in c.notes]
        notes += list(self.notes)
        return _record("km", self.log_hr, self.se, self.level if level is None else level,
                       inputs, formula, False, notes)


def _as_curve(arg, arm):
    if isinstance(arg, KMCurve):
        return arg
    raise TypeError(f"{arm} must be a KMCurve (see read_km), got {type(arg).__name__}")


def reconstruct_hr(experimental, control, *, total_events=None, horizon=None, level=0.95,
                   fix_monotone=False, ties="efron"):
    """Reconstruct both arms and estimate the HR, log-rank statistics and RMST.

    Parameters
    ----------
    experimental, control : KMCurve
        Digitised curves and risk tables (:func:`read_km`).
    total_events : dict, optional
        Reported total events per arm, ``{"experimental": int or None, "control": ...}``.
    horizon : float, optional
        RMST horizon; default the earlier of the two arms' last times. It may not exceed
        either arm's last time.
    level : float
        Level of the CIs.
    fix_monotone : bool
        See :func:`reconstruct_ipd`.
    ties : {"efron", "breslow"}
        Tie handling of the Cox model.

    Returns
    -------
    KMReconstruction

    References
    ----------
    Guyot et al. 2012; Efron 1977 (ties); Uno et al. 2014 (RMST).
    """
    from statsmodels.duration.hazard_regression import PHReg

    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    total_events = dict(total_events or {})
    unknown = set(total_events) - set(ARMS)
    if unknown:
        raise ValueError(f"total_events keys must be {ARMS}, got {sorted(unknown)}")
    arms = {}
    for name, arg in (("experimental", experimental), ("control", control)):
        curve = _as_curve(arg, name)
        try:
            arms[name] = reconstruct_ipd(curve.time, curve.survival, curve.risk_time,
                                         curve.n_risk, total_events=total_events.get(name),
                                         fix_monotone=fix_monotone, arm=name)
        except ValueError as err:
            raise ValueError(f"{name} arm: {err}") from None
    e, c = arms["experimental"], arms["control"]
    time = np.concatenate([e.time, c.time])
    event = np.concatenate([e.event, c.event])
    group = np.concatenate([np.ones(len(e.time), int), np.zeros(len(c.time), int)])
    notes = []
    if e.n_events == 0 or c.n_events == 0:
        raise ValueError("no events reconstructed in one arm: the Cox HR is not estimable")
    fit = PHReg(time, group[:, None].astype(float), status=event, ties=ties).fit()
    log_hr, se = float(fit.params[0]), float(fit.bse[0])
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    oe, v, lr_p = logrank(time, event, group)
    end = min(float(e.time.max()), float(c.time.max()))
    if horizon is None:
        horizon = end
        notes.append(f"RMST horizon {end:g}: the earlier end of follow-up of the two arms")
    elif not 0 < horizon <= end:
        raise ValueError(f"the RMST horizon must lie in (0, {end:g}] (the earlier end of "
                         f"follow-up of the two arms), got {horizon!r}")
    r_e, se_e = rmst(e.time, e.event, horizon)
    r_c, se_c = rmst(c.time, c.event, horizon)
    diff, diff_se = r_e - r_c, math.sqrt(se_e ** 2 + se_c ** 2)
    return KMReconstruction(
        log_hr=log_hr, se=se, hr=math.exp(log_hr), ci_lower=math.exp(log_hr - z * se),
        ci_upper=math.exp(log_hr + z * se), level=float(level),
        p_value=float(2 * stats.norm.sf(abs(log_hr / se))), ties=ties,
        logrank_oe=oe, logrank_v=v, logrank_p=lr_p, horizon=float(horizon),
        rmst_exp=r_e, rmst_exp_se=se_e, rmst_ctrl=r_c, rmst_ctrl_se=se_c,
        rmst_diff=diff, rmst_diff_se=diff_se, rmst_diff_lower=diff - z * diff_se,
        rmst_diff_upper=diff + z * diff_se, arms=arms, notes=tuple(notes))
