# metafor reference values for ML/REML fits where plain Fisher scoring fails.
#
# Run from the repository root:  Rscript tests/golden/make_goldens_convergence.R
# Writes tests/golden/convergence_goldens.json (deterministic: no timestamps, fixed seed).
#
# Random k = 10 datasets, yi ~ N(0, 0.3^2 + vi), vi ~ U(0.01, 0.5), both rounded to 6
# decimals (the stored inputs are exactly the data that were fitted), drawn with a fixed seed
# until enough cases of each kind are found:
#   cycling: rma(method = M, control = CTRL) stops with "Fisher scoring algorithm did not
#            converge" (the iteration cycles). The reference is the same fit with metafor's
#            step adjustment, control = CTRL_STEP (stepadj = 0.5), which converges.
#   ll0:     rma(method = M, control = CTRL) converges but warns "Fisher scoring algorithm may
#            have gotten stuck at a local maximum" and sets tau2 = 0 (its ll0check: the
#            likelihood is bimodal and is higher at tau2 = 0 than at the interior maximum).
# M is REML or ML. Every fit records the exact call that produced it.
#
# Speed: rma() is called only on candidates from a plain re-implementation of metafor's Fisher
# scoring (from the HE start, same threshold): datasets where it does not converge within 1000
# iterations, or converges to a tau2 > 0 with the log-likelihood at 0 not clearly lower. The
# screen only selects; whether a case qualifies is always decided by rma() itself. Without the
# screen (rma() on every dataset) the script finds the same cases (a byte-identical file) but runs
# for over 10 minutes instead of under one. Fits for a method stop once its cases are complete.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (!dir.exists("tests/golden")) {
  stop("run this script from the repository root: Rscript tests/golden/make_goldens_convergence.R")
}

SEED <- 20240611L
K <- 10L
MAX_DATASETS <- 40000L
# wanted cases per kind and method
WANT <- list(cycling = c(REML = 8L, ML = 3L), ll0 = c(REML = 2L, ML = 4L))
CTRL <- "list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)"
CTRL_STEP <- "list(stepadj = 0.5, threshold = 1e-12, maxiter = 10000, tol = 1e-12)"

strip_ansi <- function(s) gsub("\033\\[[0-9;]*m", "", s)
num <- function(x) unname(as.numeric(x))

# evaluate a call string; value (or NULL), error text and warnings
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

# metafor's Fisher scoring for the intercept-only model, written out with vectors: does it
# converge (within maxiter), and is ll(0) then close to or above ll at the solution?
fisher_screen <- function(yi, vi, method, maxiter = 1000L, threshold = 1e-12) {
  k <- length(yi)
  score_info <- function(t) {
    w <- 1 / (vi + t)
    sw <- sum(w)
    py <- w * (yi - sum(w * yi) / sw)
    if (method == "REML") {
      c(sum(py^2) - (sw - sum(w^2) / sw), sum(w^2) - 2 * sum(w^3) / sw + (sum(w^2) / sw)^2)
    } else {
      c(sum(py^2) - sw, sum(w^2))
    }
  }
  loglik <- function(t) {
    w <- 1 / (vi + t)
    ll <- -0.5 * (sum(log(vi + t)) + sum(w * (yi - sum(w * yi) / sum(w))^2))
    if (method == "REML") ll - 0.5 * log(sum(w)) else ll
  }
  tau2 <- max(0, (sum((yi - mean(yi))^2) - (sum(vi) - sum(vi) / k)) / (k - 1))  # HE
  for (i in seq_len(maxiter)) {
    si <- score_info(tau2)
    adj <- si[1] / si[2]
    while (tau2 + adj < 0) adj <- adj / 2
    old <- tau2
    tau2 <- tau2 + adj
    if (abs(old - tau2) <= threshold) {
      return(tau2 > threshold && loglik(0) > loglik(tau2) - 1e-6)
    }
  }
  TRUE
}

fit_record <- function(call, res, warns) {
  list(call = call, tau2 = num(res$tau2), estimate = num(res$b), se = num(res$se),
       loglik = num(logLik(res)), warnings = warns)
}

set.seed(SEED, kind = "Mersenne-Twister", normal.kind = "Inversion")
found <- list(cycling = list(), ll0 = list())
count <- function(kind, method) sum(vapply(found[[kind]], function(c) c$method == method, TRUE))
enough <- function() {
  all(vapply(names(WANT), function(kind) {
    all(vapply(names(WANT[[kind]]), function(m) count(kind, m) >= WANT[[kind]][[m]], TRUE))
  }, TRUE))
}

n_drawn <- 0L
while (!enough() && n_drawn < MAX_DATASETS) {
  n_drawn <- n_drawn + 1L
  vi <- as.numeric(sprintf("%.6f", runif(K, 0.01, 0.5)))
  yi <- as.numeric(sprintf("%.6f", rnorm(K, 0, sqrt(0.3^2 + vi))))
  env <- new.env()
  env$yi <- yi
  env$vi <- vi
  for (method in c("REML", "ML")) {
    full <- vapply(names(WANT), function(kind) count(kind, method) >= WANT[[kind]][[method]], TRUE)
    if (all(full) || !fisher_screen(yi, vi, method)) next
    call <- sprintf('rma(yi, vi, method = "%s", control = %s)', method, CTRL)
    r <- run(call, env)
    kind <- NULL
    if (!is.null(r$error) && grepl("did not converge", r$error)) {
      kind <- "cycling"
    } else if (is.null(r$error) && any(grepl("local maximum", r$warnings))) {
      kind <- "ll0"
    }
    if (is.null(kind) || count(kind, method) >= WANT[[kind]][[method]]) next
    case <- list(kind = kind, method = method, dataset = n_drawn,
                 input = list(yi = yi, vi = vi))
    if (kind == "cycling") {
      call_step <- sprintf('rma(yi, vi, method = "%s", control = %s)', method, CTRL_STEP)
      s <- run(call_step, env)
      if (!is.null(s$error)) stop(sprintf("dataset %d: %s", n_drawn, s$error))
      case$plain <- list(call = call, error = r$error)
      case$reference <- fit_record(call_step, s$value, s$warnings)
    } else {
      case$reference <- fit_record(call, r$value, r$warnings)
    }
    name <- sprintf("%s_%s_%05d", kind, tolower(method), n_drawn)
    found[[kind]][[name]] <- case
  }
}
if (!enough()) stop(sprintf("not enough cases in %d datasets", MAX_DATASETS))

cases <- c(found$cycling, found$ll0)
cases <- cases[sort(names(cases), method = "radix")]
out <- list(
  meta = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
              jsonlite = as.character(packageVersion("jsonlite")),
              generated_by = "tests/golden/make_goldens_convergence.R",
              seed = SEED, rng = paste(RNGkind(), collapse = ", "), k = K,
              datasets_drawn = n_drawn,
              data = "vi = U(0.01, 0.5), yi = N(0, 0.3^2 + vi), each rounded to 6 decimals",
              rma_control = CTRL, rma_control_step = CTRL_STEP),
  cases = cases
)
write_json(out, "tests/golden/convergence_goldens.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, null = "null")
cat(sprintf("convergence goldens: %d cases (%s) from %d datasets\n", length(cases),
            paste(names(table(vapply(cases, function(c) paste(c$kind, c$method), ""))),
                  table(vapply(cases, function(c) paste(c$kind, c$method), "")),
                  sep = ": ", collapse = ", "), n_drawn))
