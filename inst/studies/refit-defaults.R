#!/usr/bin/env Rscript
# Do the shipped study runs still hold on the current code? One command:
#
#   Rscript inst/studies/refit-defaults.R [--runs=temperature-gaussian,cosine-router,...]
#           [--neurips_sizes=5] [--neurips_reps=2] [--commit=SHA]
#           [--file=refit-defaults.rds] [--out=DIR]
#
# The shipped runs in inst/extdata were made before the change of defaults of
# 2026-12-02 (moe_control(accelerate = "auto"): SQUAREM for every
# maximum-likelihood fit; the linear softmax gate takes one Newton step per EM
# iteration, gate_maxit = NULL, where it solved the gate M-step before), which
# changes EM paths. For every shipped run and study this script refits, with
# refit_study() (same data, same start), a fixed subset of rows of the first
# batch (seed `$batches$seed[1]`, replications numbered as stored: the first
# batch of combine_study_runs() has offset 0):
#   - run_studies() results (temperature-gaussian, cosine-router,
#     softmax-multinomial): the 4 smallest sizes x replications 1-3 and the
#     largest size x replications 1-2 (the rows of batches.R's combine check);
#   - neurips2023_k2/k3/k4 (200 sizes): --neurips_sizes sizes evenly spread over
#     the grid (both ends included) x replications 1..--neurips_reps.
# Each row is fitted twice:
#   - `replay`: the stored control as it ran (its accelerate, and gate_maxit =
#     50, a solve to gate_tol, where a linear softmax gate had gate_maxit =
#     NULL): checks that the stored fit is reproduced on the current code;
#   - `refit`: the stored control brought to today's defaults: tol, maxit,
#     n_starts, gate_tol, expert_maxit, expert_tol, gate_optimizer, the start
#     rule and the stop rule kept (runs made before moe_control() had `stop`
#     used the relative change of the log-likelihood and no polish: stop =
#     "loglik", polish = "none"); accelerate and gate_maxit from moe_control().
# Writes --file: a list with `studies` (per study: run, study, rows, the two
# controls, the two refit_study() tables and their CPU seconds), `summary`,
# `commit`, `date`; prints the summary (per study: max |loglik_refit -
# loglik_stored|, refits higher / lower than the stored fit by more than 1e-6
# in log-likelihood, median and max relative difference of the study's main
# loss). One core, no workers: the shipped refit-defaults.rds took 62 s of CPU
# (28 s replay, 34 s refit; per study in `summary$seconds`).
#
# softmax-multinomial and the neurips2023 files are single batches (seeds 6,
# 2025, 2026, 2027). The cosine-router studies are least-squares fits, which
# accelerate = "auto" leaves on plain EM, and the temperature-gaussian studies
# ran SQUAREM with non-linear gates already: for them replay and refit agree,
# and what they measure is the code's other changes since the runs.
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(
  runs = paste("temperature-gaussian", "cosine-router", "softmax-multinomial",
               "neurips2023_k2", "neurips2023_k3", "neurips2023_k4", sep = ","),
  neurips_sizes = 5, neurips_reps = 2, commit = "", file = "refit-defaults.rds",
  data = if (dir.exists("inst")) file.path("inst", "extdata") else ".",
  out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
commit <- if (nzchar(opt$commit)) opt$commit else
  tryCatch(system2("git", c("rev-parse", "HEAD"), stdout = TRUE, stderr = FALSE),
           error = function(e) NA_character_, warning = function(w) NA_character_)

# The first batch of a study: a combined study (column `batch`) is cut to
# batch 1, with that batch's seed and number of replications; a single batch
# is returned as it is.
first_batch <- function(run, study) {
  if (is.null(study$batch)) return(study)
  setting <- attr(study, "setting")
  setting$n_rep <- run$batches$replications[1]
  out <- as.data.frame(study)[study$batch == 1, setdiff(names(study), "batch"), drop = FALSE]
  rownames(out) <- NULL
  class(out) <- class(study)
  attr(out, "setting") <- setting
  attr(out, "seed") <- run$batches$seed[1]
  out
}

# The rows refitted (see the header).
refit_rows <- function(study, spread) {
  sizes <- sort(unique(study$n))
  if (spread) {
    chosen <- sizes[unique(round(seq(1, length(sizes), length.out = opt$neurips_sizes)))]
    return(which(study$n %in% chosen & study$replication <= opt$neurips_reps))
  }
  which((study$n %in% sizes[1:4] & study$replication <= 3) |
          (study$n == max(sizes) & study$replication <= 2))
}

# The linear softmax gate: the one whose gate_maxit = NULL meant a solved
# M-step before 2026-12-02 and means one Newton step now.
linear_softmax <- function(gate) {
  identical(gate$score, "inner") && identical(gate$activation, "identity") &&
    identical(gate$transform, "identity") && identical(gate$normalizer, "softmax") &&
    !isTRUE(gate$estimate_tau)
}

# A fresh moe_control() from a stored one's user-facing values (old objects
# lack newer fields: stop, lsq_stop, grad_tol, polish...). `replay`: keep the stored
# accelerate and gate M-step; else take today's defaults for both.
fresh_control <- function(setting, replay) {
  stored <- unclass(setting$control)
  keep <- c("tol", "maxit", "n_starts", "gate_tol", "expert_maxit", "expert_tol",
            "gate_optimizer", "stop", "lsq_stop", "grad_tol", "polish", "polish_at",
            "polish_maxit")
  args <- stored[intersect(keep, names(stored))]
  args <- args[!vapply(args, is.null, TRUE)]
  if (is.null(stored$stop)) {
    args$stop <- "loglik"
    args$polish <- "none"
  }
  # Least-squares fits stopped on the relative change before moe_control() had
  # lsq_stop; a stored stop = "gradient" would now select the gradient rule
  # for them too.
  if (is.null(stored$lsq_stop)) args$lsq_stop <- "loglik"
  if (replay) {
    # Controls stored before moe_control(runoff_ratio =) ran without the
    # run-off guard (a stored control lacking the field still does).
    args$runoff_ratio <- if (is.null(stored$runoff_ratio)) Inf else stored$runoff_ratio
    args$accelerate <- if (is.null(stored$accelerate)) "none" else stored$accelerate
    args$gate_maxit <- if (!is.null(stored$gate_maxit)) stored$gate_maxit else
      if (linear_softmax(setting$gate)) 50L
  }
  args$progress <- FALSE
  do.call(moe_control, args)
}

cpu <- function(expr) {
  t0 <- proc.time()
  value <- expr
  t1 <- proc.time() - t0
  list(value = value, seconds = sum(t1[c("user.self", "sys.self")], na.rm = TRUE))
}

summarise <- function(tab) {
  fits <- tab[tab$loss == "loss", , drop = FALSE]
  d <- fits$loglik_refit - fits$loglik_stored
  data.frame(fits = nrow(fits), failed = sum(!is.na(fits$error_refit)),
             max_abs_loglik = max(abs(d), na.rm = TRUE),
             higher = sum(d > 1e-6, na.rm = TRUE), lower = sum(d < -1e-6, na.rm = TRUE),
             median_rel_loss = stats::median(fits$relative, na.rm = TRUE),
             max_rel_loss = max(fits$relative, na.rm = TRUE))
}

runs <- strsplit(opt$runs, ",")[[1]]
results <- list()
for (run_name in runs) {
  obj <- readRDS(file.path(opt$data, paste0(run_name, ".rds")))
  studies <- if (inherits(obj, "moe_study_run")) obj$studies else stats::setNames(list(obj), "")
  for (j in seq_along(studies)) {
    s <- names(studies)[j]
    study <- first_batch(obj, studies[[j]])
    setting <- attr(study, "setting")
    rows <- refit_rows(study, spread = !inherits(obj, "moe_study_run"))
    controls <- list(replay = fresh_control(setting, replay = TRUE),
                     refit = fresh_control(setting, replay = FALSE))
    key <- if (nzchar(s)) paste(run_name, s, sep = "/") else run_name
    message(sprintf("%s: %d rows, seed %s", key, length(rows), attr(study, "seed")))
    fits <- lapply(controls, function(control) cpu(refit_study(study, rows, control)))
    results[[key]] <- list(run = run_name, study = s, seed = attr(study, "seed"),
                           rows = rows, controls = controls,
                           replay = fits$replay$value, refit = fits$refit$value,
                           seconds = c(replay = fits$replay$seconds,
                                       refit = fits$refit$seconds))
  }
}

summary_table <- do.call(rbind, lapply(names(results), function(key) {
  r <- results[[key]]
  rbind(cbind(study = key, control = "replay", summarise(r$replay), seconds = r$seconds[["replay"]]),
        cbind(study = key, control = "refit", summarise(r$refit), seconds = r$seconds[["refit"]]))
}))
rownames(summary_table) <- NULL
out <- list(studies = results, summary = summary_table, commit = commit,
            date = format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC"))
saveRDS(out, file.path(opt$out, opt$file))
print(summary_table, digits = 3, row.names = FALSE)
cat(sprintf("CPU %.1f s (replay %.1f, refit %.1f); commit %s\n", sum(summary_table$seconds),
            sum(summary_table$seconds[summary_table$control == "replay"]),
            sum(summary_table$seconds[summary_table$control == "refit"]), commit))
