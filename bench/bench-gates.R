# Seconds per EM iteration of every gate, relative to the softmax gate, on the
# same data (n = 1e5, d = 2, k = 3, simulated from a softmax Gaussian MoE).
#
#   Rscript bench/bench-gates.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (default 1e5),
# BENCH_REPS (timed repetitions per gate, the fastest is kept; default 2),
# BENCH_PROFILE (FALSE skips the gate_maxit sweep; default TRUE).
#
# Every gate runs exactly 30 EM iterations (maxit = 30, tol = 1e-300; the
# "did not converge" warning this causes is expected and muffled) from the same
# k-means partition (same seed). `sec_per_iter` is the whole moe() call divided
# by the iterations, as asked; `marginal_sec_per_iter` removes the fixed cost
# (k-means start, first M-step, building the fitted object) measured by a
# maxit = 1 run: (t30 - t1) / 29. The ratios use the marginal figure, which is
# the cost of one EM iteration; the plain ratio is also reported.
#
# The linear softmax gate's M-step is Newton; every other gate's is L-BFGS with
# up to `gate_maxit` (default 50) inner iterations, each a full pass over the
# data. The optional sweep refits the slow gates with gate_maxit = 5, 10, 20, 50
# to show how much of their cost the inner iterations are and what they buy
# (log-likelihood after 30 EM iterations).

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()

n <- as.numeric(Sys.getenv("BENCH_N", "1e5"))
reps <- as.integer(Sys.getenv("BENCH_REPS", "2"))
do_profile <- as.logical(Sys.getenv("BENCH_PROFILE", "TRUE"))
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
  best <- Inf
  fit <- NULL
  for (r in seq_len(reps)) {
    gc()
    set.seed(1)
    ctl <- moe_control(tol = 1e-300, maxit = maxit, ...)
    t <- system.time(f <- tryCatch(
      withCallingHandlers(moe_fit(s$y, s$X, s$Z, k, gate = gate, control = ctl),
                          moe_convergence_warning = function(w) invokeRestart("muffleWarning")),
      error = function(e) e))[["elapsed"]]
    if (inherits(f, "error")) return(list(seconds = NA_real_, fit = NULL, error = conditionMessage(f)))
    if (t < best) { best <- t; fit <- f }
  }
  list(seconds = best, fit = fit, error = NA_character_)
}

cat("Machine:", machine_info(), "\n")
cat(sprintf("n = %s, d = 2, k = %d, %d EM iterations per fit, best of %d; load average %s\n\n",
            format(n, big.mark = ","), k, maxit, reps,
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))

rows <- lapply(names(gates), function(nm) {
  full <- time_fit(gates[[nm]], maxit, reps)
  fixed <- time_fit(gates[[nm]], 1, reps)
  f <- full$fit
  iter <- if (is.null(f)) NA_integer_ else f$iter
  cat(sprintf("%-26s %7.3f s  (%s iterations)\n", nm, full$seconds, iter))
  data.frame(gate = nm, seconds = full$seconds, iter = iter,
             sec_per_iter = full$seconds / iter, fixed_s = fixed$seconds,
             marginal_sec_per_iter = (full$seconds - fixed$seconds) / (iter - 1),
             loglik = if (is.null(f)) NA_real_ else f$loglik,
             error = full$error, stringsAsFactors = FALSE)
})
res <- do.call(rbind, rows)
soft <- res$gate == "softmax"
res$ratio_to_softmax <- res$marginal_sec_per_iter / res$marginal_sec_per_iter[soft]
res$ratio_to_softmax_plain <- res$sec_per_iter / res$sec_per_iter[soft]
res$within_3x <- res$ratio_to_softmax <= 3
out <- file.path(bench_dir(), "results-gates.csv")
utils::write.csv(res, out, row.names = FALSE)

show <- res[c("gate", "iter", "sec_per_iter", "marginal_sec_per_iter", "ratio_to_softmax",
              "ratio_to_softmax_plain", "within_3x", "loglik")]
show$sec_per_iter <- round(show$sec_per_iter, 4)
show$marginal_sec_per_iter <- round(show$marginal_sec_per_iter, 4)
show$ratio_to_softmax <- round(show$ratio_to_softmax, 2)
show$ratio_to_softmax_plain <- round(show$ratio_to_softmax_plain, 2)
show$loglik <- round(show$loglik, 2)
cat("\n")
print(show, row.names = FALSE)
cat("Written:", out, "\n")

if (isTRUE(do_profile)) {
  # Where the time of the slow gates goes: the L-BFGS inner iterations.
  slow <- res$gate[!soft & !is.na(res$ratio_to_softmax) & res$ratio_to_softmax > 3]
  if (length(slow) == 0) slow <- res$gate[which.max(res$ratio_to_softmax)]
  prof <- do.call(rbind, lapply(slow, function(nm) {
    do.call(rbind, lapply(c(5, 10, 20, 50), function(gm) {
      full <- time_fit(gates[[nm]], maxit, 1, gate_maxit = gm)
      fixed <- time_fit(gates[[nm]], 1, 1, gate_maxit = gm)
      data.frame(gate = nm, gate_maxit = gm,
                 marginal_sec_per_iter = (full$seconds - fixed$seconds) / (maxit - 1),
                 ratio_to_softmax = (full$seconds - fixed$seconds) / (maxit - 1) /
                   res$marginal_sec_per_iter[soft],
                 loglik_after_30 = if (is.null(full$fit)) NA_real_ else full$fit$loglik)
    }))
  }))
  out2 <- file.path(bench_dir(), "results-gates-maxit.csv")
  utils::write.csv(prof, out2, row.names = FALSE)
  prof$marginal_sec_per_iter <- round(prof$marginal_sec_per_iter, 4)
  prof$ratio_to_softmax <- round(prof$ratio_to_softmax, 2)
  prof$loglik_after_30 <- round(prof$loglik_after_30, 2)
  cat("\nSlow gates against the inner L-BFGS budget (gate_maxit):\n")
  print(prof, row.names = FALSE)
  cat("Written:", out2, "\n")
}
