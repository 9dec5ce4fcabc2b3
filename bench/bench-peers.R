# moegate against the other R packages that fit Gaussian mixtures of experts
# with a covariate-dependent (softmax / logistic) gate, each at its own
# defaults, side by side in one process on the same data:
#
#   - mixtools::hmeEM() (2 experts only; its own random start), and the same
#     from the true parameters, which tells its algorithm from its start;
#   - MoEClust::MoE_clust(gating = ~ x1 + x2, expert = ~ x1 + x2,
#     modelNames = "V") (its default hierarchical-clustering start, Aitken
#     stopping rule), and the same from its k-means start (BENCH_CLUST_INIT);
#   - moegate::moe(y ~ x1 + x2, k) at its defaults (one start, gradient rule).
#
# meteorits (Chamroukhi et al.) is not on CRAN and could not be installed
# here (bench/install-peers.sh); it is reported as unavailable if missing.
#
#   bash bench/install-peers.sh && Rscript bench/bench-peers.R
#
# Every fit's log-likelihood is recomputed from its estimates by one R
# function (loglik_softmax_moe() in helpers.R) so that the packages are
# compared on the same quantity; `loglik_reported` is each package's own.
# Environment: MOEGATE_LIB, BENCH_REPS (default 3; the fits alternate within a
# repetition), BENCH_N_HME (sizes for the 2-expert case, default 2000,5000),
# BENCH_N_CLUST (sizes for the 3-expert case, default 2000,20000),
# BENCH_CLUST_INIT (MoE_clust starts, default "defaults,kmeans"). CPU seconds
# (user + system); every fit is single-threaded.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
have <- vapply(c("mixtools", "MoEClust", "meteorits"), requireNamespace, logical(1),
               quietly = TRUE)
if (!have[["mixtools"]] || !have[["MoEClust"]]) {
  stop("bench-peers.R needs mixtools and MoEClust: bash bench/install-peers.sh")
}
if (!have[["meteorits"]]) cat("meteorits: not installed (not on CRAN), not compared\n")
reps <- as.integer(Sys.getenv("BENCH_REPS", "3"))
n_hme <- as.numeric(strsplit(Sys.getenv("BENCH_N_HME", "2000,5000"), ",")[[1]])
n_clust <- as.numeric(strsplit(Sys.getenv("BENCH_N_CLUST", "2000,20000"), ",")[[1]])
# MoE_clust's starts: "defaults" (hierarchical clustering, init.z = "hc": about
# 140 s at n = 1e4 and 16 minutes at n = 2e4, most of its fit) and any of its
# other init.z values, e.g. "kmeans", which time its EM with a cheap start.
clust_variants <- strsplit(Sys.getenv("BENCH_CLUST_INIT", "defaults,kmeans"), ",")[[1]]

# Two experts (the only k hmeEM fits) and the three of bench-flexmix.R.
truth2 <- list(W = cbind(c(3, -2), c(0, 0)), b0 = c(0.5, 0),
               coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5)), sigma2 = c(0.3, 0.4)^2)
truth3 <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
               coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)),
               sigma2 = c(0.3, 0.4, 0.35)^2)

`%||%` <- function(a, b) if (is.null(a)) b else a

# time_call() that also times a call ending in an error (hmeEM gives up with
# "Too many tries!" after repeated singular restarts): value NULL, the error's
# message kept, the CPU seconds spent until then counted.
try_time <- function(fun) {
  t0 <- proc.time()
  tryCatch(c(time_call(fun), error = NA_character_), error = function(e) {
    t <- proc.time() - t0
    list(value = NULL, seconds = t[["elapsed"]], cpu = t[["user.self"]] + t[["sys.self"]],
         warnings = character(), error = conditionMessage(e))
  })
}

# Each fit: its timing, and from the returned fit (`extract(value)`: list of
# iter, reported log-likelihood, params) its iterations, reported and
# recomputed log-likelihood; NA for a fit that ended in an error.
fit_row <- function(case, n, rep, package, variant, timed, extract, s) {
  fit <- if (is.null(timed$value)) list(iter = NA_integer_, reported = NA_real_) else
    extract(timed$value)
  p <- fit$params
  ll <- if (is.null(p)) NA_real_ else {
    loglik_softmax_moe(s$y, s$X, s$Z, p$W, p$b0, p$coef, p$sigma2)
  }
  data.frame(case = case, n = n, rep = rep, package = package, variant = variant,
             cpu_s = timed$cpu, elapsed_s = timed$seconds, iterations = as.integer(fit$iter),
             loglik_reported = fit$reported, loglik = ll,
             warnings = length(timed$warnings), error = timed$error %||% NA_character_,
             load_average = load_average())
}

moegate_row <- function(case, n, rep, s, k) {
  set.seed(1000 + rep)
  tm <- time_call(function() moe(y ~ x1 + x2, data = s$data, k = k))
  fit_row(case, n, rep, "moegate", "defaults", tm, function(f) {
    list(iter = f$iter, reported = f$loglik,
         params = list(W = f$params$gate$W, b0 = f$params$gate$b0,
                       coef = f$params$expert$coef, sigma2 = f$params$expert$sigma2))
  }, s)
}

# hmeEM: lambda = 1 / (1 + exp(-[1, x]'w)) is the weight of component 1.
hme_fit <- function(f) {
  list(iter = length(f$all.loglik) - 1L, reported = f$loglik,
       params = list(W = cbind(f$w[-1], 0), b0 = c(f$w[1], 0), coef = f$beta,
                     sigma2 = f$sigma^2))
}
hme_rows <- function(n, rep, s) {
  set.seed(1000 + rep)
  th <- try_time(function() mixtools::hmeEM(s$y, s$Z, k = 2, verb = FALSE))
  # hmeEM prints "number of iterations= ..." and start restarts: not timed
  # separately, they are part of its defaults.
  w_true <- c(truth2$b0[1] - truth2$b0[2], truth2$W[, 1] - truth2$W[, 2])
  tt <- try_time(function() {
    mixtools::hmeEM(s$y, s$Z, beta = truth2$coef, sigma = sqrt(truth2$sigma2), w = w_true,
                    k = 2, verb = FALSE)
  })
  rbind(fit_row("k = 2", n, rep, "mixtools", "hmeEM defaults", th, hme_fit, s),
        fit_row("k = 2", n, rep, "mixtools", "hmeEM from the truth", tt, hme_fit, s))
}

# MoE_clust: multinomial gate with component 1 as reference (nnet::multinom).
clust_fit <- function(k) {
  function(f) {
    gc <- stats::coef(f$gating)
    gc <- if (is.null(dim(gc))) matrix(gc, 1) else gc
    list(iter = f$iters, reported = utils::tail(f$loglik, 1),
         params = list(W = cbind(0, t(gc[, -1, drop = FALSE])), b0 = c(0, gc[, 1]),
                       coef = vapply(seq_len(k), function(g) stats::coef(f$expert[[g]]), numeric(3)),
                       sigma2 = f$parameters$variance$sigmasq))
  }
}
clust_row <- function(case, n, rep, s, k) {
  rows <- lapply(clust_variants, function(v) {
    init <- if (v == "defaults") NULL else v
    set.seed(1000 + rep)
    tc <- try_time(function() {
      ctl <- if (is.null(init)) MoEClust::MoE_control(verbose = FALSE) else
        MoEClust::MoE_control(init.z = init, verbose = FALSE)
      MoEClust::MoE_clust(s$y, G = k, gating = ~ x1 + x2, expert = ~ x1 + x2,
                          network.data = s$data, modelNames = "V", control = ctl)
    })
    label <- if (is.null(init)) "MoE_clust defaults" else paste0("MoE_clust init.z = ", init)
    fit_row(case, n, rep, "MoEClust", label, tc, clust_fit(k), s)
  })
  do.call(rbind, rows)
}

cat("Machine:", machine_info(), "\n")
cat("mixtools", format(utils::packageVersion("mixtools")), "; MoEClust",
    format(utils::packageVersion("MoEClust")), "; load average", load_average(), "\n")
rows <- list()
for (n in n_hme) {
  s <- simulate_moe(n, truth2$W, truth2$b0, truth2$coef, truth2$sigma2, seed = 31 + n %% 997)
  for (r in seq_len(reps)) {
    rows[[length(rows) + 1]] <- moegate_row("k = 2", n, r, s, 2)
    rows[[length(rows) + 1]] <- hme_rows(n, r, s)
    rows[[length(rows) + 1]] <- clust_row("k = 2", n, r, s, 2)
    cat("k = 2, n =", n, "rep", r, "done\n")
  }
}
for (n in n_clust) {
  s <- simulate_moe(n, truth3$W, truth3$b0, truth3$coef, truth3$sigma2, seed = 20240 + n %% 997)
  for (r in seq_len(reps)) {
    rows[[length(rows) + 1]] <- moegate_row("k = 3", n, r, s, 3)
    rows[[length(rows) + 1]] <- clust_row("k = 3", n, r, s, 3)
    cat("k = 3, n =", n, "rep", r, "done\n")
  }
}
res <- do.call(rbind, rows)
options(width = 200)
print(res, row.names = FALSE)

# Per case, size and peer: medians over repetitions of the CPU ratio (peer /
# moegate, same repetition; a failed peer fit counts with the CPU it spent) and
# of the log-likelihood difference (over the peer's fits that returned).
mg <- res[res$package == "moegate", c("case", "n", "rep", "cpu_s", "loglik")]
peers <- res[res$package != "moegate", ]
m <- merge(peers, mg, by = c("case", "n", "rep"), suffixes = c("", "_moegate"))
m$ratio <- m$cpu_s / m$cpu_s_moegate
m$loglik_diff <- m$loglik_moegate - m$loglik
summary_rows <- lapply(split(m, list(m$case, m$n, m$variant), drop = TRUE), function(g) {
  data.frame(case = g$case[1], n = g$n[1], peer = g$variant[1],
             moegate_cpu = stats::median(g$cpu_s_moegate), peer_cpu = stats::median(g$cpu_s),
             median_ratio = stats::median(g$ratio), min_ratio = min(g$ratio),
             peer_failed = sum(is.na(g$loglik)),
             moegate_minus_peer_loglik = stats::median(g$loglik_diff, na.rm = TRUE),
             min_loglik_diff = suppressWarnings(min(g$loglik_diff, na.rm = TRUE)))
})
cat("\nmoegate vs each peer (medians over", reps, "repetitions; loglik recomputed)\n")
print(do.call(rbind, summary_rows), row.names = FALSE)
out <- bench_output("results-peers.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("Written:", out, "\n")
