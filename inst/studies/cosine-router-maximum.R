#!/usr/bin/env Rscript
# Are the over-specified (k = 3) cosine-router least-squares fits at a
# minimum of the residual sum of squares? With one command:
#
#   Rscript inst/studies/cosine-router-maximum.R [--file=cosine-router-k3.rds]
#           [--newton_maxit=30] [--reps=0] [--nmax=Inf] [--studies=cosine,perturbed_cosine]
#           [--update=FALSE] [--workers=2] [--out=DIR]
#
# For every fit of --file (written by cosine-router.R --k=3), study_maxima()
# rebuilds the replication's data, continues the fit by damped Newton steps on
# -RSS / (2 sigma2) (sigma2 = the fit's RSS / n; analytic gradient,
# information by central differences of it, the gate's exact invariances
# left out of the steps: the cosine router's k norms, the perturbed router's
# common v shift), until the relative gradient is below 1e-9, no step
# improves, or --newton_maxit steps; computes the information there (scaled
# to unit diagonal; its smallest eigenvalue beyond the invariances), the
# largest expert slope norm (a tanh expert turning into a step function) and
# every loss of the study at the continued point; for the perturbed router
# also the best RSS over the closed v-ball from there (a best point on the
# ball's boundary: a run-off, no finite minimum; columns ball_gain,
# ball_ratio, boundary). --reps=R > 0 checks
# replications 1..R only, --nmax sizes up to nmax only (at n = 1e5 a check costs about a minute: 2P score
# passes per Newton step, P = 17). --studies: which routers to check;
# --update=TRUE keeps the other routers' checks of an existing output (so the
# routers can be checked one at a time); --workers: parallel R sessions
# (future::multisession; the fits are checked one per task on their own random
# streams, so the result does not depend on it). Writes
# cosine-router-k3-maximum.rds: a list with `checks` (one study_maxima()
# table per router), the seconds, the date and the machine.
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(file = "cosine-router-k3.rds", newton_maxit = 30, reps = 0, nmax = Inf,
                          studies = "", update = FALSE, workers = 2,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
path <- c(file.path(opt$out, opt$file), system.file("extdata", opt$file, package = "moegate"))
path <- path[nzchar(path) & file.exists(path)]
if (!length(path)) stop("no ", opt$file, " found")
run <- readRDS(path[1])
if (opt$workers > 1) future::plan(future::multisession, workers = opt$workers)
t0 <- proc.time()[["elapsed"]]
todo <- if (nzchar(opt$studies)) strsplit(opt$studies, ",")[[1]] else names(run$studies)
checks <- lapply(run$studies[intersect(names(run$studies), todo)], function(st) {
  t_study <- proc.time()[["elapsed"]]
  rows <- which(!vapply(st$params, is.null, NA) & (opt$reps <= 0 | st$replication <= opt$reps) &
                  st$n <= opt$nmax)
  m <- study_maxima(st, rows = rows, newton_maxit = opt$newton_maxit)
  attr(m, "seconds") <- proc.time()[["elapsed"]] - t_study
  m
})
seconds <- proc.time()[["elapsed"]] - t0
future::plan(future::sequential)
target <- file.path(opt$out, sub("\\.rds$", "-maximum.rds", opt$file))
if (isTRUE(opt$update) && file.exists(target)) {
  old <- readRDS(target)
  keep <- setdiff(names(old$checks), names(checks))
  checks <- c(old$checks[keep], checks)[union(names(old$checks), names(checks))]
  seconds <- seconds + old$seconds
}
result <- list(checks = checks, seconds = seconds,
               date = format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC"),
               machine = moegate:::study_machine(),
               newton_maxit = opt$newton_maxit, reps = opt$reps, nmax = opt$nmax, source = opt$file,
               workers = opt$workers)
saveRDS(result, target)
print(lapply(checks, function(x) x[, c("n", "replication", "criterion", "newton_steps",
                                        "at_maximum", "expert_slope", "loss")]))
cat(sprintf("%.0f s\n", result$seconds))
