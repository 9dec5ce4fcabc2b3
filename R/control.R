#' Computational settings of a mixture-of-experts fit
#'
#' Modelling choices (number of experts, gate, expert family, estimator) are
#' arguments of [moe()]; how the optimiser runs is set here.
#'
#' @param tol Convergence tolerance on the relative change of the
#'   log-likelihood between EM iterations when `stop = "loglik"` (and of the
#'   residual sum of squares for `method = "lsq"`). Not used by the gradient
#'   rule.
#' @param maxit Maximum number of EM (or L-BFGS, for least squares) iterations.
#' @param n_starts Number of starts; the fit with the best objective is kept and
#'   the objectives of all starts are stored.
#' @param init How starts are drawn, all from R's random number generator so
#'   that `set.seed()` reproduces a fit: `"mixed"` (default: odd starts
#'   `"kmeans"`, even starts `"random"`, so one start is the k-means start and
#'   several starts mix both kinds), `"kmeans"` (k-means clusters of the
#'   expert covariates and response, from random centres; for multinomial
#'   experts of the covariates only, since this version: clusters that
#'   followed the classes started each expert as a one-class predictor, and
#'   at K = 3, k = 3, n = 5e4 ended 90-120 log-likelihood units lower), `"random"` (random
#'   partitions, as `flexmix` starts), a
#'   parameter list as returned by `coef(fit, type = "params")` or [moe_params()],
#'   a list of such parameter lists (one per start), or a function
#'   `function(k, y, X, Z, expert, gate)` returning one. With the cosine gate,
#'   zero gate vectors in supplied parameters (which have no direction) are
#'   replaced by small random vectors.
#'
#'   Why `"mixed"`: k-means starts of the same data differ only in the random
#'   centres and mostly end in the same few optima; random partitions start
#'   EM from nearly equal experts and reach others. Neither kind was better
#'   on every k and n in `bench/bench-select.R` (over-specified fits of k = 4
#'   and 5 experts to 3 true ones: at n = 1e4 random partitions reached
#'   higher optima than any of 10 k-means starts, at n = 2000 the reverse), so
#'   the default alternates them. With `n_starts = 1` it is the k-means start
#'   of earlier versions (the same fit from the same seed); with more starts,
#'   starts 2, 4, ... are now random partitions (earlier versions drew every
#'   start by k-means: `init = "kmeans"` does that).
#' @param nthreads Number of OpenMP threads used over observations. Results do
#'   not depend on it (rows are processed in fixed blocks of 1024 and every sum
#'   over them is taken in block order). Each pass over the data uses at most
#'   one thread per 16384 rows, so fits with fewer than 32768 observations run
#'   on one thread whatever `nthreads` says: below that a second thread costs
#'   more than it saves (measured in `bench/bench-threads.R`). On a machine busy with other work, GNU OpenMP's threads
#'   spin while they wait and two threads can be slower than one (measured:
#'   1.8x slower, n = 1e5, load 7 on 2 cores); starting R with the environment
#'   variable `OMP_WAIT_POLICY=PASSIVE` removes that (same run: 2 threads as
#'   fast as one). It must be set before R starts (R itself loads GNU OpenMP,
#'   which reads it once, at load): `Sys.setenv()` and `.Renviron` are too
#'   late.
#' @param trace Print the log-likelihood every `trace` EM iterations (0:
#'   never); least-squares fits print the residual sum of squares every
#'   `trace` objective evaluations of L-BFGS. With several starts each line
#'   says which start it belongs to ("start 2/5").
#' @param progress With `n_starts > 1`: show a progress bar over the starts
#'   (through progressr, with its [progressr::handlers()]) once the fit has
#'   run for 2 seconds (or `getOption("progressr.enable_after")`, if longer).
#'   The default shows it in interactive sessions. Either way the fit signals
#'   progressr conditions, so `progressr::with_progress(moe(...))` shows them.
#' @param accelerate `"auto"` (default), `"none"` (plain EM) or `"squarem"`:
#'   SQUAREM extrapolation (Varadhan and Roland, 2008) along two EM steps, kept
#'   only when it increases the log-likelihood, so the fit stays monotone; each
#'   iteration costs about three EM steps. `"auto"` is SQUAREM for every
#'   maximum-likelihood fit. Multinomial experts (much missing information:
#'   K = 3, k = 3, n = 1e4 took 240 plain EM iterations and 3.6 s, 45 SQUAREM
#'   iterations and 1.8 s, to the same log-likelihood) and Gaussian experts
#'   alike: n = 2e4, d = 2, k = 3, three starts, 8-12 SQUAREM iterations
#'   instead of 16-43 EM iterations, 0.65 s instead of 1.14 s; n = 2e5,
#'   d = 10, k = 4, 8 instead of 32 iterations, 5.5 s instead of 8.1 s; every
#'   gate but the sigmoid gates (which ran to `maxit` either way) was faster
#'   with it in `bench/bench-gates.R`'s data (`bench/README.md`). EM paths
#'   differ, so a fit from the same start may end at another stationary
#'   point; `"none"` gives the plain EM of earlier versions.
#' @param stop Stopping rule of EM. `"gradient"` (default): the fit has
#'   converged when the relative gradient of the log-likelihood,
#'   \eqn{\max_j |\partial \ell / \partial \theta_j| \max(|\theta_j|, 1) / n}{max_j
#'   |d loglik / d theta_j| max(|theta_j|, 1) / n} over the free parameters
#'   (gate parameters, expert coefficients, log variances above the floor),
#'   is at most `grad_tol`. A relative-change rule fires wherever EM moves
#'   slowly, which in over-specified fits is far from the maximum (EM crawls
#'   along the flat directions of the likelihood); the gradient is small only
#'   near a stationary point. `"loglik"`: the relative change of the
#'   log-likelihood between iterations is below `tol` (the rule of earlier
#'   versions). `fit$converged` is `TRUE` or `FALSE` named by the rule that
#'   stopped the fit: `"gradient"`, `"loglik"`, `"maxit"` or
#'   `"numerical_failure"`; `fit$gradient_criterion` holds the criterion at
#'   the returned parameters for either rule.
#'
#'   Least-squares fits (`method = "lsq"`) keep the rule of earlier versions
#'   unless `stop` is given: L-BFGS on the residual sum of squares stopped by
#'   the relative change `tol` or its own gradient test (`fit$converged`
#'   named `"rss"`, or `"maxit"`, or `"stalled"` when its line search ends
#'   with a gradient that is not negligible), so shipped least-squares studies
#'   reproduce. With `stop = "gradient"` given explicitly the same criterion
#'   as for likelihoods is taken on the RSS, \eqn{\max_j |\partial
#'   \mathrm{RSS} / \partial 	heta_j| \max(|	heta_j|, 1) / n}{max_j |d RSS
#'   / d theta_j| max(|theta_j|, 1) / n} (n: the weight total with case
#'   weights), after L-BFGS ends; with `polish = "newton"` a damped Newton
#'   polish (below) runs from there while it exceeds `grad_tol`, and the fit
#'   has converged (`"gradient"`) when it is at most `grad_tol`; otherwise it
#'   is named `"stalled"` (no step lowered the RSS) or `"maxit"`
#'   (`polish_maxit` Newton iterations, or L-BFGS's `maxit`). The
#'   rule least squares takes is element `lsq_stop` of the result (`"gradient"`
#'   or `"loglik"`, the relative-change rule).
#' @param lsq_stop The stopping rule of least-squares fits, `"gradient"` or
#'   `"loglik"`; `NULL` (default): `stop` when `stop` is given, else
#'   `"loglik"`. Given explicitly, it lets a stored control be rebuilt
#'   (`do.call(moe_control, unclass(control))`) with the same rule.
#' @param grad_tol Tolerance of the gradient rule.
#' @param polish With the gradient rule, what runs once the relative change
#'   of the log-likelihood falls below `polish_at` and the gradient rule does
#'   not hold yet: `"newton"` (default): Newton's method on the full
#'   log-likelihood from the EM iterate, with the analytic score (one E-step
#'   and one score pass per evaluation) and the observed information:
#'   analytic for the linear softmax gate with multinomial experts or Gaussian
#'   experts with linear means (one pass over the data), elsewhere by forward
#'   differences of the score (one evaluation per free parameter), Levenberg
#'   damping where the information is not positive definite and step halving,
#'   so every accepted step raises the log-likelihood. `"trust"`: where the
#'   information is analytic, Newton's method in a trust region instead
#'   (steps scaled by the information's diagonal, the radius kept from one
#'   iteration to the next, negative curvature followed to the region's
#'   edge), elsewhere the same as `"newton"`. On over-specified fits, where
#'   the information is indefinite during most of the polish, it takes about
#'   half the evaluations of `"newton"` and, on 12 NeurIPS 2023 protocol fits
#'   (`bench/README.md`), reached a higher maximum on 7 and a lower one on 1, in
#'   0.8-1.1x the CPU time of `"newton"` (the information, one per iteration,
#'   dominates); on multinomial experts it is no faster. `"lbfgs"`: L-BFGS on
#'   the same function (no information needed, but on over-specified fits it
#'   often stalls before the gradient rule holds). `"none"`: EM only (EM's
#'   inexact gate M-step may keep the criterion above a tight `grad_tol`;
#'   loosen it then). The polished point is kept only if it raises the
#'   log-likelihood, then EM resumes until a rule holds (at most three
#'   polishes per fit): the fit stays monotone. This reaches the maximum where
#'   EM crawls (over-specified fits, slowly converging multinomial experts).
#'   `fit$polish` reports the polishes run, their evaluations and the
#'   log-likelihood they gained. A polish runs only where it is cheaper than
#'   more EM iterations: when EM stalls, or when the ratio r of successive
#'   log-likelihood gains predicts more EM iterations than a Newton
#'   iteration costs (about one per free parameter with the differenced
#'   information, three with the analytic one) until the gradient rule holds
#'   (2 log(`grad_tol` / criterion) / log(r) iterations); a fast EM, such as a
#'   well-specified fit at large n, simply goes on.
#'
#'   Least squares with `stop = "gradient"`: `"newton"` (or `"trust"`) runs once, after
#'   L-BFGS, on the RSS: its Hessian by forward differences of the analytic
#'   gradient (one gradient pass per free parameter), Levenberg damping
#'   (the cosine routers' exact invariances make it singular) and step
#'   halving, so the RSS never increases; `"lbfgs"` and `"none"` run no
#'   polish (L-BFGS is the fit itself). `fit$polish` reports it likewise
#'   (`gain`: the RSS it removed).
#' @param runoff_ratio The run-off guard of least-squares fits of the
#'   perturbed cosine gate ([gate_perturbed_cosine()]), a single number > 0, or
#'   `Inf` to switch it off. That gate is linear in
#'   \eqn{v_i = w_i / (\|w_i\| + \epsilon_w)}{v_i = w_i / (||w_i|| + eps_w)},
#'   \eqn{\|v_i\| < 1}{||v_i|| < 1}, and a common shift of all \eqn{v_i}
#'   leaves it unchanged; in over-specified fits the RSS can keep falling as
#'   the \eqn{v_i} spread towards the unit sphere (the gate norms towards
#'   infinity, sharpening a gate boundary) with no finite minimum, and the
#'   Newton polish of the gradient rule follows that path. The guard measures
#'   it by the boundary ratio \eqn{\rho / (1 - \rho)}{rho / (1 - rho)},
#'   \eqn{\rho}{rho} the radius of the smallest ball enclosing the
#'   \eqn{v_i}: the smallest largest gate norm, in units of
#'   \eqn{\epsilon_w}{eps_w}, over all parameters that give the same gate
#'   (1.08 at the truth of [study_setting_cosine()], eps = 1). The bound is
#'   `runoff_ratio` times the ratio at the start when that is above 1 (a
#'   growth from the start: with a small \eqn{\epsilon_w}{eps_w} interior
#'   minima lie far out, 25 at the truth of a k = 2 fit with the default
#'   `eps_w = 0.01`, whose fit ends at 15.7), else `runoff_ratio`. When an
#'   accepted iterate of L-BFGS or of the polish would take the ratio above the
#'   bound, the fit stops at the last iterate within it, `fit$converged` is `TRUE` named
#'   `"runoff"` (so `fit$converged["runoff"]` is `TRUE` exactly when the guard
#'   stopped the fit, `NA` otherwise) and a `moe_runoff_warning` says so. A
#'   fit that never crosses the bound (an interior minimum, or a run-off too
#'   slow to reach it within `maxit`) is the same fit as with `Inf`. Other gates and maximum-likelihood fits ignore it.
#' @param polish_at,polish_maxit Relative log-likelihood change below which
#'   the polish starts (likelihood only), and its maximum number of Newton
#'   (or L-BFGS) iterations.
#' @param start_maxit,start_tol,start_keep Short-run start selection (the
#'   "small EM" of Biernacki, Celeux and Govaert, 2003), for maximum-likelihood
#'   fits with `n_starts > 1`: every start first runs EM alone for at most
#'   `start_maxit` iterations (or until the relative change of its
#'   log-likelihood falls below `start_tol`, whichever comes first; no
#'   polish), and only the `start_keep` starts with the highest
#'   log-likelihood after that go on, each from where its short run ended, to
#'   the stopping rule and polish. `NULL` (default): every start runs to the
#'   rule, as in earlier versions. `start_tol` alone runs the short runs up
#'   to `maxit`; `start_maxit = 0` ranks the starts by the log-likelihood of
#'   the start itself (after the first M-step for partition starts).
#'   Least-squares fits and single starts ignore them. `start_objective`
#'   (in [moe()]'s result) still has one value per start: the final
#'   objective of a continued start, the short run's of the others, with
#'   attributes `short_run` (every start's log-likelihood after its short run)
#'   and `continued` (which starts went on).
#'
#'   Not the default because the ranking after a few EM iterations is not the
#'   ranking at the maximum where EM crawls: in over-specified fits the
#'   starts end their EM phase within about a log-likelihood unit of one
#'   another and the polish then carries them to maxima several units apart
#'   (`bench/bench-start-selection.R`, below).
#' @param gate_maxit Inner iterations of the gate M-step, or `NULL` (default)
#'   for each optimiser's own: **one** Newton step for the linear softmax gate,
#'   **one** Fisher-scoring step for the other gates, 50 L-BFGS iterations.
#'   One step makes EM an EM gradient algorithm (Lange, 1995): a generalised
#'   EM, still monotone, whose iterations cost about a third of an exact gate
#'   M-step's and which reached the same optima in about the same number of
#'   iterations in `bench/bench-gates.R` (linear softmax, with SQUAREM: n =
#'   2e4, d = 2, k = 3, 0.47 s instead of 0.65 s with the M-step solved;
#'   earlier versions solved it, in 2-3 Newton steps). Set it (e.g. 50) to
#'   solve every gate M-step to `gate_tol`.
#' @param gate_tol Tolerance of the gate M-step (relative gain), when it
#'   takes more than one step (`gate_maxit`). Under the
#'   gradient rule the linear softmax gate's Newton M-step also goes on while
#'   its relative gradient exceeds a tenth of `grad_tol` (down to gains at the
#'   rounding level), so that EM cannot stall short of the rule at large n.
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
moe_control <- function(tol = 1e-8, maxit = 1000, n_starts = 1, init = "mixed",
                        nthreads = 1, trace = 0, gate_maxit = NULL, gate_tol = 1e-10,
                        expert_maxit = 25, expert_tol = 1e-10,
                        accelerate = c("auto", "none", "squarem"),
                        gate_optimizer = c("fisher", "lbfgs"), progress = interactive(),
                        stop = c("gradient", "loglik"), lsq_stop = NULL, grad_tol = 1e-6,
                        polish = c("newton", "trust", "lbfgs", "none"), polish_at = 1e-5, polish_maxit = 100,
                        start_maxit = NULL, start_tol = NULL, start_keep = 1,
                        runoff_ratio = 10) {
  check_number(tol, "tol", lower = 0, lower_open = TRUE)
  # Inf switches the guard off; check_number() takes finite numbers only.
  if (!(is.numeric(runoff_ratio) && length(runoff_ratio) == 1 && identical(runoff_ratio, Inf))) {
    check_number(runoff_ratio, "runoff_ratio", lower = 0, lower_open = TRUE)
  }
  runoff_ratio <- as.numeric(runoff_ratio)
  # Least squares takes the gradient rule only when asked for (see `stop`).
  stop_given <- !missing(stop)
  stop <- match_arg(stop)
  lsq_stop <- if (!is.null(lsq_stop)) {
    check_choice(lsq_stop, c("gradient", "loglik"), "lsq_stop")
  } else if (stop_given) stop else "loglik"
  check_number(grad_tol, "grad_tol", lower = 0, lower_open = TRUE)
  polish <- match_arg(polish)
  check_number(polish_at, "polish_at", lower = 0, lower_open = TRUE)
  polish_maxit <- check_count(polish_maxit, "polish_maxit")
  maxit <- check_count(maxit, "maxit")
  n_starts <- check_count(n_starts, "n_starts")
  nthreads <- check_count(nthreads, "nthreads")
  trace <- check_count(trace, "trace", lower = 0)
  if (!is.null(gate_maxit)) gate_maxit <- check_count(gate_maxit, "gate_maxit")
  check_number(gate_tol, "gate_tol", lower = 0, lower_open = TRUE)
  expert_maxit <- check_count(expert_maxit, "expert_maxit")
  check_number(expert_tol, "expert_tol", lower = 0, lower_open = TRUE)
  if (!is.null(start_maxit)) start_maxit <- check_count(start_maxit, "start_maxit", lower = 0)
  if (!is.null(start_tol)) {
    check_number(start_tol, "start_tol", lower = 0, lower_open = TRUE)
    # A tolerance alone: the short runs stop by it, or at maxit.
    if (is.null(start_maxit)) start_maxit <- maxit
  }
  start_keep <- check_count(start_keep, "start_keep")
  init <- check_init(init)
  check_flag(progress, "progress")
  accelerate <- match_arg(accelerate)
  gate_optimizer <- match_arg(gate_optimizer)
  structure(list(tol = tol, maxit = maxit, n_starts = n_starts, init = init,
                 nthreads = nthreads, trace = trace, gate_maxit = gate_maxit,
                 gate_tol = gate_tol, expert_maxit = expert_maxit, expert_tol = expert_tol,
                 accelerate = accelerate, gate_optimizer = gate_optimizer,
                 progress = progress, stop = stop, lsq_stop = lsq_stop, grad_tol = grad_tol,
                 polish = polish,
                 polish_at = polish_at, polish_maxit = polish_maxit,
                 start_maxit = start_maxit, start_tol = start_tol, start_keep = start_keep,
                 runoff_ratio = runoff_ratio),
            class = "moe_control")
}

# The start rule; a string may abbreviate "mixed", "kmeans" or "random".
check_init <- function(init) {
  rules <- c("mixed", "kmeans", "random")
  if (is.character(init) && length(init) == 1 && !is.na(init) && nzchar(init)) {
    i <- pmatch(init, rules)
    if (!is.na(i)) return(invisible(rules[[i]]))
  }
  ok <- is.function(init) || inherits(init, "moe_params") ||
    (is.list(init) && length(init) > 0 && all(vapply(init, inherits, TRUE, "moe_params")))
  if (!ok) {
    stop_arg("init", '"mixed", "kmeans", "random", a moe_params object, a list of them, ',
             "or a function returning one", got = init)
  }
  invisible(init)
}

# What start s of a fit is: "mixed" alternates k-means (odd s) and random
# partitions (even s); any other rule is the same for every start, but a list
# of parameter lists gives start s its own element (recycled).
start_rule <- function(init, s) {
  if (identical(init, "mixed")) return(if (s %% 2 == 1) "kmeans" else "random")
  if (is.list(init) && !inherits(init, "moe_params") && !is.function(init)) {
    return(init[[(s - 1) %% length(init) + 1]])
  }
  init
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
