#!/usr/bin/env Rscript
# Cosine-router paper (Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho 2025), in full, with one command:
#
#   Rscript inst/studies/cosine-router.R
#
# Options: --workers=W (default 2), --sizes=G (default 10, log-spaced from 1e3
# to --nmax=N, default 3e4), --reps=R (default 20), --k=K (fitted experts,
# default 2 = k*; K > 2 writes cosine-router-kK.rds), --out=DIR (default inst/extdata when run
# from the package source, else the working directory).
# Writes cosine-router.rds: a list with `studies` (one rate_study()
# data frame per setting, with fitted parameters), `settings` (printed
# descriptions), `asymptotic` (asymptotic_loss() at the smallest and largest
# n; exactly specified settings), `elapsed` (wall seconds of the studies),
# `machine`, `date`.

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
n_sizes <- as.integer(option("sizes", 10))
n_rep <- as.integer(option("reps", 20))
n_max <- as.numeric(option("nmax", 3e4))
k <- as.integer(option("k", 2))
out_dir <- option("out", if (dir.exists("inst")) file.path("inst", "extdata") else ".")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

plan(multisession, workers = workers)
progressr::handlers("txtprogressbar")
n_grid <- round(10^seq(3, log10(n_max), length.out = n_sizes))
settings <- c("linear", "cosine", "perturbed_cosine")

start <- proc.time()[["elapsed"]]
studies <- list()
descriptions <- list()
for (s in settings) {
  setting <- study_setting_cosine(s, n_grid = n_grid, n_rep = n_rep, k = k)
  descriptions[[s]] <- paste(utils::capture.output(print(setting)), collapse = "\n")
  cat(descriptions[[s]], "\n")
  study <- rate_study(setting, seed = 4, progress = TRUE)
  attr(study, "setting") <- NULL
  studies[[s]] <- study
  cat(sprintf("%s: %.0f s\n", s, attr(study, "elapsed")))
  print(rate_slopes(study, B = 499))
}
elapsed <- proc.time()[["elapsed"]] - start
# The mean loss an estimator already in its asymptotic normal regime would
# show (exactly specified settings only), for the figures' reference lines.
asymptotic <- if (k == 2) lapply(stats::setNames(nm = settings), function(s) {
  asymptotic_loss(study_setting_cosine(s, n_grid = range(n_grid)), nsim = 200)
})
result <- list(studies = studies, settings = descriptions, n_grid = n_grid, n_rep = n_rep, k = k,
               asymptotic = asymptotic, elapsed = elapsed, workers = workers,
               machine = list(nproc = parallel::detectCores(), R = R.version.string,
                              platform = R.version$platform),
               date = format(Sys.time(), "%Y-%m-%d %H:%M %Z"))
file <- file.path(out_dir, if (k == 2) "cosine-router.rds" else sprintf("cosine-router-k%d.rds", k))
saveRDS(result, file)
cat(sprintf("total wall time %.0f s; saved to %s\n", elapsed, file))
