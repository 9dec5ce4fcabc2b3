# Choosing k: moegate's moe_select(k = 1:5) against flexmix::stepFlexmix(k = 1:5)
# on the same softmax-gated Gaussian MoE data, in one R process, and one
# moe_dendrogram() (one k = 5 fit plus the merge tree) against the sweep.
#
#   Rscript bench/bench-select.R
#
# Environment: MOEGATE_LIB (lib.loc of moegate), BENCH_N (sample sizes,
# comma-separated; default 2000,10000), BENCH_STARTS (starts per k for both
# packages; default 3), BENCH_EXTRA_STARTS (a second moegate sweep with this
# many starts per k, timed beside; default 10, 0 to skip), BENCH_INIT
# (moegate's start rule, default "mixed", moe_control()'s default; "kmeans"
# gives the rule of earlier versions), BENCH_TAG (suffix of the output file).
#
# Both packages fit every k = 1..5 with BENCH_STARTS starts each and keep the
# best start per k: flexmix its own random starts (stepFlexmix's nrep, each a
# random partition), moegate its default starts (moe_control(init =
# "mixed"): odd starts a k-means partition from random centres, even starts a
# random partition, a new draw per start).
# The starts therefore differ between the packages; what is compared is the
# time of the whole sweep and the best log-likelihood each reaches per
# k. Both run sequentially (future::plan(sequential) for moegate) and single
# threaded, with the same convergence rule (relative change of the
# log-likelihood below 1e-6, at most 1000 iterations) and flexmix's minprior =
# 0 (so no component is dropped and every k is really fitted). flexmix's
# logLik() is the value at its last E-step; its Gaussian M-step uses a
# df-corrected variance, so its optimum differs slightly (see
# bench-flexmix.R). Elapsed and CPU seconds are both reported: the machine is
# shared.

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
suppressPackageStartupMessages(library(flexmix))
future::plan(future::sequential)

sizes <- as.numeric(strsplit(Sys.getenv("BENCH_N", "2000,10000"), ",")[[1]])
n_starts <- as.integer(Sys.getenv("BENCH_STARTS", "3"))
extra_starts <- as.integer(Sys.getenv("BENCH_EXTRA_STARTS", "10"))
init <- Sys.getenv("BENCH_INIT", "mixed")
# A second moegate sweep with BENCH_STARTS starts under this rule, for the
# per-k log-likelihoods of the old rule beside the new one ("" to skip).
compare_init <- Sys.getenv("BENCH_COMPARE_INIT", "kmeans")
ks <- 1:5
tol <- 1e-6
options(width = 200)

# Truth of bench-flexmix.R: three linear experts, d = 2.
truth <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
              coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)),
              sigma2 = c(0.3, 0.4, 0.35)^2)

run_one <- function(n) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 7000 + n %% 991)
  mg <- time_call(function() {
    moe_select(y ~ x1 + x2, data = s$data, k = ks, seed = 1, progress = FALSE,
               control = moe_control(tol = tol, maxit = 1000, n_starts = n_starts, init = init))
  })
  set.seed(1)
  fx <- time_call(function() {
    stepFlexmix(y ~ x1 + x2, data = s$data, k = ks, nrep = n_starts, verbose = FALSE,
                model = FLXMRglm(), concomitant = FLXPmultinom(~ x1 + x2),
                control = list(minprior = 0, tolerance = tol, iter.max = 1000))
  })
  extra <- if (extra_starts > 0) time_call(function() {
    moe_select(y ~ x1 + x2, data = s$data, k = ks, seed = 1, progress = FALSE,
               control = moe_control(tol = tol, maxit = 1000, n_starts = extra_starts, init = init))
  })
  old_rule <- if (nzchar(compare_init)) time_call(function() {
    moe_select(y ~ x1 + x2, data = s$data, k = ks, seed = 1, progress = FALSE,
               control = moe_control(tol = tol, maxit = 1000, n_starts = n_starts,
                                     init = compare_init))
  })
  tree <- time_call(function() {
    fit <- moe(y ~ x1 + x2, data = s$data, k = max(ks),
               control = moe_control(tol = tol, maxit = 1000, n_starts = n_starts, init = init))
    moe_dendrogram(fit)
  })
  sel <- mg$value
  ll_f <- vapply(ks, function(k) as.numeric(logLik(getModel(fx$value, which = as.character(k)))), 0)
  bic_f <- vapply(ks, function(k) BIC(getModel(fx$value, which = as.character(k))), 0)
  per_k <- data.frame(n = n, k = ks, moegate_loglik = sel$table$logLik, flexmix_loglik = ll_f,
                      loglik_diff = sel$table$logLik - ll_f, moegate_BIC = sel$table$BIC,
                      flexmix_BIC = bic_f, moegate_seconds = sel$table$seconds,
                      moegate_extra_loglik = if (!is.null(extra)) extra$value$table$logLik else NA,
                      extra_loglik_diff = if (!is.null(extra)) extra$value$table$logLik - ll_f else NA,
                      # Which start won (under "mixed": odd = k-means, even = random).
                      moegate_best_start = vapply(sel$fits, function(f) which.max(f$start_objective), 1L),
                      compare_init = compare_init,
                      compare_loglik = if (!is.null(old_rule)) old_rule$value$table$logLik else NA,
                      compare_loglik_diff = if (!is.null(old_rule)) old_rule$value$table$logLik - ll_f else NA)
  summary <- data.frame(
    n = n, starts = n_starts, init = init, moegate_s = mg$seconds, flexmix_s = fx$seconds,
    ratio = fx$seconds / mg$seconds, moegate_cpu = mg$cpu, flexmix_cpu = fx$cpu,
    ratio_cpu = fx$cpu / mg$cpu, dendrogram_s = tree$seconds,
    dendrogram_vs_sweep = tree$seconds / mg$seconds, dendrogram_cpu = tree$cpu,
    dendrogram_vs_sweep_cpu = tree$cpu / mg$cpu,
    moegate_bic_k = sel$best_k, flexmix_bic_k = ks[which.min(bic_f)],
    dic_k = tree$value$k_selected, min_loglik_diff = min(per_k$loglik_diff),
    extra_starts = extra_starts, moegate_extra_s = if (!is.null(extra)) extra$seconds else NA,
    moegate_extra_cpu = if (!is.null(extra)) extra$cpu else NA,
    ratio_extra_cpu = if (!is.null(extra)) fx$cpu / extra$cpu else NA,
    min_extra_loglik_diff = min(per_k$extra_loglik_diff),
    compare_init = compare_init,
    compare_cpu = if (!is.null(old_rule)) old_rule$cpu else NA,
    ratio_compare_cpu = if (!is.null(old_rule)) fx$cpu / old_rule$cpu else NA,
    min_compare_loglik_diff = min(per_k$compare_loglik_diff),
    load_average = load_average(), stringsAsFactors = FALSE)
  list(summary = summary, per_k = per_k)
}

cat("Machine:", machine_info(), "\n")
cat("flexmix", as.character(utils::packageVersion("flexmix")), "; load average", load_average(), "\n\n")
runs <- lapply(sizes, function(n) {
  cat("n =", format(n, scientific = FALSE), "...\n")
  run_one(n)
})
summary <- do.call(rbind, lapply(runs, `[[`, "summary"))
per_k <- do.call(rbind, lapply(runs, `[[`, "per_k"))
utils::write.csv(summary, bench_output("results-select.csv"), row.names = FALSE)
utils::write.csv(per_k, bench_output("results-select-per-k.csv"), row.names = FALSE)
print(round_columns(summary, c(moegate_s = 2, flexmix_s = 2, ratio = 1, moegate_cpu = 2,
                               flexmix_cpu = 2, ratio_cpu = 1, dendrogram_s = 2,
                               dendrogram_vs_sweep = 2, dendrogram_cpu = 2,
                               dendrogram_vs_sweep_cpu = 2, min_loglik_diff = 3,
                               moegate_extra_cpu = 2, ratio_extra_cpu = 1,
                               min_extra_loglik_diff = 3, compare_cpu = 2,
                               ratio_compare_cpu = 1, min_compare_loglik_diff = 3)))
print(round_columns(per_k, c(moegate_loglik = 3, flexmix_loglik = 3, loglik_diff = 3,
                             moegate_BIC = 2, flexmix_BIC = 2, moegate_seconds = 2,
                             moegate_extra_loglik = 3, extra_loglik_diff = 3,
                             compare_loglik = 3, compare_loglik_diff = 3)))
