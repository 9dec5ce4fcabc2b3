# Is a stored fit at a maximum of the likelihood? The second-order check, a
# Newton continuation and a profile along the sharpening of a gate, for the
# fits of a rate_study().

#' Are a study's fits at a maximum of the likelihood?
#'
#' A stopping rule on the relative gradient holds at a maximum, but also on a
#' *run-off path*, where a gate sharpens without bound (a gate vector and
#' intercept growing while the log-likelihood still rises by ever smaller
#' amounts): there the gradient decays with the gains although the supremum is
#' at infinity and "the estimate" is where the path was stopped. This function
#' tells the two apart for chosen fits of a [rate_study()] result with the
#' likelihood (`method = "ml"`) or least squares (`method = "lsq"`: the
#' function maximised is \eqn{-\mathrm{RSS}/(2\hat\sigma^2)}, with
#' \eqn{\hat\sigma^2} the stored fit's RSS / n, the Gaussian log-likelihood of
#' the regression parameters at that noise variance; no sharpening profile).
#' Exact invariances of the gate that its reference convention leaves in
#' the parameters (the cosine router's \eqn{k} norms, the perturbed cosine
#' router's common shift of \eqn{v_i = w_i/(\|w_i\| + \epsilon_w)}: \eqn{q}
#' directions) are null directions of every information: the Newton steps
#' leave them out and `info_min` is the smallest eigenvalue beyond them
#' (`info_null`: the largest of theirs, zero up to the differencing error
#' at a regular point). For each fit it rebuilds the replication's data
#' (the random stream [refit_study()] uses) and, from the stored estimate:
#'
#' 1. continues the fit by damped Newton steps on the full log-likelihood
#'    (analytic score, observed information by central differences of it,
#'    Levenberg damping where the information is not positive definite, step
#'    halving so that every step raises the log-likelihood) until the relative
#'    gradient (as in [moe_control()]) is below `grad_tol`, no step raises the
#'    log-likelihood, or `newton_maxit` steps;
#' 2. computes the observed information there, scaled to unit diagonal (a
#'    congruence, so its signs are those of the information, with far better
#'    conditioning), and its smallest eigenvalue;
#' 3. with `sharpen`, profiles the log-likelihood along the sharpening of the
#'    fit's sharpest gate boundary (linear softmax gate only): the difference
#'    \eqn{c = \|w_i - w_j\|} of the two most different gate vectors is fixed
#'    at multiples of its fitted value (direction kept) and every other
#'    parameter is maximised by the same Newton steps, warm started with the
#'    boundary \eqn{(w_i - w_j)'z + b_{0i} - b_{0j} = 0} kept in place.
#'
#' At a finite local maximum Newton converges in a few steps, the parameters
#' barely move and the information is positive definite (`at_maximum`). On a
#' run-off path Newton takes steps of about constant length along the
#' sharpening direction, the log-likelihood gains shrink geometrically and
#' the steps do not stop; its local information is positive definite but with
#' an eigenvalue that shrinks with the gains. Far along such a path that
#' eigenvalue is zero to rounding and the gains are below it, so
#' `at_maximum` is only the second-order condition at the returned point, not
#' a run-off detector: read it with `sharpness`, `info_min` and the profile
#' (the tests hold a run-off whose fit meets the gradient rule at a gate
#' vector of about 2e4 with `info_min` zero to 1e-5). A sharpening profile that keeps
#' rising to the largest multiple says that the likelihood is higher along a
#' path to infinity than at this local maximum (its supremum, over the
#' directions tried, is not attained), whether or not the fit itself sits on
#' that path.
#'
#' Least-squares fits of the perturbed cosine gate get a run-off check of
#' their own: that gate is linear in \eqn{v_i = w_i/(\|w_i\| + \epsilon_w)},
#' \eqn{\|v_i\| < 1}, and the RSS extends continuously to the closed ball
#' \eqn{\|v_i\| \le 1} (gate norms at infinity), a compact set on which it has
#' a minimum. From the continued point the RSS is minimised over it (each
#' \eqn{v_i} in polar form, a radius in \eqn{[0, 1]} and a direction, with
#' the intercepts and expert coefficients, by L-BFGS-B with the analytic
#' gradient); a best point on the boundary, judged by the shift-invariant
#' spread of the \eqn{v_i} (the radius \eqn{\rho} of their smallest
#' enclosing ball at least `1 - boundary_tol`: no common shift, an exact
#' invariance, brings every \eqn{v_i} inside), means the RSS falls all the way
#' to infinite gate norms: a run-off, not a finite minimum (column
#' `boundary`).
#'
#' The fits are checked through the future framework
#' ([future.apply::future_lapply()], one task per fit on the random stream of
#' its replication and size), so `future::plan(multisession)` spreads them
#' over workers and the result does not depend on the plan.
#'
#' @param study A [rate_study()] result of one batch (one seed) fitted by
#'   maximum likelihood, with its stored parameters.
#' @param rows Row numbers of `study` to check (default all with a fit).
#' @param grad_tol Relative gradient at which the Newton continuation stops.
#' @param newton_maxit Maximum Newton steps of the continuation (and of each
#'   profile point).
#' @param sharpen `NULL` (no profile) or multiples (at least 1) of the fitted
#'   sharpness at which to profile the log-likelihood. The profile walks up to
#'   the largest through a grid of ratio at most 1.5 (warm starts), and
#'   reports every point of it.
#' @param boundary_tol Least-squares perturbed-cosine studies: the best point
#'   over the closed v-ball is on its boundary when the radius of the
#'   smallest ball enclosing its \eqn{v_i} is at least `1 - boundary_tol`.
#' @param progress Show a progress bar (through progressr)?
#' @return A data frame with one row per fit: `row`, `n`, `replication`,
#'   `loglik` (stored), `criterion` (relative gradient at the stored
#'   estimate), `newton_steps`, `newton_stop` (what ended the continuation:
#'   `"criterion"`, `grad_tol` met; `"rounding"`, a step whose gain was at the
#'   rounding level of the log-likelihood with the criterion already within the
#'   study's own `grad_tol`; `"no_ascent"`, no step raised the log-likelihood;
#'   `"maxit"`), `criterion_after`, `loglik_gain` (of the
#'   continuation), `max_change` (largest absolute change of a parameter),
#'   `info_min` (smallest eigenvalue of the scaled information after the
#'   continuation, beyond the gate's invariances; the largest is `info_max`),
#'   `info_min_gate` (the share of the gate parameters in its eigenvector),
#'   `info_null` (see above; `NA` without invariances), `sharpness` (the largest
#'   \eqn{\|w_i - w_j\|} after), `expert_slope` (the largest slope norm
#'   \eqn{\|a_i\|} of Gaussian experts after: an activated expert whose slopes
#'   grow without bound turns into a step function), `at_maximum` (not stopped by `"maxit"`,
#'   `criterion_after` at most the larger of `grad_tol` and the study's own
#'   gradient tolerance, and `info_min > 0`), `loss` (the study's first loss after the
#'   continuation; for a loss function all its values, as the study's
#'   columns; for a Voronoi loss also its parts `loss_weight` and
#'   `loss_<block>`, each block's term summed over the fitted atoms, in the
#'   loss's own translation) and, with `sharpen`, `sharpen_gain` (the largest
#'   profile log-likelihood over the multiples minus the log-likelihood after
#'   the continuation; where a profile point's maximisation stops before its
#'   criterion holds, the value found is a lower bound of the profile there) and `sharpen_top` (the profile is highest at the
#'   largest multiple, above the fit: along this path the likelihood exceeds
#'   the fit's and its supremum lies beyond the multiples tried). The profile itself is
#'   attribute `profile` (one row per fit and point of the grid: `row`,
#'   `multiple`, `requested` (a multiple asked for), `sharpness`, `loglik`,
#'   `gain`, `criterion`, `loss`). A fit with an expert variance at or below
#'   the variance floor (a component collapsed onto a few observations, on the
#'   boundary of the parameter space) is not continued: its row has
#'   `newton_stop = "variance_floor"`, `at_maximum = FALSE`, its stored
#'   `loglik` and the losses of the stored fit. A check that fails has only
#'   `row`, `n`, `replication` and `error`. Least-squares studies of the
#'   perturbed cosine gate also have `ball_gain` (the RSS removed by the
#'   v-ball minimisation below, from the continued point), `ball_ratio` (the
#'   boundary ratio \eqn{\rho/(1-\rho)} at its best point, `Inf` at
#'   \eqn{\rho = 1}) and `boundary` (that best point on the boundary: the fit
#'   is at no finite minimum, and `at_maximum` is then `FALSE`).
#' @seealso [rate_study()], [refit_study()], [moe_control()].
#' @examples
#' \donttest{
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' s <- moe_study_setting(truth, k = 2, n_grid = c(200, 400), n_rep = 2, loss = "D1")
#' study <- rate_study(s, seed = 1)
#' study_maxima(study, sharpen = c(2, 10))
#' }
#' @export
study_maxima <- function(study, rows = NULL, grad_tol = 1e-9, newton_maxit = 30,
                         sharpen = NULL, boundary_tol = 1e-6, progress = FALSE) {
  if (!inherits(study, "moe_rate_study") || !inherits(attr(study, "setting"), "moe_study_setting")) {
    stop_arg("study", "a rate_study() result with its setting", got = study)
  }
  setting <- attr(study, "setting")
  if (!setting$method %in% c("ml", "lsq")) {
    stop_arg("study", "a study fitted by maximum likelihood or least squares; it used \"",
             setting$method, "\"")
  }
  seed <- attr(study, "seed")
  if (length(seed) != 1 || !is.finite(seed)) {
    stop_arg("study", "one batch (a single seed); it has seeds ", paste(seed, collapse = ", "))
  }
  if (is.null(study$params)) stop_arg("study", "a study with its fitted parameters (column params)")
  has_fit <- which(!vapply(study$params, is.null, NA))
  if (is.null(rows)) rows <- has_fit
  if (!is.numeric(rows) || length(rows) == 0 || anyNA(rows) || any(rows != round(rows)) ||
      !all(rows %in% has_fit)) {
    stop_arg("rows", "row numbers of fits in `study` (rows with parameters: ",
             paste(range(has_fit), collapse = " to "), ")", got = rows)
  }
  check_number(grad_tol, "grad_tol", lower = 0, lower_open = TRUE)
  newton_maxit <- check_count(newton_maxit, "newton_maxit")
  check_number(boundary_tol, "boundary_tol", lower = 0, upper = 1, lower_open = TRUE)
  check_flag(progress, "progress")
  ball <- ball_check_applies(setting)
  if (!is.null(sharpen)) {
    if (!is.numeric(sharpen) || length(sharpen) == 0 || anyNA(sharpen) || any(sharpen < 1) ||
        any(!is.finite(sharpen))) {
      stop_arg("sharpen", "NULL or finite multiples of at least 1", got = sharpen)
    }
    g <- setting$gate
    if (setting$method == "lsq") {
      stop_arg("sharpen", "NULL for a least-squares study (the profile is the likelihood's)")
    }
    if (g$score != "inner" || g$activation != "identity" || g$normalizer != "softmax" ||
        isTRUE(g$estimate_tau) || g$transform != "identity" || !is.null(g$transform_fun)) {
      stop_arg("sharpen", "NULL for this study: the sharpening profile needs the linear softmax gate")
    }
    sharpen <- sort(unique(sharpen))
  }
  task <- (study$replication[rows] - 1L) * length(setting$n_grid) +
    match(study$n[rows], setting$n_grid)
  if (anyNA(task)) stop_arg("rows", "rows whose n is in the setting's grid")
  streams <- lecuyer_streams(seed, max(task))
  # future.seed switches the session to L'Ecuyer-CMRG on some plans: restore
  # the caller's generator and stream.
  restore_rng <- rng_snapshot()
  on.exit(restore_rng(), add = TRUE)
  # The checks of one fit (row i of the study) on its rebuilt data.
  check_one <- function(i, data) {
    ev <- maximum_evaluator(setting, data, study$params[[i]])
    th0 <- ev$theta0
    start <- ev$eval(th0)
    if (is.null(start)) {
      # An expert variance at its floor: a component collapsed onto a few
      # observations, on the boundary of the parameter space, where the
      # Gaussian likelihood has no interior maximum to continue to.
      losses <- maximum_losses(setting, study$params[[i]])
      row <- data.frame(row = i, n = study$n[i], replication = study$replication[i],
                        loglik = study$loglik[i], newton_steps = 0L,
                        newton_stop = "variance_floor", at_maximum = FALSE,
                        row.names = NULL)
      row <- cbind(row, as.data.frame(as.list(losses)))
      row$error <- NA_character_
      return(row)
    }
    crit0 <- ev$criterion(start$gradient, th0)
    settle <- max(grad_tol, setting$control$grad_tol %||% 1e-6)
    cont <- newton_ascent(ev, th0, grad_tol, newton_maxit, n_null = n_null, settle_tol = settle)
    info <- scaled_information(ev, cont$theta)
    e <- eigen(info$scaled, symmetric = TRUE)
    P <- length(th0)
    # The smallest eigenvalue beyond the gate's exact invariances.
    last <- P - n_null
    v_min <- e$vectors[, last]
    params <- ev$params(cont$theta)
    losses <- maximum_losses(setting, params)
    row <- data.frame(row = i, n = study$n[i], replication = study$replication[i],
                      loglik = start$loglik, criterion = crit0, newton_steps = cont$steps,
                      newton_stop = cont$stop,
                      criterion_after = cont$criterion, loglik_gain = cont$loglik - start$loglik,
                      max_change = max(abs(cont$theta - th0)), info_min = e$values[last],
                      info_max = e$values[1], info_min_gate = sum(v_min[seq_len(ev$n_gate)]^2),
                      info_null = if (n_null) max(abs(e$values[(last + 1):P])) else NA_real_,
                      sharpness = gate_sharpness(params, attr(losses, "cells"))$sharpness,
                      expert_slope = expert_slope(params, setting$expert),
                      at_maximum = cont$stop != "maxit" && e$values[last] > 0 &&
                        cont$criterion <= settle,
                      row.names = NULL)
    if (ball) {
      # The run-off check: the best RSS over the closed v-ball from the
      # continued point; on the boundary, the fit is no finite minimum.
      b <- ball_minimum(setting, data, params)
      row$ball_gain <- b$rss_start - b$rss
      row$ball_ratio <- b$ratio
      row$boundary <- b$rho >= 1 - boundary_tol
      row$at_maximum <- row$at_maximum && !row$boundary
    }
    row <- cbind(row, as.data.frame(as.list(losses)))
    if (!is.null(sharpen)) {
      prof <- sharpen_profile(ev, cont$theta, sharpen, grad_tol, newton_maxit, setting,
                            attr(losses, "cells"))
      attr(row, "profile") <- cbind(row = i, prof)
      # NA where no profile point could be maximised.
      best <- if (any(is.finite(prof$loglik))) max(prof$loglik, na.rm = TRUE) else NA_real_
      row$sharpen_gain <- best - cont$loglik
      top <- prof$loglik[nrow(prof)]  # the largest multiple
      row$sharpen_top <- isTRUE(top > cont$loglik && top >= best)
    }
    row$error <- NA_character_
    row
  }
  n_null <- invariant_directions(setting$gate, nrow(setting$truth$gate$W), setting$k)
  # One task per fit, each on the random stream of its replication and size,
  # so the result does not depend on the future plan.
  out <- future_tasks(length(rows), function(j) {
    i <- rows[j]
    data <- study_data(setting, study$n[i])
    tryCatch(check_one(i, data), error = function(e) {
      data.frame(row = i, n = study$n[i], replication = study$replication[i],
                 error = conditionMessage(e))
    })
  }, progress = progress, seed = streams[task], future.scheduling = Inf)
  profiles <- lapply(out, attr, "profile")
  out <- rbind_fill(lapply(out, function(x) {
    attr(x, "profile") <- NULL
    x
  }))
  rownames(out) <- NULL
  if (!is.null(sharpen)) attr(out, "profile") <- do.call(rbind, profiles)
  out
}

# Rows with different columns (failed checks have only an error) to one frame.
rbind_fill <- function(rows) {
  cols <- unique(unlist(lapply(rows, names)))
  do.call(rbind, lapply(rows, function(r) {
    for (nm in setdiff(cols, names(r))) r[[nm]] <- NA
    r[cols]
  }))
}

# Exact invariances of a gate that its reference convention leaves in the
# packed parameters, hence null directions of every information: the cosine
# score ignores each ||w_i|| (k directions); the perturbed cosine score is
# linear in v_i = w_i / (||w_i|| + eps_w), and the softmax ignores a common
# shift of all v_i (q directions).
invariant_directions <- function(gate, q, k) {
  if (gate$normalizer != "softmax") return(0L)
  switch(gate$score, cosine = as.integer(k), perturbed_cosine = as.integer(q), 0L)
}

# Largest slope norm ||a_i|| of Gaussian experts (a tanh expert whose slopes
# grow without bound becomes a step function: the least-squares analogue of
# a sharpening gate); NA for other experts.
expert_slope <- function(params, expert) {
  if (expert$family != "gaussian") return(NA_real_)
  coef <- params$expert$coef
  ir <- intercept_row(coef)
  slopes <- if (is.na(ir)) coef else coef[-ir, , drop = FALSE]
  if (nrow(slopes) == 0) return(0)
  max(sqrt(colSums(slopes^2)))
}

# Log-likelihood and score of one replication's data as functions of the
# packed parameters (gate first, then experts; Gaussian variances last).
# Least-squares studies: -RSS / (2 sigma2) with sigma2 the stored fit's
# RSS / n (the Gaussian log-likelihood of the regression parameters at that
# noise variance, up to a constant), its parameters those of the compiled
# least-squares objective (gate, then expert coefficients).
maximum_evaluator <- function(setting, data, params) {
  if (setting$method == "lsq") return(lsq_maximum_evaluator(setting, data, params))
  k <- setting$k
  cp <- params_to_cpp(params, setting$expert, k)
  U <- gate_input(setting$gate, data$Z)
  resp <- response_matrix(data$y, setting$expert)
  gs <- gate_cpp_spec(setting$gate)
  gaussian <- setting$expert$family == "gaussian"
  es <- expert_cpp_spec(setting$expert, if (gaussian) resp$var_y else 1, length(resp$levels))
  first <- cpp_loglik(data$X, resp$Y, U, gs, es, cp$gate, cp$expert, NULL, FALSE, 1L)
  P <- length(first$theta)
  variance <- if (gaussian) seq_len(P) > P - k else rep(FALSE, P)
  floor_value <- if (gaussian) es$var_floor else 0
  n <- nrow(data$X)
  list(
    theta0 = first$theta, n_gate = first$n_gate, variance = variance, n = n, floor = floor_value,
    # NULL outside the parameter space (a variance at or below its floor).
    eval = function(theta, gradient = TRUE) {
      if (any(theta[variance] <= floor_value)) return(NULL)
      r <- cpp_loglik(data$X, resp$Y, U, gs, es, cp$gate, cp$expert, theta, gradient, 1L)
      if (!is.finite(r$loglik)) return(NULL)
      list(loglik = r$loglik, gradient = r$gradient)
    },
    criterion = relative_criterion(n),
    pack = function(p) {
      cq <- params_to_cpp(p, setting$expert, k)
      cpp_loglik(data$X, resp$Y, U, gs, es, cq$gate, cq$expert, NULL, FALSE, 1L)$theta
    },
    mass = function(theta) {
      colMeans(cpp_loglik(data$X, resp$Y, U, gs, es, cp$gate, cp$expert, theta, FALSE, 1L)$posterior)
    },
    params = function(theta) {
      r <- cpp_loglik(data$X, resp$Y, U, gs, es, cp$gate, cp$expert, theta, FALSE, 1L)
      p <- params
      p$gate$W[] <- r$gate$W
      p$gate$b0[] <- r$gate$b0
      p$expert$coef[] <- r$expert$coef
      if (gaussian) p$expert$sigma2[] <- r$expert$sigma2
      p
    })
}

# The relative gradient of an evaluator's objective over n observations (as
# the compiled gradient rule measures it): max |g_j| max(|theta_j|, 1) / n.
relative_criterion <- function(n) {
  force(n)
  function(gradient, theta) max(abs(gradient) * pmax(abs(theta), 1)) / n
}

lsq_maximum_evaluator <- function(setting, data, params) {
  k <- setting$k
  cp <- params_to_cpp(params, setting$expert, k)
  U <- gate_input(setting$gate, data$Z)
  Y <- matrix(as.numeric(data$y), ncol = 1)
  gs <- gate_cpp_spec(setting$gate)
  act <- setting$expert$activation
  objective <- function(theta) {
    cpp_lsq_objective(data$X, Y, U, gs, act, cp$gate, cp$expert$coef, theta, 1L)
  }
  first <- objective(NULL)
  n <- nrow(data$X)
  scale <- 1 / (2 * first$value / n)
  P <- length(first$theta)
  gate_par <- P - length(cp$expert$coef)
  list(
    theta0 = first$theta, n_gate = gate_par, variance = rep(FALSE, P), n = n, floor = 0,
    eval = function(theta, gradient = TRUE) {
      r <- objective(theta)
      if (!is.finite(r$value) || !all(is.finite(r$gradient))) return(NULL)
      list(loglik = -scale * r$value, gradient = -scale * r$gradient)
    },
    criterion = relative_criterion(n),
    pack = function(p) {
      cq <- params_to_cpp(p, setting$expert, k)
      cpp_lsq_objective(data$X, Y, U, gs, act, cq$gate, cq$expert$coef, NULL, 1L)$theta
    },
    mass = function(theta) stop("no posterior masses for a least-squares fit", call. = FALSE),
    params = function(theta) {
      r <- objective(theta)
      p <- params
      p$gate$W[] <- r$gate$W
      p$gate$b0[] <- r$gate$b0
      p$expert$coef[] <- r$coef
      p
    })
}

# ---- the run-off check of least-squares perturbed-cosine fits -----------------

# Whether a study's fits get the v-ball check: least squares with the
# perturbed cosine score under the softmax (identity activation and input
# transform, so the score is linear in v_i = w_i / (||w_i|| + eps_w) and the
# RSS extends continuously to ||v_i|| = 1), and experts whose activation the
# check differentiates.
ball_check_applies <- function(setting) {
  g <- setting$gate
  identical(setting$method, "lsq") && identical(g$score, "perturbed_cosine") && g$eps_w > 0 &&
    identical(g$activation, "identity") && identical(g$normalizer, "softmax") &&
    identical(g$transform, "identity") && is.null(g$transform_fun) && !isTRUE(g$estimate_tau) &&
    setting$expert$activation %in% c("identity", "tanh")
}

# The smallest RSS over the closed v-ball from a fit's parameters. The
# perturbed cosine score is v_i'u / (||u|| + eps_u) with ||v_i|| < 1; as the
# gate norms run off to infinity the v_i reach the unit sphere, where the RSS
# is still defined (the scores stay bounded). Over the compact set of
# ||v_i|| <= 1 the RSS has a minimum: a fit whose RSS has no finite minimum
# (a run-off) has it on the boundary, a regular fit inside. Each v_i is
# r_i z_i / ||z_i|| with r_i in [0, 1] (polar coordinates: a radius and a
# direction), minimised with the intercepts (the last one 0, the softmax's
# reference) and the expert coefficients by L-BFGS-B with the analytic
# gradient. Because a common shift of the v_i leaves the RSS unchanged,
# "on the boundary" is judged on the shift-invariant spread: the radius rho
# of the smallest ball enclosing the v_i at the best point (rho = 1: no shift
# brings every v_i inside), reported as the boundary ratio rho / (1 - rho)
# (Inf at rho = 1). Returns the best RSS, that ratio, its rho, L-BFGS-B's
# convergence code and its iterations.
ball_minimum <- function(setting, data, params, maxit = 3000) {
  pr <- ball_problem(setting, data, params)
  opt <- stats::optim(pr$par0, pr$fn, pr$gr, method = "L-BFGS-B", lower = pr$lower,
                      upper = pr$upper, control = list(maxit = maxit, factr = 10, pgtol = 0,
                                                       lmm = 10))
  Vb <- pr$v(opt$par)
  rho <- cpp_enclosing_radius(Vb)
  list(rss = opt$value * pr$n, rss_start = pr$fn(pr$par0) * pr$n, rho = rho,
       ratio = if (rho < 1) rho / (1 - rho) else Inf, convergence = opt$convergence,
       iterations = opt$counts[["function"]], v = Vb)
}

# The v-ball problem of ball_minimum(): RSS / n and its gradient in the
# polar parameters (r_1..r_k, z_1..z_k, b0_1..b0_{k-1}, expert coefficients),
# the start from `params`, the bounds, and v(par).
ball_problem <- function(setting, data, params) {
  g <- setting$gate
  eps_w <- g$eps_w
  U <- gate_input(g, data$Z)
  Ut <- U / (sqrt(rowSums(U^2)) + g$eps_u)
  X <- data$X
  y <- as.numeric(data$y)
  n <- nrow(X)
  q <- ncol(U)
  k <- setting$k
  p <- ncol(X)
  tau <- params$gate$tau %||% 1
  inside <- identical(g$intercept, "inside")
  tanh_act <- identical(setting$expert$activation, "tanh")
  W <- params$gate$W
  V <- sweep(W, 2, sqrt(colSums(W^2)) + eps_w, "/")
  r0 <- sqrt(colSums(V^2))
  Z0 <- V
  Z0[, r0 == 0] <- c(1, numeric(q - 1))
  b00 <- params$gate$b0 - params$gate$b0[k]
  par0 <- c(pmin(r0, 1), as.numeric(Z0), b00[-k], as.numeric(params$expert$coef))
  parts <- function(par) {
    r <- par[seq_len(k)]
    Z <- matrix(par[k + seq_len(q * k)], q, k)
    zn <- sqrt(colSums(Z^2))
    b0 <- c(par[k + q * k + seq_len(k - 1)], 0)
    A <- matrix(par[k + q * k + k - 1 + seq_len(p * k)], p, k)
    list(r = r, Z = Z, zn = zn, D = sweep(Z, 2, zn, "/"), b0 = b0, A = A)
  }
  forward <- function(x) {
    V <- sweep(x$D, 2, x$r, "*")
    S <- Ut %*% V
    H <- if (inside) sweep(S, 2, x$b0, "+") / tau else sweep(S / tau, 2, x$b0, "+")
    H <- H - row_max(H)
    G <- exp(H)
    G <- G / rowSums(G)
    eta <- X %*% x$A
    Mu <- if (tanh_act) tanh(eta) else eta
    m <- rowSums(G * Mu)
    list(V = V, G = G, Mu = Mu, e = y - m, m = m)
  }
  # optim() asks for fn and gr at the same point: keep the last forward pass.
  last <- new.env(parent = emptyenv())
  pass <- function(par) {
    if (!identical(par, last$par)) {
      last$x <- parts(par)
      last$f <- forward(last$x)
      last$par <- par
    }
    last
  }
  fn <- function(par) {
    f <- pass(par)$f
    sum(f$e^2) / n
  }
  gr <- function(par) {
    p <- pass(par)
    x <- p$x
    f <- p$f
    # d (RSS / n) / d h_ni = -2 e_n G_ni (Mu_ni - m_n) / n
    dH <- (-2 / n) * f$e * f$G * (f$Mu - f$m)
    dS <- dH / tau
    dV <- crossprod(Ut, dS)
    db0 <- colSums(if (inside) dS else dH)
    dr <- colSums(x$D * dV)
    # d v / d z = r (I - d d') / ||z||
    dZ <- sweep(dV - sweep(x$D, 2, dr, "*"), 2, x$r / x$zn, "*")
    dMu <- if (tanh_act) 1 - f$Mu^2 else 1
    dA <- crossprod(X, (-2 / n) * f$e * f$G * dMu)
    c(dr, as.numeric(dZ), db0[-k], as.numeric(dA))
  }
  list(par0 = par0, fn = fn, gr = gr, n = n,
       lower = c(rep(0, k), rep(-Inf, length(par0) - k)),
       upper = c(rep(1, k), rep(Inf, length(par0) - k)),
       v = function(par) {
         x <- parts(par)
         sweep(x$D, 2, x$r, "*")
       })
}

# Observed information (minus the Hessian, central differences of the score)
# and its version scaled to unit diagonal where the diagonal is positive.
scaled_information <- function(ev, theta, free = seq_along(theta), expand = NULL) {
  gradient <- function(x) {
    g <- ev$eval(x)
    if (is.null(g)) stop("the information step left the parameter space", call. = FALSE)
    g$gradient
  }
  H <- difference_jacobian(gradient, theta, ev$variance, ev$floor)
  info <- -(H + t(H)) / 2
  if (!is.null(expand)) info <- t(expand) %*% info %*% expand
  d <- diag(info)
  s <- rep(1, length(d))
  s[d > 0] <- 1 / sqrt(d[d > 0])
  list(info = info, scale = s, scaled = info * outer(s, s))
}

# Damped Newton ascent from theta. `fixed`: a function mapping the free
# parameters phi to the full theta (a linear map A phi + b given by `A` and
# `to_full`), for the profile; NULL for the full parameter vector.
#
# `settle_tol` (>= grad_tol, or NULL): once the criterion is at most
# settle_tol, a step whose gain is at the rounding level of the
# log-likelihood (at most 64 eps |loglik|) ends the ascent ("rounding"):
# below that the criterion is rounding in the score, not distance to the
# maximum (a converged fit at n = 400 took 12 such steps, gains 1e-13, its
# criterion hovering at 3e-9 to 4e-8 over grad_tol = 1e-9). The stop needs
# the criterion at settle_tol, so a run-off, whose gains shrink while its
# gradient does not vanish, is not mistaken for a maximum.
newton_ascent <- function(ev, theta, grad_tol, maxit, A = NULL, to_full = NULL, phi = NULL,
                          refresh = 1L, n_null = 0L, settle_tol = NULL) {
  full <- if (is.null(A)) function(x) x else to_full
  x <- if (is.null(A)) theta else phi
  cur <- ev$eval(full(x))
  if (is.null(cur)) stop("the start is outside the parameter space", call. = FALSE)
  grad_of <- function(g) if (is.null(A)) g else as.numeric(crossprod(A, g))
  crit <- ev$criterion(grad_of(cur$gradient), x)
  steps <- 0L
  stop_reason <- "criterion"
  while (crit > grad_tol) {
    if (steps >= maxit) {
      stop_reason <- "maxit"
      break
    }
    # The information costs 2P score passes: `refresh` > 1 reuses it for
    # that many steps (a chord method: cheaper steps, linear convergence).
    if (steps %% refresh == 0L || !exists("e", inherits = FALSE)) {
      info <- scaled_information(ev, full(x), expand = A)
      e <- eigen(info$scaled, symmetric = TRUE)
    }
    # `n_null` exact invariances: their (numerically zero) eigenvalues are
    # left out of the step, which would otherwise divide rounding by rounding.
    m <- length(e$values) - n_null
    keep <- seq_len(m)
    lam <- if (e$values[m] > 1e-12 * e$values[1]) 0 else -e$values[m] + 1e-8 * e$values[1]
    g <- grad_of(cur$gradient) * info$scale
    ev_keep <- e$vectors[, keep, drop = FALSE]
    step <- info$scale * as.numeric(ev_keep %*% (crossprod(ev_keep, g) / (e$values[keep] + lam)))
    # The Newton (or Levenberg) step, halved until it raises the
    # log-likelihood; failing that, a steepest-ascent step in the scaled
    # coordinates (length 1 / largest eigenvalue), halved the same way: a
    # near-singular information can point the Newton step along a direction
    # where its gain is below rounding.
    accepted <- FALSE
    directions <- list(step, info$scale * g / e$values[1])
    for (dir in directions) {
      t <- 1
      for (half in 1:40) {
        cand <- x + t * dir
        nx <- ev$eval(full(cand))
        if (!is.null(nx) && nx$loglik > cur$loglik) {
          accepted <- TRUE
          break
        }
        t <- t / 2
      }
      if (accepted) break
    }
    if (!accepted) {
      stop_reason <- "no_ascent"
      break
    }
    gain <- nx$loglik - cur$loglik
    x <- cand
    cur <- nx
    crit <- ev$criterion(grad_of(cur$gradient), x)
    steps <- steps + 1L
    if (crit > grad_tol && !is.null(settle_tol) && crit <= settle_tol &&
        gain <= 64 * .Machine$double.eps * max(1, abs(cur$loglik))) {
      stop_reason <- "rounding"
      break
    }
  }
  list(theta = full(x), phi = x, loglik = cur$loglik, criterion = crit, steps = steps,
       stop = stop_reason)
}

# The most different pair of gate vectors (reference vector 0 included when
# the gate keeps one) and its distance; with `cells` (the true atom of each
# fitted one) only pairs that share a cell, if any do: the split of a true
# expert.
gate_sharpness <- function(params, cells = NULL) {
  W <- params$gate$W
  k <- ncol(W)
  best <- list(i = NA_integer_, j = NA_integer_, sharpness = 0)
  shared <- !is.null(cells) && anyDuplicated(cells) > 0
  for (i in seq_len(k)) for (j in seq_len(k)) {
    if (i == j || shared && cells[i] != cells[j]) next
    s <- sqrt(sum((W[, i] - W[, j])^2))
    if (s > best$sharpness) best <- list(i = i, j = j, sharpness = s)
  }
  best
}

# Profile log-likelihood in the sharpness c = ||w_i - w_j|| of the pair that
# splits a true atom (else the sharpest pair), direction fixed, at multiples
# of its value at theta. Warm start of each point: the minor atom of the pair
# (smaller posterior mass) has its logit difference to the other scaled by
# the ratio of sharpnesses, so the boundary stays in place and no other
# atom's logits move; then the parameters go back to the gate's reference
# convention.
sharpen_profile <- function(ev, theta, multiples, grad_tol, maxit, setting, cells = NULL) {
  params <- ev$params(theta)
  W <- params$gate$W
  q <- nrow(W)
  k <- ncol(W)
  pair <- gate_sharpness(params, cells)
  mass <- ev$mass(theta)
  moved <- if (mass[pair$i] <= mass[pair$j]) pair$i else pair$j
  partner <- if (moved == pair$i) pair$j else pair$i
  c_hat <- pair$sharpness
  info <- gate_info(setting$gate, q, k)
  kw <- if (isTRUE(info$w_reference)) k - 1L else k
  w_pos <- function(e) if (e <= kw) (e - 1L) * q + seq_len(q) else integer(0)
  # The constrained vector is the pair's free one: w_f = w_g + c u.
  f <- if (length(w_pos(moved))) moved else partner
  g <- if (f == moved) partner else moved
  u <- (W[, f] - W[, g]) / c_hat
  P <- length(theta)
  free <- setdiff(seq_len(P), w_pos(f))
  A <- diag(P)[, free, drop = FALSE]
  if (length(w_pos(g))) A[w_pos(f), match(w_pos(g), free)] <- diag(q)
  base <- ev$eval(theta, FALSE)$loglik
  cur <- params
  c_prev <- c_hat
  # Warm starts need small moves: the profile walks up a grid of ratio at
  # most 1.5 through the requested multiples and reports every point.
  top <- max(multiples)
  grid <- sort(unique(c(multiples, exp(seq(0, log(top), length.out = ceiling(log(top) / log(1.5)) + 1)))))
  # Drop grid points that are a requested multiple up to rounding.
  near <- vapply(grid, function(g) any(abs(g - multiples) < 1e-9 * g) && !(g %in% multiples), NA)
  grid <- grid[!near & (grid > 1 | grid %in% multiples)]
  rows <- lapply(grid, function(mult) {
    cc <- mult * c_hat
    start <- cur
    Wm <- start$gate$W
    b0 <- start$gate$b0
    Wm[, moved] <- Wm[, partner] + (Wm[, moved] - Wm[, partner]) * cc / c_prev
    b0[moved] <- b0[partner] + (b0[moved] - b0[partner]) * cc / c_prev
    if (isTRUE(info$w_reference)) Wm <- Wm - Wm[, k]
    if (isTRUE(info$b_reference)) b0 <- b0 - b0[k]
    start$gate$W[] <- Wm
    start$gate$b0[] <- b0
    th <- ev$pack(start)
    offset <- numeric(P)
    offset[w_pos(f)] <- cc * u
    to_full <- function(phi) as.numeric(A %*% phi) + offset
    res <- tryCatch(newton_ascent(ev, to_full(th[free]), grad_tol, maxit, A = A,
                                  to_full = to_full, phi = th[free], refresh = 4L),
                    error = function(e) NULL)
    if (is.null(res)) {
      return(data.frame(multiple = mult, sharpness = cc, loglik = NA_real_, criterion = NA_real_,
                        loss = NA_real_))
    }
    cur <<- ev$params(res$theta)
    c_prev <<- cc
    loss <- tryCatch(maximum_losses(setting, cur)[["loss"]], error = function(e) NA_real_)
    data.frame(multiple = mult, sharpness = cc, loglik = res$loglik, criterion = res$criterion,
               loss = loss)
  })
  out <- do.call(rbind, rows)
  out$requested <- out$multiple %in% multiples
  rownames(out) <- NULL
  out$gain <- out$loglik - base
  out[, c("multiple", "requested", "sharpness", "loglik", "gain", "criterion", "loss")]
}

# The study's first loss at params and, for a Voronoi loss, its parts: the
# weight discrepancy and each parameter block's term summed over the atoms,
# in the translation the loss chose.
maximum_losses <- function(setting, params) {
  spec <- list(gate = setting$gate, expert = setting$expert, method = setting$method)
  fit <- c(spec, list(params = params, loglik = NA_real_))
  # A loss function's every value (loss, loss_<name>: the study's columns).
  if (is.function(setting$loss)) return(study_loss(setting, fit, strict = FALSE))
  v <- voronoi_loss(fit, setting$truth, exponents = setting$loss, detail = TRUE)
  fa <- voronoi_atoms(params, spec, "fit")
  ta <- voronoi_atoms(setting$truth, spec, "truth")
  tr <- v$translation
  tw <- tr[grepl("^t_w", names(tr))]
  s <- exp(tr[["t_0"]])
  r_fun <- exponent_table(setting$loss)
  parts <- vapply(names(fa$blocks), function(b) {
    sum(vapply(seq_len(fa$k), function(a) {
      cell <- v$cells[a]
      x <- fa$blocks[[b]][a, ]
      if (b == "w" && length(tw)) x <- x + tw
      s * fa$weight[a] * sqrt(sum((x - ta$blocks[[b]][cell, ])^2))^r_fun(b, v$cell_sizes[cell])
    }, 0))
  }, 0)
  structure(c(loss = v$loss, loss_weight = v$weight,
              stats::setNames(parts, paste0("loss_", names(parts)))), cells = v$cells)
}

