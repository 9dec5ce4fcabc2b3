# Seconds per EM iteration of every gate, relative to the softmax gate, on the
# same data (n = 1e5, d = 2, k = 3, simulated from a softmax Gaussian MoE).
#
#   Rscript bench/bench-gates.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (default 1e5),
# BENCH_REPS (timed repetitions per gate, the fastest is kept; default 2),
# BENCH_PROFILE (FALSE skips the L-BFGS comparison and the time-to-convergence
# check; default TRUE), BENCH_CONV_N (sample size of the time-to-convergence
# check; default 2e4).
#
# Every gate runs exactly 30 EM iterations (maxit = 30, tol = 1e-300; the
# "did not converge" warning this causes is expected and muffled) from the same
# k-means partition (same seed). `sec_per_iter` is the whole moe() call divided
# by the iterations, as asked; `marginal_sec_per_iter` removes the fixed cost
# (k-means start, first M-step, building the fitted object) measured by a
# maxit = 1 run: (t30 - t1) / 29. The ratios use the marginal figure, which is
# the cost of one EM iteration; the plain ratio is also reported. Everything is
# single-threaded, so CPU seconds (user + system) are reported too: on a
# machine shared with other processes they are the steadier measure.
#
# The linear softmax gate's M-step is Newton; every other gate's is Fisher
# scoring (moe_control(gate_optimizer = "fisher"), one trust-region step per
# EM iteration by default). The profile part repeats the per-iteration timing
# with the L-BFGS gate M-step (gate_optimizer = "lbfgs", up to 50 inner
# iterations), and fits every gate to convergence (tol = 1e-8, n = BENCH_CONV_N)
# three ways: Fisher with one step per EM iteration (the default), Fisher
# solved to gate_tol (gate_maxit = 50), and L-BFGS, to show which is fastest
# overall and that they reach the same log-likelihood.

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()

n <- as.numeric(Sys.getenv("BENCH_N", "1e5"))
reps <- as.integer(Sys.getenv("BENCH_REPS", "2"))
do_profile <- as.logical(Sys.getenv("BENCH_PROFILE", "TRUE"))
conv_n <- as.numeric(Sys.getenv("BENCH_CONV_N", "2e4"))
k <- 3
maxit <- 30

truth <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
              coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)),
              sigma2 = c(0.3, 0.4, 0.35)^2)
s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 3)

gates <- list(
  "softmax" = gate_softmax(),
  "modified_softmax" = gate_modified_softmax(),
  "temperature" = gate_temperature(),
  "activation(tanh)" = gate_activation("tanh"),
  "activation(gelu)" = gate_activation("gelu"),
  "sigmoid" = gate_sigmoid(),
  "sigmoid(est. temperature)" = gate_sigmoid(temperature = 1, estimate_temperature = TRUE),
  "modified_sigmoid" = gate_modified_sigmoid(),
  "euclidean" = gate_euclidean(),
  "cosine" = gate_cosine(),
  "perturbed_cosine" = gate_perturbed_cosine()
)

# Fastest of `reps` timed fits; the k-means start is reseeded every time.
time_fit <- function(gate, maxit, reps, ...) {
  ctl <- moe_control(tol = 1e-300, maxit = maxit, ...)
  r <- tryCatch(time_call(function() {
    set.seed(1)
    moe_fit(s$y, s$X, s$Z, k, gate = gate, control = ctl)
  }, reps, muffle = "moe_convergence_warning"), error = function(e) e)
  if (inherits(r, "error")) {
    return(list(seconds = NA_real_, cpu = NA_real_, fit = NULL, error = conditionMessage(r)))
  }
  list(seconds = r$seconds, cpu = r$cpu, fit = r$value, error = NA_character_,
       warnings = setdiff(unique(r$warnings), r$warnings[grepl("did not converge", r$warnings)]))
}

cat("Machine:", machine_info(), "\n")
options(width = 200)
cat(sprintf("n = %s, d = 2, k = %d, %d EM iterations per fit, best of %d; load average %s\n\n",
            format(n, big.mark = ","), k, maxit, reps, load_average()))

rows <- lapply(names(gates), function(nm) {
  full <- time_fit(gates[[nm]], maxit, reps)
  fixed <- time_fit(gates[[nm]], 1, reps)
  f <- full$fit
  iter <- if (is.null(f)) NA_integer_ else f$iter
  cat(sprintf("%-26s %7.3f s elapsed, %7.3f s CPU (%s iterations)\n", nm, full$seconds,
              full$cpu, iter))
  for (w in full$warnings) message("  warning (", nm, "): ", w)
  data.frame(gate = nm, seconds = full$seconds, cpu_seconds = full$cpu, iter = iter,
             sec_per_iter = full$seconds / iter, fixed_s = fixed$seconds,
             marginal_sec_per_iter = (full$seconds - fixed$seconds) / (iter - 1),
             cpu_per_iter = full$cpu / iter,
             marginal_cpu_per_iter = (full$cpu - fixed$cpu) / (iter - 1),
             loglik = if (is.null(f)) NA_real_ else f$loglik,
             error = full$error, stringsAsFactors = FALSE)
})
res <- do.call(rbind, rows)
soft <- res$gate == "softmax"
res$ratio_to_softmax <- res$marginal_sec_per_iter / res$marginal_sec_per_iter[soft]
res$ratio_to_softmax_plain <- res$sec_per_iter / res$sec_per_iter[soft]
res$ratio_to_softmax_cpu <- res$marginal_cpu_per_iter / res$marginal_cpu_per_iter[soft]
res$within_3x <- res$ratio_to_softmax <= 3
res$within_3x_cpu <- res$ratio_to_softmax_cpu <= 3
out <- bench_output("results-gates.csv")
utils::write.csv(res, out, row.names = FALSE)

show <- res[c("gate", "iter", "sec_per_iter", "marginal_sec_per_iter", "ratio_to_softmax",
              "ratio_to_softmax_plain", "marginal_cpu_per_iter", "ratio_to_softmax_cpu",
              "within_3x", "within_3x_cpu", "loglik")]
show <- round_columns(show, c(sec_per_iter = 4, marginal_sec_per_iter = 4, ratio_to_softmax = 2,
                              ratio_to_softmax_plain = 2, marginal_cpu_per_iter = 4,
                              ratio_to_softmax_cpu = 2, loglik = 2))
cat("\n")
print(show, row.names = FALSE)
cat("Written:", out, "\n")

if (isTRUE(do_profile)) {
  # The same 30 iterations with the L-BFGS gate M-step (the engine before
  # Fisher scoring), relative to the same softmax figure.
  lb <- do.call(rbind, lapply(setdiff(names(gates), c("softmax", "modified_softmax")), function(nm) {
    full <- time_fit(gates[[nm]], maxit, 1, gate_optimizer = "lbfgs")
    fixed <- time_fit(gates[[nm]], 1, 1, gate_optimizer = "lbfgs")
    m <- (full$cpu - fixed$cpu) / (maxit - 1)
    data.frame(gate = nm, lbfgs_marginal_cpu_per_iter = m,
               lbfgs_ratio_to_softmax_cpu = m / res$marginal_cpu_per_iter[soft],
               fisher_ratio_to_softmax_cpu = res$ratio_to_softmax_cpu[res$gate == nm],
               lbfgs_loglik_after_30 = if (is.null(full$fit)) NA_real_ else full$fit$loglik,
               fisher_loglik_after_30 = res$loglik[res$gate == nm])
  }))
  out2 <- bench_output("results-gates-lbfgs.csv")
  utils::write.csv(lb, out2, row.names = FALSE)
  show2 <- lb
  num <- vapply(show2, is.numeric, TRUE)
  show2[num] <- lapply(show2[num], signif, 4)
  cat("\nCPU per EM iteration relative to softmax: L-BFGS gate M-step vs Fisher scoring:\n")
  print(show2, row.names = FALSE)
  cat("Written:", out2, "\n")

  # Time to convergence (tol = 1e-8): one Fisher step per EM iteration (the
  # default), Fisher to gate_tol, L-BFGS.
  sc <- simulate_moe(conv_n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 3)
  variants <- list("fisher, 1 step (default)" = list(),
                   "fisher, gate_maxit = 50" = list(gate_maxit = 50),
                   "lbfgs, gate_maxit = 50" = list(gate_optimizer = "lbfgs"))
  conv <- do.call(rbind, lapply(names(gates), function(nm) {
    vs <- if (nm %in% c("softmax", "modified_softmax")) variants[1] else variants
    do.call(rbind, lapply(names(vs), function(v) {
      r <- time_call(function() {
        set.seed(1)
        moe_fit(sc$y, sc$X, sc$Z, k, gate = gates[[nm]],
                control = do.call(moe_control, c(list(tol = 1e-8, maxit = 3000), vs[[v]])))
      }, muffle = "moe_convergence_warning")
      data.frame(gate = nm, variant = v, n = conv_n, seconds = r$seconds, cpu_seconds = r$cpu,
                 iter = r$value$iter, converged = r$value$converged, loglik = r$value$loglik)
    }))
  }))
  soft_cpu <- conv$cpu_seconds[conv$gate == "softmax"]
  conv$cpu_ratio_to_softmax <- conv$cpu_seconds / soft_cpu
  out3 <- bench_output("results-gates-convergence.csv")
  utils::write.csv(conv, out3, row.names = FALSE)
  conv <- round_columns(conv, c(seconds = 2, cpu_seconds = 2, cpu_ratio_to_softmax = 1,
                                loglik = 3))
  cat("\nTime to convergence (tol = 1e-8):\n")
  print(conv, row.names = FALSE)
  cat("Written:", out3, "\n")
}
