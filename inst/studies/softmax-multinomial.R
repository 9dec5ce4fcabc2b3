#!/usr/bin/env Rscript
# Softmax multinomial paper (Nguyen, Akbarian, Nguyen, Ho 2024) and the sigmoid
# paper's sigmoid-versus-softmax claim, with one command:
#
#   Rscript inst/studies/softmax-multinomial.R [--workers=2] [--sizes=8] [--reps=20]
#           [--nmax=1e5] [--maxit=1000] [--starts=1] [--lm_maxit=200] [--out=DIR]
#
# (i) An exact-fit study (k = k* = 2) with a vanishing expert on a
# well-conditioned truth, softmax against modified softmax (tanh): see
# ?study_setting_softmax_multinomial ("vanishing_exact").
# (ii) The population-level computation (no sampling): the smallest Hellinger
# distance to the truth at a given discrepancy of the over-specified cell's
# slope blocks, under softmax, modified softmax and modified sigmoid
# (?vanishing_hellinger_profile).
# Writes softmax-multinomial.rds (a run_studies() result with `profile`).
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(workers = 2, sizes = 8, reps = 20, nmax = 1e5, maxit = 1000,
                          starts = 1, lm_maxit = 200,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
n_grid <- round(10^seq(3, log10(opt$nmax), length.out = opt$sizes))
arms <- c(softmax = "vanishing_exact", modified = "vanishing_exact_modified")
settings <- lapply(arms, function(s) {
  study_setting_softmax_multinomial(s, n_grid = n_grid, n_rep = opt$reps, maxit = opt$maxit)
})
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 200)
})
started <- proc.time()[["elapsed"]]
delta <- c(0.3, 0.15, 0.075, 0.035, 0.015)
profile <- do.call(rbind, lapply(c("softmax", "modified_softmax", "modified_sigmoid"), function(g) {
  vanishing_hellinger_profile(g, delta = delta, starts = opt$starts, maxit = opt$lm_maxit)
}))
print(profile)
profile_seconds <- proc.time()[["elapsed"]] - started
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = 6, workers = opt$workers, asymptotic = asymptotic,
            extra = list(profile = profile, profile_seconds = profile_seconds),
            file = file.path(opt$out, "softmax-multinomial.rds"))
