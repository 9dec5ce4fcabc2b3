# The shared runner of the shipped full studies (inst/studies/*.R): runs a
# named list of settings one after the other, records slopes, wall time and
# the machine, and saves everything in one file.

#' Run a set of studies and save them with their wall time and machine
#'
#' The harness of the shipped full studies (`inst/studies/*.R`): runs each
#' [moe_study_setting()] of `settings` with [rate_study()] on a
#' [future::multisession] plan of `workers` workers (the caller's plan is
#' restored on exit), prints its slopes, and returns (and with `file` saves)
#' one list with everything a vignette needs.
#'
#' @param settings A named list of [moe_study_setting()]s.
#' @param seed Seed of every study (each gets the same seed, so the studies of
#'   one file see the same covariates for the same replication).
#' @param workers Number of future workers (`NULL`: keep the current plan).
#' @param file `NULL`, or the `.rds` file to write.
#' @param asymptotic `NULL`, or a named list of functions `function(setting)`
#'   returning an [asymptotic_loss()] prediction (names: those of `settings`);
#'   their run time is not counted in the studies' wall time.
#' @param extra A list of further elements to store (e.g. a population-level
#'   computation).
#' @param B Bootstrap resamples of the printed slopes.
#' @param progress Show progress bars?
#' @param keep_params Keep the fitted parameters (list column `params`)?
#' @return A list of class `moe_study_run` with `studies` (one
#'   [rate_study()] result per setting, its setting attached), `settings`
#'   (printed descriptions), `elapsed` (wall seconds per study), `total`
#'   (wall seconds of all studies), `workers`, `machine` (cores, CPU model, R
#'   version, platform, moegate version), `date`, `seed`, `asymptotic`,
#'   `complete` (`TRUE`) and the elements of `extra`. With `file`, the studies
#'   finished so far are also saved after each one to `<file>.partial` (removed
#'   at the end), so a run stopped early keeps them.
#' @seealso [rate_study()], [study_verdicts()].
#' @examples
#' \donttest{
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' s <- moe_study_setting(truth, k = 2, n_grid = c(200, 800), n_rep = 2, loss = "D1")
#' run <- run_studies(list(small = s), workers = NULL, progress = FALSE)
#' run$elapsed
#' }
#' @export
run_studies <- function(settings, seed = 1, workers = 2, file = NULL, asymptotic = NULL,
                        extra = NULL, B = 499, progress = TRUE, keep_params = TRUE) {
  if (!is.list(settings) || length(settings) == 0 || is.null(names(settings)) ||
      !all(nzchar(names(settings))) ||
      !all(vapply(settings, inherits, TRUE, "moe_study_setting"))) {
    stop_arg("settings", "a named list of moe_study_setting objects", got = settings)
  }
  check_number(seed, "seed", integer = TRUE)
  if (!is.null(workers)) workers <- check_count(workers, "workers")
  if (!is.null(file) && (!is.character(file) || length(file) != 1 || is.na(file))) {
    stop_arg("file", "NULL or a file name", got = file)
  }
  if (!is.null(asymptotic) && (!is.list(asymptotic) ||
                               !all(names(asymptotic) %in% names(settings)))) {
    stop_arg("asymptotic", "NULL or a list of functions named like `settings`", got = asymptotic)
  }
  if (!is.null(extra) && !is.list(extra)) stop_arg("extra", "NULL or a list", got = extra)
  B <- check_count(B, "B")
  check_flag(progress, "progress")
  check_flag(keep_params, "keep_params")
  if (!is.null(workers)) {
    if (!requireNamespace("future", quietly = TRUE)) {
      stop("run_studies() needs the future package for `workers`", call. = FALSE)
    }
    old_plan <- future::plan(future::multisession, workers = workers)
    on.exit(future::plan(old_plan), add = TRUE)
  }
  studies <- list()
  descriptions <- list()
  elapsed <- numeric()
  start <- proc.time()[["elapsed"]]
  for (s in names(settings)) {
    descriptions[[s]] <- paste(utils::capture.output(print(settings[[s]])), collapse = "\n")
    message(descriptions[[s]])
    study <- rate_study(settings[[s]], seed = seed, progress = progress)
    if (!keep_params) study$params <- NULL
    studies[[s]] <- study
    elapsed[[s]] <- attr(study, "elapsed")
    message(sprintf("%s: %.0f s", s, elapsed[[s]]))
    message(paste(utils::capture.output(print(rate_slopes(study, B = B))), collapse = "\n"))
    if (!is.null(file)) {
      # The studies finished so far, in case the run is stopped before the end.
      partial <- list(studies = studies, settings = descriptions, elapsed = elapsed,
                      complete = FALSE, machine = study_machine(), seed = seed)
      saveRDS(partial, paste0(file, ".partial"))
    }
  }
  total <- proc.time()[["elapsed"]] - start
  predictions <- if (!is.null(asymptotic)) {
    lapply(stats::setNames(nm = names(asymptotic)), function(s) asymptotic[[s]](settings[[s]]))
  }
  out <- c(list(studies = studies, settings = descriptions, elapsed = elapsed, total = total,
                workers = if (is.null(workers)) NA_integer_ else workers,
                machine = study_machine(), date = format(Sys.time(), "%Y-%m-%d %H:%M %Z"),
                seed = seed, asymptotic = predictions), extra)
  class(out) <- c("moe_study_run", "list")
  out$complete <- TRUE
  if (!is.null(file)) {
    saveRDS(out, file)
    unlink(paste0(file, ".partial"))
    message(sprintf("total wall time %.0f s; saved to %s", total, file))
  }
  out
}

# The machine a study ran on.
study_machine <- function() {
  cpu <- NA_character_
  if (file.exists("/proc/cpuinfo")) {
    lines <- readLines("/proc/cpuinfo", warn = FALSE)
    hit <- grep("^model name", lines, value = TRUE)
    if (length(hit)) cpu <- trimws(sub("^model name\\s*:", "", hit[1]))
  }
  list(cores = parallel::detectCores(), cpu = cpu, R = R.version.string,
       platform = R.version$platform,
       moegate = as.character(utils::packageVersion("moegate")))
}

#' @export
print.moe_study_run <- function(x, ...) {
  cat("<moe_study_run> ", length(x$studies), " studies, ", sprintf("%.0f", x$total),
      " s wall time on ", format(x$workers), " worker(s); ", x$machine$cores, " cores (",
      x$machine$cpu, "), ", x$machine$R, ", ", x$date, "\n", sep = "")
  for (s in names(x$studies)) {
    cat(sprintf("  %-28s %5.0f s  %d fits\n", s, x$elapsed[[s]], nrow(x$studies[[s]])))
  }
  if (!is.null(x$batches)) {
    cat(sprintf("  %d batches: seeds %s, %s replications\n", nrow(x$batches),
                paste(x$batches$seed, collapse = ", "),
                paste(x$batches$replications, collapse = " + ")))
  }
  invisible(x)
}

#' Options of a study script
#'
#' Reads `--name=value` options from the command line of a study script
#' (`inst/studies/*.R`), with defaults and their types.
#'
#' @param defaults A named list of default values; each option is converted
#'   to the type of its default.
#' @param args The command-line arguments.
#' @return The list of options.
#' @examples
#' study_options(list(workers = 2, reps = 40), args = c("--reps=10"))
#' @export
study_options <- function(defaults, args = commandArgs(trailingOnly = TRUE)) {
  if (!is.list(defaults) || is.null(names(defaults))) {
    stop_arg("defaults", "a named list", got = defaults)
  }
  known <- sub("=.*$", "", sub("^--", "", grep("^--", args, value = TRUE)))
  unknown <- setdiff(known, names(defaults))
  if (length(unknown)) {
    stop_arg("args", "options among --", paste(names(defaults), collapse = ", --"),
             "; unknown: --", paste(unknown, collapse = ", --"))
  }
  for (nm in names(defaults)) {
    hit <- grep(paste0("^--", nm, "="), args, value = TRUE)
    if (length(hit) == 0) next
    value <- sub(paste0("^--", nm, "="), "", hit[length(hit)])
    default <- defaults[[nm]]
    defaults[[nm]] <- if (is.numeric(default)) suppressWarnings(as.numeric(value)) else
      if (is.logical(default)) as.logical(value) else value
    if (is.numeric(default) && is.na(defaults[[nm]])) {
      stop_arg("args", "a number for --", nm, got = value)
    }
  }
  defaults
}

#' Combine batches of the same studies run with different seeds
#'
#' Joins [run_studies()] results that ran the same settings (same studies,
#' sample sizes and losses) with different seeds, as one study with more
#' replications: the replications of each later batch are numbered after
#' those of the earlier ones, and a column `batch` tells them apart. The
#' two-start check keeps the replications each batch ran it in (so with
#' `two_start_reps = 6` in both, replications 1-6 and 21-26 of a 20 + 20
#' combination).
#'
#' @param ... Two or more `moe_study_run` objects (or lists of them).
#' @return A `moe_study_run` like those of [run_studies()]: each study holds
#'   the rows of every batch (column `batch`), its setting with `n_rep` the
#'   total, its `seed` attribute the batches' seeds and `elapsed` their sum;
#'   `seed` holds the seeds, `elapsed` and `total` the sums, and `batches` a
#'   data frame with one row per batch (`batch`, `seed`, `replications`,
#'   `total` seconds, `date`, `commit`, `stop`).
#' @seealso [run_studies()], [study_verdicts()].
#' @examples
#' \donttest{
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' s <- moe_study_setting(truth, k = 2, n_grid = c(200, 800), n_rep = 2, loss = "D1")
#' a <- run_studies(list(small = s), seed = 1, workers = NULL, progress = FALSE)
#' b <- run_studies(list(small = s), seed = 2, workers = NULL, progress = FALSE)
#' both <- combine_study_runs(a, b)
#' both$batches
#' table(both$studies$small$batch)
#' }
#' @export
combine_study_runs <- function(...) {
  runs <- list(...)
  if (length(runs) == 1 && is.list(runs[[1]]) && !inherits(runs[[1]], "moe_study_run")) {
    runs <- runs[[1]]
  }
  if (length(runs) < 2 || !all(vapply(runs, inherits, TRUE, "moe_study_run"))) {
    stop_arg("...", "two or more moe_study_run objects", got = runs)
  }
  names_first <- names(runs[[1]]$studies)
  for (r in runs[-1]) {
    if (!identical(names(r$studies), names_first)) {
      stop_arg("...", "runs of the same studies (", paste(names_first, collapse = ", "),
               "); one has ", paste(names(r$studies), collapse = ", "))
    }
  }
  seeds <- vapply(runs, function(r) as.numeric(r$seed[1]), 0)
  if (anyDuplicated(seeds)) {
    stop_arg("...", "runs with different seeds (the same seed repeats the same data); seeds ",
             paste(seeds, collapse = ", "))
  }
  studies <- lapply(stats::setNames(nm = names_first), function(s) {
    parts <- lapply(runs, function(r) r$studies[[s]])
    settings <- lapply(parts, attr, "setting")
    same <- function(f) {
      all(vapply(settings[-1], function(x) identical(x[[f]], settings[[1]][[f]]), TRUE))
    }
    for (f in c("n_grid", "k", "method", "spread_range", "two_start_c")) {
      if (!same(f)) stop_arg("...", "runs of study \"", s, "\" with the same `", f, "`")
    }
    if (!all(vapply(parts[-1], function(p) identical(names(p), names(parts[[1]])), TRUE))) {
      stop_arg("...", "runs of study \"", s, "\" with the same columns")
    }
    offset <- 0L
    rows <- vector("list", length(parts))
    for (b in seq_along(parts)) {
      p <- as.data.frame(parts[[b]])
      p$replication <- p$replication + offset
      p$batch <- b
      offset <- offset + settings[[b]]$n_rep
      rows[[b]] <- p
    }
    out <- do.call(rbind, rows)
    out <- out[order(out$n, out$replication), , drop = FALSE]
    rownames(out) <- NULL
    setting <- settings[[1]]
    setting$n_rep <- offset
    class(out) <- class(parts[[1]])
    attr(out, "setting") <- setting
    attr(out, "seed") <- seeds
    attr(out, "elapsed") <- sum(vapply(parts, attr, 0, "elapsed"))
    attr(out, "workers") <- attr(parts[[1]], "workers")
    out
  })
  field <- function(r, f) if (is.null(r[[f]])) NA_character_ else as.character(r[[f]][1])
  batches <- data.frame(
    batch = seq_along(runs), seed = seeds,
    replications = vapply(runs, function(r) attr(r$studies[[1]], "setting")$n_rep, 0L),
    total = vapply(runs, function(r) as.numeric(r$total), 0),
    date = vapply(runs, field, "", "date"), commit = vapply(runs, field, "", "commit"),
    stop = vapply(runs, function(r) {
      # Runs made before moe_control() had a `stop` rule used the relative
      # change of the log-likelihood, the only rule then.
      if (!is.null(r$stop)) return(as.character(r$stop[1]))
      control <- attr(r$studies[[1]], "setting")$control
      if (!is.null(control) && is.null(control$stop)) "loglik" else NA_character_
    }, ""), stringsAsFactors = FALSE)
  out <- runs[[1]]
  out$studies <- studies
  out$elapsed <- Reduce(`+`, lapply(runs, `[[`, "elapsed"))
  out$total <- sum(batches$total)
  out$seed <- seeds
  out$date <- runs[[length(runs)]]$date
  out$batches <- batches
  out$commit <- NULL
  out$stop <- NULL
  # Files written before run_studies() recorded `complete` are final ones.
  out$complete <- all(vapply(runs, function(r) {
    isTRUE(r$complete) || (is.null(r$complete) && !is.null(r$total))
  }, TRUE))
  class(out) <- c("moe_study_run", "list")
  out
}
