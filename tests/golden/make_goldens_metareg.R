#!/usr/bin/env Rscript
# Golden values from R metafor for metapool's meta-regression (metapool.metareg) and
# subgroup analysis (metapool.subgroups).
#
# Run from the repository root:
#     Rscript tests/golden/make_goldens_metareg.R
#
# Writes
#   tests/golden/inputs/bcg_metareg.csv   (from metadat::dat.bcg: counts and moderators)
#   tests/golden/metareg_goldens.json
# and reads the hand-entered tests/golden/inputs/orr_design.csv.
#
# Deterministic: no timestamps, object keys sorted (radix, i.e. C locale), factor levels
# sorted in the C locale, numbers written by jsonlite with digits = NA (15 significant
# digits). Every value is produced by evaluating the exact R code string recorded next to it.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))

if (!dir.exists("tests/golden")) {
  stop("run this script from the repository root: Rscript tests/golden/make_goldens_metareg.R")
}

IN_DIR <- "tests/golden/inputs"
OUT_FILE <- "tests/golden/metareg_goldens.json"

METHODS <- c("REML", "DL", "ML", "PM", "HE", "SJ", "FE")
TESTS <- c("z", "knha", "adhoc")
# 'threshold': Fisher-scoring stopping rule (ML, REML); 'tol': uniroot() tolerance (PM);
# harmless for the closed-form estimators.
RMA_CONTROL <- "list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)"

# --------------------------------------------------------------------------------------------
# helpers (as in make_goldens.R)
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

# run() that must succeed
must <- function(code, env) {
  r <- run(code, env)
  if (!is.null(r$error)) stop(sprintf("%s failed: %s", code, r$error))
  r
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  as.numeric(unname(x))[1]
}
arr <- function(x) I(as.numeric(unname(x)))      # always a JSON array, even of length 1
sarr <- function(x) I(as.character(unname(x)))
warn_list <- function(w) I(as.character(w))

# Replace non-finite numbers by NA (-> JSON null) and collect their paths with a reason.
nullify <- function(x, reasons = list(), default = "metafor returned NA") {
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
        for (j in which(bad)) {
          key <- if (length(v) == 1 && !inherits(v, "AsIs")) p else sprintf("%s[%d]", p, j - 1L)
          base <- sub("\\[[0-9]+\\]$", "", key)
          found[[key]] <<- if (!is.null(reasons[[key]])) reasons[[key]] else
            if (!is.null(reasons[[base]])) reasons[[base]] else default
        }
        cls <- class(v)
        v <- suppressWarnings(as.numeric(v))
        v[bad] <- NA_real_
        if ("AsIs" %in% cls) v <- I(v)
      }
    }
    v
  }
  x <- walk(x, "")
  if (length(found)) x$nulls <- found
  x
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

bcg_csv <- data.frame(
  trial = dat.bcg$trial, author = as.character(dat.bcg$author), year = dat.bcg$year,
  tpos = dat.bcg$tpos, tneg = dat.bcg$tneg, cpos = dat.bcg$cpos, cneg = dat.bcg$cneg,
  ablat = dat.bcg$ablat, alloc = as.character(dat.bcg$alloc),
  decade = paste0(10 * (dat.bcg$year %/% 10), "s"),
  stringsAsFactors = FALSE)
write.csv(bcg_csv, file.path(IN_DIR, "bcg_metareg.csv"), row.names = FALSE,
          fileEncoding = "UTF-8")

DATA <- list(
  bcg = list(
    code = sprintf('dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = read.csv("%s/bcg_metareg.csv", stringsAsFactors = FALSE))', IN_DIR),
    description = "BCG vaccine trials (k = 13), log risk ratios; moderators absolute latitude (ablat), publication year, allocation (alloc: alternate, random, systematic) and decade of publication (derived: 10 * (year %/% 10), a grouping with two single-study levels)",
    source = "metadat::dat.bcg",
    columns = c("trial", "author", "year", "ablat", "alloc", "decade")),
  orr = list(
    code = sprintf('dat <- escalc(measure = "PLO", xi = events, ni = total, data = read.csv("%s/orr_design.csv", stringsAsFactors = FALSE))', IN_DIR),
    description = "metapool default ORR analysis (k = 6), logit proportions, by design: single-arm (Tang2025, Cao2024, Anon2020) vs comparative (Yu2015, Yu2023, Anon2025)",
    source = "metapool default dataset (hand-entered: tests/golden/inputs/orr_design.csv)",
    columns = c("study_id", "events", "total", "design"))
)

load_data <- function(name) {
  env <- new.env()
  eval(parse(text = DATA[[name]]$code), envir = env)
  env$dat
}

input_record <- function(name) {
  d <- DATA[[name]]
  dat <- load_data(name)
  rec <- list(data_code = d$code, description = d$description, source = d$source,
              k = nrow(dat), yi = arr(dat$yi), vi = arr(dat$vi))
  for (col in d$columns) {
    rec[[col]] <- if (is.numeric(dat[[col]])) arr(dat[[col]]) else sarr(dat[[col]])
  }
  rec
}

# --------------------------------------------------------------------------------------------
# meta-regression
# --------------------------------------------------------------------------------------------

MODELS <- list(
  ablat = list(data = "bcg", mods = "~ ablat", moderators = "ablat", categorical = character(0), intercept = TRUE),
  year = list(data = "bcg", mods = "~ year", moderators = "year", categorical = character(0), intercept = TRUE),
  alloc = list(data = "bcg", mods = "~ alloc", moderators = "alloc", categorical = "alloc", intercept = TRUE),
  ablat_alloc = list(data = "bcg", mods = "~ ablat + alloc", moderators = c("ablat", "alloc"), categorical = "alloc", intercept = TRUE),
  ablat_noint = list(data = "bcg", mods = "~ ablat - 1", moderators = "ablat", categorical = character(0), intercept = FALSE,
                     note = "no intercept: metafor 3.8-1 computes QE from the centred yi, (y - mean(y))'P(y - mean(y)); qe_residual is the residual sum y'Py")
)

QE_RESIDUAL_CODE <- "X <- model.matrix(res); W <- diag(1 / dat$vi); b <- solve(t(X) %*% W %*% X, t(X) %*% W %*% dat$yi); sum((dat$yi - X %*% b)^2 / dat$vi)"

metareg_fit <- function(dat, mods, method, test, intercept) {
  call <- sprintf('rma(yi, vi, mods = %s, data = dat, method = "%s", test = "%s", control = %s)',
                  mods, method, test, RMA_CONTROL)
  env <- new.env()
  env$dat <- dat
  r <- must(call, env)
  res <- r$value
  env$res <- res
  t_based <- test != "z"
  reasons <- list()
  out <- list(call = call, method = method, test = test, warnings = warn_list(r$warnings),
              k = res$k, p = res$p, names = sarr(rownames(res$b)),
              estimate = arr(res$b), se = arr(res$se), stat = arr(res$zval),
              stat_dist = if (t_based) "t" else "normal",
              df = if (t_based) num(res$ddf) else NA_real_,
              pval = arr(res$pval), ci_lower = arr(res$ci.lb), ci_upper = arr(res$ci.ub),
              vcov = arr(as.vector(t(vcov(res)))), vcov_layout = "row-major p x p, vcov(res)",
              tested = sarr(rownames(res$b)[res$btt]),
              qm = num(res$QM), qm_df = num(res$QMdf[1]),
              qm_df2 = if (t_based) num(res$QMdf[2]) else NA_real_, qm_p = num(res$QMp),
              qm_dist = if (t_based) "F" else "chi2",
              qe = num(res$QE), qe_df = res$k - res$p, qe_p = num(res$QEp),
              tau2 = num(res$tau2), i2 = num(res$I2), h2 = num(res$H2), r2 = num(res$R2),
              vt = num(res$vt), knha_scale = if (t_based) num(res$s2w) else NA_real_)
  if (!t_based) {
    reasons$df <- "not applicable: test = \"z\" uses the normal distribution"
    reasons$qm_df2 <- "not applicable: test = \"z\" gives a chi-square QM"
    reasons$knha_scale <- "not applicable: test = \"z\""
  }
  if (is.null(res$R2)) reasons$r2 <- "metafor gives no R2 for a model without intercept"
  out$qe_residual_code <- QE_RESIDUAL_CODE
  out$qe_residual <- num(must(QE_RESIDUAL_CODE, env)$value)
  if (method != "FE" && intercept) {
    ncall <- sprintf('rma(yi, vi, data = dat, method = "%s", control = %s)$tau2', method, RMA_CONTROL)
    out$tau2_null_call <- ncall
    out$tau2_null <- num(must(ncall, env)$value)
  } else {
    out$tau2_null <- NA_real_
    reasons$tau2_null <- if (method == "FE") "not applicable: R2 of an FE model is the adjusted R2 of the weighted least-squares fit" else "not applicable: no intercept"
  }
  nullify(out, reasons)
}

# For the model without intercept, metafor 3.8-1 estimates tau2 from the centred yi (see the
# note above), so its RE fits are not the model as written. Reference for metapool's
# uncentred definition: the DL estimate from the uncentred residuals, written out, and
# metafor's fit with tau2 fixed at that value (everything downstream of tau2).
UNCENTRED_DL_CODE <- paste(
  "X <- model.matrix(~ ablat - 1, data = dat); W <- diag(1 / dat$vi);",
  "P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W;",
  "max(0, (c(t(dat$yi) %*% P %*% dat$yi) - (nrow(X) - ncol(X))) / sum(diag(P)))")

uncentred_dl <- function(dat) {
  env <- new.env()
  env$dat <- dat
  env$tau2_dl <- must(UNCENTRED_DL_CODE, env)$value
  fits <- list()
  for (test in TESTS) {
    call <- sprintf('rma(yi, vi, mods = ~ ablat - 1, data = dat, tau2 = tau2_dl, test = "%s")', test)
    r <- must(call, env)
    res <- r$value
    t_based <- test != "z"
    reasons <- list()
    fits[[test]] <- nullify(list(
      call = call, warnings = warn_list(r$warnings), estimate = arr(res$b), se = arr(res$se),
      stat = arr(res$zval), pval = arr(res$pval), ci_lower = arr(res$ci.lb),
      ci_upper = arr(res$ci.ub), qm = num(res$QM), qm_p = num(res$QMp), i2 = num(res$I2),
      h2 = num(res$H2), knha_scale = if (t_based) num(res$s2w) else NA_real_),
      if (t_based) list() else list(knha_scale = "not applicable: test = \"z\""))
  }
  list(tau2_code = UNCENTRED_DL_CODE, tau2 = env$tau2_dl, fits = fits,
       note = "metapool method = \"DL\" on ~ ablat - 1 must reproduce these (tau2 = the uncentred DL estimate)")
}

metareg_out <- list()
for (mname in names(MODELS)) {
  md <- MODELS[[mname]]
  dat <- load_data(md$data)
  env <- new.env()
  env$dat <- dat
  xcode <- sprintf('model.matrix(rma(yi, vi, mods = %s, data = dat, method = "FE"))', md$mods)
  X <- must(xcode, env)$value
  fits <- list()
  for (method in METHODS) for (test in TESTS)
    fits[[paste0(method, "_", test)]] <- metareg_fit(dat, md$mods, method, test, md$intercept)
  rec <- list(data = md$data, mods = md$mods, moderators = sarr(md$moderators),
              categorical = sarr(md$categorical), intercept = md$intercept,
              design = list(code = xcode,
                            names = sarr(colnames(X)),
                            columns = lapply(seq_len(ncol(X)), function(j) arr(X[, j]))),
              fits = fits)
  if (!is.null(md$note)) rec$note <- md$note
  if (!md$intercept) rec$uncentred_dl <- uncentred_dl(dat)
  metareg_out[[mname]] <- rec
}

# --------------------------------------------------------------------------------------------
# subgroup analysis
# --------------------------------------------------------------------------------------------

SUBGROUPS <- list(
  bcg_alloc = list(data = "bcg", group = "alloc",
                   description = "BCG by allocation: alternate (k = 2), random (k = 7), systematic (k = 4)"),
  bcg_decade = list(data = "bcg", group = "decade",
                    description = "BCG by decade of publication: 1940s (k = 2), 1950s (k = 1), 1960s (k = 4), 1970s (k = 5), 1980s (k = 1); two single-study levels"),
  orr_design = list(data = "orr", group = "design",
                    description = "default ORR (logit) by design: comparative (k = 3) vs single-arm (k = 3)")
)

SEPARATE_CODE <- "w <- 1 / se^2; sum(w * (b - sum(w * b) / sum(w))^2)"
SEPARATE_CHECK <- 'rma(b, sei = se, method = "FE")$QE'
SEPARATE_NOTE <- paste(
  "b and se per subgroup from rma(..., subset = <group> == <level>, method = <method>, test = \"z\"):",
  "the random-effects estimate and its Wald SE sqrt(1 / sum(1 / (vi + tau2))) with the subgroup's own tau2;",
  "a single-study subgroup gives b = yi, se = sqrt(vi) (metafor k = 1 model).",
  "Q-between = sum w (b - bbar)^2, w = 1/se^2, chi-square with G - 1 df",
  "(= R meta's Q.b.random for tau.common = FALSE with method.random.ci = \"classic\"; meta is not installed here, so the formula is evaluated directly and checked against", SEPARATE_CHECK, ")")

level_record <- function(dat, gcol, g, method, test) {
  env <- new.env()
  env$dat <- dat
  call <- sprintf('rma(yi, vi, data = dat, subset = %s == "%s", method = "%s", test = "%s", control = %s)',
                  gcol, g, method, test, RMA_CONTROL)
  r <- must(call, env)
  res <- r$value
  env$res <- res
  t_based <- res$test != "z"      # metafor forces test = "z" when k = 1
  pr <- must("predict(res)", env)
  zcall <- sprintf('rma(yi, vi, data = dat, subset = %s == "%s", method = "%s", test = "z", control = %s)',
                   gcol, g, method, RMA_CONTROL)
  rz <- must(zcall, env)$value
  reasons <- list()
  out <- list(level = g, call = call, warnings = warn_list(c(r$warnings, pr$warnings)),
              k = res$k, estimate = num(res$b), se = num(res$se), stat = num(res$zval),
              df = if (t_based) num(res$ddf) else NA_real_, pval = num(res$pval),
              ci_lower = num(res$ci.lb), ci_upper = num(res$ci.ub), tau2 = num(res$tau2),
              i2 = num(res$I2), h2 = num(res$H2), q = num(res$QE), q_df = res$k - 1,
              q_p = num(res$QEp), pi_lower = num(pr$value$pi.lb), pi_upper = num(pr$value$pi.ub),
              wald_call = zcall, wald_estimate = num(rz$b), wald_se = num(rz$se))
  if (!t_based) reasons$df <- if (test == "z") "not applicable: test = \"z\"" else "not applicable: metafor sets test = \"z\" when k = 1"
  nullify(out, reasons)
}

subgroup_fit <- function(dat, gcol, method, test) {
  levs <- sort(unique(dat[[gcol]]))
  per <- lapply(levs, function(g) level_record(dat, gcol, g, method, test))
  env <- new.env()
  env$b <- vapply(per, function(x) x$wald_estimate, numeric(1))
  env$se <- vapply(per, function(x) x$wald_se, numeric(1))
  qb <- must(SEPARATE_CODE, env)$value
  chk <- must(SEPARATE_CHECK, env)$value
  stopifnot(isTRUE(all.equal(qb, chk, tolerance = 1e-12)))
  G <- length(levs)
  separate <- list(code = SEPARATE_CODE, check_code = SEPARATE_CHECK, check_value = chk,
                   note = SEPARATE_NOTE, levels = sarr(levs), estimates = arr(env$b),
                   ses = arr(env$se), q = qb, df = G - 1,
                   p = pchisq(qb, df = G - 1, lower.tail = FALSE),
                   p_code = "pchisq(q, df = G - 1, lower.tail = FALSE)")
  cenv <- new.env()
  cenv$dat <- dat
  ccall <- sprintf('rma(yi, vi, mods = ~ %s, data = dat, method = "%s", test = "%s", control = %s)',
                   gcol, method, test, RMA_CONTROL)
  cr <- must(ccall, cenv)
  res <- cr$value
  t_based <- test != "z"
  creasons <- list()
  common <- list(call = ccall, warnings = warn_list(cr$warnings), k = res$k, p = res$p,
                 names = sarr(rownames(res$b)), estimate = arr(res$b), se = arr(res$se),
                 qm = num(res$QM), qm_df = num(res$QMdf[1]),
                 qm_df2 = if (t_based) num(res$QMdf[2]) else NA_real_, qm_p = num(res$QMp),
                 qm_dist = if (t_based) "F" else "chi2", tau2 = num(res$tau2),
                 qe = num(res$QE), qe_df = res$k - res$p, qe_p = num(res$QEp))
  if (!t_based) creasons$qm_df2 <- "not applicable: test = \"z\" gives a chi-square QM"
  list(method = method, test = test, subgroups = per, separate = separate,
       common = nullify(common, creasons))
}

subgroups_out <- list()
for (cname in names(SUBGROUPS)) {
  sg <- SUBGROUPS[[cname]]
  dat <- load_data(sg$data)
  levs <- sort(unique(dat[[sg$group]]))
  fits <- list()
  for (method in METHODS) for (test in TESTS)
    fits[[paste0(method, "_", test)]] <- subgroup_fit(dat, sg$group, method, test)
  subgroups_out[[cname]] <- list(
    data = sg$data, group = sg$group, description = sg$description, levels = sarr(levs),
    level_k = arr(vapply(levs, function(g) sum(dat[[sg$group]] == g), numeric(1))),
    fits = fits)
}

# --------------------------------------------------------------------------------------------
# write
# --------------------------------------------------------------------------------------------

doc <- list(
  meta = list(
    R = R.version.string,
    metafor = packageDescription("metafor")$Version,
    metadat = packageDescription("metadat")$Version,
    jsonlite = packageDescription("jsonlite")$Version,
    generated_by = "tests/golden/make_goldens_metareg.R",
    methods = sarr(METHODS),
    tests = sarr(TESTS),
    rma_control = RMA_CONTROL,
    level = 95,
    collation = "C (factor levels sorted by code point)",
    number_format = "jsonlite digits = NA (15 significant digits)",
    null_policy = "a null number has its reason in the enclosing object's 'nulls' map (path -> reason)",
    fit_key = "<method>_<test>; method FE is metafor's method = \"FE\""
  ),
  inputs = list(bcg = input_record("bcg"), orr = input_record("orr")),
  metareg = metareg_out,
  subgroups = subgroups_out
)

doc <- sort_keys(doc)
n_numbers <- count_numbers(doc)
write_json(doc, OUT_FILE, digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null", null = "null")
n_fits <- length(METHODS) * length(TESTS) * (length(MODELS) + length(SUBGROUPS))
cat(sprintf("%s: %d meta-regression models, %d subgroup cases, %d fit keys, %d numbers written (metafor %s, %s)\n",
            OUT_FILE, length(MODELS), length(SUBGROUPS), n_fits, n_numbers,
            packageDescription("metafor")$Version, R.version.string))
