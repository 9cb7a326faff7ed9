#!/usr/bin/env Rscript
# Generate the metafor golden values used by metapool's parity tests.
#
# Run from the repository root:
#     Rscript tests/golden/make_goldens.R
#
# Writes
#   tests/golden/inputs/pritz1997.csv              (from metadat::dat.pritz1997)
#   tests/golden/inputs/nielweise2007_control.csv  (from metadat::dat.nielweise2007, control arm)
#   tests/golden/inputs/bcg_logrr.csv              (escalc(measure = "RR") on metadat::dat.bcg)
#   tests/golden/metafor_goldens.json
# and reads the hand-entered inputs (orr_default, dcr_default, steurer2006_hr, hr_default,
# toy_tau2zero) from tests/golden/inputs/.
#
# The output is deterministic: no timestamps, object keys sorted (C locale), numbers written by
# jsonlite with digits = NA (15 significant digits). Rerunning gives a byte-identical file.
# Every fit is produced by evaluating the exact call string that is recorded next to it.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

if (!dir.exists("tests/golden")) {
  stop("run this script from the repository root: Rscript tests/golden/make_goldens.R")
}

IN_DIR <- "tests/golden/inputs"
OUT_FILE <- "tests/golden/metafor_goldens.json"
dir.create(IN_DIR, showWarnings = FALSE, recursive = TRUE)

METHODS <- c("REML", "DL", "ML", "PM", "HE", "SJ", "FE")
# Tight convergence for the iterative estimators: 'threshold' is the Fisher-scoring stopping
# rule (ML, REML), 'tol' the uniroot() tolerance (PM), 'maxiter' the iteration cap. Harmless for
# the closed-form estimators (DL, HE, SJ, FE).
RMA_CONTROL <- "list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)"
# Q-profile CI for tau2: uniroot() tolerance (the metafor default is .Machine$double.eps^0.25).
CONFINT_CONTROL <- "list(tol = 1e-12, maxiter = 10000)"
Z975 <- qnorm(0.975)

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

strip_ansi <- function(s) gsub("\033\\[[0-9;]*m", "", s)

# Evaluate a code string in env; return value, error text and warnings (never lost).
run <- function(code, env) {
  warns <- character(0)
  val <- withCallingHandlers(
    tryCatch(eval(parse(text = code), envir = env), error = function(e) e),
    warning = function(w) {
      warns <<- c(warns, strip_ansi(conditionMessage(w)))
      invokeRestart("muffleWarning")
    }
  )
  if (inherits(val, "error")) {
    return(list(value = NULL, error = strip_ansi(conditionMessage(val)), warnings = warns))
  }
  list(value = val, error = NULL, warnings = warns)
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(unname(x))[1]
  x
}

arr <- function(x) I(as.numeric(unname(x)))      # always a JSON array, even of length 1
sarr <- function(x) I(as.character(unname(x)))

warn_list <- function(w) I(as.character(w))

# Replace non-finite numbers by NA (-> JSON null) and collect their paths with a reason.
# 'reasons' maps a path to a specific reason; otherwise the default reason is used.
nullify <- function(x, reasons = list(), default = "metafor returned NA", path = "") {
  found <- list()
  walk <- function(v, p) {
    if (is.list(v)) {
      cls <- class(v)
      for (i in seq_along(v)) {
        nm <- names(v)[i]
        sub <- if (is.null(nm) || nm == "") sprintf("%s[%d]", p, i - 1L) else
          if (p == "") nm else paste0(p, ".", nm)
        if (!is.null(v[[i]])) v[[i]] <- walk(v[[i]], sub)
      }
      class(v) <- cls
      return(v)
    }
    if (is.numeric(v) || is.logical(v) && length(v) > 0 && all(is.na(v))) {
      bad <- !is.finite(suppressWarnings(as.numeric(v)))
      if (any(bad)) {
        orig <- suppressWarnings(as.numeric(v))
        for (j in which(bad)) {
          key <- if (length(v) == 1 && !inherits(v, "AsIs")) p else sprintf("%s[%d]", p, j - 1L)
          base <- if (!is.null(reasons[[p]])) reasons[[p]] else default
          what <- if (is.nan(orig[j])) "NaN" else if (is.infinite(orig[j])) as.character(orig[j]) else "NA"
          found[[key]] <<- if (what == "NA") base else paste0(base, " (value was ", what, ")")
        }
        cls <- class(v)
        v <- suppressWarnings(as.numeric(v))
        v[bad] <- NA_real_
        if ("AsIs" %in% cls) v <- I(v)
      }
    }
    v
  }
  x <- walk(x, path)
  list(value = x, nulls = found)
}

sort_keys <- function(x) {
  if (is.list(x)) {
    cls <- class(x)
    if (!is.null(names(x))) {
      x <- x[order(names(x), method = "radix")]
    }
    for (i in seq_along(x)) if (!is.null(x[[i]])) x[[i]] <- sort_keys(x[[i]])
    class(x) <- cls
  }
  x
}

count_numbers <- function(x) {
  if (is.list(x)) return(sum(vapply(x, count_numbers, numeric(1))))
  if (is.numeric(x)) return(sum(is.finite(x)))
  0
}

# --------------------------------------------------------------------------------------------
# inputs derived from metadat (provenance: the package), written as committed CSVs
# --------------------------------------------------------------------------------------------

write_input <- function(df, name) {
  write.csv(df, file.path(IN_DIR, name), row.names = FALSE, fileEncoding = "UTF-8")
}

write_input(data.frame(study_id = dat.pritz1997$study,
                       author = as.character(dat.pritz1997$authors),
                       events = dat.pritz1997$xi,
                       total = dat.pritz1997$ni,
                       stringsAsFactors = FALSE), "pritz1997.csv")

write_input(data.frame(study_id = dat.nielweise2007$study,
                       author = as.character(dat.nielweise2007$author),
                       year = dat.nielweise2007$year,
                       events = dat.nielweise2007$ci,
                       total = dat.nielweise2007$n2i,
                       stringsAsFactors = FALSE), "nielweise2007_control.csv")

bcg_es <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
write_input(data.frame(trial = dat.bcg$trial,
                       author = as.character(dat.bcg$author),
                       year = dat.bcg$year,
                       yi = as.numeric(bcg_es$yi),
                       vi = as.numeric(bcg_es$vi),
                       stringsAsFactors = FALSE), "bcg_logrr.csv")

# --------------------------------------------------------------------------------------------
# case definitions: each has R code (a string, recorded) that builds 'dat' from the CSV
# --------------------------------------------------------------------------------------------

# does this metafor version know test = "adhoc"?
ADHOC_OK <- is.null(run('rma(c(0, 1, 2), c(1, 1, 1), test = "adhoc")', new.env())$error)
TESTS <- if (ADHOC_OK) c("z", "knha", "adhoc") else c("z", "knha")

csv <- function(name) sprintf('read.csv("%s/%s", stringsAsFactors = FALSE)', IN_DIR, name)

prop_code <- function(name) {
  sprintf('dat <- escalc(measure = "PLO", xi = events, ni = total, data = %s)', csv(name))
}

hr_code <- function(name, filter = NULL) {
  read <- if (is.null(filter)) csv(name) else sprintf("subset(%s, %s)", csv(name), filter)
  paste0(
    "dat <- ", read, "\n",
    "dat$yi <- log(dat$hr)\n",
    "dat$sei_method <- ifelse(!is.na(dat$lower) & !is.na(dat$upper), \"ci\", \"p\")\n",
    "dat$sei <- ifelse(dat$sei_method == \"ci\",\n",
    "                  (log(dat$upper) - log(dat$lower)) / (2 * qnorm(0.975)),\n",
    "                  abs(log(dat$hr)) / qnorm(1 - dat$p / 2))\n",
    "dat$vi <- dat$sei^2"
  )
}

CASES <- list(
  orr_default = list(
    kind = "proportion", csv = "orr_default.csv", id_col = "study_id",
    code = prop_code("orr_default.csv"), transf = "ilogit", leave1out = TRUE,
    description = "Default ORR analysis (objective response rate), single-arm proportions, k = 6",
    source = "metapool default dataset (data/raw/proportions.csv, default ORR analysis)"),
  dcr_default = list(
    kind = "proportion", csv = "dcr_default.csv", id_col = "study_id",
    code = prop_code("dcr_default.csv"), transf = "ilogit", leave1out = TRUE,
    description = "Default DCR analysis (disease control rate), k = 5, two studies at 100% (continuity correction 1/2 applied to those studies only)",
    source = "metapool default dataset (data/raw/proportions.csv, default DCR analysis)"),
  pritz1997 = list(
    kind = "proportion", csv = "pritz1997.csv", id_col = "study_id",
    code = prop_code("pritz1997.csv"), transf = "ilogit", leave1out = TRUE,
    description = "Proportions of good outcome after surgery, k = 14, two studies at 100%",
    source = "metadat::dat.pritz1997 (xi, ni)"),
  nielweise2007_control = list(
    kind = "proportion", csv = "nielweise2007_control.csv", id_col = "study_id",
    code = prop_code("nielweise2007_control.csv"), transf = "ilogit", leave1out = TRUE,
    description = "Control-arm event proportions (catheter-related bloodstream infection), k = 18, one study with 0 events",
    source = "metadat::dat.nielweise2007, control arm (ci, n2i)"),
  bcg_logrr = list(
    kind = "generic", csv = "bcg_logrr.csv", id_col = "author", use_sei = FALSE,
    code = paste0("dat <- ", csv("bcg_logrr.csv")), transf = "exp", leave1out = TRUE,
    description = "BCG vaccine trials, log risk ratios, k = 13",
    source = "metadat::dat.bcg; escalc(measure = \"RR\", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)"),
  steurer2006_hr = list(
    kind = "generic", csv = "steurer2006_hr.csv", id_col = "study", use_sei = TRUE,
    code = hr_code("steurer2006_hr.csv"), transf = "exp", leave1out = TRUE,
    description = "Hazard ratios from 95% CIs, k = 4",
    source = "Steurer et al. (2006), Cochrane review CD004270, analysis 1.1 overall survival (as in the help page of meta::metagen)"),
  steurer2006_hr_k2 = list(
    kind = "generic", csv = "steurer2006_hr.csv", id_col = "study", use_sei = TRUE,
    code = hr_code("steurer2006_hr.csv", "study %in% c(\"FCG on CLL 1996\", \"Leporrier 2001\")"),
    transf = "exp", leave1out = FALSE,
    description = "k = 2 edge case: the first two Steurer et al. (2006) studies",
    source = "Steurer et al. (2006), Cochrane review CD004270, analysis 1.1 (first two rows)"),
  hr_default_os = list(
    kind = "generic", csv = "hr_default.csv", id_col = "study_id", use_sei = TRUE,
    code = hr_code("hr_default.csv", "analysis == \"OS\""), transf = "exp", leave1out = TRUE,
    description = "Default overall-survival HR analysis, k = 3 (one SE derived from HR and two-sided p)",
    source = "metapool default dataset (data/raw/survival.csv, default OS analysis)"),
  hr_default_pfs = list(
    kind = "generic", csv = "hr_default.csv", id_col = "study_id", use_sei = TRUE,
    code = hr_code("hr_default.csv", "analysis == \"PFS\""), transf = "exp", leave1out = TRUE,
    description = "Default progression-free-survival HR analysis, k = 3 (one SE derived from HR and two-sided p)",
    source = "metapool default dataset (data/raw/survival.csv, default PFS analysis)"),
  hr_default_ttp = list(
    kind = "generic", csv = "hr_default.csv", id_col = "study_id", use_sei = TRUE,
    code = hr_code("hr_default.csv", "analysis == \"TTP\""), transf = "exp", leave1out = TRUE,
    description = "Default time-to-progression HR analysis, k = 2",
    source = "metapool default dataset (data/raw/survival.csv, default TTP analysis)"),
  toy_tau2zero = list(
    kind = "generic", csv = "toy_tau2zero.csv", id_col = "study", use_sei = FALSE,
    code = paste0("dat <- ", csv("toy_tau2zero.csv")), transf = "none", leave1out = FALSE,
    description = "Toy homogeneous data set, k = 4: every estimator truncates tau2 at 0",
    source = "synthetic (hand-entered)")
)

TRANSF_EXPR <- c(ilogit = "transf.ilogit", exp = "exp")

# --------------------------------------------------------------------------------------------
# per-case input record
# --------------------------------------------------------------------------------------------

case_input <- function(cs, dat) {
  ids <- dat[[cs$id_col]]
  inp <- list(csv = file.path(IN_DIR, cs$csv), data_code = cs$code,
              study = sarr(ids), yi = arr(dat$yi), vi = arr(dat$vi), k = nrow(dat))
  if (cs$kind == "proportion") {
    cp <- t(vapply(seq_len(nrow(dat)), function(i)
      as.numeric(binom.test(dat$events[i], dat$total[i])$conf.int), numeric(2)))
    inp$events <- arr(dat$events)
    inp$total <- arr(dat$total)
    inp$proportion <- arr(dat$events / dat$total)
    inp$cp_lower <- arr(cp[, 1])
    inp$cp_upper <- arr(cp[, 2])
    inp$cp_code <- "binom.test(events, total)$conf.int  # Clopper-Pearson, 95%"
    inp$escalc <- list(measure = "PLO", add = 0.5, to = "only0",
                       note = "metafor defaults: 1/2 added to both cells of studies with a zero cell (events = 0 or events = total)")
  } else {
    inp$sei <- arr(sqrt(dat$vi))
    if (!is.null(dat$sei)) inp$sei <- arr(dat$sei)
    if (!is.null(dat$hr)) {
      inp$hr <- arr(dat$hr)
      inp$hr_lower <- arr(dat$lower)
      inp$hr_upper <- arr(dat$upper)
      inp$p <- arr(dat$p)
      inp$sei_method <- sarr(dat$sei_method)
      inp$study_ci_lower <- arr(exp(dat$yi - Z975 * dat$sei))
      inp$study_ci_upper <- arr(exp(dat$yi + Z975 * dat$sei))
    }
  }
  reasons <- list()
  if (!is.null(dat$hr)) {
    for (j in seq_len(nrow(dat))) {
      if (dat$sei_method[j] == "ci") reasons[[sprintf("p[%d]", j - 1L)]] <- "no p-value reported (SE from the CI)"
      else {
        reasons[[sprintf("hr_lower[%d]", j - 1L)]] <- "no CI reported (SE from HR and two-sided p)"
        reasons[[sprintf("hr_upper[%d]", j - 1L)]] <- "no CI reported (SE from HR and two-sided p)"
      }
    }
  }
  cl <- nullify(inp)
  out <- cl$value
  if (length(cl$nulls)) {
    out$nulls <- lapply(setNames(names(cl$nulls), names(cl$nulls)), function(key)
      if (!is.null(reasons[[key]])) reasons[[key]] else cl$nulls[[key]])
  }
  out
}

# --------------------------------------------------------------------------------------------
# one fit
# --------------------------------------------------------------------------------------------

NUM_KEYS <- c("k", "estimate", "se", "stat", "df", "pval", "ci_lower", "ci_upper", "tau2",
              "tau2_se", "tau", "i2", "h2", "q", "q_df", "q_p", "vt", "knha_scale",
              "loglik_ml", "loglik_reml", "pi_lower", "pi_upper", "pi_df")

fit_one <- function(cs, dat, method, test) {
  yarg <- if (isTRUE(cs$use_sei)) "yi, sei = sei" else "yi, vi"
  call <- sprintf('rma(%s, data = dat, method = "%s", test = "%s", control = %s)',
                  yarg, method, test, RMA_CONTROL)
  env <- new.env()
  env$dat <- dat
  r <- run(call, env)
  reasons <- list()
  out <- list(call = call, method = method, test = test, error = r$error,
              warnings = warn_list(r$warnings))
  res <- r$value
  t_based <- test != "z"
  out$stat_dist <- if (t_based) "t" else "normal"
  out$pi_dist <- if (t_based) "t" else "normal"

  if (is.null(res)) {
    for (key in NUM_KEYS) {
      out[[key]] <- NA_real_
      reasons[[key]] <- paste("rma() failed:", r$error)
    }
    out$weights_pct <- arr(rep(NA_real_, nrow(dat)))
    reasons$weights_pct <- paste("rma() failed:", r$error)
    return(list(out = out, res = NULL, reasons = reasons))
  }
  env$res <- res

  out$k <- res$k
  out$estimate <- num(res$b)
  out$se <- num(res$se)
  out$stat <- num(res$zval)
  out$df <- if (t_based) num(res$ddf) else NA_real_
  if (!t_based) reasons$df <- "not applicable: test = \"z\" uses the normal distribution"
  out$pval <- num(res$pval)
  out$ci_lower <- num(res$ci.lb)
  out$ci_upper <- num(res$ci.ub)
  out$tau2 <- num(res$tau2)
  out$tau2_se <- num(res$se.tau2)
  if (method == "FE") reasons$tau2_se <- "not applicable: fixed-effect model (tau2 fixed at 0)"
  out$tau <- sqrt(num(res$tau2))
  out$i2 <- num(res$I2)
  out$h2 <- num(res$H2)
  out$q <- num(res$QE)
  out$q_df <- res$k - res$p
  out$q_p <- num(res$QEp)
  out$vt <- num(res$vt)
  out$knha_scale <- if (t_based) num(res$s2w) else NA_real_
  if (!t_based) reasons$knha_scale <- "not applicable: test = \"z\""
  out$loglik_ml <- num(res$fit.stats["ll", "ML"])
  out$loglik_reml <- num(res$fit.stats["ll", "REML"])
  out$weights_pct <- arr(weights(res))

  # prediction interval (model scale)
  p <- run("predict(res)", env)
  out$predict_call <- "predict(res)"
  if (is.null(p$value)) {
    out$pi_lower <- out$pi_upper <- out$pi_df <- NA_real_
    reasons$pi_lower <- reasons$pi_upper <- reasons$pi_df <- paste("predict() failed:", p$error)
  } else {
    out$pi_lower <- num(p$value$pi.lb)
    out$pi_upper <- num(p$value$pi.ub)
    out$pi_df <- if (t_based) num(p$value$pi.ddf) else NA_real_
    if (!t_based) reasons$pi_df <- "not applicable: test = \"z\" uses the normal distribution"
  }
  if (length(p$warnings)) out$predict_warnings <- warn_list(p$warnings)

  # back-transformed (natural scale)
  if (cs$transf == "none") {
    out$natural <- NULL
    out$natural_note <- "no back-transformation for this case (identity scale)"
  } else {
    pcall <- sprintf("predict(res, transf = %s)", TRANSF_EXPR[[cs$transf]])
    pn <- run(pcall, env)
    nat <- list(call = pcall, transf = cs$transf)
    if (is.null(pn$value)) {
      nat$error <- pn$error
      for (key in c("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")) {
        nat[[key]] <- NA_real_
        reasons[[paste0("natural.", key)]] <- paste("predict() failed:", pn$error)
      }
    } else {
      nat$estimate <- num(pn$value$pred)
      nat$ci_lower <- num(pn$value$ci.lb)
      nat$ci_upper <- num(pn$value$ci.ub)
      nat$pi_lower <- num(pn$value$pi.lb)
      nat$pi_upper <- num(pn$value$pi.ub)
    }
    if (length(pn$warnings)) nat$warnings <- warn_list(pn$warnings)
    out$natural <- nat
  }

  # Riley-type PI (t with k - 2 df); metafor 3.8 exposes it as predict(res, pi.type = "riley")
  # (undocumented '...' argument); newer versions may spell it differently. An ignored argument
  # shows up as a warning ("Extra argument ... disregarded"), which is treated as unsupported.
  rcall <- 'predict(res, pi.type = "riley")'
  pr <- run(rcall, env)
  ignored <- any(grepl("disregarded", pr$warnings))
  riley <- list(call = rcall)
  if (is.null(pr$value) || ignored) {
    msg <- if (ignored) paste("not supported by this metafor version:", paste(pr$warnings, collapse = "; ")) else pr$error
    riley$error <- msg
    for (key in c("pi_lower", "pi_upper", "pi_df")) {
      riley[[key]] <- NA_real_
      reasons[[paste0("pi_riley.", key)]] <- msg
    }
  } else {
    riley$pi_lower <- num(pr$value$pi.lb)
    riley$pi_upper <- num(pr$value$pi.ub)
    riley$pi_df <- num(pr$value$pi.ddf)
    if (cs$transf != "none") {
      f <- match.fun(TRANSF_EXPR[[cs$transf]])
      riley$natural <- list(pi_lower = f(riley$pi_lower), pi_upper = f(riley$pi_upper))
    }
    riley$note <- "t quantile with df = k - 2 (clamped to >= 1 by metafor), se of the fitted model's test"
  }
  if (length(pr$warnings) && !ignored) riley$warnings <- warn_list(pr$warnings)
  out$pi_riley <- riley

  # Q-profile confidence intervals for tau2, tau, I2, H2
  ccall <- sprintf("confint(res, control = %s)", CONFINT_CONTROL)
  ci <- run(ccall, env)
  conf <- list(call = ccall, type = "QP")
  rows <- c(tau2 = "tau^2", tau = "tau", i2 = "I^2(%)", h2 = "H^2")
  if (is.null(ci$value)) {
    conf$error <- ci$error
    for (nm in names(rows)) {
      conf[[nm]] <- list(estimate = NA_real_, ci_lower = NA_real_, ci_upper = NA_real_)
      for (key in c("estimate", "ci_lower", "ci_upper"))
        reasons[[sprintf("confint.%s.%s", nm, key)]] <- paste("confint() failed:", ci$error)
    }
  } else {
    rnd <- ci$value$random
    for (nm in names(rows)) {
      conf[[nm]] <- list(estimate = num(rnd[rows[[nm]], "estimate"]),
                         ci_lower = num(rnd[rows[[nm]], "ci.lb"]),
                         ci_upper = num(rnd[rows[[nm]], "ci.ub"]))
    }
    conf$lb_sign <- ci$value$lb.sign
    conf$ub_sign <- ci$value$ub.sign
    conf$ci_null <- isTRUE(ci$value$ci.null)
  }
  if (length(ci$warnings)) conf$warnings <- warn_list(ci$warnings)
  out$confint <- conf

  list(out = out, res = res, env = env, reasons = reasons)
}

leave1out_record <- function(cs, env, ids) {
  lcall <- "leave1out(res)"
  l <- run(lcall, env)
  rec <- list(call = lcall, omitted_study = sarr(ids))
  reasons <- list()
  keys <- c(estimate = "estimate", se = "se", stat = "zval", pval = "pval", ci_lower = "ci.lb",
            ci_upper = "ci.ub", q = "Q", q_p = "Qp", tau2 = "tau2", i2 = "I2", h2 = "H2")
  if (is.null(l$value)) {
    rec$error <- l$error
    for (nm in names(keys)) {
      rec[[nm]] <- arr(rep(NA_real_, length(ids)))
      reasons[[paste0("leave1out.", nm)]] <- paste("leave1out() failed:", l$error)
    }
  } else {
    if (is.null(l$value$zval) && !is.null(l$value$tval)) keys[["stat"]] <- "tval"
    rec$stat_dist <- if (keys[["stat"]] == "tval") "t" else "normal"
    for (nm in names(keys)) {
      v <- l$value[[keys[[nm]]]]
      if (is.null(v) || length(v) != length(ids)) {
        rec[[nm]] <- arr(rep(NA_real_, length(ids)))
        reasons[[paste0("leave1out.", nm)]] <- sprintf("leave1out() returned no '%s' of length k", keys[[nm]])
      } else {
        rec[[nm]] <- arr(v)
      }
    }
  }
  if (length(l$warnings)) rec$warnings <- warn_list(l$warnings)
  if (cs$transf != "none") {
    ncall <- sprintf("leave1out(res, transf = %s)", TRANSF_EXPR[[cs$transf]])
    ln <- run(ncall, env)
    nat <- list(call = ncall)
    if (is.null(ln$value)) {
      nat$error <- ln$error
      for (nm in c("estimate", "ci_lower", "ci_upper")) {
        nat[[nm]] <- arr(rep(NA_real_, length(ids)))
        reasons[[paste0("leave1out.natural.", nm)]] <- paste("leave1out() failed:", ln$error)
      }
    } else {
      nat$estimate <- arr(ln$value$estimate)
      nat$ci_lower <- arr(ln$value$ci.lb)
      nat$ci_upper <- arr(ln$value$ci.ub)
    }
    if (length(ln$warnings)) nat$warnings <- warn_list(ln$warnings)
    rec$natural <- nat
  }
  list(rec = rec, reasons = reasons)
}

# expand per-field reasons to element paths produced by nullify()
lookup_reason <- function(reasons, key) {
  if (!is.null(reasons[[key]])) return(reasons[[key]])
  base <- sub("\\[[0-9]+\\]$", "", key)
  if (!is.null(reasons[[base]])) return(reasons[[base]])
  NULL
}

# --------------------------------------------------------------------------------------------
# main loop
# --------------------------------------------------------------------------------------------

cases_out <- list()
n_fits <- 0L
errors_seen <- character(0)

for (case_name in names(CASES)) {
  cs <- CASES[[case_name]]
  env <- new.env()
  eval(parse(text = cs$code), envir = env)
  dat <- env$dat
  ids <- dat[[cs$id_col]]

  fits <- list()
  for (method in METHODS) {
    for (test in TESTS) {
      fit_key <- paste0(method, "_", test)
      f <- fit_one(cs, dat, method, test)
      rec <- f$out
      reasons <- f$reasons
      if (cs$leave1out && fit_key == "REML_knha" && !is.null(f$res)) {
        lo <- leave1out_record(cs, f$env, ids)
        rec$leave1out <- lo$rec
        reasons <- c(reasons, lo$reasons)
      }
      if (method == "FE") {
        fe_pi <- "metafor gives no prediction interval for a fixed-effect model"
        for (field in c("pi_lower", "pi_upper", "natural.pi_lower", "natural.pi_upper",
                        "pi_riley.pi_lower", "pi_riley.pi_upper",
                        "pi_riley.natural.pi_lower", "pi_riley.natural.pi_upper"))
          if (is.null(reasons[[field]])) reasons[[field]] <- fe_pi
      }
      cl <- nullify(rec)
      rec <- cl$value
      if (length(cl$nulls)) {
        rec$nulls <- lapply(setNames(names(cl$nulls), names(cl$nulls)), function(k) {
          r <- lookup_reason(reasons, k)
          if (is.null(r)) cl$nulls[[k]] else r
        })
      }
      if (!is.null(rec$error)) errors_seen <- c(errors_seen, sprintf("%s/%s: %s", case_name, fit_key, rec$error))
      fits[[fit_key]] <- rec
      n_fits <- n_fits + 1L
    }
  }

  stopifnot(identical(sort(names(fits)), sort(as.vector(outer(METHODS, TESTS, paste, sep = "_")))))
  cases_out[[case_name]] <- list(
    kind = cs$kind,
    description = cs$description,
    source = cs$source,
    back_transform = cs$transf,
    leave1out_fits = if (cs$leave1out) sarr("REML_knha") else sarr(character(0)),
    input = case_input(cs, dat),
    fits = fits
  )
}

doc <- list(
  meta = list(
    R = R.version.string,
    metafor = packageDescription("metafor")$Version,
    metadat = packageDescription("metadat")$Version,
    jsonlite = packageDescription("jsonlite")$Version,
    generated_by = "tests/golden/make_goldens.R",
    methods = sarr(METHODS),
    tests = sarr(TESTS),
    adhoc_supported = ADHOC_OK,
    rma_control = RMA_CONTROL,
    confint_control = CONFINT_CONTROL,
    level = 95,
    number_format = "jsonlite digits = NA (15 significant digits)",
    null_policy = "a null number always has its reason in the enclosing object's 'nulls' map (path -> reason) or an 'error' string",
    fit_key = "<method>_<test>; method FE is metafor's method = \"FE\" (equal/fixed effect)"
  ),
  cases = cases_out
)

doc <- sort_keys(doc)
n_numbers <- count_numbers(doc)
write_json(doc, OUT_FILE, digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null", null = "null")

cat(sprintf("%s: %d cases, %d fits, %d numbers written (metafor %s, %s)%s\n",
            OUT_FILE, length(cases_out), n_fits, n_numbers,
            packageDescription("metafor")$Version, R.version.string,
            if (length(errors_seen)) sprintf("; %d fits with errors", length(errors_seen)) else ""))
