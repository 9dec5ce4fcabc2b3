#!/usr/bin/env Rscript
# Are the gradient-rule fits of the NeurIPS 2023 k = 3 start-loss runs at a
# finite maximum of the likelihood, or on a run-off path (a gate sharpening
# without bound while the log-likelihood still rises)? With one command:
#
#   Rscript inst/studies/neurips2023-maximum.R [--sharpen_nmax=1e5] [--runs=ours,public]
#           [--k=3] [--update=FALSE] [--out=DIR]
#
# --k: which fitted numbers of experts to check, comma-separated ("3,4"); a
# run without that study is skipped. k = 3 checks are stored under the run's
# name, k = 4 under "<run>_k4".
#
# --runs: which runs to check; --update=TRUE keeps the other runs' checks of an
# existing neurips2023-maximum.rds (so one run can be redone alone, e.g. with
# a larger --sharpen_nmax). The shipped file: --sharpen_nmax=31623 for both
# runs, then --runs=ours --sharpen_nmax=1e5 --update=TRUE, then (k = 4, our start
# noise) --runs=ours --k=4 --update=TRUE.
#
# For every fit of neurips2023-starts-gradient.rds (our start noise) and
# neurips2023-starts-gradient-public.rds (the public code's), study_maxima()
# rebuilds the replication's data, continues the fit by Newton steps on the
# full log-likelihood, computes the observed information there and the loss's
# parts (the gate-vector term against the expert terms), and profiles the
# log-likelihood along the sharpening of the gate boundary between the two
# fitted experts that split a true one (multiples 10 and 100 of the fitted
# sharpness, every other parameter maximised) for fits with n <= sharpen_nmax.
# Writes neurips2023-maximum.rds: a list with one element per run (the
# study_maxima() table, its profile in attr(, "profile")), the seconds and
# the machine.
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(sharpen_nmax = 1e5, runs = "ours,public", k = "3", update = FALSE,
                          out = if (dir.exists("inst")) file.path("inst", "extdata") else "."))
find_run <- function(name) {
  f <- c(file.path(opt$out, name), system.file("extdata", name, package = "moegate"))
  f <- f[nzchar(f) & file.exists(f)]
  if (length(f)) readRDS(f[1])
}
runs <- list(ours = find_run("neurips2023-starts-gradient.rds"),
             public = find_run("neurips2023-starts-gradient-public.rds"))
runs <- runs[!vapply(runs, is.null, NA) & names(runs) %in% strsplit(opt$runs, ",")[[1]]]
if (!length(runs)) stop("no gradient-rule start-loss run found")
t0 <- proc.time()[["elapsed"]]
# One check per study of a run: k = 3 under the run's name ("ours", "public"),
# k = 4 as "ours_k4" (the names study_verdicts() reads).
check_study <- function(run, st) {
  t_run <- proc.time()[["elapsed"]]
  small <- st$n <= opt$sharpen_nmax
  parts <- list(if (any(small)) study_maxima(st, rows = which(small), sharpen = c(10, 100)),
                if (any(!small)) study_maxima(st, rows = which(!small)))
  parts <- parts[!vapply(parts, is.null, NA)]
  cols <- unique(unlist(lapply(parts, names)))
  checked <- do.call(rbind, lapply(parts, function(p) {
    for (nm in setdiff(cols, names(p))) p[[nm]] <- NA
    p[cols]
  }))
  checked <- checked[order(checked$row), ]
  rownames(checked) <- NULL
  attr(checked, "profile") <- attr(parts[[1]], "profile")
  attr(checked, "run") <- list(date = run$date, seed = run$seed, note = run$note,
                               sharpen_nmax = opt$sharpen_nmax,
                               seconds = proc.time()[["elapsed"]] - t_run)
  checked
}
ks <- strsplit(opt$k, ",")[[1]]
out <- list()
for (r in names(runs)) {
  for (k in intersect(paste0("k", ks), names(runs[[r]]$studies))) {
    name <- if (k == "k3") r else paste0(r, "_", k)
    out[[name]] <- check_study(runs[[r]], runs[[r]]$studies[[k]])
  }
}
file <- file.path(opt$out, "neurips2023-maximum.rds")
if (isTRUE(opt$update) && file.exists(file)) {
  old <- readRDS(file)
  keep <- setdiff(names(old$checks), names(out))
  out <- c(old$checks[keep], out)[union(names(old$checks), names(out))]
}
result <- list(checks = out, seconds = proc.time()[["elapsed"]] - t0,
               date = format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC"),
               machine = moegate:::study_machine(), sharpen_nmax = opt$sharpen_nmax)
saveRDS(result, file)
print(lapply(out, function(x) x[, c("n", "replication", "at_maximum", "newton_steps", "info_min",
                                     "loss", "loss_w", "sharpen_gain")]))
cat(sprintf("%.0f s\n", result$seconds))
