# Simulation from a mixture of experts. All randomness comes from R's RNG;
# the gate and the experts are evaluated by the compiled code, exactly as in a
# fit.

#' Simulate from a mixture of experts
#'
#' Draws data from the mixture of experts with parameters `params`: the
#' covariates (unless given), then for every observation the latent expert
#' from the gate weights \eqn{G(z)} and the response from that expert. The
#' result is a data frame that [moe()] fits directly, e.g.
#' `moe(y ~ x1 + x2, data = sim, k = 2)`.
#'
#' For Gaussian experts \eqn{y = \mu_i(x) + \sqrt{\nu_i}\,\varepsilon}; for
#' multinomial experts \eqn{y} is a factor with levels `levels` (the last is
#' the reference class of `params`). For the plain (unnormalised) sigmoid gate
#' (`gate_sigmoid(normalize = FALSE)`), whose weights do not sum to one, there
#' is no latent expert: the data follow the regression model of the
#' least-squares estimator, \eqn{y = \sum_i G_i(z) h_i(x) + \varepsilon} with
#' \eqn{\varepsilon \sim N(0, \sigma^2)}, \eqn{\sigma^2 =}
#' `params$expert$sigma2[1]`, and the `expert` column is `NA`.
#'
#' @param n Number of observations. May be omitted when `x` is given.
#' @param params A [moe_params()] object. Its expert coefficients have one row
#'   per column of the expert design matrix (intercept first when
#'   `intercept = TRUE`) and its gate vectors one entry per gate covariate.
#' @param x Expert covariates: an n x d numeric matrix (or a vector when
#'   d = 1), without intercept column. `NULL`: drawn by `x_dist`, with
#'   d = `nrow(coef) - intercept`.
#' @param z Gate covariates, n x q. `NULL`: the same as `x`.
#' @param expert,gate The expert and gate specifications ([expert_gaussian()],
#'   [expert_multinomial()], [gate()]) or their string shorthands.
#' @param levels Class labels of a multinomial response, the last being the
#'   reference class. `NULL`: `"1"`, `"2"`, ..., `"K"`.
#' @param x_dist A function `function(n, d)` returning an n x d matrix of
#'   covariates; the default draws independent uniforms on \eqn{[-1, 1]}.
#' @param intercept Logical: does the first row of the expert coefficients
#'   belong to an intercept?
#' @return A data frame with the response `y`, the expert covariates `x1`,
#'   ..., `xd`, the gate covariates `z1`, ..., `zq` when `z` was given and
#'   differs from `x`, and the latent expert `expert` (an integer). The
#'   attribute `"truth"` holds `params`, `gate` and `expert`.
#' @seealso [simulate.moe()] to simulate from a fitted model.
#' @examples
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' set.seed(1)
#' sim <- rmoe(500, truth)
#' head(sim)
#' table(sim$expert)
#' fit <- moe(y ~ x1, data = sim, k = 2)
#' coef(fit, type = "params")
#'
#' # Multinomial experts with three classes and a temperature gate
#' mtruth <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0.5, 0), tau = 0.5,
#'                      coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2)))
#' head(rmoe(200, mtruth, expert = "multinomial", gate = gate_temperature(),
#'           levels = c("a", "b", "c")))
#' @export
rmoe <- function(n, params, x = NULL, z = NULL, expert = expert_gaussian(),
                 gate = gate_softmax(), levels = NULL,
                 x_dist = function(n, d) matrix(stats::runif(n * d, -1, 1), n, d),
                 intercept = TRUE) {
  if (!inherits(params, "moe_params")) {
    stop_arg("params", "a moe_params object (see ?moe_params)", got = params)
  }
  expert <- as_expert(expert)
  gate <- as_gate(gate)
  check_flag(intercept, "intercept")
  k <- ncol(params$gate$W)
  coef <- params$expert$coef
  multinomial <- expert$family == "multinomial"
  if (multinomial && length(dim(coef)) != 3) {
    stop_arg("params", "multinomial expert coefficients: a p x (K - 1) x k array")
  }
  if (!multinomial && length(dim(coef)) != 2) {
    stop_arg("params", "Gaussian expert coefficients: a p x k matrix")
  }
  if (!multinomial && is.null(params$expert$sigma2)) {
    stop_arg("params", "expert variances `sigma2` for Gaussian experts")
  }
  d <- nrow(coef) - intercept
  if (d < 0) stop_arg("params", "at least one row of expert coefficients (the intercept)")
  if (is.null(x)) {
    if (missing(n)) stop_arg("n", "given when `x` is not")
    n <- check_count(n, "n")
    if (!is.function(x_dist)) stop_arg("x_dist", "a function(n, d)", got = x_dist)
    x <- x_dist(n, d)
    if (!is.numeric(x) || !identical(dim(x), as.integer(c(n, d)))) {
      stop_arg("x_dist", "a function returning an n x d = ", n, " x ", d, " numeric matrix",
               got = x)
    }
  } else {
    x <- as_numeric_matrix(x, "x")
    if (!missing(n) && !identical(as.integer(n), nrow(x))) {
      stop_arg("n", "the number of rows of `x` (", nrow(x), ")", got = n)
    }
    n <- nrow(x)
    if (ncol(x) != d) {
      stop_arg("x", "a matrix with ", d, " column(s), one per non-intercept row of the expert ",
               "coefficients; got ", ncol(x))
    }
  }
  check_finite_matrix(x, "x")
  colnames(x) <- if (d > 0) paste0("x", seq_len(d))
  own_z <- !is.null(z)
  if (own_z) {
    z <- as_numeric_matrix(z, "z")
    if (nrow(z) != n) {
      stop_arg("z", "a matrix with one row per observation (", n, "); got ", nrow(z), " rows")
    }
    check_finite_matrix(z, "z")
    colnames(z) <- paste0("z", seq_len(ncol(z)))
    own_z <- !identical(unname(z), unname(x))
  } else {
    z <- x
  }
  q <- ncol(gate_input(gate, z))
  if (nrow(params$gate$W) != q) {
    stop_arg("params", "gate vectors of length ", q, " (the gate covariates); got ",
             nrow(params$gate$W))
  }
  X <- if (intercept) cbind(`(Intercept)` = 1, x) else x
  if (multinomial) {
    K <- dim(coef)[2] + 1L
    if (is.null(levels)) levels <- as.character(seq_len(K))
    if (length(levels) != K || anyDuplicated(levels)) {
      stop_arg("levels", K, " distinct class labels (the coefficients have ", K - 1,
               " non-reference classes)", got = levels)
    }
    levels <- as.character(levels)
  }
  model <- list(params = params, expert = expert, gate = gate, k = k, levels = levels,
                control = list(nthreads = 1L))
  parts <- moe_predict_core(model, X, z, arg = "params")
  draw <- draw_response(parts, model)
  out <- data.frame(y = draw$y, x, check.names = FALSE)
  if (own_z) out <- cbind(out, z)
  out$expert <- draw$expert
  rownames(out) <- NULL
  attr(out, "truth") <- list(params = params, gate = gate, expert = expert)
  out
}

# One draw of the response (and latent expert) given the gate weights and the
# expert outputs of moe_predict_core().
draw_response <- function(parts, model) {
  G <- parts$gate
  n <- nrow(G)
  # Least-squares fits and the plain sigmoid gate are regression models.
  regression <- model$gate$normalizer == "sigmoid" || identical(model$method, "lsq")
  if (model$expert$family == "multinomial") {
    if (regression) {
      stop_arg("gate", "a normalized gate for multinomial experts: the plain sigmoid's ",
               "weights do not sum to one")
    }
    latent <- draw_categorical(G)
    P <- parts$expert
    K <- dim(P)[2]
    probs <- matrix(P[cbind(rep(seq_len(n), K), rep(seq_len(K), each = n), rep(latent, K))], n, K)
    y <- factor(model$levels[draw_categorical(probs)], levels = model$levels)
    return(list(y = y, expert = latent))
  }
  s2 <- model$params$expert$sigma2
  if (regression) {
    # No latent expert: the regression function plus Gaussian noise.
    y <- as.numeric(parts$response) + sqrt(s2[1]) * stats::rnorm(n)
    return(list(y = y, expert = rep(NA_integer_, n)))
  }
  latent <- draw_categorical(G)
  mu <- parts$expert[cbind(seq_len(n), latent)]
  list(y = mu + sqrt(s2[latent]) * stats::rnorm(n), expert = latent)
}

# One category per row of a matrix of probabilities, by inversion of the
# cumulative sums with one uniform per row.
draw_categorical <- function(P) {
  P <- P / rowSums(P)
  cum <- P
  if (ncol(P) > 1) for (j in 2:ncol(P)) cum[, j] <- cum[, j - 1] + P[, j]
  u <- stats::runif(nrow(P))
  pmin(1L + as.integer(rowSums(u > cum)), ncol(P))
}

#' Simulate responses from a fitted mixture of experts
#'
#' Draws new responses at the covariates of the fit, from the fitted model:
#' the latent expert from the fitted gate, the response from that expert
#' (least-squares fits: the fitted regression function plus Gaussian noise
#' with the fitted variance). Follows the seed convention of
#' [stats::simulate()].
#'
#' @param object A fitted [moe()] model.
#' @param nsim Number of simulated response vectors.
#' @param seed `NULL`, or an integer passed to [set.seed()] before simulating;
#'   the previous state of the random number generator is then restored.
#' @param ... Unused.
#' @return A data frame with `nsim` columns `sim_1`, `sim_2`, ..., one row per
#'   observation of the fit, and the attribute `"seed"`: the seed, or the
#'   state of the generator before the simulation.
#' @examples
#' set.seed(4)
#' d <- rmoe(300, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                           coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
#' fit <- moe(y ~ x1, data = d, k = 2)
#' sims <- simulate(fit, nsim = 3, seed = 42)
#' head(sims)
#' identical(sims, simulate(fit, nsim = 3, seed = 42))
#' @export
simulate.moe <- function(object, nsim = 1, seed = NULL, ...) {
  nsim <- check_count(nsim, "nsim")
  # The seed convention of stats:::simulate.lm.
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  if (is.null(seed)) {
    rng_state <- get(".Random.seed", envir = .GlobalEnv)
  } else {
    old_seed <- get(".Random.seed", envir = .GlobalEnv)
    set.seed(seed)
    rng_state <- structure(seed, kind = as.list(RNGkind()))
    on.exit(assign(".Random.seed", old_seed, envir = .GlobalEnv))
  }
  X <- model_design(object, "expert")
  parts <- moe_predict_core(object, X, model_design(object, "gate"), offset = object$offset)
  sims <- lapply(seq_len(nsim), function(s) draw_response(parts, object)$y)
  out <- as.data.frame(stats::setNames(sims, paste0("sim_", seq_len(nsim))))
  rownames(out) <- rownames(X) %||% seq_len(nrow(X))
  attr(out, "seed") <- rng_state
  out
}
