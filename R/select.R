# Choosing the number of experts by a sweep over k: every (k, start) pair is
# one future, so the sweep runs in parallel under any future::plan() and gives
# the same fits under every plan. moe_dendrogram() (R/dendrogram.R) is the
# sweep-free alternative.

#' Fit a mixture of experts for every number of experts and pick one
#'
#' Fits [moe()] for each number of experts in `k`, keeps the best start of
#' each, and tabulates the information criteria, as `flexmix::stepFlexmix()`
#' does for finite mixtures.
#'
#' **Parallelism and reproducibility.** Every (k, start) pair is one task of
#' [future.apply::future_lapply()] with `future.seed = seed`: each task draws
#' its starting values from its own L'Ecuyer-CMRG stream, derived from `seed`
#' and the task's position only, so the fits and the table are identical
#' sequentially and under any [future::plan()] (only the `seconds` column
#' differs). Choose the plan before calling, e.g.
#' `future::plan(future::multisession, workers = 2)`. Each task fits with one
#' start (`n_starts` of `control` is the number of tasks per k) and the
#' `nthreads` of `control`; with several workers keep `nthreads = 1`. Start
#' `s` of every k is of the kind start `s` of [moe()] would be: with the
#' default `init = "mixed"` of [moe_control()], k-means for odd `s` and a
#' random partition for even `s`.
#'
#' **Criteria.** With \eqn{\hat\ell} the maximised log-likelihood, \eqn{d}
#' the number of free parameters (`df` of [logLik()]) and \eqn{n} the number of
#' observations: \eqn{AIC = -2\hat\ell + 2d}, \eqn{BIC = -2\hat\ell + d \log
#' n}, and the integrated completed likelihood \eqn{ICL = BIC + 2 E} with the
#' posterior entropy \eqn{E = -\sum_{n,i} \tau_{ni} \log \tau_{ni}} of the
#' responsibilities, each row counted with its case weight (Biernacki, Celeux and
#' Govaert, 2000; the form
#' `flexmix::ICL()` uses). Smaller is better for all three.
#'
#' **Failures and warnings.** A k whose every start fails (e.g. too many
#' experts for the data) gets a row with `NA` criteria and its error message;
#' the sweep stops only when every k fails. Warnings of the fits (convergence,
#' variance floor, degenerate experts: common for over-specified k) are
#' collected per k in `warnings` and summarised in one classed warning
#' (`moe_select_warning`) instead of being repeated.
#'
#' @param formula,data Model formula and data, as in [moe()].
#' @param k Numbers of experts to fit: positive whole numbers.
#' @param criterion Criterion that picks the best fit: `"BIC"`, `"AIC"` or
#'   `"ICL"`.
#' @param ... Further arguments of [moe()]: `expert`, `gate`, `method`, `model`,
#'   `weights`, `offset` (as vectors, one value per row of `data`).
#' @param control [moe_control()] settings, shared by every fit.
#' @param seed Integer seed from which every task's random stream derives.
#' @param progress Show a progress bar (through progressr)?
#' @return An object of class `moe_select`: a list with `table` (a data frame
#'   with one row per k: `k`, `logLik`, `df`, `AIC`, `BIC`, `ICL`,
#'   `converged`, `seconds` (summed over the k's starts), `error`), `fits` (the
#'   best fit of each k, named by k; `NULL` where all starts failed),
#'   `criterion`, `best` (the chosen fit), `best_k`, `warnings` (the fits'
#'   warning messages, a list named by k), `seed`, `elapsed` (wall time of the
#'   sweep in seconds) and `workers`.
#' @references Biernacki, Celeux, Govaert (2000). Assessing a mixture model for
#'   clustering with the integrated completed likelihood. IEEE TPAMI 22,
#'   719-725.
#' @seealso [moe_dendrogram()] for choosing k from one over-specified fit,
#'   [best()], [plot.moe_select()].
#' @examples
#' set.seed(1)
#' n <- 400
#' d <- data.frame(x = runif(n, -1, 1))
#' first <- runif(n) < plogis(4 * d$x)
#' d$y <- ifelse(first, 1 + 2 * d$x, -1 - d$x) + rnorm(n, sd = 0.3)
#' sel <- moe_select(y ~ x, data = d, k = 1:3)
#' sel
#' best(sel)
#' plot(sel)
#' @export
moe_select <- function(formula, data, k = 1:3, criterion = c("BIC", "AIC", "ICL"), ...,
                       control = moe_control(), seed = 1, progress = interactive()) {
  cl <- match.call()
  criterion <- match_arg(criterion)
  if (!is.numeric(k) || length(k) < 1 || anyNA(k) || any(!is.finite(k)) ||
      any(k != round(k)) || any(k < 1)) {
    stop_arg("k", "a vector of positive whole numbers (numbers of experts)", got = k)
  }
  k <- sort(unique(as.integer(k)))
  if (missing(formula) || !inherits(formula, "formula")) {
    stop_arg("formula", "a model formula such as y ~ x or y ~ x | z",
             got = if (!missing(formula)) formula)
  }
  if (missing(data) || !is.data.frame(data)) {
    stop_arg("data", "a data frame", got = if (!missing(data)) data)
  }
  control <- as_control(control)
  check_number(seed, "seed", integer = TRUE)
  check_flag(progress, "progress")
  dots <- list(...)
  allowed <- c("expert", "gate", "method", "model", "weights", "offset")
  nm <- names(dots) %||% rep("", length(dots))
  bad <- nm[!nm %in% allowed]
  if (length(bad)) {
    stop_arg("...", "named arguments of moe() (", paste(allowed, collapse = ", "), "); got ",
             paste(ifelse(bad == "", "<unnamed>", bad), collapse = ", "))
  }
  n_starts <- control$n_starts
  tasks <- expand.grid(start = seq_len(n_starts), k = k)
  task_control <- lapply(seq_len(n_starts), function(s) {
    ctl <- control
    ctl$n_starts <- 1L
    # Start s of every k is start s of moe() with n_starts starts: its own
    # element of a list of parameters, its kind under init = "mixed".
    ctl$init <- start_rule(ctl$init, s)
    ctl
  })
  started <- proc.time()[["elapsed"]]
  results <- future_tasks(nrow(tasks), function(i) {
    select_task(formula, data, tasks$k[i], dots, task_control[[tasks$start[i]]])
  }, progress = progress, seed = seed, future.packages = "moegate")
  elapsed <- proc.time()[["elapsed"]] - started
  by_k <- split(seq_len(nrow(tasks)), tasks$k)
  fits <- list()
  warn <- list()
  rows <- lapply(k, function(kk) {
    res <- results[by_k[[as.character(kk)]]]
    warn[[as.character(kk)]] <<- unique(unlist(lapply(res, `[[`, "warnings")))
    ok <- vapply(res, function(r) !is.null(r$fit), TRUE)
    seconds <- sum(vapply(res, `[[`, 0, "seconds"))
    if (!any(ok)) {
      fits[as.character(kk)] <<- list(NULL)
      return(data.frame(k = kk, logLik = NA_real_, df = NA_real_, AIC = NA_real_,
                        BIC = NA_real_, ICL = NA_real_, converged = NA, seconds = seconds,
                        error = res[[1]]$error, stringsAsFactors = FALSE))
    }
    ll <- vapply(res, function(r) if (is.null(r$fit)) -Inf else r$fit$loglik, 0)
    # Ties go to the first start, so the choice does not depend on the plan.
    fit <- res[[which.max(ll)]]$fit
    fit$start_objective <- ll
    fit$call <- fit_call(cl, kk)
    fits[[as.character(kk)]] <<- fit
    crit <- fit_criteria(fit)
    data.frame(k = kk, logLik = fit$loglik, df = fit$df, AIC = crit[["AIC"]],
               BIC = crit[["BIC"]], ICL = crit[["ICL"]], converged = isTRUE(fit$converged),
               seconds = seconds, error = NA_character_, stringsAsFactors = FALSE)
  })
  table <- do.call(rbind, rows)
  rownames(table) <- NULL
  if (all(is.na(table$logLik))) {
    stop("Every fit of moe_select() failed; the first error: ", table$error[1], call. = FALSE)
  }
  noisy <- names(warn)[lengths(warn) > 0]
  if (length(noisy)) {
    warning(structure(class = c("moe_select_warning", "warning", "condition"),
                      list(message = paste0("Fits with k = ", paste(noisy, collapse = ", "),
                                            " gave warnings (", sum(lengths(warn)),
                                            " distinct); see the `warnings` component"),
                           call = NULL)))
  }
  out <- structure(list(table = table, fits = fits, criterion = criterion, best = NULL,
                        best_k = NA_integer_, warnings = warn, seed = seed, elapsed = elapsed,
                        workers = if (requireNamespace("future", quietly = TRUE)) {
                          unname(future::nbrOfWorkers())
                        } else NA),
                   class = "moe_select")
  out$best_k <- select_k(table, criterion)
  out$best <- fits[[as.character(out$best_k)]]
  out
}

# One (k, start) task: a fit with its warnings collected. Never throws.
select_task <- function(formula, data, k, dots, control) {
  warnings <- character(0)
  started <- proc.time()[["elapsed"]]
  fit <- tryCatch(
    withCallingHandlers(
      do.call(moe, c(list(formula, data = data, k = k, control = control), dots)),
      warning = function(w) {
        warnings <<- c(warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      }),
    error = function(e) e)
  seconds <- proc.time()[["elapsed"]] - started
  if (inherits(fit, "error")) {
    return(list(fit = NULL, error = conditionMessage(fit), warnings = warnings, seconds = seconds))
  }
  list(fit = fit, error = NA_character_, warnings = warnings, seconds = seconds)
}

# The call stored in each fit: moe() with the sweep's formula and data
# expressions and this k, so update() works on it.
fit_call <- function(cl, k) {
  keep <- setdiff(names(cl), c("", "k", "criterion", "seed", "progress"))
  out <- as.call(c(list(quote(moe)), as.list(cl)[keep]))
  if (is.null(names(cl)) || names(cl)[2] == "") out$formula <- cl[[2]]
  out$k <- k
  out
}

# AIC, BIC and ICL of one fit.
fit_criteria <- function(fit) {
  ll <- fit$loglik
  df <- fit$df
  n <- fit$nobs
  bic <- -2 * ll + log(n) * df
  post <- fit$posterior
  # Case weights count as replicated rows, in the entropy as in nobs().
  w <- fit$weights %||% rep(1, NROW(post))
  entropy <- if (is.null(post)) NA_real_ else {
    -sum(w * rowSums(ifelse(post > 0, post * log(post), 0)))
  }
  c(AIC = -2 * ll + 2 * df, BIC = bic, ICL = bic + 2 * entropy)
}

select_k <- function(table, criterion) {
  v <- table[[criterion]]
  if (all(is.na(v))) return(NA_integer_)
  table$k[which.min(v)]
}

#' The chosen model of a selection
#'
#' `best()` returns the fit a selection chose: from [moe_select()] the fit
#' with the smallest criterion (another criterion than the one the selection
#' used may be given), from [moe_dendrogram()] the merged model at the level
#' the dendrogram information criterion picks (see [as_moe()]).
#'
#' @param x A `moe_select` or `moe_dendrogram` object.
#' @param criterion For `moe_select`: `"BIC"`, `"AIC"` or `"ICL"`; default
#'   the selection's own.
#' @param ... For `moe_dendrogram`: passed to [as_moe()] (e.g. `refine`).
#' @return A fitted `moe` model.
#' @examples
#' set.seed(1)
#' d <- data.frame(x = runif(300, -1, 1))
#' d$y <- ifelse(runif(300) < plogis(4 * d$x), 1 + 2 * d$x, -1 - d$x) + rnorm(300, sd = 0.3)
#' sel <- moe_select(y ~ x, data = d, k = 1:3)
#' best(sel)$k
#' best(sel, "AIC")$k
#' @export
best <- function(x, ...) UseMethod("best")

#' @rdname best
#' @export
best.moe_select <- function(x, criterion = x$criterion, ...) {
  check_dots(...)
  criterion <- check_choice(criterion, c("BIC", "AIC", "ICL"), "criterion")
  x$fits[[as.character(select_k(x$table, criterion))]]
}

#' @export
print.moe_select <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("<moe_select> ", nrow(x$table), " numbers of experts, chosen by ", x$criterion,
      ": k = ", x$best_k, "\n", sep = "")
  tab <- x$table
  if (all(is.na(tab$error))) tab$error <- NULL
  print(tab, digits = digits, row.names = FALSE)
  cat("Sweep: ", format(round(x$elapsed, 2)), " s on ", x$workers, " worker(s)\n", sep = "")
  invisible(x)
}

#' Plot the information criteria of a selection
#'
#' Draws AIC, BIC and ICL against the number of experts (base graphics) and
#' marks the chosen k of each.
#'
#' @param x A [moe_select()] result.
#' @param criteria Which criteria to draw.
#' @param ... Further graphical parameters passed to [graphics::matplot()].
#' @return `x`, invisibly.
#' @examples
#' set.seed(3)
#' d <- data.frame(x = runif(300, -1, 1))
#' d$y <- ifelse(runif(300) < plogis(4 * d$x), 1 + 2 * d$x, -1 - d$x) + rnorm(300, sd = 0.3)
#' plot(moe_select(y ~ x, data = d, k = 1:3), criteria = c("BIC", "ICL"))
#' @export
plot.moe_select <- function(x, criteria = c("AIC", "BIC", "ICL"), ...) {
  if (!is.character(criteria) || !all(criteria %in% c("AIC", "BIC", "ICL"))) {
    stop_arg("criteria", 'a subset of "AIC", "BIC", "ICL"', got = criteria)
  }
  tab <- x$table
  M <- as.matrix(tab[, criteria, drop = FALSE])
  cols <- expert_colours(length(criteria))
  do.call(graphics::matplot,
          utils::modifyList(list(x = tab$k, y = M, type = "b", pch = 19, lty = 1, col = cols,
                                 xlab = "number of experts k",
                                 ylab = "criterion (smaller is better)", xaxt = "n",
                                 main = "Information criteria"), list(...)))
  graphics::axis(1, at = tab$k)
  for (j in seq_along(criteria)) {
    if (all(is.na(M[, j]))) next
    i <- which.min(M[, j])
    graphics::points(tab$k[i], M[i, j], pch = 1, cex = 2.2, col = cols[j], lwd = 2)
  }
  graphics::legend("topright", legend = criteria, col = cols, lty = 1, pch = 19, bty = "n")
  invisible(x)
}

#' Turn a selection into a fitted model
#'
#' `as_moe()` returns a fitted `moe` model with `k` experts: from
#' [moe_select()] the sweep's fit with that k, from [moe_dendrogram()] the
#' merged model at the level with `k` atoms, optionally refined by EM.
#'
#' @param x A `moe_select` or `moe_dendrogram` object.
#' @param k Number of experts; default the selected one.
#' @param ... Further arguments of the methods.
#' @return A fitted `moe` model.
#' @seealso [best()].
#' @examples
#' set.seed(3)
#' d <- data.frame(x = runif(400, -1, 1))
#' d$y <- ifelse(runif(400) < plogis(4 * d$x), 1 + 2 * d$x, -1 - d$x) + rnorm(400, sd = 0.3)
#' sel <- suppressWarnings(moe_select(y ~ x, data = d, k = 1:3))
#' as_moe(sel, k = 3)$k
#' tree <- moe_dendrogram(as_moe(sel, k = 3))
#' logLik(as_moe(tree, k = 2, refine = TRUE))
#' @export
as_moe <- function(x, ...) UseMethod("as_moe")

#' @rdname as_moe
#' @export
as_moe.moe_select <- function(x, k = x$best_k, ...) {
  check_dots(...)
  k <- check_count(k, "k")
  if (!k %in% x$table$k) {
    stop_arg("k", "one of the fitted numbers of experts (", paste(x$table$k, collapse = ", "), ")",
             got = k)
  }
  fit <- x$fits[[as.character(k)]]
  if (is.null(fit)) stop_arg("k", "a number of experts whose fit succeeded; k = ", k, " failed")
  fit
}
