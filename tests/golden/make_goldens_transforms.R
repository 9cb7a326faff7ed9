# metafor reference values for the proportion transformations PFT, PAS and PR.
#
# Run from the repository root:  Rscript tests/golden/make_goldens_transforms.R
# Writes tests/golden/transforms_goldens.json (deterministic: no timestamps).
# Inputs are the proportion cases of make_goldens.R (their CSVs in tests/golden/inputs/)
# plus Miller (1978)'s example from metafor's tests.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

ctrl <- list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)
inputs <- list(
  orr_default = read.csv("tests/golden/inputs/orr_default.csv"),
  dcr_default = read.csv("tests/golden/inputs/dcr_default.csv"),
  pritz1997 = read.csv("tests/golden/inputs/pritz1997.csv"),
  miller_extremes = data.frame(events = c(0, 4, 9, 16, 20), total = c(10, 10, 15, 20, 20))
)
back <- list(
  PFT = "transf.ipft.hm, targs = list(ni = dat$total)",
  PAS = "transf.iarcsin",
  PR = "none"
)

num <- function(x) if (is.null(x) || length(x) == 0 || is.na(x)) NULL else unname(as.numeric(x))

fit_case <- function(dat, measure, method, test) {
  es <- escalc(measure = measure, xi = events, ni = total, data = dat)
  call <- sprintf('rma(yi, vi, data = es, method = "%s", test = "%s", control = ctrl)', method, test)
  res <- eval(parse(text = call))
  pr <- predict(res)
  nat <- switch(measure,
    PFT = predict(res, transf = transf.ipft.hm, targs = list(ni = dat$total)),
    PAS = predict(res, transf = transf.iarcsin),
    PR = pr
  )
  list(
    call = paste0('es <- escalc(measure = "', measure, '", xi = events, ni = total, data = dat); ', call),
    back_transform = back[[measure]],
    k = res$k, estimate = num(res$b), se = num(res$se), pval = num(res$pval),
    ci_lower = num(res$ci.lb), ci_upper = num(res$ci.ub),
    tau2 = num(res$tau2), i2 = num(res$I2), h2 = num(res$H2), q = num(res$QE),
    pi_lower = num(pr$pi.lb), pi_upper = num(pr$pi.ub),
    natural = list(estimate = num(nat$pred), ci_lower = num(nat$ci.lb), ci_upper = num(nat$ci.ub),
                   pi_lower = num(nat$pi.lb), pi_upper = num(nat$pi.ub)),
    yi = unname(as.numeric(es$yi)), vi = unname(as.numeric(es$vi))
  )
}

cases <- list()
for (name in sort(names(inputs))) {
  dat <- inputs[[name]]
  fits <- list()
  for (measure in c("PAS", "PFT", "PR")) {
    for (method in c("DL", "REML")) {
      for (test in c("knha", "z")) {
        fits[[paste(measure, method, test, sep = "_")]] <- fit_case(dat, measure, method, test)
      }
    }
  }
  cases[[name]] <- list(input = list(events = dat$events, total = dat$total), fits = fits)
}

out <- list(
  meta = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
              generated_by = "tests/golden/make_goldens_transforms.R",
              rma_control = "list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)"),
  cases = cases
)
write_json(out, "tests/golden/transforms_goldens.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, null = "null")
cat(sprintf("transforms goldens: %d cases, %d fits\n", length(cases),
            sum(sapply(cases, function(c) length(c$fits)))))
