# moegate vs flexmix on the same softmax-gated Gaussian MoE data, from the
# same starting partition, in one R process.
#
#   Rscript bench/bench-flexmix.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (sample sizes,
# comma-separated; default 1e4,1e5), BENCH_STARTS (> 1 adds a best-of-starts
# run at the smallest n; default 5, 0 to skip), BENCH_REPS (each timed call is
# repeated this many times for both packages and the fastest kept, to damp
# noise from other processes; default 2).
#
# Same start, and why it is fair: a k-means partition of the scaled (x1, x2, y)
# is turned into soft responsibilities R0 (0.7 + 0.1 on the cluster, 0.1
# elsewhere: moegate's own k-means start). flexmix gets R0 as `cluster = R0`
# and takes its first M-step from it inside the timed call. moegate gets the
# parameters of one M-step from the same R0, computed here in R (weighted
# least squares per expert with the ML variance; nnet::multinom on R0 for the
# gate), which is exactly the first M-step moegate itself takes from R0. That
# M-step is timed separately (`start_s`) and a ratio including it is reported.
# Both stop on the relative change of the log-likelihood below 1e-8.
#
# The log-likelihoods are not expected to match to the last digit: flexmix's
# Gaussian M-step uses the df-corrected sigma (RSS / (n - p) in its weighted
# form, not the ML RSS / n) and its gate M-step is nnet's BFGS restarted from
# zero with nnet's default reltol = 1e-8, so flexmix's EM does not converge to
# the exact MLE. Its `logLik()` is the value at its last E-step. We also
# re-evaluate both fits with one plain-R log-likelihood (bench/helpers.R) at
# their reported parameters (flexmix: `parameters()` of the components and of
# the concomitant model).

# helpers.R lives next to this script.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
suppressPackageStartupMessages(library(flexmix))

sizes <- as.numeric(strsplit(Sys.getenv("BENCH_N", "1e4,1e5"), ",")[[1]])
n_starts <- as.integer(Sys.getenv("BENCH_STARTS", "5"))
reps <- as.integer(Sys.getenv("BENCH_REPS", "2"))
k <- 3
tol <- 1e-8

# Truth: three linear experts whose regions (gate) and lines overlap.
truth <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
              coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)),
              sigma2 = c(0.3, 0.4, 0.35)^2)

# Soft responsibilities from a hard partition (moegate's own convention).
soft_partition <- function(groups, k) {
  R0 <- matrix(0.3 / k, length(groups), k)
  R0[cbind(seq_along(groups), groups)] <- R0[cbind(seq_along(groups), groups)] + 0.7
  R0
}

kmeans_partition <- function(s, k, seed) {
  set.seed(seed)
  data <- scale(cbind(s$Z, y = s$y))
  stats::kmeans(data, centers = k, nstart = 1, iter.max = 50)$cluster
}

# One M-step from responsibilities R0, as moegate's EM takes it: ML weighted
# least squares per expert, multinomial logit of R0 on z for the gate.
mstep_params <- function(s, R0) {
  k <- ncol(R0)
  fits <- lapply(seq_len(k), function(i) stats::lm.wfit(s$X, s$y, R0[, i]))
  coef <- vapply(fits, function(f) f$coefficients, numeric(ncol(s$X)))
  sigma2 <- vapply(seq_len(k), function(i) {
    sum(R0[, i] * fits[[i]]$residuals^2) / sum(R0[, i])
  }, 0)
  gate_fit <- nnet::multinom(R0 ~ s$Z, trace = FALSE, maxit = 1000, reltol = 1e-12)
  B <- coef(gate_fit)  # (k - 1) x (1 + q), expert 1 is nnet's reference
  moe_params(W = cbind(0, t(B[, -1, drop = FALSE])), b0 = c(0, B[, 1]),
             coef = coef, sigma2 = sigma2)
}

# flexmix parameters in moegate's layout (expert 1 is flexmix's gate reference).
flexmix_params <- function(fit) {
  pe <- parameters(fit)
  pg <- parameters(fit, which = "concomitant")
  coef <- pe[grep("^coef", rownames(pe)), , drop = FALSE]
  list(W = pg[-1, , drop = FALSE], b0 = pg[1, ], coef = unname(coef),
       sigma2 = pe["sigma", ]^2)
}

# Largest absolute difference of expert coefficients after the best relabelling.
coef_gap <- function(a, b) {
  perms <- function(v) if (length(v) <= 1) list(v) else
    do.call(c, lapply(seq_along(v), function(i) lapply(perms(v[-i]), function(p) c(v[i], p))))
  min(vapply(perms(seq_len(ncol(a))), function(p) max(abs(a - b[, p])), 0))
}

# Fastest of `reps` evaluations of `expr` (re-evaluated each time), with its
# value and any warnings it raised.
timed <- function(expr, reps = 1) {
  expr <- substitute(expr)
  env <- parent.frame()
  best <- list(seconds = Inf)
  for (r in seq_len(reps)) {
    gc()
    warnings <- character()
    t <- system.time(value <- withCallingHandlers(eval(expr, env), warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }))[["elapsed"]]
    if (t < best$seconds) best <- list(value = value, seconds = t, warnings = warnings)
  }
  best
}

flexmix_control <- list(minprior = 0, tolerance = tol, iter.max = 1000)

run_one <- function(n) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
  R0 <- soft_partition(kmeans_partition(s, k, seed = 1), k)
  st <- timed(mstep_params(s, R0), reps)
  mg <- timed(moe(y ~ x1 + x2, data = s$data, k = k,
                  control = moe_control(tol = tol, init = st$value)), reps)
  fx <- timed(flexmix(y ~ x1 + x2, data = s$data, k = k, cluster = R0,
                      model = FLXMRglm(), concomitant = FLXPmultinom(~ x1 + x2),
                      control = flexmix_control), reps)
  fm <- mg$value
  ff <- fx$value
  fp <- flexmix_params(ff)
  ll_m_eval <- loglik_softmax_moe(s$y, s$X, s$Z, fm$params$gate$W, fm$params$gate$b0,
                                  fm$params$expert$coef, fm$params$expert$sigma2)
  ll_f_eval <- loglik_softmax_moe(s$y, s$X, s$Z, fp$W, fp$b0, fp$coef, fp$sigma2)
  for (w in unique(c(mg$warnings, fx$warnings))) message("  warning at n = ", n, ": ", w)
  data.frame(
    n = n, start = "kmeans, shared", start_s = st$seconds,
    moegate_s = mg$seconds, flexmix_s = fx$seconds,
    ratio = fx$seconds / mg$seconds,
    ratio_incl_start = fx$seconds / (mg$seconds + st$seconds),
    moegate_loglik = fm$loglik, flexmix_loglik = as.numeric(logLik(ff)),
    loglik_diff = fm$loglik - as.numeric(logLik(ff)),
    moegate_loglik_R = ll_m_eval, flexmix_loglik_R = ll_f_eval,
    moegate_iter = fm$iter, flexmix_iter = ff@iter,
    moegate_converged = fm$converged, flexmix_converged = ff@converged,
    max_coef_gap = coef_gap(unname(fm$params$expert$coef), fp$coef),
    stringsAsFactors = FALSE)
}

# Best of several starts: the same random partitions for both packages;
# moegate runs them through n_starts with a list of starting parameters,
# flexmix is called once per partition and the best log-likelihood is kept.
run_starts <- function(n, n_starts) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
  set.seed(7)
  R0s <- lapply(seq_len(n_starts), function(j) soft_partition(sample.int(k, n, replace = TRUE), k))
  st <- timed(lapply(R0s, function(R0) mstep_params(s, R0)))
  mg <- timed(moe(y ~ x1 + x2, data = s$data, k = k,
                  control = moe_control(tol = tol, n_starts = n_starts, init = st$value)))
  fx <- timed(lapply(R0s, function(R0) {
    flexmix(y ~ x1 + x2, data = s$data, k = k, cluster = R0, model = FLXMRglm(),
            concomitant = FLXPmultinom(~ x1 + x2), control = flexmix_control)
  }))
  lls <- vapply(fx$value, function(f) as.numeric(logLik(f)), 0)
  best <- fx$value[[which.max(lls)]]
  fm <- mg$value
  for (w in unique(c(mg$warnings, fx$warnings))) message("  warning (starts) at n = ", n, ": ", w)
  data.frame(
    n = n, start = sprintf("best of %d random, shared", n_starts), start_s = st$seconds,
    moegate_s = mg$seconds, flexmix_s = fx$seconds,
    ratio = fx$seconds / mg$seconds,
    ratio_incl_start = fx$seconds / (mg$seconds + st$seconds),
    moegate_loglik = fm$loglik, flexmix_loglik = max(lls),
    loglik_diff = fm$loglik - max(lls),
    moegate_loglik_R = NA_real_, flexmix_loglik_R = NA_real_,
    moegate_iter = fm$iter, flexmix_iter = best@iter,
    moegate_converged = fm$converged, flexmix_converged = best@converged,
    max_coef_gap = coef_gap(unname(fm$params$expert$coef),
                            flexmix_params(best)$coef),
    stringsAsFactors = FALSE)
}

cat("Machine:", machine_info(), "\n")
cat("flexmix", as.character(utils::packageVersion("flexmix")), "; fastest of", reps,
    "timed runs each; load average", readLines("/proc/loadavg", warn = FALSE), "\n\n")
rows <- list()
for (n in sizes) {
  cat("n =", format(n, scientific = FALSE), "...\n")
  rows[[length(rows) + 1]] <- run_one(n)
}
if (!is.na(n_starts) && n_starts > 1) {
  cat("best of", n_starts, "starts at n =", format(min(sizes), scientific = FALSE), "...\n")
  rows[[length(rows) + 1]] <- run_starts(min(sizes), n_starts)
}
res <- do.call(rbind, rows)
out <- file.path(bench_dir(), "results-flexmix.csv")
utils::write.csv(res, out, row.names = FALSE)

show <- res
num <- vapply(show, is.numeric, TRUE)
show[c("start_s", "moegate_s", "flexmix_s")] <- lapply(show[c("start_s", "moegate_s", "flexmix_s")], round, 3)
show[c("ratio", "ratio_incl_start")] <- lapply(show[c("ratio", "ratio_incl_start")], round, 1)
show[grep("loglik|gap", names(show))] <- lapply(show[grep("loglik|gap", names(show))], signif, 10)
cat("\n")
print(show, row.names = FALSE)
cat("\nWritten:", out, "\n")
