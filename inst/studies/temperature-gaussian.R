#!/usr/bin/env Rscript
# Temperature paper (Nguyen, Akbarian, Ho 2024), in full, with one command:
#
#   Rscript inst/studies/temperature-gaussian.R [--workers=2] [--sizes=12] [--reps=40]
#           [--nmax=1e5] [--two_start=20] [--out=DIR]
#
# Arms: dense-to-sparse (estimated temperature) against the GELU and tanh
# activation gates; starts spread along the ray (c w, c tau); two-start check
# in the first --two_start replications. Writes temperature-gaussian.rds (a
# run_studies() result; see ?study_setting_temperature and ?run_studies).
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(workers = 2, sizes = 12, reps = 40, nmax = 1e5, two_start = 20,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
n_grid <- round(10^seq(3, log10(opt$nmax), length.out = opt$sizes))
arms <- c("temperature", "activation_gelu", "activation_tanh")
settings <- lapply(stats::setNames(nm = arms), function(s) {
  study_setting_temperature(s, n_grid = n_grid, n_rep = opt$reps, two_start = opt$two_start)
})
# The identified loss's asymptotic prediction (the raw losses move along the
# information's null direction, which asymptotic_loss() does not perturb).
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 200)
})
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = 3, workers = opt$workers, asymptotic = asymptotic,
            file = file.path(opt$out, "temperature-gaussian.rds"))
