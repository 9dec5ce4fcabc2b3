# Shared by the study scripts that run in seeded batches (temperature-gaussian.R,
# cosine-router.R): sourced, not run. Uses only moegate's exported functions.

# The commit the installed moegate was built from (recorded in a result):
# --commit= if given, else the checkout's HEAD, else NA.
batch_commit <- function(opt) {
  if (nzchar(opt$commit)) return(opt$commit)
  tryCatch(system2("git", c("rev-parse", "HEAD"), stdout = TRUE, stderr = FALSE),
           error = function(e) NA_character_, warning = function(w) NA_character_)
}

# --combine=a.rds,b.rds: join the batches with combine_study_runs() and check
# that they may be joined: refit fits of the first batch (the 4 smallest sizes
# in replications 1-3, the largest in 1-2) on the code installed now, with
# `control`, from the same data and starts; keep the comparison as
# `batch_check` and write the combined run to --out/--file.
combine_batches <- function(opt, control, commit) {
  parts <- lapply(strsplit(opt$combine, ",")[[1]], readRDS)
  run <- combine_study_runs(parts)
  run$batch_check <- do.call(rbind, lapply(names(parts[[1]]$studies), function(s) {
    st <- parts[[1]]$studies[[s]]
    rows <- which((st$n %in% sort(unique(st$n))[1:4] & st$replication <= 3) |
                    (st$n == max(st$n) & st$replication <= 2))
    cbind(study = s, refit_study(st, rows, control = control), stringsAsFactors = FALSE)
  }))
  attr(run$batch_check, "commit") <- commit
  saveRDS(run, file.path(opt$out, opt$file))
  print(run)
  invisible(run)
}
