#!/usr/bin/env Rscript
# Cosine-router paper (Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho 2025), in full:
#
#   Rscript inst/studies/cosine-router.R [--workers=2] [--sizes=12] [--reps=40]
#           [--nmax=1e5] [--two_start=20] [--out=DIR]
#
# Arms: cosine router against the perturbed cosine router with eps = 1, and
# the perturbed router with eps = 0.01 (numerically almost the cosine router);
# gate norms of the starts scaled by c; two-start check in the first
# --two_start replications. Writes cosine-router.rds (a run_studies() result;
# see ?study_setting_cosine and ?run_studies).
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(workers = 2, sizes = 12, reps = 40, nmax = 1e5, two_start = 20,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
n_grid <- round(10^seq(3, log10(opt$nmax), length.out = opt$sizes))
make <- function(s, eps = 1) {
  study_setting_cosine(s, n_grid = n_grid, n_rep = opt$reps, eps = eps,
                       two_start = opt$two_start)
}
settings <- list(cosine = make("cosine"), perturbed_cosine = make("perturbed_cosine"),
                 perturbed_cosine_eps001 = make("perturbed_cosine", eps = 0.01))
# Conditioning (null directions, condition number) and the identified D1's
# asymptotic prediction.
asymptotic <- lapply(settings, function(s) {
  function(setting) asymptotic_loss(setting, n = range(n_grid), n_info = 2e4, nsim = 200,
                                    loss = "loss_D1")
})
dir.create(opt$out, showWarnings = FALSE, recursive = TRUE)
run_studies(settings, seed = 4, workers = opt$workers, asymptotic = asymptotic,
            file = file.path(opt$out, "cosine-router.rds"))
