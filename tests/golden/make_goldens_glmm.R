#!/usr/bin/env Rscript
# Generate the metafor rma.glmm (binomial-normal GLMM) golden values used by
# tests/test_glmm.py.
#
# Run from the repository root:
#     Rscript tests/golden/make_goldens_glmm.R
#
# Reads
#   metadat::dat.pritz1997, metadat::dat.nielweise2007 (both arms)
#   tests/golden/inputs/orr_default.csv, tests/golden/inputs/dcr_default.csv (hand-entered)
#   tests/golden/inputs/glmm_synthetic.csv                                     (hand-entered)
# Writes
#   tests/golden/glmm_goldens.json
#
# Every fit is produced by evaluating the exact call string stored next to it. Each case is
# fitted twice:
#   default  metafor's defaults (lme4::glmer, nAGQ = 7, optimizers bobyqa + Nelder_Mead,
#            tolPwrss = 1e-7): the numbers a metafor user sees;
#   tight    the same model with a tight optimizer (bobyqa, rhoend = 1e-12,
#            tolPwrss = 1e-10): the maximum of the same likelihood to about 1e-8, which
#            isolates lme4's default stopping rule from any difference in the model.
# and each with test = "z" and test = "t" (the fit is the same; tests, CIs and PIs differ).
#
# The output is deterministic: no timestamps, object keys sorted (C locale), numbers written
# by jsonlite with digits = NA (15 significant digits). Rerunning gives a byte-identical file.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(lme4)
  library(jsonlite)
})

if (!dir.exists("tests/golden")) {
  stop("run this script from the repository root: Rscript tests/golden/make_goldens_glmm.R")
}

IN_DIR <- "tests/golden/inputs"
OUT_FILE <- "tests/golden/glmm_goldens.json"

VARIANTS <- list(
  default = "",
  tight = paste0(", control = list(glmerCtrl = list(optimizer = \"bobyqa\", ",
                 "tolPwrss = 1e-10, optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))")
)
TESTS <- c("z", "t")

# --------------------------------------------------------------------------------------------
# helpers (as in make_goldens.R)
# --------------------------------------------------------------------------------------------

strip_ansi <- function(s) gsub("\033\\[[0-9;]*m", "", s)

# Evaluate a code string in env; return value, error text and warnings/messages (never lost).
run <- function(code, env) {
  warns <- character(0)
  msgs <- character(0)
  val <- withCallingHandlers(
    tryCatch(eval(parse(text = code), envir = env), error = function(e) e),
    warning = function(w) {
      warns <<- c(warns, strip_ansi(conditionMessage(w)))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs <<- c(msgs, trimws(strip_ansi(conditionMessage(m))))
      invokeRestart("muffleMessage")
    }
  )
  if (inherits(val, "error")) {
    return(list(value = NULL, error = strip_ansi(conditionMessage(val)), warnings = warns,
                messages = msgs))
  }
  list(value = val, error = NULL, warnings = warns, messages = msgs)
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  as.numeric(unname(x))[1]
}
arr <- function(x) I(as.numeric(unname(x)))      # always a JSON array, even of length 1
sarr <- function(x) I(as.character(unname(x)))

sort_keys <- function(x) {
  if (is.list(x)) {
    cls <- class(x)
    if (!is.null(names(x))) x <- x[order(names(x), method = "radix")]
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

# Replace non-finite numbers by NA (-> JSON null); return the paths with a reason.
nullify <- function(x, reasons, path = "") {
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
    if (is.numeric(v) || (is.logical(v) && length(v) > 0 && all(is.na(v)))) {
      vv <- suppressWarnings(as.numeric(v))
      bad <- !is.finite(vv)
      if (any(bad)) {
        base <- if (!is.null(reasons[[p]])) reasons[[p]] else "metafor/lme4 returned NA"
        if (length(v) == 1 && !inherits(v, "AsIs")) {
          found[[p]] <<- base
        } else {
          for (j in which(bad)) found[[sprintf("%s[%d]", p, j - 1L)]] <<- base
        }
        cls <- class(v)
        vv[bad] <- NA_real_
        v <- if ("AsIs" %in% cls) I(vv) else vv
      }
    }
    v
  }
  list(value = walk(x, path), nulls = found)
}

# --------------------------------------------------------------------------------------------
# cases: R code (recorded) that builds 'dat' with columns study, events, total
# --------------------------------------------------------------------------------------------

csv <- function(name) sprintf('read.csv("%s/%s", stringsAsFactors = FALSE)', IN_DIR, name)
synthetic <- function(case) {
  sprintf(paste0('dat <- subset(%s, case == "%s"); ',
                 'dat <- data.frame(study = dat$study_id, events = dat$events, total = dat$total)'),
          csv("glmm_synthetic.csv"), case)
}

CASES <- list(
  pritz1997 = list(
    description = "Pritz (1997): k = 14 single-arm proportions, two studies at 100%",
    source = "metadat::dat.pritz1997 (xi, ni)",
    code = "dat <- data.frame(study = dat.pritz1997$study, events = dat.pritz1997$xi, total = dat.pritz1997$ni)"),
  nielweise2007_control = list(
    description = "Nielweise et al. (2007), control arm: k = 18, one study with 0 events",
    source = "metadat::dat.nielweise2007 (ci, n2i)",
    code = "dat <- data.frame(study = dat.nielweise2007$study, events = dat.nielweise2007$ci, total = dat.nielweise2007$n2i)"),
  nielweise2007_treatment = list(
    description = "Nielweise et al. (2007), treatment arm: k = 18, several studies with 0 events",
    source = "metadat::dat.nielweise2007 (ai, n1i)",
    code = "dat <- data.frame(study = dat.nielweise2007$study, events = dat.nielweise2007$ai, total = dat.nielweise2007$n1i)"),
  orr_default = list(
    description = "metapool default dataset, default ORR analysis (k = 6)",
    source = "tests/golden/inputs/orr_default.csv (hand-entered)",
    code = sprintf("dat <- %s; dat <- data.frame(study = dat$study_id, events = dat$events, total = dat$total)", csv("orr_default.csv"))),
  dcr_default = list(
    description = "metapool default dataset, default DCR analysis (k = 5, two studies at 100%)",
    source = "tests/golden/inputs/dcr_default.csv (hand-entered)",
    code = sprintf("dat <- %s; dat <- data.frame(study = dat$study_id, events = dat$events, total = dat$total)", csv("dcr_default.csv"))),
  glmm_tau2zero = list(
    description = "synthetic, k = 4: the ML estimate of tau2 is on the boundary 0",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_tau2zero")),
  glmm_identical = list(
    description = "synthetic, k = 4, all proportions 0.1: lme4 refuses ('Response is constant'); the common-effect fit (method = \"FE\") is recorded as the tau2 = 0 reference",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_identical"),
    fe_reference = TRUE),
  glmm_k2 = list(
    description = "synthetic, k = 2",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_k2")),
  glmm_zeros = list(
    description = "synthetic, k = 6, three studies with 0 events",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_zeros")),
  glmm_zeros_boundary = list(
    description = "synthetic, k = 4, the last study with 0 events, tau2 on the boundary 0",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_zeros_boundary")),
  glmm_all_zero = list(
    description = "synthetic, k = 3, every study with 0 events: no finite ML estimate (metafor errors)",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_all_zero")),
  glmm_all_events = list(
    description = "synthetic, k = 3, every study with all events: no finite ML estimate (metafor errors)",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_all_events")),
  glmm_zero_and_all = list(
    description = "synthetic, k = 3, studies with 0 or all events only: the likelihood increases without bound in tau; lme4 stops at an arbitrary large tau2 without an error",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_zero_and_all")),
  glmm_k1 = list(
    description = "synthetic, k = 1: metafor stops (more parameters than studies)",
    source = "tests/golden/inputs/glmm_synthetic.csv", code = synthetic("glmm_k1"))
)

# --------------------------------------------------------------------------------------------
# one fit
# --------------------------------------------------------------------------------------------

NUM_KEYS <- c("k", "estimate", "se", "stat", "df", "pval", "ci_lower", "ci_upper", "tau2", "tau",
              "i2", "h2", "vt", "q_wld", "q_wld_p", "q_lrt", "q_lrt_p", "q_df",
              "loglik_metafor", "ll_saturated", "ll_fe", "loglik_marginal", "pi_lower",
              "pi_upper", "pi_df")

fit_one <- function(dat, variant, test) {
  call <- sprintf(paste0('rma.glmm(measure = "PLO", xi = events, ni = total, data = dat, ',
                         'method = "ML", test = "%s", nAGQ = 7, retfit = TRUE%s)'),
                  test, VARIANTS[[variant]])
  env <- new.env()
  env$dat <- dat
  r <- run(call, env)
  out <- list(call = call, variant = variant, test = test, error = r$error,
              warnings = sarr(r$warnings), messages = sarr(r$messages),
              stat_dist = if (test == "t") "t" else "normal")
  reasons <- list()
  res <- r$value
  if (is.null(res)) {
    for (key in NUM_KEYS) {
      out[[key]] <- NA_real_
      reasons[[key]] <- paste("rma.glmm() failed:", r$error)
    }
    return(list(out = out, reasons = reasons))
  }
  env$res <- res
  m <- res$res.ML
  out$k <- res$k
  out$estimate <- num(res$b)
  out$se <- num(res$se)
  out$stat <- num(res$zval)
  out$df <- if (test == "t") num(res$ddf) else NA_real_
  if (test == "z") reasons$df <- "not applicable: test = \"z\" uses the normal distribution"
  out$pval <- num(res$pval)
  out$ci_lower <- num(res$ci.lb)
  out$ci_upper <- num(res$ci.ub)
  out$tau2 <- num(res$tau2)
  out$tau <- sqrt(num(res$tau2))
  out$i2 <- num(res$I2)
  out$h2 <- num(res$H2)
  out$vt <- num(res$vt)
  out$q_wld <- num(res$QE.Wld)
  out$q_wld_p <- num(res$QEp.Wld)
  out$q_lrt <- num(res$QE.LRT)
  out$q_lrt_p <- num(res$QEp.LRT)
  out$q_df <- num(res$QE.df)
  # metafor's printed log-likelihood: ll.QE - deviance(glmer fit) / 2, where lme4's
  # deviance() of a GLMM is the conditional deviance at the conditional modes
  out$loglik_metafor <- num(res$fit.stats["ll", "ML"])
  out$ll_saturated <- num(logLik(res$res.QE))
  out$ll_fe <- num(logLik(res$res.FE))
  dev_agq <- num(m@devcomp$cmp[["dev"]])
  # the maximised marginal log-likelihood (AGHQ deviance is relative to the saturated model)
  out$loglik_marginal <- out$ll_saturated - dev_agq / 2
  out$lme4 <- list(
    theta = num(getME(m, "theta")),
    beta = num(fixef(m)),
    deviance_agq = dev_agq,
    deviance_conditional = num(deviance(m)),
    u = arr(getME(m, "u")),
    ranef = arr(ranef(m)$study[, 1]),
    nAGQ = num(m@devcomp$dims[["nAGQ"]]),
    optimizer = sarr(m@optinfo$optimizer),
    conv_messages = sarr(unlist(m@optinfo$conv$lme4$messages)),
    derivs_gradient = arr(m@optinfo$derivs$gradient),
    derivs_hessian = arr(m@optinfo$derivs$Hessian),
    note = paste("derivs_* are lme4's finite-difference derivatives of the deviance in",
                 "(theta, beta) at its optimum (hessian column-major); vcov() uses",
                 "2 * solve(hessian)[beta, beta], or the PIRLS (RX) variance when that is",
                 "not positive definite")
  )

  p <- run("predict(res)", env)
  out$pi_lower <- num(p$value$pi.lb)
  out$pi_upper <- num(p$value$pi.ub)
  out$pi_df <- if (test == "t") num(p$value$pi.ddf) else NA_real_
  if (test == "z") reasons$pi_df <- "not applicable: test = \"z\" uses the normal distribution"
  if (length(p$warnings)) out$predict_warnings <- sarr(p$warnings)
  pn <- run("predict(res, transf = transf.ilogit)", env)
  out$natural <- list(call = "predict(res, transf = transf.ilogit)",
                      estimate = num(pn$value$pred), ci_lower = num(pn$value$ci.lb),
                      ci_upper = num(pn$value$ci.ub), pi_lower = num(pn$value$pi.lb),
                      pi_upper = num(pn$value$pi.ub))
  out$predict_call <- "predict(res)"
  list(out = out, reasons = reasons)
}

fe_reference <- function(dat) {
  call <- 'rma.glmm(measure = "PLO", xi = events, ni = total, data = dat, method = "FE")'
  env <- new.env()
  env$dat <- dat
  r <- run(call, env)
  res <- r$value
  list(call = call, error = r$error, warnings = sarr(r$warnings),
       note = "the common-effect binomial model: the GLMM at tau2 = 0",
       estimate = num(res$b), se = num(res$se), ci_lower = num(res$ci.lb),
       ci_upper = num(res$ci.ub), pval = num(res$pval), q_wld = num(res$QE.Wld),
       q_lrt = num(res$QE.LRT), i2 = num(res$I2), vt = num(res$vt))
}

# --------------------------------------------------------------------------------------------
# main loop
# --------------------------------------------------------------------------------------------

cases_out <- list()
n_fits <- 0L
for (case_name in names(CASES)) {
  cs <- CASES[[case_name]]
  env <- new.env()
  eval(parse(text = cs$code), envir = env)
  dat <- env$dat
  fits <- list()
  for (variant in names(VARIANTS)) {
    for (test in TESTS) {
      f <- fit_one(dat, variant, test)
      cl <- nullify(f$out, f$reasons)
      rec <- cl$value
      if (length(cl$nulls)) rec$nulls <- cl$nulls
      fits[[paste0(variant, "_", test)]] <- rec
      n_fits <- n_fits + 1L
    }
  }
  entry <- list(
    description = cs$description,
    source = cs$source,
    input = list(data_code = cs$code, study = sarr(dat$study), events = arr(dat$events),
                 total = arr(dat$total), k = nrow(dat)),
    fits = fits
  )
  if (isTRUE(cs$fe_reference)) entry$fe_reference <- fe_reference(dat)
  cases_out[[case_name]] <- entry
}

doc <- list(
  meta = list(
    R = R.version.string,
    metafor = packageDescription("metafor")$Version,
    metadat = packageDescription("metadat")$Version,
    lme4 = packageDescription("lme4")$Version,
    minqa = packageDescription("minqa")$Version,
    Matrix = packageDescription("Matrix")$Version,
    jsonlite = packageDescription("jsonlite")$Version,
    generated_by = "tests/golden/make_goldens_glmm.R",
    variants = lapply(VARIANTS, function(v) if (v == "") "metafor defaults" else v),
    tests = sarr(TESTS),
    level = 95,
    fit_key = "<variant>_<test>",
    number_format = "jsonlite digits = NA (15 significant digits)",
    null_policy = "a null number has its reason in the fit's 'nulls' map (path -> reason) or an 'error' string"
  ),
  cases = cases_out
)

doc <- sort_keys(doc)
n_numbers <- count_numbers(doc)
write_json(doc, OUT_FILE, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null",
           null = "null")
cat(sprintf("%s: %d cases, %d fits, %d numbers written (metafor %s, lme4 %s, %s)\n",
            OUT_FILE, length(cases_out), n_fits, n_numbers,
            packageDescription("metafor")$Version, packageDescription("lme4")$Version,
            R.version.string))
