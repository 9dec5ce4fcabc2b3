# Seconds and GFLOP/s per EM iteration of the main path (softmax gate,
# Gaussian experts), n = 1e6, d = 10, k = 4 (bench-large.R's data), one thread.
#
#   Rscript bench/bench-engine.R
#
# Environment: MOEGATE_LIB, BENCH_N (default 1e6), BENCH_TAG, BENCH_REPS (3).
#
# The same fit from the same start runs 1 and 11 EM iterations (stop =
# "loglik" with a tolerance no iteration meets); the marginal CPU seconds per
# iteration are (t11 - t1) / 10, median over BENCH_REPS repetitions. The
# floating-point work per iteration is counted for the algorithm (n rows, p
# expert columns with the intercept, q gate inputs, P = q + 1, k experts,
# K1 = k - 1, T(m) = m (m + 1) / 2, pairs = K1 (K1 + 1) / 2), counting a
# multiply-add as 2 and leaving out exp/log (about 4 + 4 per row, reported
# separately):
#   expert least squares  n T(p) + 2 n T(p) k + n k + 2 n p k   (packed Grams)
#   variances             2 n p k + 3 n k
#   E-step                2 n p k + 4 n k + 6 n k
#   gate Newton, per full pass  6 n K1 + 2 n P K1 + 3 n pairs + n T(P) + 2 n T(P) pairs
#   gate Newton, per trial pass 2 n q K1 + 9 n K1
#   score (gradient rule)  3 n k + 2 n q k + 4 n p k + 8 n k
# with one full and one trial gate pass per iteration (the Newton M-step near
# convergence: the E-step's weights start it, one step is accepted) and one
# score pass. Before the packed Grams (until commit 93ff3b5) the least squares
# cost k (n p + 2 n p^2 + 2 n p) and a full gate pass
# 6 n K1 + 2 n P K1 + pairs (3 n + 2 n q + 2 n q^2 + n q).

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
n <- as.numeric(Sys.getenv("BENCH_N", "1e6"))
reps <- as.integer(Sys.getenv("BENCH_REPS", "3"))
d <- 10
k <- 4
truth <- large_truth(d, k)
s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 102)

flops <- function(n, p, q, k, packed) {
  P <- q + 1; K1 <- k - 1; tri <- function(m) m * (m + 1) / 2; pairs <- tri(K1)
  ls <- if (packed) n * tri(p) + 2 * n * tri(p) * k + n * k + 2 * n * p * k else
    k * (n * p + 2 * n * p^2 + 2 * n * p)
  full <- if (packed) 6 * n * K1 + 2 * n * P * K1 + 3 * n * pairs + n * tri(P) + 2 * n * tri(P) * pairs else
    6 * n * K1 + 2 * n * P * K1 + pairs * (3 * n + 2 * n * q + 2 * n * q^2 + n * q)
  c(least_squares = ls, variances = 2 * n * p * k + 3 * n * k, e_step = 2 * n * p * k + 10 * n * k,
    gate_full = full, gate_trial = 2 * n * q * K1 + 9 * n * K1,
    score = 3 * n * k + 2 * n * q * k + 4 * n * p * k + 8 * n * k)
}
packed <- !identical(Sys.getenv("BENCH_PACKED"), "false")
f <- flops(n, d + 1, d, k, packed)
cpu_fit <- function(maxit) {
  set.seed(1)
  t <- system.time(fit <- suppressWarnings(moe(s$Z, s$y, k = k, control = moe_control(
    stop = "loglik", tol = 1e-300, maxit = maxit, nthreads = 1))))
  c(cpu = t[["user.self"]] + t[["sys.self"]], iter = fit$iter)
}
per_iter <- replicate(reps, {
  a <- cpu_fit(1)
  b <- cpu_fit(11)
  (b[["cpu"]] - a[["cpu"]]) / (b[["iter"]] - a[["iter"]])
})
res <- data.frame(n = n, d = d, k = k, version = as.character(utils::packageVersion("moegate")),
                  packed_grams = packed, gflop_per_iter = sum(f) / 1e9,
                  sec_per_iter = stats::median(per_iter), sec_min = min(per_iter),
                  sec_max = max(per_iter), gflops = sum(f) / 1e9 / stats::median(per_iter),
                  load_average = load_average())
print(round(f / 1e9, 3))
print(res)
out <- bench_output("results-engine.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("Written:", out, "\n")
