#!/usr/bin/env Rscript
# Sigmoid multinomial paper (Pham, Cao, Nguyen, Nguyen, Ho, Rinaldo 2026), its
# temperature claims, with one command:
#
#   Rscript inst/studies/sigmoid-multinomial.R [--workers=2] [--sizes=8] [--reps=20]
#           [--nmin=3e3] [--nmax=1e5] [--two_start=4] [--maxit=1000] [--out=DIR]
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
                          two_start = 4, maxit = 1000,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
n_grid <- round(10^seq(log10(opt$nmin), log10(opt$nmax), length.out = opt$sizes))
arms <- c(euclidean = "euclidean_temperature", inner = "sigmoid_temperature")
settings <- lapply(arms, function(s) {
  study_setting_sigmoid_multinomial(s, n_grid = n_grid, n_rep = opt$reps, maxit = opt$maxit,
                                    two_start = opt$two_start)
})
# Conditioning of the temperature: the information's null directions and
# condition number (the D1 prediction is a by-product).
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 100)
})
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = 5, workers = opt$workers, asymptotic = asymptotic,
            file = file.path(opt$out, "sigmoid-multinomial.rds"))
