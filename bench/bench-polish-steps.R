# Step rules of the Newton polish on over-specified fits: the k = 4 fit of the
# NeurIPS 2023 k* = 2 truth (one near-truth start, gradient rule), where the
# polish spends 35-68 Newton iterations climbing through regions where the
# observed information is indefinite. Compares, from the same data and start
# in one process: the default damped Newton step (Levenberg ladder from 1e-8
# times the largest diagonal entry, x10 until positive definite), the trust
# region (polish = "trust"), and two step rules of a patched build:
#   MOE_EXACT = c: the Levenberg shift set from the eigendecomposition of the
#     diagonally scaled information, c times its most negative eigenvalue
#     (no ladder overshoot);
#   MOE_SFN = f: "saddle-free" Newton, |eigenvalues| floored at f.
# The patch (bench/patches/polish-step-variants.diff, on main a521ef1) reads
# these environment variables in polish_newton(); MOE_DBG=1 prints one line per
# Newton iteration (gain, step fraction, smallest eigenvalue, criterion).
#
#   git apply bench/patches/polish-step-variants.diff   # in a scratch copy
#   R CMD INSTALL -l /tmp/lib-steps .
#   MOEGATE_LIB=/tmp/lib-steps Rscript bench/bench-polish-steps.R
#
# Environment: BENCH_N (default 55000, the protocol's median size), BENCH_K
# (4), BENCH_SEEDS (1,...,8). CPU seconds (user + system).
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
ns <- asNamespace("moegate")
n <- as.numeric(Sys.getenv("BENCH_N", "55000"))
k <- as.integer(Sys.getenv("BENCH_K", "4"))
seeds <- env_ints("BENCH_SEEDS", "1,2,3,4,5,6,7,8")
variants <- list(
  "damped Newton (default)" = list(polish = "newton", env = character()),
  "trust region" = list(polish = "trust", env = character()),
  "exact shift, c = 1.1" = list(polish = "newton", env = c(MOE_EXACT = "1.1")),
  "exact shift, c = 2" = list(polish = "newton", env = c(MOE_EXACT = "2")),
  "saddle-free, floor 1e-3" = list(polish = "newton", env = c(MOE_SFN = "1e-3")))
setting <- study_setting_neurips2023(k = k, n_grid = n, n_rep = 1, n_starts = 1)
setting$control$stop <- "gradient"
rows <- list()
for (seed in seeds) {
  set.seed(seed)
  data <- ns$study_data(setting, n)
  starts <- ns$study_starts(setting, data)
  for (v in names(variants)) {
    spec <- variants[[v]]
    Sys.unsetenv(c("MOE_EXACT", "MOE_SFN"))
    if (length(spec$env)) do.call(Sys.setenv, as.list(spec$env))
    s <- setting
    s$control$polish <- spec$polish
    t <- system.time(fit <- ns$study_fit(s, data, starts))
    rows[[length(rows) + 1]] <- data.frame(
      seed = seed, variant = v, cpu_s = t[["user.self"]] + t[["sys.self"]], loglik = fit$loglik,
      rule = names(fit$converged), em_iter = fit$iter, polish_evals = fit$polish[["evaluations"]],
      criterion = fit$gradient_criterion, load_average = load_average())
    cat(sprintf("seed %d  %-26s %6.2f s  %.4f  %s\n", seed, v, rows[[length(rows)]]$cpu_s,
                fit$loglik, names(fit$converged)))
  }
  Sys.unsetenv(c("MOE_EXACT", "MOE_SFN"))
}
res <- do.call(rbind, rows)
best <- stats::ave(res$loglik, res$seed, FUN = max)
res$below_best <- best - res$loglik
print(res, row.names = FALSE)
cat("\nPer variant: CPU seconds summed over seeds, fits within 1e-6 of the best, mean below best\n")
print(do.call(rbind, lapply(split(res, res$variant), function(r) {
  data.frame(variant = r$variant[1], cpu_total = sum(r$cpu_s), at_best = sum(r$below_best < 1e-6),
             mean_below = mean(r$below_best), evals = sum(r$polish_evals))
})), row.names = FALSE)
out <- bench_output("results-polish-steps.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("Written:", out, "\n")
