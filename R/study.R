# Convergence-rate studies: a setting object, a parallel driver built on the
# future framework, the rate estimates and the log-log figure
# (MODELS.md section 6, STUDIES.md).

#' A convergence-rate study setting
#'
#' Collects everything that defines one simulation study of a convergence
#' rate: the true model, what is fitted, the sample sizes and replications, the
#' starting values, the estimator and the loss. [rate_study()] runs it.
#'
#' For every sample size \eqn{n} in `n_grid` and replication \eqn{r}, the
#' driver draws covariates from `x_dist`, a response from the true model
#' (likelihood models: with [rmoe()]; least squares: the regression function
#' plus Gaussian noise of variance `truth$expert$sigma2[1]`), fits `k` experts
#' with [moe_fit()] and computes the loss against `truth`.
#'
#' @param truth A [moe_params()] object: the true parameters. Its expert
#'   coefficients have an intercept row first, then one row per covariate.
#' @param k Number of fitted experts.
#' @param n_grid Sample sizes (positive whole numbers).
#' @param n_rep Replications per sample size.
#' @param gate,expert Gate and expert specifications (shared by truth and fit).
#' @param method `"ml"` or `"lsq"`, passed to [moe_fit()].
#' @param init Starting values: `"near_truth"` ([init_near_truth()] with its
#'   defaults), `"mixed"`, `"kmeans"`, `"random"`, or anything `moe_control(init = )`
#'   accepts (a function, parameters).
#' @param loss `"D1"`, `"rbar"` or a named list of exponents: the
#'   [voronoi_loss()] with that table (the study then also records the
#'   reference-convention loss as `loss_reference`); or a function
#'   `function(fit, truth)` returning a number, or a named numeric vector whose
#'   first element is the loss and whose others are recorded as
#'   `loss_<name>`. `fit` is a list with `params`, `gate`, `expert`, `method`,
#'   `loglik`, accepted by [voronoi_loss()] and [density_error()].
#' @param x_dist Covariate distribution: `function(n, d)` returning an n x d
#'   matrix (the gate sees the same covariates). It may be deterministic, as
#'   the equispaced grid of the NeurIPS 2023 protocol is. `NULL`: independent
#'   uniforms on \eqn{[-1, 1]}.
#' @param control [moe_control()] settings of the fits; its `init` is replaced
#'   by `init`.
#' @param name A label for printed output and plots.
#' @param levels Class labels for multinomial experts (`NULL`: "1", "2", ...).
#' @param spread `NULL`, or a function `function(params, c)` that moves
#'   parameters along a direction the likelihood cannot see (or any chosen
#'   direction), e.g. scaling gate vectors and temperature by `c`. Each
#'   replication's start (from `init`) is then moved by \eqn{c = e^U},
#'   \eqn{U \sim U(-}`spread_range`\eqn{, }`spread_range`\eqn{)}, drawn from
#'   the replication's own random stream (recorded as column `start_c`), so
#'   that a loss along that direction measures the estimator and not the start.
#' @param spread_range Half-width of the uniform law of \eqn{\log c}.
#' @param two_start `NULL`, or a function `function(params)` returning the raw
#'   parameter (a numeric vector) whose estimability is checked: the same data
#'   are also fitted from the start moved by each of `two_start_c` (with
#'   `spread`, which is then required) and the Euclidean distance between the
#'   two fits' raw parameters is recorded as column `gap`. A gap that is large
#'   and does not shrink with \eqn{n} says that the raw parameter is not
#'   estimated; one that shrinks like \eqn{n^{-1/2}} says that it is.
#' @param two_start_c The two factors of the two-start check.
#' @param two_start_reps The two-start check runs in replications
#'   `1:two_start_reps` only (it costs two more fits).
#' @param start_loss Also record the loss of the start (column `loss_start`;
#'   the mean over the starts with `n_starts > 1`), so that one can see how
#'   far the estimator moved from it.
#' @return An object of class `moe_study_setting`.
#' @seealso [rate_study()], [study_setting_neurips2023()].
#' @examples
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' setting <- moe_study_setting(truth, k = 2, n_grid = c(200, 400, 800), n_rep = 3,
#'                              loss = "D1", control = moe_control(tol = 1e-8))
#' setting
#' @export
moe_study_setting <- function(truth, k, n_grid, n_rep = 40, gate = "softmax",
                              expert = "gaussian", method = c("ml", "lsq"),
                              init = "near_truth", loss = "rbar", x_dist = NULL,
                              control = moe_control(), name = "study", levels = NULL,
                              spread = NULL, spread_range = 0.3, two_start = NULL,
                              two_start_c = exp(c(-0.5, 0.5)), two_start_reps = n_rep,
                              start_loss = FALSE) {
  if (!inherits(truth, "moe_params")) stop_arg("truth", "a moe_params object", got = truth)
  k <- check_count(k, "k")
  if (!is.numeric(n_grid) || length(n_grid) < 1 || any(!is.finite(n_grid)) ||
      any(n_grid < 1) || any(n_grid != round(n_grid))) {
    stop_arg("n_grid", "a vector of positive whole numbers", got = n_grid)
  }
  n_grid <- sort(unique(as.integer(n_grid)))
  n_rep <- check_count(n_rep, "n_rep")
  gate <- as_gate(gate)
  expert <- as_expert(expert)
  method <- match_arg(method)
  control <- as_control(control)
  if (identical(init, "near_truth")) init <- init_near_truth(truth, k)
  check_init(init)
  control$init <- init
  if (!(is.function(loss) || (is.character(loss) && length(loss) == 1) || is.list(loss))) {
    stop_arg("loss", '"D1", "rbar", a list of exponents or a function(fit, truth)', got = loss)
  }
  if (!is.function(loss)) exponent_table(loss)
  if (is.null(x_dist)) x_dist <- function(n, d) matrix(stats::runif(n * d, -1, 1), n, d)
  if (!is.function(x_dist)) stop_arg("x_dist", "a function(n, d)", got = x_dist)
  if (!is.character(name) || length(name) != 1 || is.na(name)) {
    stop_arg("name", "a string (not NA)", got = name)
  }
  if (!is.null(spread) && !is.function(spread)) {
    stop_arg("spread", "NULL or a function(params, c)", got = spread)
  }
  check_number(spread_range, "spread_range", lower = 0)
  if (!is.null(two_start)) {
    if (!is.function(two_start)) stop_arg("two_start", "NULL or a function(params)", got = two_start)
    if (is.null(spread)) stop_arg("spread", "a function(params, c) when `two_start` is given")
  }
  if (!is.numeric(two_start_c) || length(two_start_c) != 2 || any(!is.finite(two_start_c)) ||
      any(two_start_c <= 0)) {
    stop_arg("two_start_c", "two positive numbers", got = two_start_c)
  }
  two_start_reps <- check_count(two_start_reps, "two_start_reps", lower = 0)
  check_flag(start_loss, "start_loss")
  structure(list(name = name, truth = truth, k = k, n_grid = n_grid, n_rep = n_rep,
                 gate = gate, expert = expert, method = method, init = init, loss = loss,
                 x_dist = x_dist, control = control, levels = levels, spread = spread,
                 spread_range = spread_range, two_start = two_start, two_start_c = two_start_c,
                 two_start_reps = min(two_start_reps, n_rep), start_loss = start_loss),
            class = "moe_study_setting")
}

#' @export
print.moe_study_setting <- function(x, ...) {
  k_true <- ncol(x$truth$gate$W)
  loss <- if (is.function(x$loss)) "user function" else if (is.character(x$loss)) {
    paste0("Voronoi (", x$loss, ")")
  } else "Voronoi (user exponents)"
  cat("<moe_study_setting> ", x$name, "\n", sep = "")
  cat("  truth:   ", k_true, " experts, ", x$expert$family, " experts, gate ", x$gate$name, "\n", sep = "")
  cat("  fitted:  k = ", x$k, ", method ", x$method, ", ", x$control$n_starts, " start(s), tol ",
      format(x$control$tol), ", maxit ", x$control$maxit, "\n", sep = "")
  cat("  grid:    ", length(x$n_grid), " sizes from ", min(x$n_grid), " to ", max(x$n_grid),
      ", ", x$n_rep, " replications (", length(x$n_grid) * x$n_rep, " fits)\n", sep = "")
  cat("  loss:    ", loss, "\n", sep = "")
  if (!is.null(x$spread)) {
    cat(sprintf("  starts:  moved along the set direction by c = exp(U(-%g, %g))\n",
                x$spread_range, x$spread_range))
  }
  if (!is.null(x$two_start) && x$two_start_reps > 0) {
    cat(sprintf("  check:   two starts (c = %s) in %d replication(s) per size\n",
                paste(format(x$two_start_c, digits = 3), collapse = ", "), x$two_start_reps))
  }
  invisible(x)
}

#' Run a convergence-rate study
#'
#' Runs every (sample size, replication) fit of a [moe_study_setting()]
#' through the future framework: [future.apply::future_lapply()] with
#' `future.seed`, so every fit has its own L'Ecuyer-CMRG random number stream
#' derived from `seed` and the results are identical under any
#' [future::plan()] and any number of workers (only the timing column
#' differs). Choose the plan before calling, e.g.
#' `future::plan(future::multisession, workers = 2)`. Progress is reported
#' through progressr: with `progress = TRUE` a bar is shown (with the
#' handlers set by [progressr::handlers()]); otherwise the progress conditions
#' are only visible to globally registered handlers.
#'
#' A fit that fails (an error in simulation, fitting or the loss, or a loss
#' that is `NA`, `NaN` or infinite) does not stop the study: its row has `NA`
#' loss and the reason in `error`; a warning of class `moe_study_warning`
#' gives the number of failed fits and the first reason. Each fit uses one
#' thread; parallelism is over fits. The caller's [RNGkind()] and random
#' stream are left as they were.
#'
#' A user loss function (or `x_dist`, `init`) that uses objects other than its
#' arguments must get them on the workers of a parallel plan: pass them as
#' `globals` (a named list, or names of objects in the calling frame) and the
#' packages it calls as `packages`. They are placed in an environment
#' enclosing the setting's functions, so every backend (sequential,
#' multisession, multicore, cluster) sees them.
#'
#' @param setting A [moe_study_setting()].
#' @param seed An integer: the seed from which all random streams derive.
#' @param stuck_tol A fit is flagged `stuck` when its log-likelihood is below
#'   that of the true parameters on the same data by more than `stuck_tol`.
#'   An over-specified maximum-likelihood fit exceeds the truth's
#'   log-likelihood by a chi-square-like amount of order one; a fit trapped in
#'   a poor local optimum falls short by an amount that grows with \eqn{n}. The
#'   default 1 (log-likelihood units) separates the two.
#' @param progress Show a progress bar?
#' @param scheduling Chunks per worker (`future.scheduling`): more chunks
#'   balance unequal fit times better and update the progress bar more often.
#' @param globals `NULL`, a named list of objects, or a character vector of
#'   names of objects in the calling frame, that the setting's user functions
#'   (loss, `x_dist`, `init`, `spread`, `two_start`) need.
#' @param packages Names of packages to attach on the workers
#'   (`future.packages`), for user functions that call them unqualified.
#' @return A data frame of class `c("moe_rate_study", "data.frame")`, one row
#'   per fit, sorted by `n` then `replication`, with columns `n`,
#'   `replication`, `loss`, `loss_reference` (Voronoi losses: the
#'   reference-convention loss) or other `loss_*` columns, `loglik`,
#'   `loglik_truth`, `iterations`, `converged`, `seconds` (of the fit),
#'   `error` (`NA` or the error message), with `spread` also `start_c`, with
#'   `two_start` also `gap`, with `start_loss` also `loss_start`, for
#'   least-squares fits of the perturbed cosine gate also `runoff` (1 when
#'   the run-off guard, `moe_control(runoff_ratio = )`, stopped the fit, else
#'   0), then
#'   `stuck` and the list column `params`
#'   (fitted [moe_params()], `NULL` when failed). Attributes: `setting`,
#'   `seed`, `elapsed` (wall time in seconds) and `workers`.
#' @seealso [rate_slopes()], [plot.moe_rate_study()].
#' @examples
#' \donttest{
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' setting <- moe_study_setting(truth, k = 2, n_grid = c(200, 400, 800, 1600), n_rep = 4,
#'                              loss = "D1", control = moe_control(tol = 1e-8))
#' study <- rate_study(setting, seed = 1)
#' study
#' rate_slopes(study, B = 200)
#' plot(study)
#' }
#' @export
rate_study <- function(setting, seed = 1, stuck_tol = 1, progress = interactive(),
                       scheduling = 4, globals = NULL, packages = NULL) {
  if (!inherits(setting, "moe_study_setting")) {
    stop_arg("setting", "a moe_study_setting object", got = setting)
  }
  check_number(seed, "seed", integer = TRUE)
  check_number(stuck_tol, "stuck_tol", lower = 0)
  check_flag(progress, "progress")
  check_number(scheduling, "scheduling", lower = 0, lower_open = TRUE)
  setting <- study_with_globals(setting, study_globals(globals, parent.frame()))
  if (!is.null(packages) && (!is.character(packages) || anyNA(packages))) {
    stop_arg("packages", "NULL or a character vector of package names", got = packages)
  }
  # future.seed switches the session to L'Ecuyer-CMRG on some plans: restore
  # the caller's generator and stream.
  restore_rng <- rng_snapshot()
  on.exit(restore_rng(), add = TRUE)
  # Replication-major order: every chunk holds all sample sizes, so chunks of
  # equal length cost about the same.
  tasks <- expand.grid(n = setting$n_grid, replication = seq_len(setting$n_rep))
  start <- proc.time()[["elapsed"]]
  rows <- future_tasks(nrow(tasks), function(i) {
    study_task(setting, tasks$n[i], tasks$replication[i])
  }, progress = progress, seed = seed, future.scheduling = scheduling,
  future.packages = packages)
  elapsed <- proc.time()[["elapsed"]] - start
  study <- study_frame(rows, stuck_tol)
  failed <- !is.na(study$error)
  if (any(failed)) {
    warning(structure(class = c("moe_study_warning", "warning", "condition"), list(
      message = sprintf("%d of %d fits of study \"%s\" failed; the first: %s", sum(failed),
                        nrow(study), setting$name, study$error[which(failed)[1]]),
      call = NULL)))
  }
  attr(study, "setting") <- setting
  attr(study, "seed") <- seed
  attr(study, "elapsed") <- elapsed
  attr(study, "workers") <- if (requireNamespace("future", quietly = TRUE)) {
    unname(future::nbrOfWorkers())
  } else NA
  study
}

#' Refit chosen fits of a stored study from the same data and starts
#'
#' Re-runs fits of a [rate_study()] result with the code installed now: each
#' chosen row's replication gets the random stream it had (the one
#' `future.seed` derived from the study's seed for its position in the
#' grid), so the data, the start and its spread factor are the same, and the
#' new fit and losses can be compared with the stored ones. Used to check
#' that a second batch of replications, run on later code, may be joined with
#' the first ([combine_study_runs()]).
#'
#' @param study A [rate_study()] result of one batch (one seed).
#' @param rows Row numbers of `study` to refit.
#' @param control `NULL` (the stored setting's) or a [moe_control()] whose
#'   settings replace the stored setting's (its starting-value rule is kept).
#' @return A data frame with one row per refitted fit and loss: `n`,
#'   `replication`, `loss` (the loss's name), `stored`, `refit`,
#'   `relative` (the relative difference), `loglik_stored`, `loglik_refit`
#'   , `start_c_stored`, `start_c_refit` (with a spread; `NA` without) and
#'   `error_stored`, `error_refit` (`NA`, or why the fit failed: its losses
#'   are then `NA`).
#' @seealso [rate_study()], [combine_study_runs()].
#' @examples
#' \donttest{
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' s <- moe_study_setting(truth, k = 2, n_grid = c(200, 400), n_rep = 2, loss = "D1")
#' study <- rate_study(s, seed = 1)
#' refit_study(study, rows = c(1, 4))
#' }
#' @export
refit_study <- function(study, rows, control = NULL) {
  if (!inherits(study, "moe_rate_study") || !inherits(attr(study, "setting"), "moe_study_setting")) {
    stop_arg("study", "a rate_study() result with its setting", got = study)
  }
  seed <- attr(study, "seed")
  if (length(seed) != 1 || !is.finite(seed)) {
    stop_arg("study", "one batch (a single seed); it has seeds ", paste(seed, collapse = ", "))
  }
  if (!is.numeric(rows) || length(rows) == 0 || anyNA(rows) || any(rows < 1) ||
      any(rows > nrow(study)) || any(rows != round(rows))) {
    stop_arg("rows", "row numbers of `study` (1 to ", nrow(study), ")", got = rows)
  }
  if (!is.null(control) && !inherits(control, "moe_control")) {
    stop_arg("control", "NULL or a moe_control() object", got = control)
  }
  setting <- attr(study, "setting")
  if (!is.null(control)) {
    init <- setting$control$init
    setting$control <- control
    setting$control$init <- init
  }
  setting$two_start_reps <- 0L
  task <- (study$replication[rows] - 1L) * length(setting$n_grid) +
    match(study$n[rows], setting$n_grid)
  if (anyNA(task)) stop_arg("rows", "rows whose n is in the setting's grid")
  streams <- lecuyer_streams(seed, max(task))
  restore_rng <- rng_snapshot()
  on.exit(restore_rng(), add = TRUE)
  RNGkind("L'Ecuyer-CMRG")
  out <- lapply(seq_along(rows), function(j) {
    i <- rows[j]
    assign(".Random.seed", streams[[task[j]]], envir = .GlobalEnv)
    r <- study_task(setting, study$n[i], study$replication[i])
    # A failed refit (as a failed stored fit) gives NA losses and its reason.
    losses <- setdiff(c("loss", grep("^loss_", names(study), value = TRUE)), "loss_start")
    stored <- vapply(losses, function(l) as.numeric(study[[l]][i]), 0)
    refit <- as.numeric(r$losses[losses])  # NA where the refit failed
    data.frame(n = study$n[i], replication = study$replication[i], loss = losses,
               stored = stored, refit = refit, relative = abs(refit - stored) / abs(stored),
               loglik_stored = study$loglik[i], loglik_refit = r$loglik,
               start_c_stored = if ("start_c" %in% names(study)) study$start_c[i] else NA_real_,
               start_c_refit = if (is.null(r$extra[["start_c"]])) NA_real_ else r$extra[["start_c"]],
               error_stored = study$error[i], error_refit = r$error,
               row.names = NULL, stringsAsFactors = FALSE)
  })
  do.call(rbind, out)
}

# The caller's RNG kind and stream, and a function that restores them (and
# removes .Random.seed if the caller had none): `restore_rng <- rng_snapshot();
# on.exit(restore_rng(), add = TRUE)` before switching generators or seeds.
rng_snapshot <- function() {
  kind <- RNGkind()
  had_seed <- exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)
  seed <- if (had_seed) get(".Random.seed", envir = .GlobalEnv)
  function() {
    suppressWarnings(RNGkind(kind[1], kind[2], kind[3]))
    if (had_seed) {
      assign(".Random.seed", seed, envir = .GlobalEnv)
    } else if (exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) {
      rm(".Random.seed", envir = .GlobalEnv)
    }
  }
}

# The random streams future.apply's future.seed derives from an integer seed
# for tasks 1..count (its make_rng_seeds(): L'Ecuyer-CMRG, set.seed(seed),
# then a substream of each successive stream).
lecuyer_streams <- function(seed, count) {
  restore_rng <- rng_snapshot()
  on.exit(restore_rng())
  RNGkind("L'Ecuyer-CMRG")
  set.seed(as.integer(seed))
  s <- get(".Random.seed", envir = .GlobalEnv)
  streams <- vector("list", count)
  for (i in seq_len(count)) {
    streams[[i]] <- parallel::nextRNGSubStream(s)
    s <- parallel::nextRNGStream(s)
  }
  streams
}

# Objects a study's user functions need on the workers: a named list.
study_globals <- function(globals, frame) {
  if (is.null(globals)) return(NULL)
  if (is.character(globals) && !anyNA(globals)) {
    missing <- globals[!vapply(globals, exists, TRUE, envir = frame)]
    if (length(missing)) {
      stop_arg("globals", "names of existing objects; not found: ", paste(missing, collapse = ", "))
    }
    return(mget(globals, envir = frame))
  }
  if (is.list(globals) && length(globals) > 0 && !is.null(names(globals)) &&
      all(nzchar(names(globals)))) {
    return(globals)
  }
  stop_arg("globals", "NULL, a named list or a character vector of object names", got = globals)
}

# future_lapply() over tasks 1..n_tasks (seeded streams, so the result does
# not depend on the plan), with a progressr bar when `progress` is TRUE and
# progressr is installed. enable = TRUE: progressr disables itself outside
# interactive sessions by default, which would hide the bar of a script run
# with Rscript. `seed`: an integer seed, or a list of n_tasks L'Ecuyer-CMRG
# streams (one per task). `...`: further future_lapply() arguments.
future_tasks <- function(n_tasks, task, progress, seed, ...) {
  run_all <- function() {
    tick <- if (has_progressr()) progressr::progressor(steps = n_tasks) else function(...) NULL
    future.apply::future_lapply(seq_len(n_tasks), function(i) {
      res <- task(i)
      tick()
      res
    }, future.seed = if (is.list(seed)) seed else as.integer(seed), ...)
  }
  if (progress && has_progressr()) progressr::with_progress(run_all(), enable = TRUE) else run_all()
}

# Enclose the setting's user functions in an environment holding `globals`;
# the environment is serialised with them to every worker.
study_with_globals <- function(setting, globals) {
  if (is.null(globals)) return(setting)
  enclose <- function(fun) {
    if (!is.function(fun) || is.primitive(fun)) return(fun)
    environment(fun) <- list2env(globals, parent = environment(fun))
    fun
  }
  for (f in c("loss", "x_dist", "spread", "two_start")) {
    if (!is.null(setting[[f]])) setting[[f]] <- enclose(setting[[f]])
  }
  setting$control$init <- enclose(setting$control$init)
  setting
}

# One fit of a study: simulate, fit, score. Never throws.
study_task <- function(setting, n, replication) {
  out <- list(n = n, replication = replication, losses = c(loss = NA_real_), loglik = NA_real_,
              loglik_truth = NA_real_, iterations = NA_integer_, converged = NA,
              seconds = NA_real_, error = NA_character_, params = NULL, extra = NULL)
  spec <- list(gate = setting$gate, expert = setting$expert, method = setting$method)
  result <- tryCatch({
    data <- study_data(setting, n)
    out$loglik_truth <- params_loglik(setting$truth, spec, data)
    c_start <- 1
    if (!is.null(setting$spread)) {
      c_start <- exp(stats::runif(1, -setting$spread_range, setting$spread_range))
      out$extra <- c(out$extra, start_c = c_start)
    }
    base <- study_starts(setting, data)
    starts <- move_starts(setting, base, c_start)
    t0 <- proc.time()[["elapsed"]]
    fit <- study_fit(setting, data, starts)
    out$seconds <- proc.time()[["elapsed"]] - t0
    out$loglik <- fit$loglik
    out$iterations <- as.integer(fit$iter)
    out$converged <- isTRUE(fit$converged)
    if (identical(setting$method, "lsq") && identical(setting$gate$score, "perturbed_cosine")) {
      # Stopped by the run-off guard (moe_control(runoff_ratio =)): 1, else 0.
      out$extra <- c(out$extra, runoff = as.numeric(identical(names(fit$converged), "runoff")))
    }
    out$params <- fit$params
    scored <- c(spec, list(params = fit$params, loglik = fit$loglik))
    out$losses <- study_loss(setting, scored)
    if (isTRUE(setting$start_loss) && is.list(starts)) {
      start_losses <- vapply(starts, function(p) {
        study_loss(setting, c(spec, list(params = p, loglik = NA_real_)))[["loss"]]
      }, 0)
      out$extra <- c(out$extra, loss_start = mean(start_losses))
    }
    if (!is.null(setting$two_start) && replication <= setting$two_start_reps) {
      raw <- lapply(setting$two_start_c, function(cc) {
        f <- study_fit(setting, data, move_starts(setting, base, cc))
        as.numeric(setting$two_start(f$params))
      })
      out$extra <- c(out$extra, gap = sqrt(sum((raw[[1]] - raw[[2]])^2)))
    }
    out
  }, error = function(e) {
    out$error <- conditionMessage(e)
    out
  })
  result
}

# The starts of one fit, the setting's init evaluated here so that the study
# knows them: a list of moe_params, one per start, or the init itself
# ("mixed", "kmeans", "random").
study_starts <- function(setting, data) {
  init <- setting$control$init
  if (is.function(init)) {
    starts <- lapply(seq_len(setting$control$n_starts), function(s) {
      init(k = setting$k, y = data$y, X = data$X, Z = data$Z, expert = setting$expert,
           gate = setting$gate)
    })
  } else if (inherits(init, "moe_params")) {
    starts <- list(init)
  } else if (is.list(init)) {
    starts <- init
  } else {
    return(init)
  }
  starts
}

# Starts moved by the factor `c_start` along the setting's spread direction.
move_starts <- function(setting, starts, c_start) {
  if (is.null(setting$spread) || !is.list(starts)) return(starts)
  lapply(starts, function(p) {
    moved <- setting$spread(p, c_start)
    if (!inherits(moved, "moe_params")) {
      stop("the setting's spread function returned ", describe(moved), ", not moe_params",
           call. = FALSE)
    }
    moved
  })
}

# moe_fit() from given starts, with the warnings a study expects muffled.
study_fit <- function(setting, data, starts) {
  control <- setting$control
  control$init <- starts
  withCallingHandlers(
    moe_fit(data$y, data$X, data$Z, setting$k, expert = setting$expert, gate = setting$gate,
            method = setting$method, control = control),
    moe_convergence_warning = function(w) invokeRestart("muffleWarning"),
    moe_variance_floor_warning = function(w) invokeRestart("muffleWarning"),
    moe_degenerate_warning = function(w) invokeRestart("muffleWarning"),
    # Recorded by study_task() (extra column `runoff`).
    moe_runoff_warning = function(w) invokeRestart("muffleWarning"))
}

# Covariates and response of one replication.
study_data <- function(setting, n) {
  truth <- setting$truth
  d <- dim(truth$expert$coef)[1] - 1L
  x <- setting$x_dist(n, d)
  x <- as_numeric_matrix(x, "x_dist")
  if (nrow(x) != n || ncol(x) != d) {
    stop_arg("x_dist", "a function returning an n x d = ", n, " x ", d, " matrix")
  }
  colnames(x) <- if (d > 0) paste0("x", seq_len(d))
  X <- cbind(`(Intercept)` = 1, x)
  if (setting$method == "lsq") {
    spec <- list(gate = setting$gate, expert = setting$expert)
    s2 <- truth$expert$sigma2[1] %||% 1
    y <- model_parts(truth, spec, X, x)$response + sqrt(s2) * stats::rnorm(n)
    y <- as.numeric(y)
  } else {
    y <- rmoe(n, truth, x = x, expert = setting$expert, gate = setting$gate,
              levels = setting$levels)$y
  }
  list(y = y, X = X, Z = x)
}

# Log-likelihood of parameters on data, defined as moe_fit() defines it.
params_loglik <- function(params, spec, data) {
  parts <- model_parts(params, spec, data$X, data$Z)
  n <- nrow(data$X)
  if (spec$method == "lsq") {
    rss <- sum((data$y - parts$response)^2)
    return(-0.5 * n * (log(2 * pi * rss / n) + 1))
  }
  G <- parts$gate
  if (spec$expert$family == "multinomial") {
    yi <- as.integer(factor(data$y))
    f <- vapply(seq_len(ncol(G)), function(i) parts$expert[cbind(seq_len(n), yi, i)], numeric(n))
  } else {
    s <- sqrt(params$expert$sigma2)
    f <- vapply(seq_len(ncol(G)), function(i) {
      stats::dnorm(data$y, parts$expert[, i], s[i])
    }, numeric(n))
  }
  sum(log(rowSums(G * matrix(f, n))))
}

# Named losses of one fit; the first is "loss".
# `strict`: a loss that is not finite is an error (a failed fit).
study_loss <- function(setting, fit, strict = TRUE) {
  if (is.function(setting$loss)) {
    value <- setting$loss(fit, setting$truth)
    if (!is.numeric(value) || length(value) < 1) {
      stop("the study's loss function returned ", describe(value), call. = FALSE)
    }
    nm <- names(value)
    nm <- if (is.null(nm)) paste0("loss_", seq_along(value)) else paste0("loss_", nm)
    nm[1] <- "loss"
    value <- stats::setNames(as.numeric(value), nm)
    if (strict && (!is.finite(value[1]) || any(is.nan(value) | is.infinite(value)))) {
      bad <- if (!is.finite(value[1])) 1L else which(is.nan(value) | is.infinite(value))[1]
      stop("the study's loss function returned ", format(value[bad]), " for `", nm[bad], "`",
           call. = FALSE)
    }
    return(value)
  }
  v <- voronoi_loss(fit, setting$truth, exponents = setting$loss, detail = TRUE)
  if (strict && !is.finite(v$loss)) stop("the Voronoi loss is ", format(v$loss), call. = FALSE)
  c(loss = v$loss, loss_reference = v$reference)
}

# Rows from the workers to one data frame.
study_frame <- function(rows, stuck_tol) {
  loss_names <- unique(unlist(lapply(rows, function(r) names(r$losses))))
  loss_names <- c("loss", setdiff(loss_names, "loss"))
  losses <- t(vapply(rows, function(r) {
    v <- r$losses[loss_names]
    stats::setNames(as.numeric(v), loss_names)
  }, numeric(length(loss_names))))
  losses <- matrix(losses, nrow = length(rows), dimnames = list(NULL, loss_names))
  col <- function(name, type) vapply(rows, function(r) r[[name]], type)
  study <- data.frame(n = col("n", 0L), replication = col("replication", 0L), losses,
                      loglik = col("loglik", 0), loglik_truth = col("loglik_truth", 0),
                      iterations = col("iterations", 0L), converged = col("converged", NA),
                      seconds = col("seconds", 0), error = col("error", ""),
                      stringsAsFactors = FALSE)
  extra_names <- unique(unlist(lapply(rows, function(r) names(r$extra))))
  for (nm in extra_names) {
    study[[nm]] <- vapply(rows, function(r) {
      v <- r$extra[nm]
      if (length(v) != 1 || is.na(names(v))) NA_real_ else unname(as.numeric(v))
    }, 0)
  }
  study$stuck <- !is.na(study$loglik) & study$loglik < study$loglik_truth - stuck_tol
  study$params <- lapply(rows, function(r) r$params)
  ord <- order(study$n, study$replication)
  study <- study[ord, , drop = FALSE]
  rownames(study) <- NULL
  class(study) <- c("moe_rate_study", "data.frame")
  study
}

# Per-n summary of one loss column.
study_summary <- function(study, loss = "loss") {
  if (!loss %in% names(study)) stop_arg("loss", "a loss column of the study", got = loss)
  groups <- split(seq_len(nrow(study)), study$n)
  stuck <- if ("stuck" %in% names(study)) study$stuck else rep(NA, nrow(study))
  out <- do.call(rbind, lapply(groups, function(idx) {
    v <- study[[loss]][idx]
    ok <- v[!is.na(v)]
    q <- if (length(ok)) stats::quantile(ok, c(0.25, 0.5, 0.75), names = FALSE) else rep(NA_real_, 3)
    data.frame(n = study$n[idx[1]], replications = length(idx), failed = sum(is.na(v)),
               mean = if (length(ok)) mean(ok) else NA_real_, median = q[2], q25 = q[1],
               q75 = q[3], share_stuck = mean(stuck[idx]))
  }))
  rownames(out) <- NULL
  out
}

#' @export
print.moe_rate_study <- function(x, ...) {
  setting <- attr(x, "setting")
  name <- if (!is.null(setting)) setting$name else "study"
  failed <- sum(!is.na(x$error))
  cat("<moe_rate_study> ", name, ": ", length(unique(x$n)), " sample sizes, ", nrow(x),
      " fits, ", failed, " failed, ", sum(x$stuck, na.rm = TRUE), " stuck", sep = "")
  if (!is.null(attr(x, "elapsed"))) {
    cat(sprintf("; wall time %.1f s on %s worker(s)", attr(x, "elapsed"), format(attr(x, "workers"))))
  }
  cat("\n")
  s <- study_summary(x)
  if (nrow(s) > 12) {
    print(utils::head(s, 6), digits = 3, row.names = FALSE)
    cat("  ...\n")
    print(utils::tail(s, 6), digits = 3, row.names = FALSE)
  } else {
    print(s, digits = 3, row.names = FALSE)
  }
  cat("(one row per fit in the data frame; as.data.frame() for all columns)\n")
  invisible(x)
}

#' @export
as.data.frame.moe_rate_study <- function(x, ...) {
  class(x) <- "data.frame"
  x
}

#' Convergence-rate slopes of a study
#'
#' Fits \eqn{\log \bar L(n) = c + \beta \log n} by least squares over the grid,
#' where \eqn{\bar L(n)} is the mean loss over the replications at size
#' \eqn{n}, and reports \eqn{\beta} with a bootstrap interval (replications
#' resampled with replacement within each \eqn{n}). Also
#' reported, because the mean is dominated by the few replications stuck in a
#' poor local optimum and because a rate like \eqn{1/\log n} shows as a slope
#' that flattens with \eqn{n}: the slope of the median loss, and the slopes of
#' the mean loss on the lower and upper halves of the grid (each half holds
#' \eqn{\lceil G/2 \rceil} of the \eqn{G} sizes). The share of stuck
#' replications and the failed fits per \eqn{n} come alongside; no replication
#' is dropped except failed fits, whose number is reported.
#'
#' The default interval is the bias-corrected and accelerated (BCa) bootstrap
#' interval (Efron 1987; Davison and Hinkley 1997, section 5.3): losses at
#' small \eqn{n} are heavy-tailed (a few replications far from the truth), so
#' most resamples hold fewer of those replications than the data and the
#' bootstrap slopes sit to one side of the estimate. The percentile interval
#' can then miss the estimate altogether; BCa corrects for that median bias
#' (\eqn{z_0}, from the share of bootstrap slopes below the estimate) and for
#' skewness (the acceleration \eqn{a}, from the stratified jackknife: each
#' replication left out in turn). Columns `z0` and `acceleration` report both;
#' an interval whose \eqn{|z_0|} exceeds about 1 rests on the tails of the
#' bootstrap distribution and should be read with care (more replications help,
#' more resamples do not). `interval = "percentile"` gives the plain percentile
#' interval.
#'
#' @param study A [rate_study()] result, or any data frame with columns `n`
#'   and the loss (optionally `replication` and `stuck`).
#' @param loss Name of the loss column.
#' @param B Bootstrap resamples.
#' @param level Confidence level of the intervals.
#' @param interval `"bca"` (default) or `"percentile"`.
#' @param seed Seed of the bootstrap (the global random number generator is
#'   left as it was).
#' @return A data frame of class `moe_rate_slopes` with one row per slope
#'   (`statistic`, `sizes`, `n_min`, `n_max`, `slope`, `lower`, `upper`,
#'   `z0`, `acceleration`; the last two are `NA` for percentile intervals) and
#'   the per-size summary (`n`, `replications`, `failed`, `mean`, `median`,
#'   quartiles, `share_stuck`) in the attribute `"by_n"`.
#' @references Efron, B. (1987). Better bootstrap confidence intervals.
#'   Journal of the American Statistical Association 82, 171-185.
#'   Davison, A. C. and Hinkley, D. V. (1997). Bootstrap Methods and their
#'   Application. Cambridge University Press.
#' @examples
#' # Synthetic losses with a known rate n^(-1/2)
#' set.seed(1)
#' d <- expand.grid(n = round(10^seq(2, 4, length.out = 10)), replication = 1:20)
#' d$loss <- d$n^(-0.5) * rexp(nrow(d))
#' rate_slopes(d, B = 200)
#' @export
rate_slopes <- function(study, loss = "loss", B = 999, level = 0.95,
                        interval = c("bca", "percentile"), seed = 1) {
  if (!is.data.frame(study) || !all(c("n", loss) %in% names(study))) {
    stop_arg("study", "a rate_study() result or a data frame with columns `n` and `", loss, "`",
             got = study)
  }
  B <- check_count(B, "B")
  check_number(level, "level", lower = 0, upper = 1, lower_open = TRUE)
  interval <- match_arg(interval)
  by_n <- study_summary(study, loss)
  sizes <- by_n$n
  G <- length(sizes)
  if (G < 2) stop_arg("study", "losses at two or more sample sizes")
  values <- lapply(split(study[[loss]], study$n), function(v) v[!is.na(v)])
  half <- ceiling(G / 2)
  subsets <- list(all = seq_len(G), `lower half` = seq_len(half), `upper half` = (G - half + 1):G)
  rows <- list(c("mean", "all"), c("median", "all"), c("mean", "lower half"),
               c("mean", "upper half"))
  point <- list(mean = by_n$mean, median = by_n$median)
  boot <- with_local_seed(seed, {
    means <- matrix(NA_real_, B, G)
    medians <- matrix(NA_real_, B, G)
    for (g in seq_len(G)) {
      v <- values[[g]]
      if (length(v) == 0) next
      draws <- matrix(v[sample.int(length(v), B * length(v), replace = TRUE)], B)
      means[, g] <- rowMeans(draws)
      medians[, g] <- apply(draws, 1, stats::median)
    }
    list(mean = means, median = medians)
  })
  alpha <- (1 - level) / 2
  stat_fun <- list(mean = mean, median = stats::median)
  out <- do.call(rbind, lapply(rows, function(r) {
    idx <- subsets[[r[2]]]
    est <- if (length(idx) >= 2) log_slope(sizes[idx], matrix(point[[r[1]]][idx], 1)) else NA_real_
    bs <- if (length(idx) >= 2) log_slope(sizes[idx], boot[[r[1]]][, idx, drop = FALSE]) else NA_real_
    z0 <- acc <- NA_real_
    if (all(is.na(bs)) || is.na(est)) {
      ci <- c(NA_real_, NA_real_)
    } else if (interval == "percentile") {
      ci <- stats::quantile(bs, c(alpha, 1 - alpha), na.rm = TRUE, names = FALSE)
    } else {
      adj <- bca_levels(bs, est, jackknife_slopes(sizes[idx], point[[r[1]]][idx], values[idx],
                                                  stat_fun[[r[1]]]), alpha)
      z0 <- adj$z0
      acc <- adj$a
      ci <- stats::quantile(bs, adj$levels, na.rm = TRUE, names = FALSE)
    }
    data.frame(statistic = r[1], sizes = r[2], n_min = min(sizes[idx]), n_max = max(sizes[idx]),
               slope = est, lower = ci[1], upper = ci[2], z0 = z0, acceleration = acc,
               stringsAsFactors = FALSE)
  }))
  attr(out, "interval") <- interval
  attr(out, "by_n") <- by_n
  attr(out, "level") <- level
  attr(out, "B") <- B
  class(out) <- c("moe_rate_slopes", "data.frame")
  out
}

# Stratified jackknife of the slope: for each replication (within its size),
# the slope with that replication left out of its size's statistic, and the
# stratum size it came from. Sizes with one replication contribute nothing.
jackknife_slopes <- function(sizes, point, values, stat) {
  G <- length(sizes)
  rows <- list()
  strata <- integer()
  for (g in seq_len(G)) {
    v <- values[[g]]
    if (length(v) < 2) next
    loo <- vapply(seq_along(v), function(j) stat(v[-j]), numeric(1))
    m <- matrix(point, length(v), G, byrow = TRUE)
    m[, g] <- loo
    rows[[length(rows) + 1]] <- m
    strata <- c(strata, rep(length(v), length(v)))
  }
  if (length(rows) == 0) return(list(slopes = numeric(), strata = integer()))
  list(slopes = log_slope(sizes, do.call(rbind, rows)), strata = strata)
}

# BCa levels (Efron 1987): bias correction z0 from the share of bootstrap
# replicates below the estimate, acceleration from the jackknife's empirical
# influence values L_j = (R_g - 1) (est - est_(-j)) (Davison and Hinkley 1997,
# eq. 3.32 with strata).
bca_levels <- function(bs, est, jack, alpha) {
  bs <- bs[is.finite(bs)]
  B <- length(bs)
  share <- (sum(bs < est) + 0.5 * sum(bs == est)) / B
  share <- min(max(share, 0.5 / B), 1 - 0.5 / B)
  z0 <- stats::qnorm(share)
  L <- (jack$strata - 1) * (est - jack$slopes)
  L <- L[is.finite(L)]
  a <- if (length(L) > 0 && sum(L^2) > 0) sum(L^3) / (6 * sum(L^2)^1.5) else 0
  z <- stats::qnorm(c(alpha, 1 - alpha))
  levels <- stats::pnorm(z0 + (z0 + z) / (1 - a * (z0 + z)))
  list(levels = levels, z0 = z0, a = a)
}

# Least-squares slope of log(values) on log(n), one per row of `values`;
# sizes whose value is not positive are left out of that row's fit.
log_slope <- function(n, values) {
  lx <- log(n)
  apply(values, 1, function(v) {
    ok <- is.finite(v) & v > 0
    if (sum(ok) < 2) return(NA_real_)
    x <- lx[ok]
    y <- log(v[ok])
    sum((x - mean(x)) * (y - mean(y))) / sum((x - mean(x))^2)
  })
}

# Evaluate expr with set.seed(seed), restoring the global RNG state after.
with_local_seed <- function(seed, expr) {
  # A fixed generator, so results do not depend on the session's RNGkind()
  # (future's parallel seeding leaves L'Ecuyer-CMRG behind in some plans);
  # the caller's kind and stream are restored on exit.
  restore_rng <- rng_snapshot()
  on.exit(restore_rng())
  set.seed(seed, kind = "Mersenne-Twister", normal.kind = "Inversion", sample.kind = "Rejection")
  expr
}

#' @export
print.moe_rate_slopes <- function(x, ...) {
  kind <- if (identical(attr(x, "interval"), "percentile")) "percentile" else "BCa"
  cat(sprintf("Slopes of log(loss) on log(n), %g%% %s bootstrap intervals (%d resamples):\n",
              100 * attr(x, "level"), kind, attr(x, "B")))
  show_z0 <- kind == "BCa" && "z0" %in% names(x)
  cols <- c("statistic", "sizes", "n_min", "n_max", "slope", "lower", "upper", if (show_z0) "z0")
  tab <- as.data.frame(unclass(x))[, intersect(cols, names(x))]
  print(tab, digits = 3, row.names = FALSE)
  if (show_z0 && any(abs(x$z0) > 1, na.rm = TRUE)) {
    cat("|z0| > 1: the bootstrap slopes sit to one side of the estimate (heavy-tailed losses);\n",
        "those intervals rest on the bootstrap's extreme tail: read them with care.\n", sep = "")
  }
  by_n <- attr(x, "by_n")
  if (!all(is.na(by_n$share_stuck)) || any(by_n$failed > 0)) {
    overall <- sum(by_n$share_stuck * by_n$replications) / sum(by_n$replications)
    cat(sprintf("Stuck fits: %.1f%% overall; failed fits: %d (per n: attr(, \"by_n\"))\n",
                100 * overall, sum(by_n$failed)))
  }
  invisible(x)
}

#' Log-log plot of a convergence-rate study
#'
#' Mean loss per sample size (filled points) with its least-squares line on the
#' log-log scale, the median (open points) and the interquartile range over
#' replications (vertical bars); the legend gives the fitted slopes. With
#' `asymptotic`, the mean loss predicted by the asymptotic normal law
#' ([asymptotic_loss()]) is drawn as a dashed line: where the points sit far
#' above it, the sample sizes are not yet asymptotic.
#'
#' @param x A [rate_study()] result.
#' @param loss Name of the loss column to plot.
#' @param asymptotic `NULL`, or an [asymptotic_loss()] result for the same
#'   setting and loss.
#' @param main,xlab,ylab Plot titles.
#' @param ... Further arguments passed to [graphics::plot()].
#' @return `x`, invisibly.
#' @examples
#' set.seed(1)
#' d <- expand.grid(n = round(10^seq(2, 4, length.out = 10)), replication = 1:20)
#' d$loss <- d$n^(-0.5) * rexp(nrow(d))
#' class(d) <- c("moe_rate_study", "data.frame")
#' plot(d)
#' @export
plot.moe_rate_study <- function(x, loss = "loss", main = NULL, xlab = "sample size n",
                                ylab = NULL, asymptotic = NULL, ...) {
  if (!is.null(asymptotic) && !(is.data.frame(asymptotic) && all(c("n", "mean") %in% names(asymptotic)))) {
    stop_arg("asymptotic", "NULL or a data frame from asymptotic_loss()", got = asymptotic)
  }
  s <- study_summary(x, loss)
  s <- s[is.finite(s$mean) & s$mean > 0, , drop = FALSE]
  if (nrow(s) < 2) stop_arg("x", "positive mean losses at two or more sample sizes")
  setting <- attr(x, "setting")
  if (is.null(main)) main <- if (!is.null(setting)) setting$name else "Convergence rate"
  if (is.null(ylab)) ylab <- if (loss == "loss") "loss" else loss
  vals <- c(s$mean, s$median, s$q25, s$q75, asymptotic$mean)
  vals <- vals[is.finite(vals) & vals > 0]
  graphics::plot(s$n, s$mean, log = "xy", pch = 19, ylim = range(vals), xlab = xlab,
                 ylab = ylab, main = main, ...)
  ok <- is.finite(s$q25) & s$q25 > 0
  graphics::segments(s$n[ok], s$q25[ok], s$n[ok], s$q75[ok], col = "grey60")
  graphics::points(s$n, s$median, pch = 1, col = "steelblue")
  slope_mean <- log_slope(s$n, matrix(s$mean, 1))
  cf <- stats::coef(stats::lm(log(s$mean) ~ log(s$n)))
  grid_n <- range(s$n)
  graphics::lines(grid_n, exp(cf[1] + cf[2] * log(grid_n)), col = "firebrick", lwd = 2)
  slope_median <- log_slope(s$n, matrix(s$median, 1))
  legend <- c(sprintf("mean loss, slope %.2f", slope_mean),
              sprintf("median loss, slope %.2f", slope_median), "interquartile range")
  style <- list(pch = c(19, 1, NA), lty = c(1, NA, 1), lwd = c(2, NA, 1),
                col = c("firebrick", "steelblue", "grey60"))
  if (!is.null(asymptotic)) {
    a <- asymptotic[order(asymptotic$n), ]
    graphics::lines(a$n, a$mean, lty = 2, lwd = 2, col = "darkgreen")
    legend <- c(legend, "asymptotic normal prediction")
    style <- Map(c, style, list(NA, 2, 2, "darkgreen"))
  }
  graphics::legend("topright", bty = "n", legend = legend, pch = style$pch, lty = style$lty,
                   lwd = style$lwd, col = style$col)
  invisible(x)
}
