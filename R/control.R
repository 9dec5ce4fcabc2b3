#' Computational settings of a mixture-of-experts fit
#'
#' Modelling choices (number of experts, gate, expert family, estimator) are
#' arguments of [moe()]; how the optimiser runs is set here.
#'
#' @param tol Convergence tolerance on the relative change of the
#'   log-likelihood between EM iterations (of the residual sum of squares for
#'   `method = "lsq"`).
#' @param maxit Maximum number of EM (or L-BFGS, for least squares) iterations.
#' @param n_starts Number of starts; the fit with the best objective is kept and
#'   the objectives of all starts are stored.
#' @param init How starts are drawn, all from R's random number generator so
#'   that `set.seed()` reproduces a fit: `"kmeans"` (k-means clusters of the
#'   expert covariates and response), `"random"` (random partitions), a
#'   parameter list as returned by `coef(fit, type = "params")` or [moe_params()],
#'   a list of such parameter lists (one per start), or a function
#'   `function(k, y, X, Z, expert, gate)` returning one. With the cosine gate,
#'   zero gate vectors in supplied parameters (which have no direction) are
#'   replaced by small random vectors.
#' @param nthreads Number of OpenMP threads used over observations. Results do
#'   not depend on it.
#' @param trace Print the log-likelihood every `trace` EM iterations (0:
#'   never); least-squares fits print the residual sum of squares every
#'   `trace` objective evaluations of L-BFGS. With several starts each line
#'   says which start it belongs to ("start 2/5").
#' @param progress With `n_starts > 1`: show a progress bar over the starts
#'   (through progressr, with its [progressr::handlers()]) once the fit has
#'   run for 2 seconds (or `getOption("progressr.enable_after")`, if longer).
#'   The default shows it in interactive sessions. Either way the fit signals
#'   progressr conditions, so `progressr::with_progress(moe(...))` shows them.
#' @param accelerate `"none"` (plain EM) or `"squarem"`: SQUAREM extrapolation
#'   (Varadhan and Roland, 2008) along two EM steps, kept only when it increases
#'   the log-likelihood, so the fit stays monotone. Pays off for slow,
#'   over-specified fits; each iteration then costs about three EM steps.
#' @param gate_maxit Inner iterations of the gate M-step, or `NULL` (default)
#'   for each optimiser's own: 50 Newton steps for the linear softmax gate
#'   (which converges in 2-3), 50 L-BFGS iterations, and **one** Fisher-scoring
#'   step per EM iteration. One step makes EM an EM gradient algorithm (Lange,
#'   1995): a generalised EM, still monotone, whose iterations cost about a
#'   third of an exact gate M-step's and which reached the same optima in
#'   about the same number of iterations in `bench/bench-gates.R`. Set it
#'   (e.g. 50) to solve every gate M-step to `gate_tol`.
#' @param gate_tol Tolerance of the gate M-step (relative gain).
#' @param gate_optimizer Gate M-step of every gate other than the linear
#'   softmax: `"fisher"` (default), Fisher scoring with the expected
#'   information of the gate's multinomial log-likelihood, computed in the same
#'   pass over the data as the gradient, in a trust region and accepting only
#'   increases, so the objective never decreases; or `"lbfgs"`, L-BFGS with the
#'   analytic gradient (many more passes over the data per M-step; kept for
#'   comparison). Least-squares fits and the unnormalised sigmoid gate always
#'   use L-BFGS.
#' @param expert_maxit,expert_tol Inner iterations and tolerance of the expert
#'   M-step (Newton for multinomial experts, L-BFGS for activated means).
#' @return An object of class `moe_control`.
#' @examples
#' moe_control(tol = 1e-10, n_starts = 5, nthreads = 2)
#' @export
moe_control <- function(tol = 1e-8, maxit = 1000, n_starts = 1, init = "kmeans",
                        nthreads = 1, trace = 0, gate_maxit = NULL, gate_tol = 1e-10,
                        expert_maxit = 25, expert_tol = 1e-10,
                        accelerate = c("none", "squarem"),
                        gate_optimizer = c("fisher", "lbfgs"), progress = interactive()) {
  check_number(tol, "tol", lower = 0, lower_open = TRUE)
  maxit <- check_count(maxit, "maxit")
  n_starts <- check_count(n_starts, "n_starts")
  nthreads <- check_count(nthreads, "nthreads")
  trace <- check_count(trace, "trace", lower = 0)
  if (!is.null(gate_maxit)) gate_maxit <- check_count(gate_maxit, "gate_maxit")
  check_number(gate_tol, "gate_tol", lower = 0, lower_open = TRUE)
  expert_maxit <- check_count(expert_maxit, "expert_maxit")
  check_number(expert_tol, "expert_tol", lower = 0, lower_open = TRUE)
  init <- check_init(init)
  check_flag(progress, "progress")
  accelerate <- match_arg(accelerate)
  gate_optimizer <- match_arg(gate_optimizer)
  structure(list(tol = tol, maxit = maxit, n_starts = n_starts, init = init,
                 nthreads = nthreads, trace = trace, gate_maxit = gate_maxit,
                 gate_tol = gate_tol, expert_maxit = expert_maxit, expert_tol = expert_tol,
                 accelerate = accelerate, gate_optimizer = gate_optimizer,
                 progress = progress),
            class = "moe_control")
}

# The start rule; a string may abbreviate "kmeans" or "random".
check_init <- function(init) {
  if (is.character(init) && length(init) == 1 && !is.na(init) && nzchar(init)) {
    i <- pmatch(init, c("kmeans", "random"))
    if (!is.na(i)) return(invisible(c("kmeans", "random")[[i]]))
  }
  ok <- is.function(init) || inherits(init, "moe_params") ||
    (is.list(init) && length(init) > 0 && all(vapply(init, inherits, TRUE, "moe_params")))
  if (!ok) {
    stop_arg("init", '"kmeans", "random", a moe_params object, a list of them, ',
             "or a function returning one", got = init)
  }
  invisible(init)
}

as_control <- function(control) {
  if (inherits(control, "moe_control")) return(control)
  if (is.list(control)) return(do.call(moe_control, control))
  stop_arg("control", "the result of moe_control() or a list of its arguments", got = control)
}

#' @export
print.moe_control <- function(x, ...) {
  cat("<moe_control>\n")
  init <- if (is.character(x$init)) x$init else if (is.function(x$init)) "function" else "parameters"
  utils::str(c(x[setdiff(names(x), "init")], init = init), give.head = FALSE, no.list = TRUE)
  invisible(x)
}
