#!/usr/bin/env Rscript
# Temperature paper (Nguyen, Akbarian, Ho 2024), in full, with one command:
#
#   Rscript inst/studies/temperature-gaussian.R [--workers=2] [--sizes=10] [--reps=20]
#           [--nmax=1e5] [--two_start=6] [--seed=3] [--stop=loglik|gradient]
#           [--file=temperature-gaussian.rds] [--out=DIR]
#   Rscript inst/studies/temperature-gaussian.R --combine=first.rds,second.rds [--out=DIR]
#
# Arms: dense-to-sparse (estimated temperature) against the GELU and tanh
# activation gates; starts spread along the ray (c w, c tau); two-start check
# in the first --two_start replications. Writes --file (a run_studies()
# result; see ?study_setting_temperature and ?run_studies).
#
# The shipped inst/extdata/temperature-gaussian.rds holds two batches of 20
# replications (10 sizes 1e3..1e5, two-start check in replications 1-6 of each
# batch), seeds 3 and 13, combined by --combine (combine_study_runs()): the
# replications of the second batch are numbered 21-40. Both batches stop EM by
# the relative change of the log-likelihood (--stop=loglik, tol 1e-8, no
# polish): the rule the first batch ran with, before moe_control() switched to
# the gradient rule with a Newton polish (--stop=gradient).
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(workers = 2, sizes = 10, reps = 20, nmax = 1e5, two_start = 6,
                          seed = 3, stop = "loglik", file = "temperature-gaussian.rds",
                          combine = "", commit = "",
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
if (!opt$stop %in% c("loglik", "gradient")) stop("--stop: loglik or gradient")
# batches.R (beside this script): batch_commit(), combine_batches().
local_dir <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(local_dir)) dirname(local_dir[1]) else ".", "batches.R"))
commit <- batch_commit(opt)
control <- moe_control(tol = 1e-8, maxit = 1000, accelerate = "squarem", stop = opt$stop,
                       polish = if (opt$stop == "loglik") "none" else "newton")
if (nzchar(opt$combine)) {
  combine_batches(opt, control, commit)
  quit(save = "no")
}
n_grid <- round(10^seq(3, log10(opt$nmax), length.out = opt$sizes))
arms <- c("temperature", "activation_gelu", "activation_tanh")
settings <- lapply(stats::setNames(nm = arms), function(s) {
  study_setting_temperature(s, n_grid = n_grid, n_rep = opt$reps, two_start = opt$two_start,
                            control = control)
})
# The identified loss's asymptotic prediction (the raw losses move along the
# information's null direction, which asymptotic_loss() does not perturb).
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 200)
})
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = opt$seed, workers = opt$workers, asymptotic = asymptotic,
            extra = list(commit = commit, stop = opt$stop),
            file = file.path(opt$out, opt$file))
