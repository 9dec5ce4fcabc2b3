# moegate vs flexmix on the same softmax-gated Gaussian MoE data, from the
# same starting partition, in one R process.
#
#   Rscript bench/bench-flexmix.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (sample sizes,
# comma-separated; default 1e4,1e5), BENCH_STARTS (> 1 adds a best-of-starts
# run at the smallest n; default 5, 0 to skip), BENCH_REPS (each timed call is
# repeated this many times for both packages and the fastest kept, to damp
# noise from other processes; default 2), BENCH_SQUAREM (TRUE adds a row with
# moegate's SQUAREM-accelerated EM against the same plain flexmix fit; default
# TRUE).
#
# Same start, and why it is fair: a k-means partition of the scaled (x1, x2, y)
# is turned into soft responsibilities R0 (0.7 + 0.1 on the cluster, 0.1
# elsewhere: moegate's own k-means start). flexmix gets R0 as `cluster = R0`
# and takes its first M-step from it inside the timed call. moegate gets the
# parameters of one M-step from the same R0, computed here in R (weighted
# least squares per expert with the ML variance; nnet::multinom on R0 for the
# gate), which is exactly the first M-step moegate itself takes from R0. That
# M-step is timed separately (`start_s`) and a ratio including it is reported.
# Both stop on the relative change of the log-likelihood below 1e-8. moegate's
# "EM" rows run plain EM (accelerate = "none"; SQUAREM is its default since
# 2026-12-02), its SQUAREM rows SQUAREM.
#
# The log-likelihoods are not expected to match to the last digit: flexmix's
# Gaussian M-step uses the df-corrected sigma (RSS / (n - p) in its weighted
# form, not the ML RSS / n) and its gate M-step is nnet's BFGS restarted from
# zero with nnet's default reltol = 1e-8, so flexmix's EM does not converge to
# the exact MLE. Its `logLik()` is the value at its last E-step. We also
# re-evaluate both fits with one plain-R log-likelihood (bench/helpers.R) at
# their reported parameters (flexmix: `parameters()` of the components and of
# the concomitant model).
#
# BENCH_DEFAULTS=only runs just the comparison at each package's defaults
# instead (n = BENCH_N, default 2e4): moe(y ~ x1 + x2, k = 3, control =
# moe_control(n_starts = 3)) against stepFlexmix(..., k = 3, nrep = 3) with
# the softmax concomitant model, each from its own starts, side by side
# BENCH_REPS times (alternating); the medians of the CPU seconds and of their
# per-repetition ratio are written to results-flexmix-defaults.csv.
#
# Times: elapsed (system.time) as asked, and CPU seconds (user + system). Both
# fits are single-threaded, so on a machine shared with other processes the
# CPU time is the better estimate of the elapsed time on an idle machine; the
# load average is printed and stored.

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
with_squarem <- as.logical(Sys.getenv("BENCH_SQUAREM", "TRUE"))
k <- 3
tol <- 1e-8
options(width = 200)

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
  # Only a start: a "did not converge in 50 iterations" warning from Lloyd's
  # algorithm does not matter here.
  suppressWarnings(stats::kmeans(data, centers = k, nstart = 1, iter.max = 50,
                                 algorithm = "Lloyd"))$cluster
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

flexmix_control <- list(minprior = 0, tolerance = tol, iter.max = 1000)

fit_flexmix <- function(s, R0) {
  flexmix(y ~ x1 + x2, data = s$data, k = k, cluster = R0, model = FLXMRglm(),
          concomitant = FLXPmultinom(~ x1 + x2), control = flexmix_control)
}

report_warnings <- function(label, ...) {
  for (w in unique(unlist(lapply(list(...), `[[`, "warnings")))) {
    message("  warning (", label, "): ", w)
  }
}

row <- function(n, variant, st, mg, fx, fm, ff, ll_m_R = NA_real_, ll_f_R = NA_real_) {
  ll_f <- as.numeric(logLik(ff))
  data.frame(
    n = n, variant = variant, start_s = st$seconds,
    moegate_s = mg$seconds, flexmix_s = fx$seconds,
    ratio = fx$seconds / mg$seconds,
    ratio_incl_start = fx$seconds / (mg$seconds + st$seconds),
    moegate_cpu = mg$cpu, flexmix_cpu = fx$cpu, ratio_cpu = fx$cpu / mg$cpu,
    moegate_loglik = fm$loglik, flexmix_loglik = ll_f, loglik_diff = fm$loglik - ll_f,
    moegate_loglik_R = ll_m_R, flexmix_loglik_R = ll_f_R,
    moegate_iter = fm$iter, flexmix_iter = ff@iter,
    moegate_converged = fm$converged, flexmix_converged = ff@converged,
    max_coef_gap = coef_gap(unname(fm$params$expert$coef), flexmix_params(ff)$coef),
    load_average = load_average(), stringsAsFactors = FALSE)
}

run_one <- function(n) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
  R0 <- soft_partition(kmeans_partition(s, k, seed = 1), k)
  st <- time_call(function() mstep_params(s, R0), reps)
  mg <- time_call(function() {
    moe(y ~ x1 + x2, data = s$data, k = k,
        control = moe_control(tol = tol, init = st$value, accelerate = "none"))
  }, reps)
  fx <- time_call(function() fit_flexmix(s, R0), reps)
  fm <- mg$value
  ff <- fx$value
  fp <- flexmix_params(ff)
  ll_m_R <- loglik_softmax_moe(s$y, s$X, s$Z, fm$params$gate$W, fm$params$gate$b0,
                               fm$params$expert$coef, fm$params$expert$sigma2)
  ll_f_R <- loglik_softmax_moe(s$y, s$X, s$Z, fp$W, fp$b0, fp$coef, fp$sigma2)
  report_warnings(paste("n =", n), mg, fx)
  out <- row(n, "EM, shared k-means start", st, mg, fx, fm, ff, ll_m_R, ll_f_R)
  if (isTRUE(with_squarem)) {
    sq <- time_call(function() {
      moe(y ~ x1 + x2, data = s$data, k = k,
          control = moe_control(tol = tol, init = st$value, accelerate = "squarem"))
    }, reps)
    report_warnings(paste("SQUAREM, n =", n), sq)
    fq <- sq$value
    ll_q_R <- loglik_softmax_moe(s$y, s$X, s$Z, fq$params$gate$W, fq$params$gate$b0,
                                 fq$params$expert$coef, fq$params$expert$sigma2)
    out <- rbind(out, row(n, "moegate SQUAREM vs flexmix EM, same start", st, sq, fx, fq, ff,
                          ll_q_R, ll_f_R))
  }
  out
}

# Best of several starts: the same random partitions for both packages;
# moegate runs them through n_starts with a list of starting parameters,
# flexmix is called once per partition and the best log-likelihood is kept.
run_starts <- function(n, n_starts) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
  set.seed(7)
  R0s <- lapply(seq_len(n_starts), function(j) soft_partition(sample.int(k, n, replace = TRUE), k))
  st <- time_call(function() lapply(R0s, function(R0) mstep_params(s, R0)))
  mg <- time_call(function() {
    moe(y ~ x1 + x2, data = s$data, k = k,
        control = moe_control(tol = tol, n_starts = n_starts, init = st$value,
                              accelerate = "none"))
  })
  fx <- time_call(function() lapply(R0s, function(R0) fit_flexmix(s, R0)))
  lls <- vapply(fx$value, function(f) as.numeric(logLik(f)), 0)
  report_warnings(paste("starts, n =", n), mg, fx)
  row(n, sprintf("EM, best of %d shared random starts", n_starts), st, mg, fx,
      mg$value, fx$value[[which.max(lls)]])
}

run_defaults <- function(n, reps) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
  one <- function(r) {
    set.seed(100 + r)
    mg <- time_call(function() moe(y ~ x1 + x2, data = s$data, k = k,
                                   control = moe_control(n_starts = 3)))
    set.seed(100 + r)
    fx <- time_call(function() stepFlexmix(y ~ x1 + x2, data = s$data, k = k, nrep = 3,
                                           model = FLXMRglm(),
                                           concomitant = FLXPmultinom(~ x1 + x2),
                                           verbose = FALSE))
    report_warnings(paste("defaults, n =", n), mg, fx)
    fm <- mg$value
    ff <- fx$value
    data.frame(n = n, rep = r, moegate_cpu = mg$cpu, flexmix_cpu = fx$cpu,
               ratio_cpu = fx$cpu / mg$cpu, moegate_s = mg$seconds, flexmix_s = fx$seconds,
               moegate_loglik = fm$loglik, flexmix_loglik = as.numeric(logLik(ff)),
               loglik_diff = fm$loglik - as.numeric(logLik(ff)), moegate_iter = fm$iter,
               moegate_converged = isTRUE(fm$converged), moegate_polish_runs = fm$polish[["runs"]],
               load_average = load_average())
  }
  do.call(rbind, lapply(seq_len(reps), one))
}

cat("Machine:", machine_info(), "\n")
if (identical(Sys.getenv("BENCH_DEFAULTS"), "only")) {
  n <- as.numeric(Sys.getenv("BENCH_N", "2e4"))
  res <- run_defaults(n, reps)
  print(res, row.names = FALSE)
  med <- data.frame(n = n, reps = reps, moegate_cpu = stats::median(res$moegate_cpu),
                    flexmix_cpu = stats::median(res$flexmix_cpu),
                    median_ratio_cpu = stats::median(res$ratio_cpu),
                    min_ratio_cpu = min(res$ratio_cpu), max_ratio_cpu = max(res$ratio_cpu),
                    moegate_loglik = stats::median(res$moegate_loglik),
                    flexmix_loglik = stats::median(res$flexmix_loglik),
                    min_loglik_diff = min(res$loglik_diff))
  cat("\n")
  print(med, row.names = FALSE)
  out <- bench_output("results-flexmix-defaults.csv")
  utils::write.csv(res, out, row.names = FALSE)
  cat("Written:", out, "\n")
  quit(save = "no")
}
cat("flexmix", as.character(utils::packageVersion("flexmix")), "; fastest of", reps,
    "timed runs each; load average", load_average(), "\n\n")
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
out <- bench_output("results-flexmix.csv")
utils::write.csv(res, out, row.names = FALSE)

show <- res
secs <- c("start_s", "moegate_s", "flexmix_s", "moegate_cpu", "flexmix_cpu")
show[secs] <- lapply(show[secs], round, 3)
rat <- grep("^ratio", names(show))
show[rat] <- lapply(show[rat], round, 1)
lls <- grep("loglik", names(show))
show[lls] <- lapply(show[lls], function(v) round(v, 4))
show$max_coef_gap <- signif(show$max_coef_gap, 2)
cat("\n")
print(show[c("n", "variant", "start_s", "moegate_s", "flexmix_s", "ratio", "ratio_incl_start",
             "moegate_cpu", "flexmix_cpu", "ratio_cpu")], row.names = FALSE)
cat("\n")
print(show[c("n", "variant", "moegate_loglik", "flexmix_loglik", "loglik_diff",
             "moegate_loglik_R", "flexmix_loglik_R", "moegate_iter", "flexmix_iter",
             "moegate_converged", "flexmix_converged", "max_coef_gap")], row.names = FALSE)
cat("\nWritten:", out, "\n")
