# Voronoi losses between a fitted and a true mixing measure, and
# density-level errors (MODELS.md sections 5 and 6).
#
# A parameter set is turned into "atoms": per expert a gate intercept b0 (the
# mixing weight) and a named list of parameter blocks (w, a, b, nu, eta, t,
# tau), each a k-row matrix. Cells, weight and parameter discrepancies are
# computed on those matrices; only the translation search loops in R, and it
# is a handful of evaluations of a cheap function.

#' Voronoi loss between a fitted and a true mixture of experts
#'
#' Measures how far the fitted mixing measure \eqn{G = \sum_i e^{b_{0i}}
#' \delta_{\theta_i}} is from the true one \eqn{G_* = \sum_j e^{b^*_{0j}}
#' \delta_{\theta^*_j}}, where \eqn{\theta_i} collects every parameter of
#' expert \eqn{i} except its gate intercept. Each fitted atom joins the Voronoi
#' cell \eqn{A_j} of its nearest true atom (Euclidean distance between the
#' \eqn{\theta} vectors; ties go to the lowest \eqn{j}), and
#' \deqn{\mathcal{D}(G, G_*) = \sum_j \Big| \sum_{i \in A_j} e^{b_{0i}} -
#' e^{b^*_{0j}} \Big| + \sum_j \sum_{i \in A_j} e^{b_{0i}} \sum_{B}
#' \|\Delta_B \theta_{ij}\|^{r(B, |A_j|)},}
#' the weight discrepancy plus the parameter discrepancy, where \eqn{B} runs
#' over the parameter blocks and \eqn{r(B, m)} is the exponent table.
#'
#' @section Parameter blocks: `w` gate vector (divided by nothing: the
#'   temperature is its own block `tau` when it is estimated; for the plain
#'   cosine score, whose value ignores \eqn{\|w_i\|}, the unit vector
#'   \eqn{w_i / \|w_i\|}); Gaussian experts: `a` slopes, `b` intercept, `nu`
#'   variance (maximum-likelihood fits only: least-squares fits have one
#'   nuisance noise variance, not an expert parameter); multinomial experts:
#'   `eta` slopes and `t` intercepts of the non-reference classes. The expert
#'   intercept is the coefficient row named `"(Intercept)"`, or the first row
#'   when the rows are unnamed (the [moe_params()] convention).
#'
#' @section Exponent tables: `"D1"`: \eqn{r = 1} for every block of a singleton
#'   cell and \eqn{r = 2} in cells of two or more atoms (the multinomial
#'   logistic papers). `"rbar"`: the Gaussian mixture-of-experts table of
#'   Nguyen, Nguyen and Ho (2023): \eqn{r = 1} in singleton cells; in a cell of
#'   \eqn{m \ge 2} atoms, `w`, `b` (and `t`, `tau`) get \eqn{\bar r(m)} and `a`,
#'   `nu` (and `eta`) get \eqn{\bar r(m)/2}, with \eqn{\bar r(2) = 4},
#'   \eqn{\bar r(3) = 6} and, for \eqn{m \ge 4}, \eqn{\bar r(m) = 2m}.
#'   \eqn{\bar r(m)} is the order of the polynomial system of Ho and Nguyen
#'   (2016) for location-scale Gaussian mixtures; they prove \eqn{\bar r(2) =
#'   4}, \eqn{\bar r(3) = 6} and only \eqn{\bar r(m) \ge 7} for \eqn{m \ge 4};
#'   \eqn{2m} continues the proven values and respects that bound (it is their
#'   conjecture, not a theorem). Cells of size 4 or more need at least 5 fitted
#'   experts per true one. Any other table: a function `function(block, m)`
#'   returning the exponent, or a named list with one numeric vector per block
#'   (entry \eqn{m} is the exponent for cells of size \eqn{m}, the last entry
#'   is used for larger cells; an entry `default` covers unlisted blocks).
#'
#' @section Identifiability conventions: Fit and truth are first put in the
#'   gate's reference convention (see [gate()]): the last expert's `b0` (and
#'   its `w` for the linear softmax gate) is subtracted from all experts. For
#'   gates invariant under a common translation (softmax normalizer) the
#'   reference is an arbitrary choice, and a fit whose extra experts split the
#'   *reference* expert of the truth would keep a weight discrepancy of about
#'   \eqn{m - 1} forever (the split experts each carry intercept near 0 instead
#'   of \eqn{-\log m}). `translation = "optimize"` (the default) therefore
#'   minimises the loss over a common translation \eqn{(t_w, t_0)} added to all
#'   fitted gate vectors and intercepts (\eqn{t_w} only when the gate vectors
#'   are translation invariant, i.e. the linear softmax gate). For fixed
#'   \eqn{t_w} the loss is convex and piecewise linear in \eqn{s = e^{t_0}}, so
#'   \eqn{t_0} is solved exactly over its breakpoints (the \eqn{s} at which one
#'   cell's weights match exactly, and \eqn{s = 1}); \eqn{t_w} is searched
#'   over the candidates \eqn{0} and \eqn{w^*_j - w_i} (align one fitted gate
#'   vector with one true one), then refined from the best candidate with
#'   [stats::optim()]. The result never exceeds the reference-convention loss,
#'   does not depend on which fitted expert is the reference, and is 0 exactly
#'   when the two mixing measures agree up to the gate's invariance.
#'   `translation = "reference"` gives the loss in the plain reference
#'   convention (what the public NeurIPS 2023 study code computed).
#'
#' @section Mixing weights: softmax-normalised gates use \eqn{e^{b_{0i}}}; the
#'   sigmoid and normalised sigmoid gates, whose intercepts are not
#'   log-weights and which are not translation invariant, use
#'   \eqn{\sigma(b_{0i})}, the weight the intercept gives an expert whose score
#'   is 0.
#'
#' @param fit A fitted [moe()] model, or a [moe_params()] object (then give
#'   `gate`, `expert` and `method` if they differ from the defaults).
#' @param truth A [moe_params()] object: the true parameters (any number of
#'   experts).
#' @param exponents `"D1"`, `"rbar"`, a function `function(block, m)` or a named
#'   list; see Exponent tables.
#' @param gate,expert Gate and expert specifications of `fit` and `truth`.
#'   Default: those of `fit` when it is a model, else [gate_softmax()] and the
#'   family implied by the coefficients.
#' @param method `"ml"` or `"lsq"`: decides whether expert variances are a
#'   parameter block. Default: the fit's method, else `"ml"`.
#' @param translation `"optimize"` or `"reference"`; see Identifiability
#'   conventions.
#' @param detail Logical: return the components as well?
#' @return The loss, a non-negative number. With `detail = TRUE` a list with
#'   `loss`, `weight` and `parameter` (its two parts), `cells` (the true atom
#'   of each fitted expert), `cell_sizes`, `translation` (the \eqn{(t_w, t_0)}
#'   used) and `reference` (the reference-convention loss).
#' @references
#' Nguyen, Nguyen, Ho (2023). Demystifying softmax gating function in Gaussian
#' mixture of experts. NeurIPS. arXiv:2305.03288.
#'
#' Ho, Nguyen (2016). Convergence rates of parameter estimation for some weakly
#' identifiable finite mixtures. Annals of Statistics 44, 2726-2755.
#' @seealso [density_error()], [rate_study()].
#' @examples
#' truth <- moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
#'                     coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.09, 0.16))
#' # Three fitted experts; the last two split the true reference expert.
#' fit <- moe_params(W = matrix(c(25.1, 0.02, 0), 1), b0 = c(-8 + log(2), 0.01, 0),
#'                   coef = cbind(c(15, -20), c(-5, 20.1), c(-5.05, 20)),
#'                   sigma2 = c(0.09, 0.16, 0.15))
#' voronoi_loss(fit, truth, "rbar")
#' voronoi_loss(fit, truth, "rbar", translation = "reference")  # stalls near 1
#' str(voronoi_loss(fit, truth, "D1", detail = TRUE))
#' @export
voronoi_loss <- function(fit, truth, exponents = "D1", gate = NULL, expert = NULL,
                         method = NULL, translation = c("optimize", "reference"),
                         detail = FALSE) {
  translation <- match_arg(translation)
  check_flag(detail, "detail")
  spec <- loss_spec(fit, gate, expert, method)
  if (!inherits(truth, "moe_params")) stop_arg("truth", "a moe_params object", got = truth)
  r_fun <- exponent_table(exponents)
  fit_atoms <- voronoi_atoms(spec$params, spec, "fit")
  true_atoms <- voronoi_atoms(truth, spec, "truth")
  if (!identical(lapply(fit_atoms$blocks, ncol), lapply(true_atoms$blocks, ncol))) {
    stop_arg("truth", "parameters of the same shapes as the fit's (blocks ",
             paste(names(fit_atoms$blocks), vapply(fit_atoms$blocks, ncol, 0), sep = ":", collapse = ", "),
             "); got ", paste(names(true_atoms$blocks), vapply(true_atoms$blocks, ncol, 0),
                              sep = ":", collapse = ", "))
  }
  block_r <- function(m) vapply(names(fit_atoms$blocks), function(b) {
    r <- r_fun(b, m)
    if (!is.numeric(r) || length(r) != 1 || !is.finite(r) || r <= 0) {
      stop_arg("exponents", "positive exponents; block \"", b, "\" and cell size ", m,
               " gave ", describe(r))
    }
    r
  }, 0)
  r_cache <- lapply(seq_len(nrow(fit_atoms$b0_mat)), block_r)
  eval_at <- function(tw, profile) {
    voronoi_eval(fit_atoms, true_atoms, tw, profile, r_cache)
  }
  q <- ncol(fit_atoms$blocks$w %||% matrix(0, 0, 0))
  reference <- eval_at(numeric(0), profile = FALSE)
  best <- reference
  if (translation == "optimize" && fit_atoms$b_shift) {
    if (fit_atoms$w_shift && q > 0) {
      best <- optimize_translation(eval_at, fit_atoms, true_atoms)
    } else {
      best <- eval_at(numeric(0), profile = TRUE)
    }
    if (reference$loss < best$loss) best <- reference
  }
  if (!is.finite(best$loss)) {
    stop_arg("truth", "parameters whose Voronoi loss against the fit is finite; the loss ",
             "overflows (gate intercepts or discrepancies too large for double precision)")
  }
  if (!detail) return(best$loss)
  c(best[c("loss", "weight", "parameter", "cells", "cell_sizes", "translation")],
    list(reference = reference$loss))
}

# ---- inputs -------------------------------------------------------------------

# Parameters, gate, expert and method of a fit, whatever form it arrives in:
# a moe object, the internal fit list of moe_fit() (it has $params), or a
# moe_params object.
loss_spec <- function(fit, gate, expert, method, arg = "fit") {
  if (inherits(fit, "moe_params")) {
    params <- fit
  } else if (is.list(fit) && inherits(fit$params, "moe_params")) {
    params <- fit$params
    gate <- gate %||% fit$gate
    expert <- expert %||% fit$expert
    method <- method %||% fit$method
  } else {
    stop_arg(arg, "a fitted moe model or a moe_params object", got = fit)
  }
  gate <- as_gate(gate %||% gate_softmax())
  if (is.null(expert)) {
    expert <- if (length(dim(params$expert$coef)) == 3) expert_multinomial() else expert_gaussian()
  }
  expert <- as_expert(expert)
  method <- check_choice(method %||% "ml", c("ml", "lsq"), "method")
  list(params = params, gate = gate, expert = expert, method = method)
}

# The exponent table as a function(block, m).
exponent_table <- function(exponents) {
  if (is.function(exponents)) return(exponents)
  if (is.character(exponents) && length(exponents) == 1) {
    return(switch(exponents,
      D1 = function(block, m) if (m <= 1) 1 else 2,
      rbar = function(block, m) {
        if (m <= 1) return(1)
        rbar <- if (m == 2) 4 else if (m == 3) 6 else 2 * m
        if (block %in% c("a", "nu", "eta")) rbar / 2 else rbar
      },
      stop_arg("exponents", '"D1", "rbar", a function(block, m) or a named list', got = exponents)))
  }
  if (is.list(exponents) && !is.null(names(exponents)) &&
      all(vapply(exponents, function(e) is.numeric(e) && length(e) > 0, TRUE))) {
    return(function(block, m) {
      e <- exponents[[block]] %||% exponents[["default"]]
      if (is.null(e)) {
        stop_arg("exponents", "an entry for every parameter block; \"", block,
                 "\" is missing (or give `default`)")
      }
      e[min(m, length(e))]
    })
  }
  stop_arg("exponents", '"D1", "rbar", a function(block, m) or a named list of numeric vectors',
           got = exponents)
}

# Row of the expert coefficients that holds the intercept (NA: none).
intercept_row <- function(coef) {
  rn <- dimnames(coef)[[1]]
  if (is.null(rn) || all(rn == "")) return(1L)
  match("(Intercept)", rn)
}

# Atoms of a parameter set in the gate's reference convention.
voronoi_atoms <- function(params, spec, arg) {
  gate <- spec$gate
  W <- params$gate$W
  k <- ncol(W)
  q <- nrow(W)
  info <- gate_info(gate, q, k)
  b0 <- as.numeric(params$gate$b0)
  if (isTRUE(info$w_reference)) W <- W - W[, k]
  if (isTRUE(info$b_reference)) b0 <- b0 - b0[k]
  w <- t(W)
  if (gate$score == "cosine") {
    norms <- sqrt(rowSums(w^2))
    w <- w / ifelse(norms > 0, norms, 1)
  }
  blocks <- list(w = unname(matrix(w, k, q)))
  if (isTRUE(gate$estimate_tau)) blocks$tau <- matrix(params$gate$tau, k, 1)
  coef <- params$expert$coef
  ir <- intercept_row(coef)
  if (spec$expert$family == "gaussian") {
    if (length(dim(coef)) != 2) stop_arg(arg, "Gaussian expert coefficients (a p x k matrix)")
    slopes <- if (is.na(ir)) coef else coef[-ir, , drop = FALSE]
    if (nrow(slopes) > 0) blocks$a <- unname(t(slopes))
    if (!is.na(ir)) blocks$b <- matrix(coef[ir, ], k, 1)
    if (spec$method == "ml") {
      if (is.null(params$expert$sigma2)) stop_arg(arg, "expert variances `sigma2`")
      blocks$nu <- matrix(params$expert$sigma2, k, 1)
    }
  } else {
    if (length(dim(coef)) != 3) stop_arg(arg, "multinomial expert coefficients (a p x (K - 1) x k array)")
    p <- dim(coef)[1]
    slope_rows <- setdiff(seq_len(p), ir)
    if (length(slope_rows) > 0) {
      blocks$eta <- t(matrix(coef[slope_rows, , , drop = FALSE], ncol = k))
    }
    if (!is.na(ir)) blocks$t <- t(matrix(coef[ir, , , drop = FALSE], ncol = k))
  }
  exp_weights <- gate$normalizer == "softmax"
  if (exp_weights && any(b0 > log(.Machine$double.xmax))) {
    # The softmax loss weighs atoms by exp(b0): beyond ~709.8 they overflow
    # and the loss would come back as Inf.
    stop_arg(arg, "gate intercepts below ", signif(log(.Machine$double.xmax), 5),
             " (relative to the reference expert), so that the loss's weights exp(b0) are ",
             "finite; the largest is ", signif(max(b0), 5))
  }
  list(b0 = b0, b0_mat = matrix(b0, k, 1), blocks = blocks,
       theta = do.call(cbind, blocks), k = k,
       weight = if (exp_weights) exp(b0) else stats::plogis(b0),
       b_shift = exp_weights && isTRUE(info$b_reference),
       w_shift = exp_weights && isTRUE(info$w_reference))
}

# ---- the loss at a given translation ---------------------------------------------

# Loss after adding tw to every fitted gate vector; with profile = TRUE the
# intercept translation t0 is chosen optimally (exactly: see ?voronoi_loss).
voronoi_eval <- function(fit, truth, tw, profile, r_cache) {
  blocks <- fit$blocks
  theta <- fit$theta
  if (length(tw) > 0) {
    shift <- matrix(tw, fit$k, length(tw), byrow = TRUE)
    blocks$w <- blocks$w + shift
    theta[, seq_along(tw)] <- theta[, seq_along(tw)] + shift
  }
  k_true <- truth$k
  # Squared distances, fitted atoms in rows, true atoms in columns.
  d2 <- vapply(seq_len(k_true), function(j) {
    rowSums((theta - matrix(truth$theta[j, ], fit$k, ncol(theta), byrow = TRUE))^2)
  }, numeric(fit$k))
  d2 <- matrix(d2, fit$k, k_true)
  # Ties go to the lowest true atom; a relative 1e-12 margin keeps rounding
  # from hiding a tie.
  cells <- vapply(seq_len(fit$k), function(i) {
    which(d2[i, ] <= min(d2[i, ]) * (1 + 1e-12))[1]
  }, 1L)
  sizes <- tabulate(cells, k_true)
  disc <- vapply(seq_len(fit$k), function(i) {
    j <- cells[i]
    r <- r_cache[[sizes[j]]]
    sum(vapply(names(blocks), function(b) {
      sqrt(sum((blocks[[b]][i, ] - truth$blocks[[b]][j, ])^2))^r[[b]]
    }, 0))
  }, 0)
  v <- fit$weight
  cell_mass <- vapply(seq_len(k_true), function(j) sum(v[cells == j]), 0)
  param_part <- sum(v * disc)
  loss_at <- function(s) sum(abs(s * cell_mass - truth$weight)) + s * param_part
  s <- 1
  if (profile) {
    candidates <- c(1, (truth$weight / cell_mass)[cell_mass > 0])
    values <- vapply(candidates, loss_at, 0)
    s <- candidates[which.min(values)]
  }
  list(loss = loss_at(s), weight = sum(abs(s * cell_mass - truth$weight)),
       parameter = s * param_part, cells = cells, cell_sizes = sizes,
       translation = c(t_w = tw, t_0 = log(s)))
}

# Search over the gate-vector translation tw (the intercept one is profiled).
optimize_translation <- function(eval_at, fit, truth) {
  q <- ncol(fit$blocks$w)
  cand <- list(numeric(q))
  for (i in seq_len(fit$k)) for (j in seq_len(truth$k)) {
    cand[[length(cand) + 1]] <- truth$blocks$w[j, ] - fit$blocks$w[i, ]
  }
  cand <- unique(cand)
  evals <- lapply(cand, eval_at, profile = TRUE)
  values <- vapply(evals, function(e) e$loss, 0)
  best <- evals[[which.min(values)]]
  start <- cand[[which.min(values)]]
  objective <- function(tw) eval_at(tw, profile = TRUE)$loss
  scale <- max(1, sqrt(sum(truth$blocks$w^2)), sqrt(sum(fit$blocks$w^2)))
  opt <- if (q == 1) {
    stats::optim(start, objective, method = "Brent", lower = start - scale, upper = start + scale,
                 control = list(reltol = 1e-12))
  } else {
    stats::optim(start, objective, method = "Nelder-Mead",
                 control = list(reltol = 1e-12, maxit = 500 * q))
  }
  if (opt$value < best$loss) best <- eval_at(opt$par, profile = TRUE)
  best
}

# ---- density-level errors ------------------------------------------------------

#' Density-level error of a fitted mixture of experts
#'
#' Compares fitted and true models through what they predict rather than
#' through their parameters, averaging over covariates drawn afresh:
#' \itemize{
#'   \item maximum-likelihood fits: the expected Hellinger distance
#'     \eqn{E_x h(p(\cdot|x), p_*(\cdot|x))}, with \eqn{h^2 = \frac12 \int
#'     (\sqrt{p} - \sqrt{p_*})^2}, and the expected total variation
#'     \eqn{E_x \frac12 \int |p - p_*|}. Multinomial experts: exact sums over
#'     the classes. Gaussian experts: Gauss-Hermite quadrature with `n_nodes`
#'     nodes per mixture component, integrating against the mixture
#'     \eqn{(p + p_*)/2}; the integrands \eqn{(\sqrt p - \sqrt{p_*})^2 / (p +
#'     p_*)} and \eqn{|p - p_*| / (p + p_*)} are bounded by 1, which keeps the
#'     quadrature stable however different the two densities are. The
#'     Hellinger integrand is smooth and 40 nodes give it to about six digits;
#'     the total variation's has a kink where the densities cross, which
#'     limits it to about 1% relative error with 40 nodes (0.3% with 160),
#'     harmless for rate slopes. Gaussian fits
#'     also report the L2 distance of the mean functions;
#'   \item least-squares fits: the \eqn{L^2(\mu)} distance between the
#'     regression functions, \eqn{\sqrt{E_x (m(x) - m_*(x))^2}}.
#' }
#' The expectation over \eqn{x} is a Monte Carlo average over `n_mc`
#' covariate draws (default \eqn{10^4}, which gives a relative standard error
#' of about 1% for these bounded, positive errors; the standard errors are
#' returned). A deterministic `x_dist` (such as an equispaced grid) makes the
#' average a quadrature rule instead.
#'
#' @inheritParams voronoi_loss
#' @param n_mc Number of covariate draws.
#' @param x_dist Covariate distribution: a function `function(n, d)` returning
#'   an n x d matrix (d = number of expert covariates without the intercept;
#'   the gate sees the same covariates), or a fixed matrix (then `n_mc` is
#'   ignored). `NULL` with a fitted model: rows resampled from the fit's own
#'   covariates. For formula fits with transformed covariates, give a function
#'   returning a data frame of the model's variables.
#' @param n_nodes Gauss-Hermite nodes per Gaussian component.
#' @return A named numeric vector: `hellinger`, `total_variation` (likelihood
#'   fits) and `l2` (Gaussian experts), with attributes `se` (Monte Carlo
#'   standard errors) and `n_mc`.
#' @seealso [voronoi_loss()].
#' @examples
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' set.seed(1)
#' d <- rmoe(400, truth)
#' fit <- moe(y ~ x1, data = d, k = 2)
#' density_error(fit, truth, n_mc = 2000,
#'               x_dist = function(n, d) matrix(runif(n * d, -1, 1), n, d))
#' @export
density_error <- function(fit, truth, n_mc = 1e4, x_dist = NULL, gate = NULL, expert = NULL,
                          method = NULL, n_nodes = 40) {
  spec <- loss_spec(fit, gate, expert, method)
  if (!inherits(truth, "moe_params")) stop_arg("truth", "a moe_params object", got = truth)
  n_mc <- check_count(n_mc, "n_mc")
  n_nodes <- check_count(n_nodes, "n_nodes")
  design <- error_design(fit, spec, n_mc, x_dist)
  fitted_parts <- model_parts(spec$params, spec, design$X, design$Z, arg = "fit")
  true_parts <- model_parts(truth, spec, design$X, design$Z, arg = "truth")
  per_x <- list()
  if (spec$method == "lsq") {
    per_x$l2 <- (fitted_parts$response - true_parts$response)^2
  } else if (spec$expert$family == "multinomial") {
    P <- fitted_parts$prob
    Q <- true_parts$prob
    per_x$hellinger <- sqrt(pmax(0, 0.5 * rowSums((sqrt(P) - sqrt(Q))^2)))
    per_x$total_variation <- 0.5 * rowSums(abs(P - Q))
  } else {
    per_x <- gaussian_distances(fitted_parts, true_parts, spec$params$expert$sigma2,
                                truth$expert$sigma2, n_nodes)
    per_x$l2 <- (fitted_parts$response - true_parts$response)^2
  }
  n <- length(per_x[[1]])
  est <- vapply(per_x, mean, 0)
  se <- vapply(per_x, function(v) stats::sd(v) / sqrt(n), 0)
  if ("l2" %in% names(est)) {
    # Delta method for the square root of the mean squared difference.
    se[["l2"]] <- if (est[["l2"]] > 0) se[["l2"]] / (2 * sqrt(est[["l2"]])) else 0
    est[["l2"]] <- sqrt(est[["l2"]])
  }
  structure(est, se = se, n_mc = n)
}

# Covariate design matrices for the density error.
error_design <- function(fit, spec, n_mc, x_dist) {
  coef <- spec$params$expert$coef
  has_intercept <- !is.na(intercept_row(coef))
  d <- dim(coef)[1] - has_intercept
  is_model <- inherits(fit, "moe")
  if (is.null(x_dist)) {
    if (!is_model) stop_arg("x_dist", "given when `fit` is a moe_params object")
    X <- model_design(fit, "expert")
    rows <- sample.int(nrow(X), n_mc, replace = TRUE)
    return(list(X = X[rows, , drop = FALSE], Z = model_design(fit, "gate")[rows, , drop = FALSE]))
  }
  x <- if (is.function(x_dist)) x_dist(n_mc, d) else x_dist
  if (is.data.frame(x)) {
    if (!is_model || is.null(fit$terms)) {
      stop_arg("x_dist", "a matrix of covariates unless `fit` is a formula fit")
    }
    nd <- new_design(fit, x, need_y = FALSE)
    return(list(X = nd$X, Z = nd$Z))
  }
  x <- as_numeric_matrix(x, "x_dist")
  check_finite_matrix(x, "x_dist")
  if (ncol(x) != d) {
    stop_arg("x_dist", "covariates with ", d, " column(s) (the expert covariates without ",
             "intercept); got ", ncol(x))
  }
  X <- if (has_intercept) cbind(1, x) else x
  list(X = X, Z = x)
}

# Gate weights and expert outputs of a parameter set at design matrices.
model_parts <- function(params, spec, X, Z, arg = "params") {
  coef <- params$expert$coef
  K <- if (length(dim(coef)) == 3) dim(coef)[2] + 1L else 0L
  model <- list(params = params, expert = spec$expert, gate = spec$gate, k = ncol(params$gate$W),
                levels = if (K > 0) paste0("class", seq_len(K)), control = list(nthreads = 1L))
  moe_predict_core(model, X, Z, arg = arg)
}

# Per-x Hellinger distance and total variation between two Gaussian mixtures,
# by Gauss-Hermite quadrature against their average.
gaussian_distances <- function(p_parts, q_parts, s2_p, s2_q, n_nodes) {
  gh <- gauss_hermite(n_nodes)
  G <- cbind(p_parts$gate, q_parts$gate) / 2
  Mu <- cbind(p_parts$expert, q_parts$expert)
  sd_all <- sqrt(c(s2_p, s2_q))
  kp <- length(s2_p)
  mixture <- function(y, Gm, Mum, sdm) {
    out <- 0
    for (i in seq_along(sdm)) out <- out + Gm[, i] * stats::dnorm(y, Mum[, i], sdm[i])
    out
  }
  h2 <- tv <- numeric(nrow(G))
  for (c in seq_along(sd_all)) {
    for (l in seq_along(gh$nodes)) {
      y <- Mu[, c] + sd_all[c] * gh$nodes[l]
      p <- mixture(y, p_parts$gate, p_parts$expert, sd_all[seq_len(kp)])
      q <- mixture(y, q_parts$gate, q_parts$expert, sd_all[-seq_len(kp)])
      s <- p + q
      ok <- s > 0
      ratio_h <- ratio_t <- numeric(length(s))
      ratio_h[ok] <- (sqrt(p[ok]) - sqrt(q[ok]))^2 / s[ok]
      ratio_t[ok] <- abs(p[ok] - q[ok]) / s[ok]
      # Integrating f against (p + q)/2 with the integrand divided by (p + q)/2:
      # h^2 = 1/2 * int (sqrt p - sqrt q)^2 = E_m[(sqrt p - sqrt q)^2 / (p + q)].
      h2 <- h2 + G[, c] * gh$weights[l] * ratio_h
      tv <- tv + G[, c] * gh$weights[l] * ratio_t
    }
  }
  list(hellinger = sqrt(pmin(1, pmax(0, h2))), total_variation = pmin(1, tv))
}

# Gauss-Hermite rule for the standard normal (Golub-Welsch): nodes and weights
# with sum(weights * f(nodes)) ~ E f(Z).
gauss_hermite <- function(n) {
  if (n == 1) return(list(nodes = 0, weights = 1))
  J <- matrix(0, n, n)
  off <- sqrt(seq_len(n - 1))
  J[cbind(seq_len(n - 1), 2:n)] <- off
  J[cbind(2:n, seq_len(n - 1))] <- off
  e <- eigen(J, symmetric = TRUE)
  list(nodes = e$values, weights = e$vectors[1, ]^2)
}
