# One large fit: n = 1e6, d = 10, k = 4 softmax Gaussian MoE, with 1 and 2
# OpenMP threads, and a check that both give identical parameters.
#
#   Rscript bench/bench-large.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (default 1e6).
#
# Data generation is outside the timings. Each timed fit is the whole
# `moe()` call on matrices (the formula interface would add a model frame
# copy): k-means start on a 20 000-row subsample, EM, and building the fitted
# object. To separate the per-iteration cost from that fixed cost the same
# fit is also run with maxit = 1 (same seed, so the same start); the marginal
# seconds per iteration are (total - fixed) / (iter - 1). CPU seconds (user +
# system, all threads) are reported next to the elapsed seconds: on a shared
# machine the elapsed time, and above all any 2-thread speed-up, depends on
# the load of other processes (the load average is stored with the results).

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()

n <- as.numeric(Sys.getenv("BENCH_N", "1e6"))
d <- 10
k <- 4
tol <- 1e-8

truth <- large_truth(d, k)
t_sim <- system.time(s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 102))
cat("Machine:", machine_info(), "\n")
options(width = 200)
cat(sprintf("Simulated n = %s, d = %d, k = %d in %.1f s (not part of the timings); load average %s\n\n",
            format(n, big.mark = ","), d, k, t_sim[["elapsed"]], load_average()))

fit_once <- function(nthreads, maxit = 1000) {
  r <- time_call(function() {
    set.seed(1)  # the k-means start: identical for every call
    moe(s$Z, s$y, k = k, control = moe_control(tol = tol, maxit = maxit, nthreads = nthreads))
  }, muffle = "moe_convergence_warning")
  # The maxit = 1 run is meant not to converge; report anything else.
  ws <- unique(r$warnings)
  if (maxit == 1) ws <- ws[!grepl("did not converge", ws)]
  for (w in ws) message("  warning (nthreads = ", nthreads, ", maxit = ", maxit, "): ", w)
  list(fit = r$value, seconds = r$seconds, cpu = r$cpu)
}

rows <- list()
fits <- list()
for (nt in c(1, 2)) {
  fixed <- fit_once(nt, maxit = 1)
  full <- fit_once(nt)
  f <- full$fit
  fits[[nt]] <- f
  rows[[nt]] <- data.frame(
    n = n, d = d, k = k, nthreads = nt, seconds = full$seconds, cpu_seconds = full$cpu,
    iter = f$iter, converged = f$converged, sec_per_iter = full$seconds / f$iter,
    fixed_s = fixed$seconds,
    marginal_sec_per_iter = (full$seconds - fixed$seconds) / max(f$iter - 1, 1),
    loglik = f$loglik, load_average = load_average())
  cat(sprintf("nthreads = %d: %.2f s elapsed (%.2f s CPU), %d iterations, loglik %.6f, load %s\n",
              nt, full$seconds, full$cpu, f$iter, f$loglik, load_average()))
}
res <- do.call(rbind, rows)
res$speedup <- res$seconds[1] / res$seconds
res$identical_params <- identical(fits[[1]]$params, fits[[2]]$params)
res$identical_loglik <- identical(fits[[1]]$loglik, fits[[2]]$loglik)

# How close the fit is to the truth, up to relabelling (expert coefficients).
perms <- function(v) if (length(v) <= 1) list(v) else
  do.call(c, lapply(seq_along(v), function(i) lapply(perms(v[-i]), function(p) c(v[i], p))))
est <- unname(fits[[1]]$params$expert$coef)
gap <- min(vapply(perms(seq_len(k)), function(p) max(abs(est[, p] - truth$coef)), 0))
ll_truth <- loglik_softmax_moe(s$y, s$X, s$Z, truth$W, truth$b0, truth$coef, truth$sigma2)

out <- bench_output("results-large.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("\n")
print(format(res, digits = 6), row.names = FALSE)
cat(sprintf("\nidentical(fit1$params, fit2$params): %s\n", res$identical_params[1]))
cat(sprintf("log-likelihood at the true parameters: %.6f (fit - truth = %.3f)\n", ll_truth,
            fits[[1]]$loglik - ll_truth))
cat(sprintf("max |expert coefficient - truth| after relabelling: %.4f\n", gap))
cat("Written:", out, "\n")
