#!/usr/bin/env Rscript
# The NeurIPS 2023 reference protocol (softmax Gaussian mixture of experts,
# Nguyen, Nguyen and Ho 2023), in full, with one command:
#
#   Rscript inst/studies/neurips2023.R            # k = 2, 3 and 4
#   Rscript inst/studies/neurips2023.R 3          # k = 3 only
#
# Options (after the k's):
#   --workers=W   parallel R sessions (default 2: future::multisession)
#   --sizes=G     use G of the 200 published sample sizes, evenly spread (a
#                 reduced run)
#   --reps=R      replications per size (default: the published 40)
#   --out=DIR     where to write the results (default: inst/extdata when run
#                 from the package source, else the working directory)
#
# The full protocol writes neurips2023_k{k}.rds; a reduced run (--sizes or
# --reps) writes neurips2023_k{k}_reduced.rds, so it never overwrites a full
# run. The vignette vignettes/neurips2023.Rmd reads these files.
#
# Besides the attributes rate_study() sets (setting, seed, elapsed, workers),
# each saved study carries attr(, "run"): wall time, workers, machine (nproc,
# CPU model, R version, platform), date, grid, replications, starts, moegate
# version, the published wall time, and the slopes of both losses.
#
# See ?study_setting_neurips2023 for the protocol. Each result is the
# rate_study() data frame (one row per fit, fitted parameters included); the
# script prints the wall time beside the published one and the slopes of the
# translation-optimised loss and of the public code's reference-convention
# loss.

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
ks <- as.integer(args[!grepl("^--", args)])
if (length(ks) == 0) ks <- 2:4
workers <- as.integer(option("workers", 2))
n_sizes <- option("sizes", NA)
n_rep <- as.integer(option("reps", 40))
reduced <- !is.na(n_sizes) || n_rep != 40
default_out <- if (dir.exists("inst")) file.path("inst", "extdata") else "."
out_dir <- option("out", default_out)
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

published <- c(`2` = 877, `3` = 3554, `4` = 5609)

# The machine a run was timed on.
cpu_model <- function() {
  info <- tryCatch(readLines("/proc/cpuinfo", warn = FALSE), error = function(e) character())
  model <- grep("^model name", info, value = TRUE)
  if (length(model) == 0) return(NA_character_)
  trimws(sub("^model name\\s*:", "", model[1]))
}
# One-minute load average: the machine may be shared, which slows a run.
load_average <- function() {
  line <- tryCatch(readLines("/proc/loadavg", n = 1, warn = FALSE), error = function(e) "")
  suppressWarnings(as.numeric(strsplit(line, " ")[[1]][1]))
}
nproc <- suppressWarnings(tryCatch(as.integer(system2("nproc", stdout = TRUE)),
                                   error = function(e) NA_integer_))
machine <- list(nproc = nproc[1], cores = parallel::detectCores(logical = TRUE), cpu = cpu_model(),
                r_version = R.version.string, platform = R.version$platform,
                nodename = unname(Sys.info()[["nodename"]]))
plan(multisession, workers = workers)
progressr::handlers("txtprogressbar")

for (k in ks) {
  setting <- study_setting_neurips2023(k = k, n_rep = n_rep)
  if (!is.na(n_sizes)) {
    grid <- setting$n_grid
    keep <- unique(round(seq(1, length(grid), length.out = as.integer(n_sizes))))
    setting <- study_setting_neurips2023(k = k, n_grid = grid[keep], n_rep = n_rep)
  }
  print(setting)
  started <- Sys.time()
  load_start <- load_average()
  study <- rate_study(setting, seed = 2023 + k, progress = TRUE)
  slopes <- rate_slopes(study)
  slopes_reference <- rate_slopes(study, loss = "loss_reference")
  attr(study, "run") <- list(
    k = k, reduced = reduced, wall_time = attr(study, "elapsed"), workers = workers,
    machine = machine, load = c(start = load_start, end = load_average()), started = format(started, tz = "UTC", usetz = TRUE),
    date = format(Sys.time(), tz = "UTC", usetz = TRUE),
    n_grid = setting$n_grid, n_rep = setting$n_rep, n_starts = setting$control$n_starts,
    tol = setting$control$tol, maxit = setting$control$maxit, seed = 2023 + k,
    moegate_version = as.character(utils::packageVersion("moegate")),
    published_seconds = published[[as.character(k)]], published_cores = 8,
    slopes = as.data.frame(unclass(slopes)),
    slopes_reference = as.data.frame(unclass(slopes_reference)))
  file <- file.path(out_dir, sprintf(if (reduced) "neurips2023_k%d_reduced.rds" else "neurips2023_k%d.rds", k))
  saveRDS(study, file)
  print(study)
  cat(sprintf("\nk = %d: wall time %.0f s on %d worker(s) for %d fits (published: %d s on 8 cores for the full protocol)\n",
              k, attr(study, "elapsed"), workers, nrow(study), published[[as.character(k)]]))
  cat(sprintf("total fit time %.0f s (sum over fits), median %.2f s per fit\n",
              sum(study$seconds, na.rm = TRUE), stats::median(study$seconds, na.rm = TRUE)))
  cat("\nTranslation-optimised Voronoi loss (moegate):\n")
  print(slopes)
  cat("\nReference-convention loss (as the public code computed it):\n")
  print(slopes_reference)
  cat("saved to", file, "\n\n")
}
