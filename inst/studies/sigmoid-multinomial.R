#!/usr/bin/env Rscript
# Sigmoid-gated multinomial logistic mixture of experts (Pham, Cao, Nguyen,
# Nguyen, Ho, Rinaldo; arXiv 2602.01466): the four settings of
# ?study_setting_sigmoid_multinomial, in full, with one command:
#
#   Rscript inst/studies/sigmoid-multinomial.R
#
# Options: --workers=W (default 2, future::multisession), --reps=R (default 5),
# --sizes=G (default 5, log-spaced from 1e3 to nmax), --nmax=N (default 1e4),
# --maxit=M (EM iterations per fit, default 300),
# --out=DIR (default inst/extdata when run from the package source).
# Writes sigmoid-multinomial.rds: a list with `studies` (one rate_study() data
# frame per setting, fitted parameters dropped to keep the file small),
# `settings` (name, truth, k, gate, theory), `slopes`, `wall_time` (seconds),
# `machine` (cores, workers, R version, platform) and `date`.

suppressPackageStartupMessages({
  library(moegate)
  library(future)
})
for (pkg in c("future.apply", "progressr")) {
  if (!requireNamespace(pkg, quietly = TRUE)) stop("this script needs the ", pkg, " package")
}
args <- commandArgs(trailingOnly = TRUE)
option <- function(name, default) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit) == 0) default else sub(paste0("^--", name, "="), "", hit[1])
}
workers <- as.integer(option("workers", 2))
n_rep <- as.integer(option("reps", 5))
n_sizes <- as.integer(option("sizes", 5))
n_max <- as.numeric(option("nmax", 1e4))
maxit <- as.integer(option("maxit", 300))
out_dir <- option("out", if (dir.exists("inst")) file.path("inst", "extdata") else ".")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
n_grid <- round(10^seq(3, log10(n_max), length.out = n_sizes))

plan(multisession, workers = workers)
progressr::handlers("txtprogressbar")
settings <- c("softmax", "modified_sigmoid", "sigmoid_temperature", "euclidean_temperature")
start <- proc.time()[["elapsed"]]
studies <- list()
for (i in seq_along(settings)) {
  s <- study_setting_sigmoid_multinomial(settings[i], n_grid = n_grid, n_rep = n_rep, maxit = maxit)
  print(s)
  study <- rate_study(s, seed = 2026 + i, progress = TRUE)
  study$params <- NULL
  studies[[settings[i]]] <- study
  print(rate_slopes(study))
}
wall <- proc.time()[["elapsed"]] - start
result <- list(
  studies = studies,
  settings = lapply(studies, function(st) {
    s <- attr(st, "setting")
    list(name = s$name, truth = s$truth, k = s$k, gate = s$gate$name, n_grid = s$n_grid,
         n_rep = s$n_rep, maxit = s$control$maxit, theory = attr(s, "theory"), theory_slope = attr(s, "theory_slope"))
  }),
  slopes = lapply(studies, rate_slopes),
  wall_time = wall,
  machine = list(cores = parallel::detectCores(), workers = workers,
                 R = R.version.string, platform = R.version$platform,
                 note = "2 cores shared with other users' jobs"),
  date = format(Sys.time(), "%Y-%m-%d %H:%M %Z"))
file <- file.path(out_dir, "sigmoid-multinomial.rds")
saveRDS(result, file)
cat(sprintf("wall time %.0f s on %d worker(s); saved to %s\n", wall, workers, file))
