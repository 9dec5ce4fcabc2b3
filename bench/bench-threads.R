# 1 vs 2 OpenMP threads across n: where a second thread starts to pay, which
# is what the minimum-work rule in src/numerics.h (MOEGATE_MIN_PARALLEL_ROWS)
# is set from. Each fit runs a fixed number of EM iterations (relative-change
# rule with a tolerance no fit meets, no polish) from the same k-means start,
# 1 and 2 threads alternating, fastest elapsed of BENCH_REPS runs each.
#
#   nice Rscript bench/bench-threads.R
#
# To measure without the rule (every region over more than one block of
# 1024 rows runs on 2 threads), install a copy built with
#   MOEGATE_CPPFLAGS=-DMOEGATE_MIN_PARALLEL_ROWS=1 R CMD INSTALL -l <lib> .
# and run with MOEGATE_LIB=<lib> BENCH_TAG=norule.
#
# Environment: MOEGATE_LIB, BENCH_TAG, BENCH_NS (comma-separated n, default
# 2048..131072), BENCH_REPS (default 3). Elapsed seconds decide (threads are
# about wall time); CPU seconds show the second thread's spinning. The load
# average is stored with each row: on this shared 2-core machine it is rarely
# below 2, and every run here is a run under load.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
ns <- as.numeric(strsplit(Sys.getenv("BENCH_NS", "2048,4096,8192,16384,32768,65536,131072"),
                          ",")[[1]])
reps <- as.integer(Sys.getenv("BENCH_REPS", "3"))

# Two workloads: Gaussian experts with the linear softmax gate (d = 2, k = 3:
# the cheapest rows), and multinomial experts (K = 3) with the tanh-activated
# gate and Fisher M-step (k = 3: several passes per expert per iteration).
make_data <- function(n, seed = 1) {
  set.seed(seed)
  x <- matrix(stats::runif(2 * n, -1, 1), n, 2)
  first <- stats::runif(n) < stats::plogis(3 * x[, 1] - x[, 2])
  y <- ifelse(first, 1 + 2 * x[, 1], -1 - x[, 2]) + stats::rnorm(n, sd = 0.3)
  cls <- factor(ifelse(first, sample(c("a", "b"), n, TRUE, c(0.8, 0.2)),
                       sample(c("a", "b", "c"), n, TRUE)))
  list(x = x, y = y, cls = cls)
}
workloads <- list(
  gaussian_softmax = function(d, nt, it) {
    moe(d$x, d$y, k = 3, control = moe_control(nthreads = nt, maxit = it, stop = "loglik",
                                               tol = 1e-300, polish = "none"))
  },
  multinomial_tanh_gate = function(d, nt, it) {
    moe(d$x[, 1, drop = FALSE], d$cls, k = 3, gate = gate(activation = "tanh"),
        expert = expert_multinomial(),
        control = moe_control(nthreads = nt, maxit = it, stop = "loglik", tol = 1e-300,
                              polish = "none"))
  })

rows <- list()
for (n in ns) {
  d <- make_data(n)
  # About the same work per fit at every n.
  iters <- max(5L, as.integer(round(4e5 / n)))
  for (w in names(workloads)) {
    best <- list(`1` = list(seconds = Inf), `2` = list(seconds = Inf))
    fits <- list()
    for (r in seq_len(reps)) {
      for (nt in c(1, 2)) {
        t <- time_call(function() {
          set.seed(2)
          workloads[[w]](d, nt, iters)
        }, muffle = "moe_convergence_warning")
        fits[[as.character(nt)]] <- t$value
        if (t$seconds < best[[as.character(nt)]]$seconds) best[[as.character(nt)]] <- t
      }
    }
    same <- identical(fits[["1"]]$params, fits[["2"]]$params) &&
      identical(fits[["1"]]$loglik, fits[["2"]]$loglik)
    rows[[length(rows) + 1]] <- data.frame(
      workload = w, n = n, iterations = iters,
      elapsed_1 = best[["1"]]$seconds, elapsed_2 = best[["2"]]$seconds,
      cpu_1 = best[["1"]]$cpu, cpu_2 = best[["2"]]$cpu,
      speedup = best[["1"]]$seconds / best[["2"]]$seconds,
      us_per_row_iter_1 = 1e6 * best[["1"]]$seconds / (n * iters),
      identical = same, load_average = load_average(), stringsAsFactors = FALSE)
    message(sprintf("%-22s n = %6d  1 thread %.3f s  2 threads %.3f s  speed-up %.2f  %s  load %s",
                    w, n, best[["1"]]$seconds, best[["2"]]$seconds,
                    best[["1"]]$seconds / best[["2"]]$seconds,
                    if (same) "identical" else "DIFFERENT", load_average()))
  }
}
res <- do.call(rbind, rows)
res$machine <- machine_info()
out <- bench_output("results-threads.csv")
utils::write.csv(res, out, row.names = FALSE)
print(round_columns(res[setdiff(names(res), "machine")],
                    c(elapsed_1 = 3, elapsed_2 = 3, cpu_1 = 3, cpu_2 = 3, speedup = 2,
                      us_per_row_iter_1 = 3)), row.names = FALSE)
message("written: ", out)
