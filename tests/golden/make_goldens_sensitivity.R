#!/usr/bin/env Rscript
# Generate the metafor golden values for metapool's sensitivity analyses (leave-one-out,
# cumulative meta-analysis, influence diagnostics) and small-study-effect tests (Egger's
# regression test, Begg's rank correlation test, trim-and-fill).
#
# Run from the repository root:
#     Rscript tests/golden/make_goldens_sensitivity.R
#
# Writes
#   tests/golden/inputs/egger2001.csv        (from metadat::dat.egger2001)
#   tests/golden/inputs/sim200.csv           (simulated, set.seed(20240611); yi, vi)
#   tests/golden/sensitivity_goldens.json
# and reads the committed inputs bcg_logrr.csv, pritz1997.csv and orr_default.csv from
# tests/golden/inputs/ (written or hand-entered for make_goldens.R).
#
# The output is deterministic: no timestamps, object keys sorted (C locale), numbers written by
# jsonlite with digits = NA (15 significant digits). Rerunning gives a byte-identical file.
# Every block records the exact call string that produced it; the call is evaluated as written.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

if (!dir.exists("tests/golden")) {
  stop("run this script from the repository root: Rscript tests/golden/make_goldens_sensitivity.R")
}

IN_DIR <- "tests/golden/inputs"
OUT_FILE <- "tests/golden/sensitivity_goldens.json"
dir.create(IN_DIR, showWarnings = FALSE, recursive = TRUE)

RMA_CONTROL <- "list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)"
FITS <- list(REML_z = c("REML", "z"), REML_knha = c("REML", "knha"), DL_z = c("DL", "z"))
SIM_SEED <- 20240611L

# --------------------------------------------------------------------------------------------
# helpers (same conventions as make_goldens.R)
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
    stop(sprintf("'%s' failed: %s", code, strip_ansi(conditionMessage(val))))
  }
  list(value = val, warnings = warns)
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  as.numeric(unname(x))[1]
}
arr <- function(x) I(as.numeric(unname(x)))      # always a JSON array, even of length 1
sarr <- function(x) I(as.character(unname(x)))
larr <- function(x) I(as.logical(unname(x)))
warn_list <- function(w) I(as.character(w))

# Replace non-finite numbers by NA (-> JSON null); return the paths with a reason.
nullify <- function(x, reason_of, path = "") {
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
    if (is.numeric(v)) {
      bad <- !is.finite(v)
      if (any(bad)) {
        for (j in which(bad)) {
          key <- if (length(v) == 1 && !inherits(v, "AsIs")) p else sprintf("%s[%d]", p, j - 1L)
          what <- if (is.nan(v[j])) "NaN" else if (is.infinite(v[j])) as.character(v[j]) else "NA"
          found[[key]] <<- paste0(reason_of(key), " (value was ", what, ")")
        }
        cls <- class(v)
        v <- as.numeric(v)
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

# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

write_input <- function(df, name) {
  write.csv(df, file.path(IN_DIR, name), row.names = FALSE, fileEncoding = "UTF-8")
}

# metadat::dat.egger2001 (magnesium in acute myocardial infarction), raw counts
write_input(data.frame(study_id = dat.egger2001$id,
                       study = as.character(dat.egger2001$study),
                       year = dat.egger2001$year,
                       ai = dat.egger2001$ai, n1i = dat.egger2001$n1i,
                       ci = dat.egger2001$ci, n2i = dat.egger2001$n2i,
                       stringsAsFactors = FALSE), "egger2001.csv")

# Simulated k = 200 set with small-study effects: true effects N(0.2, 0.05), per-study
# sample sizes log-uniform in [20, 2000], vi = 4 / n (SMD-like), and selection that keeps
# every study with z > 1.96 but a non-significant one only with probability 0.35. Values are
# rounded to 12 significant digits and read back from the CSV, so R and Python use the same
# numbers.
simulate_sim200 <- function() {
  set.seed(SIM_SEED)
  keep_y <- numeric(0)
  keep_v <- numeric(0)
  while (length(keep_y) < 200) {
    n <- round(exp(runif(1, log(20), log(2000))))
    v <- 4 / n
    y <- rnorm(1, rnorm(1, 0.2, sqrt(0.05)), sqrt(v))
    if (y / sqrt(v) > qnorm(0.975) || runif(1) < 0.35) {
      keep_y <- c(keep_y, y)
      keep_v <- c(keep_v, v)
    }
  }
  data.frame(study = sprintf("sim%03d", seq_len(200)), yi = signif(keep_y, 12),
             vi = signif(keep_v, 12), stringsAsFactors = FALSE)
}
write_input(simulate_sim200(), "sim200.csv")

csv <- function(name) sprintf('read.csv("%s/%s", stringsAsFactors = FALSE)', IN_DIR, name)

# Each case: R code building 'dat' (columns yi, vi, label, optional year, ni), the transform
# to the natural scale, and how the cumulative order is defined.
CASES <- list(
  bcg = list(
    code = paste0("dat <- ", csv("bcg_logrr.csv"),
                  "; dat$label <- paste(dat$author, dat$year)"),
    transf = "exp", order_by = "year, then label",
    description = "BCG vaccine trials, log risk ratios, k = 13",
    source = "metadat::dat.bcg via escalc(measure = \"RR\", ai = tpos, bi = tneg, ci = cpos, di = cneg) (tests/golden/inputs/bcg_logrr.csv, written by make_goldens.R)"),
  egger2001 = list(
    code = paste0("dat <- escalc(measure = \"OR\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = ",
                  csv("egger2001.csv"), "); dat$label <- paste(dat$study, dat$year); ",
                  "dat$ni <- dat$n1i + dat$n2i"),
    transf = "exp", order_by = "year, then label",
    description = "Magnesium in acute myocardial infarction, log odds ratios, k = 16 (Bertschat 1989 has a zero cell: 1/2 added)",
    source = "metadat::dat.egger2001 (tests/golden/inputs/egger2001.csv)"),
  pritz1997 = list(
    code = paste0("dat <- escalc(measure = \"PLO\", xi = events, ni = total, data = ",
                  csv("pritz1997.csv"), "); dat$label <- dat$author"),
    transf = "ilogit", order_by = "row order (no year in the data set)",
    description = "Pritz (1997) proportions, logit, k = 14 (two studies at 100%: 1/2 added)",
    source = "metadat::dat.pritz1997 (tests/golden/inputs/pritz1997.csv, written by make_goldens.R)"),
  orr_default = list(
    code = paste0("dat <- escalc(measure = \"PLO\", xi = events, ni = total, data = ",
                  csv("orr_default.csv"), "); dat$label <- dat$study_id; ",
                  "dat$year <- c(Tang2025 = 2025, Cao2024 = 2024, Yu2015 = 2015, Yu2023 = 2023, ",
                  "`Anon2020_JVIR_BAI-DEE` = 2020, Anon2025_FrontOncol_BACE = 2025)[dat$study_id]"),
    transf = "ilogit", order_by = "year, then label",
    description = "metapool default ORR analysis, logit, k = 6 (years from data/raw/studies.csv)",
    source = "metapool default dataset (tests/golden/inputs/orr_default.csv)"),
  sim200 = list(
    code = paste0("dat <- ", csv("sim200.csv"), "; dat$label <- dat$study"),
    transf = "none", order_by = "row order",
    description = "Simulated k = 200 set with small-study effects (selection of non-significant studies)",
    source = sprintf("simulated in this script, set.seed(%d) (tests/golden/inputs/sim200.csv)", SIM_SEED))
)
TRANSF_EXPR <- c(ilogit = "transf.ilogit", exp = "exp")

# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------

rma_call <- function(method, test, subset = NULL) {
  sprintf('rma(yi, vi, data = dat, method = "%s", test = "%s", control = %s%s)', method, test,
          RMA_CONTROL, if (is.null(subset)) "" else paste0(", subset = ", subset))
}

# predict() of the model refitted to a subset: metafor's leave1out()/cumul() give no PI
subset_pi <- function(env, method, test, subsets) {
  lo <- hi <- numeric(length(subsets))
  for (j in seq_along(subsets)) {
    env$sub <- subsets[[j]]
    f <- run(rma_call(method, test, "sub"), env)$value
    p <- predict(f)
    lo[j] <- num(p$pi.lb)
    hi[j] <- num(p$pi.ub)
  }
  list(lower = lo, upper = hi)
}

list_block <- function(l, keys) {
  out <- list()
  for (nm in names(keys)) out[[nm]] <- arr(l[[keys[[nm]]]])
  out
}

LIST_KEYS <- c(estimate = "estimate", se = "se", stat = "zval", pval = "pval", ci_lower = "ci.lb",
               ci_upper = "ci.ub", q = "Q", q_p = "Qp", tau2 = "tau2", i2 = "I2", h2 = "H2")

leave1out_block <- function(cs, env, method, test) {
  k <- nrow(env$dat)
  call <- "leave1out(res)"
  r <- run(call, env)
  l <- r$value
  keys <- LIST_KEYS
  if (is.null(l$zval)) keys[["stat"]] <- "tval"
  out <- c(list(call = call, omitted = sarr(env$dat$label), stat_dist = if (keys[["stat"]] == "tval") "t" else "normal"),
           list_block(l, keys))
  pis <- subset_pi(env, method, test, lapply(seq_len(k), function(i) -i))
  out$pi_lower <- arr(pis$lower)
  out$pi_upper <- arr(pis$upper)
  out$pi_call <- sprintf("predict(%s) with sub = -i", rma_call(method, test, "sub"))
  if (length(r$warnings)) out$warnings <- warn_list(r$warnings)
  if (cs$transf != "none") {
    ncall <- sprintf("leave1out(res, transf = %s)", TRANSF_EXPR[[cs$transf]])
    n <- run(ncall, env)$value
    out$natural <- list(call = ncall, estimate = arr(n$estimate), ci_lower = arr(n$ci.lb),
                        ci_upper = arr(n$ci.ub))
  }
  out
}

cumul_block <- function(cs, env, method, test) {
  dat <- env$dat
  k <- nrow(dat)
  perm <- if (is.null(dat$year)) seq_len(k) else order(dat$year, dat$label, method = "radix")
  pos <- integer(k)
  pos[perm] <- seq_len(k)
  env$pos <- pos
  call <- "cumul(res, order = pos)"
  r <- run(call, env)
  l <- r$value
  keys <- LIST_KEYS
  keys[["pval"]] <- "pvals"
  if (is.null(l$zval)) keys[["stat"]] <- "tval"
  out <- c(list(call = call, order = arr(perm - 1L), order_by = cs$order_by,
                order_code = if (is.null(dat$year)) "seq_len(k)" else
                  'order(dat$year, dat$label, method = "radix")',
                pos_code = "pos[order] <- seq_len(k)  # metafor 3.8-1 sorts by 'order'",
                added = sarr(dat$label[perm]),
                stat_dist = if (keys[["stat"]] == "tval") "t" else "normal",
                first_row_note = paste("row 1 is the single first study as metafor reports it",
                                       "(rma() with k = 1: tau2 = 0, estimate = yi, se = sqrt(vi);",
                                       "test = \"knha\" falls back to \"z\" with a warning)")),
           list_block(l, keys))
  pis <- subset_pi(env, method, test, lapply(seq_len(k), function(j) perm[seq_len(j)]))
  out$pi_lower <- arr(pis$lower)
  out$pi_upper <- arr(pis$upper)
  out$pi_call <- sprintf("predict(%s) with sub = order[1:j]", rma_call(method, test, "sub"))
  if (length(r$warnings)) out$warnings <- warn_list(r$warnings)
  out
}

influence_block <- function(env) {
  call <- "influence(res)"
  inf <- run(call, env)$value
  list(call = call, study = sarr(env$dat$label),
       rstudent = arr(inf$inf$rstudent), dffits = arr(inf$inf$dffits),
       cook_d = arr(inf$inf$cook.d), cov_r = arr(inf$inf$cov.r),
       tau2_del = arr(inf$inf$tau2.del), qe_del = arr(inf$inf$QE.del),
       hat = arr(inf$inf$hat), weight = arr(inf$inf$weight),
       dfbetas = arr(inf$dfbs$intrcpt), influential = larr(inf$is.infl),
       inf_rule = paste("metafor 3.8-1 influence.rma.uni(): '*' if |dffits| > 3 sqrt(p / (k - p))",
                        "or pchisq(cook.d, df = p) > 0.5 or hat > 3 p / k or any |dfbs| > 1"))
}

regtest_block <- function(env, call) {
  r <- run(call, env)
  rt <- r$value
  out <- list(call = call, model = rt$model, predictor = rt$predictor,
              stat = num(rt$zval), pval = num(rt$pval), df = num(rt$ddf),
              stat_dist = if (is.null(rt$ddf) || is.na(num(rt$ddf))) "normal" else "t",
              est = num(rt$est), ci_lower = num(rt$ci.lb), ci_upper = num(rt$ci.ub))
  if (rt$model == "rma") {
    out$tau2 <- num(rt$fit$tau2)
    out$slope <- num(rt$fit$beta[2])
    out$slope_se <- num(rt$fit$se[2])
  } else {
    out$slope <- num(coef(rt$fit)[2])
    out$slope_se <- num(coef(summary(rt$fit))[2, 2])
  }
  if (length(r$warnings)) out$warnings <- warn_list(r$warnings)
  out
}

ranktest_block <- function(env, call) {
  r <- run(call, env)
  out <- list(call = call, tau = num(r$value$tau), pval = num(r$value$pval))
  if (length(r$warnings)) out$warnings <- warn_list(r$warnings)
  out
}

trimfill_block <- function(env, estimator, test) {
  call <- sprintf('trimfill(res, estimator = "%s", test = "%s", control = %s)', estimator, test,
                  RMA_CONTROL)
  r <- run(call, env)
  tf <- r$value
  env$tf <- tf
  p <- predict(tf)
  fill <- tf$fill
  out <- list(call = call,
              note = paste("test and control are passed on to every rma() call inside trimfill();",
                           "without them metafor refits the filled data with test = \"z\" and",
                           "the default convergence control"),
              k0 = num(tf$k0), se_k0 = num(tf$se.k0), p_k0 = num(tf$p.k0), side = tf$side,
              estimator = tf$k0.est, k = num(tf$k),
              estimate = num(tf$beta), se = num(tf$se), stat = num(tf$zval), pval = num(tf$pval),
              ci_lower = num(tf$ci.lb), ci_upper = num(tf$ci.ub), tau2 = num(tf$tau2),
              q = num(tf$QE), i2 = num(tf$I2), pi_lower = num(p$pi.lb), pi_upper = num(p$pi.ub),
              pi_call = "predict(tf)",
              filled_yi = arr(if (any(fill)) tf$yi[fill] else numeric(0)),
              filled_vi = arr(if (any(fill)) tf$vi[fill] else numeric(0)))
  if (length(r$warnings)) out$warnings <- warn_list(r$warnings)
  out
}

# --------------------------------------------------------------------------------------------
# main loop
# --------------------------------------------------------------------------------------------

reason_of <- function(key) {
  if (grepl("p_k0$", key)) return("metafor gives p.k0 only for estimator R0")
  if (grepl("^fits\\.[A-Za-z]+_z\\.regtest\\.df$", key)) return("not applicable: z test")
  if (grepl("ranktest\\.pval$", key))
    return("R's exact Kendall distribution (cor.test, C_pKendall) overflows for n >= 171: gamma(n + 1) is Inf")
  if (grepl("pi_(lower|upper)", key)) return("metafor gives no prediction interval here")
  if (grepl("\\.est$|ci_(lower|upper)$", key)) return("metafor reports no limit estimate for this predictor")
  "metafor returned NA"
}

cases_out <- list()
for (case_name in names(CASES)) {
  cs <- CASES[[case_name]]
  env0 <- new.env()
  eval(parse(text = cs$code), envir = env0)
  dat <- env0$dat
  k <- nrow(dat)
  input <- list(data_code = cs$code, label = sarr(dat$label), yi = arr(dat$yi),
                vi = arr(dat$vi), k = k)
  if (!is.null(dat$year)) input$year <- arr(dat$year)
  if (!is.null(dat$ni)) input$ni <- arr(dat$ni)

  fits <- list()
  for (fit_key in names(FITS)) {
    method <- FITS[[fit_key]][1]
    test <- FITS[[fit_key]][2]
    env <- new.env()
    env$dat <- dat
    call <- rma_call(method, test)
    res <- run(call, env)$value
    env$res <- res
    rec <- list(call = call, method = method, test = test,
                fit = list(estimate = num(res$beta), se = num(res$se), tau2 = num(res$tau2),
                           q = num(res$QE)))
    rec$leave1out <- leave1out_block(cs, env, method, test)
    rec$cumul <- cumul_block(cs, env, method, test)
    rec$influence <- influence_block(env)
    rec$regtest <- regtest_block(env, "regtest(res)")
    rec$regtest_lm <- regtest_block(env, 'regtest(res, model = "lm")')
    if (!is.null(dat$ni))
      rec$regtest_lm_sqrtninv <- regtest_block(env, 'regtest(res, model = "lm", predictor = "sqrtninv", ni = dat$ni)')
    rec$ranktest <- ranktest_block(env, "ranktest(res)")
    rec$ranktest_normal <- ranktest_block(env, "ranktest(res, exact = FALSE)")
    rec$trimfill_L0 <- trimfill_block(env, "L0", test)
    rec$trimfill_R0 <- trimfill_block(env, "R0", test)
    cl <- nullify(rec, function(key) reason_of(paste0("fits.", fit_key, ".", key)))
    rec <- cl$value
    if (length(cl$nulls)) rec$nulls <- cl$nulls
    fits[[fit_key]] <- rec
  }
  cases_out[[case_name]] <- list(description = cs$description, source = cs$source,
                                 back_transform = cs$transf, input = input, fits = fits)
}

doc <- list(
  meta = list(
    R = R.version.string,
    metafor = packageDescription("metafor")$Version,
    metadat = packageDescription("metadat")$Version,
    jsonlite = packageDescription("jsonlite")$Version,
    generated_by = "tests/golden/make_goldens_sensitivity.R",
    fits = sarr(names(FITS)),
    rma_control = RMA_CONTROL,
    sim_seed = SIM_SEED,
    level = 95,
    number_format = "jsonlite digits = NA (15 significant digits)",
    null_policy = "a null number always has its reason in the enclosing fit's 'nulls' map (path -> reason)"
  ),
  cases = cases_out
)

doc <- sort_keys(doc)
n_numbers <- count_numbers(doc)
write_json(doc, OUT_FILE, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null",
           null = "null")
cat(sprintf("%s: %d cases, %d fits, %d numbers written (metafor %s, %s)\n", OUT_FILE,
            length(cases_out), length(cases_out) * length(FITS), n_numbers,
            packageDescription("metafor")$Version, R.version.string))
