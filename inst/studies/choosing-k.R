#!/usr/bin/env Rscript
# Choosing the number of experts: DIC of the dendrogram of one over-specified
# fit against AIC, BIC and ICL of a sweep over k, on two softmax-gated
# Gaussian truths, with the Voronoi losses of the merged, exact and
# over-specified estimators. The vignette vignettes/choosing-k.Rmd reads the
# result.
#
#   nice -n 10 Rscript inst/studies/choosing-k.R [--workers=2] [--reps=20] [--stop=gradient|loglik] [--out=DIR]
#                                                [--n=16000,32000] [--append=FILE]
#
# --n= runs only the given sample sizes; --append=FILE starts from the rows of
# an earlier run (FILE, e.g. the shipped choosing-k-gradient.rds) for the
# sizes not rerun. Every size draws from its own seed (14 + n), so a size run
# alone gives the rows it gives in a full run.
#
# The shipped inst/extdata/choosing-k.rds (--stop=loglik): 6 sizes (500 to 16,000), 20
# replications, 2 workers, 521 s wall time (776 s of fits) on a shared
# 2-core AMD EPYC (load average 6-10), 2026-12-01.
#
# For every truth, sample size n and replication: simulate n observations,
# run moe_select(k = 1:k_max) (kmeans start, one per k), pick k by AIC, BIC and
# ICL, build moe_dendrogram() of the sweep's k_max fit and pick k by DIC (with
# the default mass weights, and with the papers' intercept-based weights).
# Losses against the truth: the merged model with k* atoms (D1 Voronoi loss,
# unrefined and refined by EM from the merged start), the sweep's exact fit
# (k = k*, D1) and the over-specified fit (k = k_max, rbar). Writes
# choosing-k.rds: a data frame with one row per (truth, n, replication) and
# attr(, "run") with the wall time, workers, machine, grid and settings.

suppressPackageStartupMessages({
  library(moegate)
  library(future)
})
for (pkg in c("future.apply")) {
  if (!requireNamespace(pkg, quietly = TRUE)) stop("this script needs the ", pkg, " package")
}
args <- commandArgs(trailingOnly = TRUE)
option <- function(name, default) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit) == 0) default else sub(paste0("^--", name, "="), "", hit[1])
}
workers <- as.integer(option("workers", 2))
n_rep <- as.integer(option("reps", 20))
default_out <- if (dir.exists("inst")) file.path("inst", "extdata") else "."
out_dir <- option("out", default_out)
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# The two truths. A: the NeurIPS 2023 protocol (k* = 2, x on the equispaced
# grid of [0, 1]). B: three experts on [-1, 1], left, middle and right.
truths <- list(
  A = list(truth = moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
                              coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.09, 0.16)),
           k_max = 4, x = function(n) matrix(seq(0, 1, length.out = n), n, 1)),
  B = list(truth = moe_params(W = matrix(c(-10, 10, 0), 1), b0 = c(-3, -3, 0),
                              coef = cbind(c(-1, 2), c(1, -2), c(2, 0)),
                              sigma2 = c(0.1, 0.1, 0.1)),
           k_max = 5, x = function(n) matrix(stats::runif(n, -1, 1), n, 1))
)
n_grid <- round(10^seq(log10(500), log10(16000), length.out = 6))
n_grid <- n_grid[seq_len(as.integer(option("sizes", length(n_grid))))]  # --sizes=m: a quick check
if (!is.null(option("n", NULL))) n_grid <- as.numeric(strsplit(option("n", ""), ",")[[1]])
if (anyNA(n_grid) || any(n_grid < 50)) stop("--n= must list sample sizes of at least 50")
append_file <- option("append", NULL)
previous <- if (!is.null(append_file)) readRDS(append_file)
# --stop=loglik: EM stopped by the relative change of the log-likelihood (1e-6),
# the rule of the shipped choosing-k.rds (made before the gradient rule became
# moe_control()'s default); --stop=gradient (default): fits run to a stationary
# point by the gradient rule with the Newton polish, as shipped in
# choosing-k-gradient.rds (sizes 500 to 8000: 940 s on 2 workers, load 3-5,
# 2026-12-01; n = 16,000 added with --n=16000 --append=<that file>: 2571 s on
# 2 workers, load 10, 2026-12-02). Both ran one start per k, the k-means start
# (moe_control()'s "mixed" default is that start when n_starts = 1).
stop_rule <- option("stop", "gradient")
control <- moe_control(tol = 1e-6, maxit = 500, stop = stop_rule,
                       polish = if (stop_rule == "loglik") "none" else "newton")

# voronoi_loss() refuses parameters whose e^{b0} overflows (an atom with an
# extreme gate intercept): such a loss is recorded as NA.
safe_loss <- function(fit, truth, exponents) {
  tryCatch(voronoi_loss(fit, truth, exponents), error = function(e) NA_real_)
}

one_replication <- function(name, n, rep) {
  spec <- truths[[name]]
  k_true <- ncol(spec$truth$gate$W)
  d <- rmoe(n, spec$truth, x = spec$x(n))
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = seq_len(spec$k_max),
                                     control = control, seed = rep, progress = FALSE))
  tab <- sel$table
  pick <- function(crit) tab$k[which.min(tab[[crit]])]
  over <- sel$fits[[as.character(spec$k_max)]]
  t0 <- proc.time()[["elapsed"]]
  tree <- moe_dendrogram(over)
  t_tree <- proc.time()[["elapsed"]] - t0
  # The papers' weights (e^{b0} in the reference convention, as the public
  # code) and the intercept weights, for comparison with the default masses.
  other_dic <- function(w) {
    tryCatch(moe_dendrogram(over, weights = w)$k_selected, error = function(e) NA_integer_)
  }
  dic_reference <- other_dic("reference")
  dic_intercept <- other_dic("intercept")
  merged <- as_moe(tree, k = k_true)
  t0 <- proc.time()[["elapsed"]]
  refined <- suppressWarnings(as_moe(tree, k = k_true, refine = TRUE))
  t_refine <- proc.time()[["elapsed"]] - t0
  exact <- sel$fits[[as.character(k_true)]]
  data.frame(truth = name, k_true = k_true, k_max = spec$k_max, n = n, replication = rep,
             DIC = tree$k_selected, DIC_reference = dic_reference,
             DIC_intercept = dic_intercept, AIC = pick("AIC"), BIC = pick("BIC"), ICL = pick("ICL"),
             loss_merged = safe_loss(merged, spec$truth, "D1"),
             loss_refined = safe_loss(refined, spec$truth, "D1"),
             loss_exact = safe_loss(exact, spec$truth, "D1"),
             loss_over = safe_loss(over, spec$truth, "rbar"),
             loglik_merged = merged$loglik, loglik_refined = refined$loglik,
             loglik_exact = exact$loglik, loglik_over = over$loglik,
             over_converged = isTRUE(over$converged),
             seconds_sweep = sum(tab$seconds), seconds_over = tab$seconds[tab$k == spec$k_max],
             seconds_tree = t_tree, seconds_refine = t_refine)
}

cpu_model <- function() {
  info <- tryCatch(readLines("/proc/cpuinfo", warn = FALSE), error = function(e) character())
  model <- grep("^model name", info, value = TRUE)
  if (length(model) == 0) NA_character_ else trimws(sub("^model name\\s*:", "", model[1]))
}
load_average <- function() {
  line <- tryCatch(readLines("/proc/loadavg", n = 1, warn = FALSE), error = function(e) "")
  suppressWarnings(as.numeric(strsplit(line, " ")[[1]][1]))
}
machine <- list(cores = parallel::detectCores(logical = TRUE), cpu = cpu_model(),
                r_version = R.version.string, platform = R.version$platform)
plan(multisession, workers = workers)
file <- file.path(out_dir, if (stop_rule == "loglik") "choosing-k.rds" else "choosing-k-gradient.rds")
load_start <- load_average()
started <- proc.time()[["elapsed"]]
# One sample size at a time, smallest first, saving after each: a run stopped
# early keeps the sizes it finished (attr(, "run")$complete says whether all).
result <- if (!is.null(previous)) {
  kept <- previous[!previous$n %in% n_grid, , drop = FALSE]
  attributes(kept)[setdiff(names(attributes(kept)), c("names", "row.names", "class"))] <- NULL
  kept
}
previous_run <- if (!is.null(previous)) attr(previous, "run")
for (n in n_grid) {
  tasks <- expand.grid(replication = seq_len(n_rep), truth = names(truths),
                       stringsAsFactors = FALSE)
  rows <- future.apply::future_lapply(seq_len(nrow(tasks)), function(i) {
    tryCatch(one_replication(tasks$truth[i], n, tasks$replication[i]),
             error = function(e) {
               data.frame(truth = tasks$truth[i], n = n, replication = tasks$replication[i],
                          error = conditionMessage(e))
             })
  }, future.seed = 14L + n, future.packages = "moegate", future.scheduling = 2)
  rows <- c(if (!is.null(result)) list(result), rows)
  all_cols <- unique(unlist(lapply(rows, names)))
  rows <- lapply(rows, function(r) {
    for (cn in setdiff(all_cols, names(r))) r[[cn]] <- NA
    r[all_cols]
  })
  result <- do.call(rbind, rows)
  wall <- proc.time()[["elapsed"]] - started
  all_grid <- sort(unique(c(previous_run$n_grid, n_grid)))
  attr(result, "run") <- list(
    wall_time = wall, fit_seconds = sum(result$seconds_sweep[result$n %in% n_grid], na.rm = TRUE),
    workers = workers,
    machine = machine, load = c(start = load_start, end = load_average()),
    date = format(Sys.time(), tz = "UTC", usetz = TRUE), n_grid = all_grid,
    n_done = sort(unique(result$n)), complete = all(all_grid %in% result$n), n_rep = n_rep,
    # The run whose rows were kept for the sizes not rerun (--append).
    previous = if (!is.null(previous_run)) {
      c(previous_run[setdiff(names(previous_run), c("previous", "truths"))],
        list(file = basename(append_file)))
    },
    truths = lapply(truths, function(t) list(truth = t$truth, k_max = t$k_max)),
    control = control[c("tol", "maxit", "n_starts", "init", "stop", "polish")],
    moegate_version = as.character(utils::packageVersion("moegate")))
  saveRDS(result, file)
  cat(sprintf("n = %d done: wall time so far %.0f s, fits %.0f s in this run, load %.1f\n", n,
              wall, attr(result, "run")$fit_seconds, load_average()))
}
plan(sequential)
share <- aggregate(cbind(DIC = DIC == k_true, AIC = AIC == k_true, BIC = BIC == k_true,
                         ICL = ICL == k_true) ~ truth + n, data = result, FUN = mean)
print(share)
cat("saved to", file, "\n")
