#!/usr/bin/env Rscript
# Sigmoid multinomial paper (Pham, Cao, Nguyen, Nguyen, Ho, Rinaldo 2026), its
# temperature claims, with one command:
#
#   Rscript inst/studies/sigmoid-multinomial.R [--workers=2] [--sizes=8] [--reps=20]
#           [--nmin=3e3] [--nmax=1e5] [--two_start=4] [--maxit=1000] [--grad_tol=1e-6] [--seed=5] [--arms=euclidean,inner]
#           [--out=DIR]
#
# --arms=euclidean or --arms=inner runs one arm and writes sigmoid-multinomial-<arm>.rds,
# so that the two arms can run as two processes; combine them with
#   Rscript inst/studies/sigmoid-multinomial.R --combine=TRUE
#
# Arms: plain (unsquared) Euclidean score against the inner-product score,
# both with an estimated temperature, on the truth of
# ?study_setting_sigmoid_multinomial; starts spread along the ray (c w, c tau);
# two-start check in the first --two_start replications. The sigmoid paper's
# sigmoid-versus-softmax claim is the population-level computation of
# softmax-multinomial.R (zero-slope experts are closed under mixing).
# Writes sigmoid-multinomial.rds (a run_studies() result).
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(workers = 2, sizes = 8, reps = 20, nmin = 3e3, nmax = 1e5,
                          two_start = 4, maxit = 1000, grad_tol = 1e-6, seed = 5, arms = "euclidean,inner", combine = FALSE,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
n_grid <- round(10^seq(log10(opt$nmin), log10(opt$nmax), length.out = opt$sizes))
arms <- c(euclidean = "euclidean_temperature", inner = "sigmoid_temperature")
if (isTRUE(opt$combine)) {
  parts <- lapply(names(arms), function(a) {
    readRDS(file.path(opt$out, sprintf("sigmoid-multinomial-%s.rds", a)))
  })
  run <- parts[[1]]
  run$studies <- do.call(c, lapply(parts, `[[`, "studies"))
  run$settings <- do.call(c, lapply(parts, `[[`, "settings"))
  run$elapsed <- do.call(c, lapply(parts, `[[`, "elapsed"))
  run$asymptotic <- do.call(c, lapply(parts, `[[`, "asymptotic"))
  run$total <- max(vapply(parts, `[[`, 0, "total"))
  run$note <- "the two arms ran as two processes at the same time; total = the longer"
  saveRDS(run, file.path(opt$out, "sigmoid-multinomial.rds"))
  print(run)
  quit(save = "no")
}
chosen <- strsplit(opt$arms, ",")[[1]]
if (!all(chosen %in% names(arms))) stop("--arms: euclidean and/or inner")
arms <- arms[chosen]
settings <- lapply(arms, function(s) {
  study_setting_sigmoid_multinomial(s, n_grid = n_grid, n_rep = opt$reps, maxit = opt$maxit,
                                    two_start = opt$two_start, grad_tol = opt$grad_tol)
})
# Conditioning of the temperature: the information's null directions and
# condition number (the D1 prediction is a by-product).
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 100)
})
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = opt$seed, workers = opt$workers, asymptotic = asymptotic,
            file = file.path(opt$out, if (length(arms) == 2) "sigmoid-multinomial.rds" else
              sprintf("sigmoid-multinomial-%s.rds", names(arms))))
