"""Benchmark of the batched engine against its peers, all measured in one run.

    .venv/bin/python benchmarks/bench_engine.py [--quick] [--seed N]

Data (fixed seed): 10,000 generic analyses of k = 10 (log effects with SEs, tau²
between 0 and 0.3) and 1,000 proportion analyses of k = 10 (20-200 participants per
study, between-study SD 0.6 on the logit scale).

Timed (``time.perf_counter``, best of 3 for the batched calls):

* metapool batched: ``pool_generic_batch`` REML + HKSJ + t prediction interval, without
  and with the Q-profile CI of tau²; DL likewise; ``pool_proportions_batch`` GLMM
  (``ci="z", pi="z"``);
* metapool looped: ``pool_generic`` and ``pool_proportions(method="GLMM")`` one analysis
  at a time over a subset (the per-fit rate is extrapolated to the full batch);
* PyMARE's batched estimators (``VarianceBasedLikelihoodEstimator("REML")``,
  ``DerSimonianLaird``; 2-D y, v with a shared intercept X) with their Knapp-Hartung
  CI (PyMARE has no prediction interval, and its Q-profile is a per-dataset loop);
* R metafor, if ``Rscript`` and metafor are installed: loops of
  ``rma(yi, vi, method="REML", test="knha")`` + ``predict()`` (+ ``confint()``) and of
  ``rma.glmm(measure="PLO", method="ML")`` + ``predict()`` over a subset, timed inside
  R with ``system.time`` (``benchmarks/metafor_loops.R``).

Printed: a table of fits per second and the ratios to metafor's and to the looped rate,
the targets of the batched engine (PASS/FAIL), and the largest difference between the
batched and the looped results on the subset. Nothing here is a test: the figures
depend on the machine; the ratios compare peers measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy

import metapool
from metapool import pool_generic, pool_proportions
from metapool.batch import pool_generic_batch, pool_proportions_batch

HERE = Path(__file__).resolve().parent

N_GENERIC, N_PROP, K = 10_000, 1_000, 10
#: targets of the batched engine (issue "A batched engine")
RATIO_IV = 100.0  # REML + HKSJ + PI: at least 100x metafor's per-fit rate
LIMIT_QP = 1.5  # seconds, 10,000 analyses with Q-profile CIs
RATIO_GLMM = 50.0  # GLMM: at least 50x rma.glmm's per-fit rate
GUIDE_IV, GUIDE_GLMM = 0.35, 1.0  # seconds, the absolute figures (information)
#: batched == looped: relative, with an absolute floor for references at 0
RTOL_IV, RTOL_GLMM, ATOL = 1e-10, 1e-7, 1e-12

COMPARED = ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "stat",
            "p_value", "tau2", "tau2_lower", "tau2_upper", "i2", "i2_lower", "i2_upper",
            "h2", "h2_lower", "h2_upper", "q", "q_p")


def make_data(seed):
    """The generic and proportion batches (fixed seed)."""
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.5, (N_GENERIC, K))
    tau2 = rng.uniform(0.0, 0.3, N_GENERIC)
    yi = (rng.normal(0.0, 0.5, N_GENERIC)[:, None]
          + rng.normal(0.0, 1.0, (N_GENERIC, K)) * np.sqrt(tau2)[:, None]
          + rng.normal(0.0, 1.0, (N_GENERIC, K)) * np.sqrt(vi))
    total = rng.integers(20, 201, (N_PROP, K))
    logit = rng.normal(-1.0, 0.5, N_PROP)[:, None] + rng.normal(0.0, 0.6, (N_PROP, K))
    events = rng.binomial(total, 1.0 / (1.0 + np.exp(-logit)))
    return yi, vi, events, total


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def loop_time(fn, n):
    t0 = time.perf_counter()
    out = [fn(i) for i in range(n)]
    return time.perf_counter() - t0, out


def max_rel_diff(batch, singles, keys):
    """Largest relative difference, batched vs looped (0 when within ATOL; None = NaN)."""
    worst, where = 0.0, None
    for i, d in enumerate(singles):
        for key in keys:
            ref = d[key]
            got = batch[key][i]
            if ref is None or np.isinf(ref):
                if not (np.isnan(got) if ref is None else got == ref):
                    return np.inf, (i, key)
                continue
            diff = abs(float(got) - float(ref))
            rel = 0.0 if diff <= ATOL else diff / max(abs(float(ref)), ATOL)
            if rel > worst:
                worst, where = rel, (i, key)
    return worst, where


def same_labels(batch, singles):
    return all(batch["status"][i] == d["status"]
               and batch["warnings"][i] == tuple(d["warnings"])
               for i, d in enumerate(singles))


def run_metafor(yi, vi, events, total, n_rma, n_confint, n_glmm):
    """Time metafor loops in R; returns {name: (seconds, fits, errors)} or a reason."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None, "Rscript not found"
    probe = subprocess.run([rscript, "-e", "suppressMessages(library(metafor))"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return None, "R package metafor not installed"
    with tempfile.TemporaryDirectory() as tmp:
        n = max(n_rma, n_confint)
        for name, a, fmt in (("yi.csv", yi[:n], "%.17g"), ("vi.csv", vi[:n], "%.17g"),
                             ("xi.csv", events[:n_glmm], "%d"),
                             ("ni.csv", total[:n_glmm], "%d")):
            np.savetxt(Path(tmp) / name, a, delimiter=",", fmt=fmt)
        proc = subprocess.run(
            [rscript, str(HERE / "metafor_loops.R"), tmp, str(n_rma), str(n_confint),
             str(n_glmm)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None, f"R failed: {proc.stderr.strip()[-300:]}"
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "versions":
            out["versions"] = (f"R {parts[1]}.{parts[2]}, metafor {parts[3]}, "
                               f"lme4 {parts[4]}")
        elif len(parts) == 4:
            out[parts[0]] = (float(parts[1]), int(parts[2]), int(parts[3]))
    return out, None


def run_pymare(yi, vi, repeats):
    try:
        from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator
    except ImportError:
        return None
    X = np.ones((yi.shape[1], 1))

    def fit(est):
        def go():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = est().fit(y=yi.T, v=vi.T, X=X)
                stats = e.summary().get_fe_stats()
            return np.ravel(stats["est"]), np.ravel(e.params_["tau2"])
        return best_of(go, repeats)

    import pymare
    return {
        "version": getattr(pymare, "__version__", "?"),
        "REML": fit(lambda: VarianceBasedLikelihoodEstimator(method="REML")),
        "DL": fit(DerSimonianLaird),
    }


def time_metapool(yi, sei, events, total, n_loop, n_loop_glmm, repeats):
    """Batched and looped metapool timings, with the results compared afterwards."""
    opts = {"method": "REML", "ci": "hksj", "pi": "t"}
    glmm = {"method": "GLMM", "ci": "z", "pi": "z"}
    r = {}
    r["iv"] = best_of(lambda: pool_generic_batch(yi, sei, tau2_ci=False, **opts), repeats)
    r["qp"] = best_of(lambda: pool_generic_batch(yi, sei, tau2_ci=True, **opts), repeats)
    r["dl"] = best_of(lambda: pool_generic_batch(yi, sei, method="DL", ci="hksj", pi="t",
                                                 tau2_ci=False), repeats)
    r["glmm"] = best_of(lambda: pool_proportions_batch(events, total, **glmm), repeats)
    r["loop"] = loop_time(
        lambda i: pool_generic(yi[i], sei[i], **opts).to_dict("model"), n_loop)
    r["loop_glmm"] = loop_time(
        lambda i: pool_proportions(events[i], total[i], **glmm).to_dict("model"),
        n_loop_glmm)
    return r


def print_table(rows):
    head = ("engine", "analyses", "seconds", "fits/s", "x metafor", "x loop", "")
    widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(len(head))]
    line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}"
                     for i, w in enumerate(widths[:-1])) + "  {}"
    print(line.format(*head).rstrip())
    print("-" * (sum(widths[:-1]) + 2 * (len(widths) - 1)))
    for r in rows:
        print(line.format(*r).rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller looped and metafor subsets (same batch sizes)")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)
    n_loop, n_loop_glmm = (100, 10) if args.quick else (500, 40)
    n_rma, n_confint, n_glmm = (100, 30, 10) if args.quick else (300, 100, 50)
    repeats = 3

    yi, vi, events, total = make_data(args.seed)
    sei = np.sqrt(vi)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    coretype = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") \
        else "?"
    print(f"metapool {metapool.__version__} ({Path(metapool.__file__).parent}), numpy "
          f"{np.__version__}, scipy {scipy.__version__}, Python "
          f"{platform.python_version()}; {cores} cores, load average {load}; "
          f"OPENBLAS_CORETYPE={coretype}")
    print(f"data: {N_GENERIC:,} generic and {N_PROP:,} proportion analyses, k = {K}, "
          f"seed {args.seed}{' (quick)' if args.quick else ''}\n")

    mp = time_metapool(yi, sei, events, total, n_loop, n_loop_glmm, repeats)
    pym = run_pymare(yi, vi, repeats)
    mf, why = run_metafor(yi, vi, events, total, n_rma, n_confint, n_glmm)

    def rate(entry):
        return entry[1] / entry[0] if entry else None

    mf_iv = rate(mf.get("rma_reml_knha_pi")) if mf else None
    mf_qp = rate(mf.get("rma_reml_knha_pi_confint")) if mf else None
    mf_gl = rate(mf.get("rma_glmm_pi")) if mf else None
    (t_iv, b_iv), (t_qp, b_qp), (t_dl, _), (t_gl, b_gl) = (
        mp["iv"], mp["qp"], mp["dl"], mp["glmm"])
    (t_loop, singles), (t_loop_gl, singles_gl) = mp["loop"], mp["loop_glmm"]
    rate_loop, rate_loop_gl = n_loop / t_loop, n_loop_glmm / t_loop_gl

    rows = []

    def add(label, n, seconds, metafor_rate=None, loop_rate=None, note=""):
        fps = n / seconds
        rows.append((label, f"{n:,}", f"{seconds:.3f}", f"{fps:,.0f}",
                     f"{fps / metafor_rate:,.1f}x" if metafor_rate else "",
                     f"{fps / loop_rate:,.1f}x" if loop_rate else "", note))

    add("metapool batched REML+HKSJ+PI", N_GENERIC, t_iv, mf_iv, rate_loop)
    add("metapool batched REML+HKSJ+PI+Q-profile", N_GENERIC, t_qp, mf_qp, rate_loop)
    add("metapool batched DL+HKSJ+PI", N_GENERIC, t_dl)
    add("metapool loop pool_generic (+Q-profile)", n_loop, t_loop, mf_qp, rate_loop,
        f"extrapolated: {N_GENERIC / rate_loop:.1f} s for {N_GENERIC:,}")
    if pym:
        add(f"PyMARE {pym['version']} batched REML, KH CI", N_GENERIC, pym["REML"][0],
            mf_iv, rate_loop, "no PI, no Q-profile")
        add(f"PyMARE {pym['version']} batched DL, KH CI", N_GENERIC, pym["DL"][0],
            note="no PI, no Q-profile")
    if mf:
        s, n, err = mf["rma_reml_knha_pi"]
        add("metafor loop rma REML knha + predict", n, s, mf_iv, rate_loop,
            f"{err} stopped with an error" if err else "")
        s, n, err = mf["rma_reml_knha_pi_confint"]
        add("metafor loop rma ... + confint", n, s, mf_qp, rate_loop,
            f"{err} stopped with an error" if err else "")
    add("metapool batched GLMM (AGHQ, 7 nodes)", N_PROP, t_gl, mf_gl, rate_loop_gl)
    add("metapool loop pool_proportions GLMM", n_loop_glmm, t_loop_gl, mf_gl,
        rate_loop_gl, f"extrapolated: {N_PROP / rate_loop_gl:.1f} s for {N_PROP:,}")
    if mf:
        s, n, err = mf["rma_glmm_pi"]
        add("metafor loop rma.glmm ML + predict", n, s, mf_gl, rate_loop_gl,
            f"{err} stopped with an error" if err else "")
    print_table(rows)
    print("\nx metafor: fits/s over metafor's fits/s for the same quantities (REML rows "
          "against rma + predict, Q-profile rows against rma + predict + confint, GLMM "
          "against rma.glmm + predict); x loop: over the looped metapool rate. Looped "
          "and metafor rates are per-fit rates on the first analyses, extrapolated.")
    print(f"metafor: {mf.get('versions', '?')}" if mf else f"metafor: not run ({why})")
    print(f"load average after the run: "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}" if hasattr(os, "getloadavg")
          else "")
    if pym:
        fb = np.array([any("fallback" in w for w in ws) for ws in b_iv["warnings"]])
        d = np.abs(pym["REML"][1][1] - b_iv["tau2"])[~fb]
        print(f"PyMARE REML vs metapool tau² where metapool converged: median "
              f"|diff| {np.median(d):.1e}, max {d.max():.1e} (PyMARE: bounded search to "
              "xtol 1e-6; metapool: Fisher scoring to 1e-12, safeguarded Newton where it "
              f"cycles, DL where neither converges: {int(fb.sum())} analyses here)")

    # batched == looped on the looped subset
    iv_keys = COMPARED
    gl_keys = (*COMPARED, "q_lrt", "q_lrt_p", "loglik", "loglik_conditional", "vt")
    e_iv, w_iv = max_rel_diff(b_qp, singles, iv_keys)
    e_gl, w_gl = max_rel_diff(b_gl, singles_gl, gl_keys)
    lab_iv, lab_gl = same_labels(b_qp, singles), same_labels(b_gl, singles_gl)
    equal = e_iv <= RTOL_IV and lab_iv and e_gl <= RTOL_GLMM and lab_gl

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    print("\ntargets")
    if mf_iv:
        ratio = (N_GENERIC / t_iv) / mf_iv
        print(f"  {verdict(ratio >= RATIO_IV)}  REML+HKSJ+PI, {N_GENERIC:,} analyses: "
              f"{ratio:,.0f}x metafor's per-fit rate (target >= {RATIO_IV:.0f}x): "
              f"{t_iv:.3f} s, metafor {N_GENERIC / mf_iv:.1f} s")
    else:
        print(f"  SKIP  REML+HKSJ+PI ratio to metafor ({why})")
    print(f"  info  REML+HKSJ+PI, {N_GENERIC:,} analyses in {t_iv:.3f} s (the issue's "
          f"figure: about {GUIDE_IV} s)")
    print(f"  {verdict(t_qp < LIMIT_QP)}  REML+HKSJ+PI with Q-profile CIs, "
          f"{N_GENERIC:,} analyses: {t_qp:.3f} s (target < {LIMIT_QP} s)")
    if mf_gl:
        ratio = (N_PROP / t_gl) / mf_gl
        print(f"  {verdict(ratio >= RATIO_GLMM)}  GLMM, {N_PROP:,} analyses: "
              f"{ratio:,.0f}x rma.glmm's per-fit rate (target >= {RATIO_GLMM:.0f}x): "
              f"{t_gl:.3f} s, metafor {N_PROP / mf_gl:.0f} s")
    else:
        print(f"  SKIP  GLMM ratio to rma.glmm ({why})")
    print(f"  info  GLMM, {N_PROP:,} analyses in {t_gl:.3f} s (the issue's figure: "
          f"under {GUIDE_GLMM} s)")
    for name, err, where, labels, tol, n in (
            ("REML+HKSJ+PI+QP", e_iv, w_iv, lab_iv, RTOL_IV, n_loop),
            ("GLMM", e_gl, w_gl, lab_gl, RTOL_GLMM, n_loop_glmm)):
        print(f"  {verdict(err <= tol and labels)}  batched == looped, {name}, first "
              f"{n}: max relative difference {err:.1e} (tolerance {tol:g}, absolute "
              f"{ATOL:g} at 0){'' if where is None else f' at {where}'}; status and "
              f"warnings {'equal' if labels else 'DIFFER'}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
