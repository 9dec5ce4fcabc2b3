# Least squares: the relative-change rule (before) against the gradient rule
# with the Newton polish (after; grad_tol 1e-6, the default, and 1e-9, the
# tolerance of study_maxima()'s continuation) on the over-specified (k = 3)
# cosine-router setting of inst/studies/cosine-router.R --k=3, each fit
# checked by study_maxima() (30 Newton steps).
#
#   Rscript bench/bench-lsq-polish.R [sizes=1000,10000] [reps=5]
#           [routers=cosine,perturbed_cosine]
#
# bench/results-lsq-polish.csv (2026-12-02, 2 cores, load 1-2) holds its
# rows from four runs: `before`; `after` (with the polish's BFGS updates);
# `after_no_bfgs` and `after_1e9_no_bfgs`, built with
# MOEGATE_CPPFLAGS=-DMOEGATE_LSQ_QUASI_STEPS=0 (src/lsq.cpp). CPU per fit
# varied by about 20% between repeated runs of the same rule (0.64 vs 0.58 s,
# cosine, before).
#
# Writes bench/results-lsq-polish.csv: per router, rule and n the fits, how
# many study_maxima() finds at a regular minimum (at_maximum), the median
# relative gradient before and after its continuation, the mean seconds of a
# fit and the median loss; the CPU seconds of each rate_study() run (all its
# sizes) divided by its fits in column cpu_per_fit.
suppressPackageStartupMessages(library(moegate))
args <- commandArgs(TRUE)
sizes <- as.numeric(strsplit(if (length(args) >= 1) args[1] else "1000,10000", ",")[[1]])
reps <- as.integer(if (length(args) >= 2) args[2] else 5)
routers <- strsplit(if (length(args) >= 3) args[3] else "cosine,perturbed_cosine", ",")[[1]]
rules <- list(
  before = moe_control(tol = 1e-10, maxit = 1000, stop = "loglik", polish = "none"),
  after = moe_control(tol = 1e-10, maxit = 1000, stop = "gradient", polish = "newton"),
  after_1e9 = moe_control(tol = 1e-10, maxit = 1000, stop = "gradient", polish = "newton",
                          grad_tol = 1e-9))
out <- list()
for (r in routers) for (rule in names(rules)) {
  s <- study_setting_cosine(r, n_grid = sizes, n_rep = reps, k = 3, two_start = 0,
                            control = rules[[rule]])
  t0 <- proc.time()
  st <- rate_study(s, seed = 4, progress = FALSE)
  cpu <- proc.time() - t0
  cpu <- cpu[["user.self"]] + cpu[["sys.self"]]
  m <- study_maxima(st, newton_maxit = 30)
  gate_norm <- vapply(st$params, function(p) max(sqrt(colSums(p$gate$W^2))), 0)
  for (n in sizes) {
    i <- st$n == n
    j <- m$n == n
    out[[length(out) + 1]] <- data.frame(
      router = r, rule = rule, n = n, fits = sum(i),
      at_maximum = sum(m$at_maximum[j], na.rm = TRUE),
      criterion_median = median(m$criterion[j]),
      criterion_after_median = median(m$criterion_after[j]),
      gate_norm_median = median(gate_norm[i]), seconds_per_fit = mean(st$seconds[i]),
      cpu_per_fit = cpu / nrow(st), loss_median = median(st$loss[i]))
  }
}
res <- do.call(rbind, out)
print(res)
utils::write.csv(res, "bench/results-lsq-polish.csv", row.names = FALSE)
