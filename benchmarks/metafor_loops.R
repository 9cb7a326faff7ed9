# Timing loops of R metafor for benchmarks/bench_engine.py (run by it via Rscript).
#
#   Rscript benchmarks/metafor_loops.R <dir> <n_rma> <n_confint> <n_glmm>
#
# <dir> holds yi.csv, vi.csv (analyses x studies) and xi.csv, ni.csv (proportions),
# written by the Python script without header. Each loop fits the first n rows, one
# rma()/rma.glmm() call per analysis, and is timed inside R with system.time() after
# one untimed warm-up fit (package loading and byte compilation are not counted).
# Fits that stop with an error (e.g. "Fisher scoring algorithm did not converge") are
# counted and their time is included. Output, one line per loop:
#   <name> <elapsed seconds> <fits> <errors>

suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
n_rma <- as.integer(args[2])
n_confint <- as.integer(args[3])
n_glmm <- as.integer(args[4])
rd <- function(name) as.matrix(read.csv(file.path(dir, name), header = FALSE))
yi <- rd("yi.csv"); vi <- rd("vi.csv"); xi <- rd("xi.csv"); ni <- rd("ni.csv")

timed <- function(name, n, fit_one) {
  invisible(try(fit_one(1), silent = TRUE))  # warm-up
  errors <- 0L
  t <- system.time(for (i in seq_len(n)) {
    r <- try(fit_one(i), silent = TRUE)
    if (inherits(r, "try-error")) errors <- errors + 1L
  })
  cat(name, t[["elapsed"]], n, errors, "\n")
}

# REML + Knapp-Hartung CI + prediction interval (t, k - 1 df under test = "knha")
timed("rma_reml_knha_pi", n_rma, function(i) {
  res <- rma(yi[i, ], vi[i, ], method = "REML", test = "knha")
  predict(res)
})
# the same with the Q-profile CI of tau², I², H²
timed("rma_reml_knha_pi_confint", n_confint, function(i) {
  res <- rma(yi[i, ], vi[i, ], method = "REML", test = "knha")
  predict(res)
  confint(res)
})
# binomial-normal GLMM (lme4::glmer, nAGQ = 7) + prediction interval
timed("rma_glmm_pi", n_glmm, function(i) {
  res <- suppressWarnings(rma.glmm(measure = "PLO", xi = xi[i, ], ni = ni[i, ],
                                   method = "ML"))
  predict(res)
})
cat("versions", R.version$major, R.version$minor, as.character(packageVersion("metafor")),
    as.character(packageVersion("lme4")), "\n")
