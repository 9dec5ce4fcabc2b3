# Shared by the bench scripts: load moegate, simulate a softmax-gated Gaussian
# MoE, and evaluate its log-likelihood in plain R (an evaluator independent of
# both moegate and flexmix, so their fits can be compared on the same scale).

load_moegate <- function() {
  lib <- Sys.getenv("MOEGATE_LIB", "")
  if (nzchar(lib)) library(moegate, lib.loc = lib) else library(moegate)
  invisible(NULL)
}

# Directory of the running script (Rscript --file=...), for sourcing and output.
bench_dir <- function() {
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
}

# Output file in the bench directory; BENCH_TAG (if set) is appended to the
# name, so runs under different settings do not overwrite each other.
bench_output <- function(name) {
  tag <- Sys.getenv("BENCH_TAG", "")
  if (nzchar(tag)) name <- sub("\\.csv$", paste0("-", tag, ".csv"), name)
  file.path(bench_dir(), name)
}

# Comma-separated integers from an environment variable (default if unset).
env_ints <- function(name, default) as.integer(strsplit(Sys.getenv(name, default), ",")[[1]])

# The data and starts of one task of a NeurIPS 2023 protocol run with `seed`
# (replication r, size index i of the setting's grid): the stream future.seed
# gives that task, as rate_study() does. `streams`: lecuyer_streams(seed, N)
# for N at least the task's number, made once per setting.
protocol_task <- function(setting, streams, r, i) {
  ns <- asNamespace("moegate")
  assign(".Random.seed", streams[[(r - 1) * length(setting$n_grid) + i]], envir = .GlobalEnv)
  data <- ns$study_data(setting, setting$n_grid[i])
  list(n = setting$n_grid[i], data = data, starts = ns$study_starts(setting, data))
}

machine_info <- function() {
  cores <- tryCatch(as.integer(system("nproc", intern = TRUE)), error = function(e) NA)
  cpu <- tryCatch({
    l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1]
    trimws(sub("^model name\\s*:", "", l))
  }, error = function(e) NA)
  tun <- Sys.getenv("GLIBC_TUNABLES", "")
  sprintf("%s; %s cores (nproc); %s; moegate %s%s", cpu, cores, R.version.string,
          as.character(utils::packageVersion("moegate")),
          if (nzchar(tun)) paste0("; GLIBC_TUNABLES=", tun) else "")
}

# Gate logits (n x k) of the linear softmax gate: b0_i + z' w_i.
softmax_logits <- function(Z, W, b0) sweep(Z %*% W, 2, b0, "+")

log_softmax <- function(H) {
  m <- apply(H, 1, max)
  H - (m + log(rowSums(exp(H - m))))
}

# y_n ~ sum_i softmax_i(b0 + z_n' W) N(x_n' coef_i, sigma2_i), X with intercept.
simulate_moe <- function(n, W, b0, coef, sigma2, seed) {
  set.seed(seed)
  d <- nrow(W)
  Z <- matrix(stats::runif(n * d, -1, 1), n, d, dimnames = list(NULL, paste0("x", seq_len(d))))
  X <- cbind(`(Intercept)` = 1, Z)
  G <- exp(log_softmax(softmax_logits(Z, W, b0)))
  # Inverse-CDF draw of the expert label, one uniform per row.
  cum <- t(apply(G, 1, cumsum))
  label <- 1L + rowSums(cum < stats::runif(n))
  label <- pmin(label, ncol(W))
  mu <- rowSums(X * t(coef)[label, , drop = FALSE])
  y <- mu + stats::rnorm(n, sd = sqrt(sigma2[label]))
  list(y = y, X = X, Z = Z, label = label, data = data.frame(y = y, Z))
}

# Log-likelihood of a softmax Gaussian MoE, computed in R with log-sum-exp.
loglik_softmax_moe <- function(y, X, Z, W, b0, coef, sigma2) {
  logG <- log_softmax(softmax_logits(Z, W, b0))
  mu <- X %*% coef
  logF <- vapply(seq_len(ncol(coef)), function(i) {
    stats::dnorm(y, mu[, i], sqrt(sigma2[i]), log = TRUE)
  }, numeric(length(y)))
  A <- logG + logF
  m <- apply(A, 1, max)
  sum(m + log(rowSums(exp(A - m))))
}

# Elapsed and CPU (user + system) seconds of `fun()`, fastest elapsed of
# `reps` calls, with its value and any warnings it raised (muffled). On a
# shared machine the elapsed time of single-threaded code is inflated by other
# processes; its CPU time is not, so both are reported.
time_call <- function(fun, reps = 1, muffle = "warning") {
  best <- list(seconds = Inf)
  for (r in seq_len(reps)) {
    gc()
    warnings <- character()
    t <- system.time(value <- withCallingHandlers(fun(), warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      if (inherits(w, muffle)) invokeRestart("muffleWarning")
    }))
    if (t[["elapsed"]] < best$seconds) {
      best <- list(value = value, seconds = t[["elapsed"]],
                   cpu = t[["user.self"]] + t[["sys.self"]], warnings = warnings)
    }
  }
  best
}

load_average <- function() {
  tryCatch(paste(strsplit(readLines("/proc/loadavg", warn = FALSE), " ")[[1]][1:3],
                 collapse = " "), error = function(e) NA_character_)
}

# Round the named columns of a data frame, each to its own number of digits
# (a named vector: column = digits), for printing.
round_columns <- function(df, digits) {
  df[names(digits)] <- Map(round, df[names(digits)], digits)
  df
}

# The large-n truth of bench-large.R, bench-engine.R and bench-memory.R: a
# softmax-gated Gaussian MoE with d covariates and k experts drawn from seed
# 101 (the last expert the gate's reference); data from it with
# simulate_moe(..., seed = 102).
large_truth <- function(d = 10, k = 4) {
  set.seed(101)
  list(W = cbind(matrix(stats::rnorm(d * (k - 1), sd = 1.5), d, k - 1), 0),
       b0 = c(stats::rnorm(k - 1, sd = 0.5), 0),
       coef = matrix(stats::rnorm((d + 1) * k), d + 1, k),
       sigma2 = rep(0.5^2, k))
}
