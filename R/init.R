# Starting values near the truth: the simulation studies' protocol.

#' Starting values near the true parameters
#'
#' Builds a starting-value function for `moe_control(init = )` that starts
#' each EM run (or least-squares run) near known true parameters, as the
#' simulation studies of the papers do. **This is a simulation protocol, not
#' something real data offers**: it isolates the statistical behaviour of the
#' estimator from the search for the global optimum.
#'
#' The rule, with \eqn{k^*} true and \eqn{k \ge k^*} fitted experts:
#' \enumerate{
#'   \item every true expert gets one fitted expert; the \eqn{k - k^*} extra
#'     experts are assigned to true ones round-robin (`assign =
#'     "round_robin"`: true experts 1, 2, ... in turn) or uniformly at random
#'     (`assign = "random"`, from R's RNG); `assign` may also be an integer
#'     vector of length \eqn{k} giving the true expert of each fitted one;
#'   \item the fitted experts are ordered by their true expert, so the last
#'     fitted expert (the reference of the gate convention) is a copy of the
#'     true reference expert;
#'   \item the \eqn{m_j} copies of true expert \eqn{j} take its parameters,
#'     with intercept \eqn{b^*_{0j} - \log m_j}, so that they share its mixing
#'     weight \eqn{e^{b^*_{0j}}} equally;
#'   \item independent normal noise is added: sd \eqn{c_{expert}
#'     n^{-\alpha_{expert}}} to every expert coefficient and variance (a
#'     variance that would turn negative is reflected, and floored at 1% of
#'     the true value), sd \eqn{c_{gate} n^{-\alpha_{gate}}} to every gate
#'     vector entry and intercept (`gate_noise = "entry"`), or one draw per
#'     fitted expert added to all of its gate column, vector and intercept
#'     (`gate_noise = "column"`) (and to \eqn{\log \tau} when the temperature
#'     is estimated), with \eqn{n} the sample size of the fit. The noise breaks
#'     the symmetry between copies.
#' }
#' The expert defaults \eqn{c = 0.05}, \eqn{\alpha = 0.083} are those of the
#' public code of Nguyen, Nguyen and Ho (2023). Its gate noise, as the
#' studies' design review (issue 12) reads that code, is one scalar per
#' column with sd \eqn{0.005\, n^{-0.083}}: `c_gate = 0.005, alpha_gate =
#' 0.083, gate_noise = "column"`. The default gate noise, \eqn{0.05\,
#' n^{-0.005}} per entry, is 10 times larger and hardly shrinks with
#' \eqn{n}; the shipped studies use it. With `n_starts > 1` in
#' [moe_control()] every start draws new noise (and, with `assign =
#' "random"`, a new assignment).
#'
#' @param truth A [moe_params()] object with the true parameters.
#' @param k Number of fitted experts; `NULL` takes it from the fit. When given,
#'   the fit's `k` must match.
#' @param c_expert,alpha_expert Noise scale and decay exponent for the expert
#'   parameters.
#' @param c_gate,alpha_gate Noise scale and decay exponent for the gate
#'   parameters.
#' @param assign `"round_robin"`, `"random"` or an integer vector; see above.
#' @param gate_noise `"entry"` (an independent draw for every gate entry) or
#'   `"column"` (one draw per fitted expert's gate column); see above.
#' @return A function `function(k, y, X, Z, expert, gate)` returning a
#'   [moe_params()] object, for `moe_control(init = )`.
#' @seealso [moe_control()], [moe_study_setting()].
#' @examples
#' truth <- moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
#'                     coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.09, 0.16))
#' set.seed(1)
#' d <- rmoe(1000, truth, x = seq(0, 1, length.out = 1000))
#' start <- init_near_truth(truth, k = 3)
#' start(k = 3, y = d$y, X = cbind(1, d$x1), Z = cbind(d$x1))
#' fit <- moe(y ~ x1, data = d, k = 3,
#'            control = moe_control(init = start, tol = 1e-6, n_starts = 2))
#' voronoi_loss(fit, truth, "rbar")
#' @export
init_near_truth <- function(truth, k = NULL, c_expert = 0.05, alpha_expert = 0.083,
                            c_gate = 0.05, alpha_gate = 0.005,
                            assign = c("round_robin", "random"),
                            gate_noise = c("entry", "column")) {
  if (!inherits(truth, "moe_params")) stop_arg("truth", "a moe_params object", got = truth)
  k_true <- ncol(truth$gate$W)
  if (!is.null(k)) {
    k <- check_count(k, "k")
    if (k < k_true) stop_arg("k", "at least the number of true experts (", k_true, ")", got = k)
  }
  check_number(c_expert, "c_expert", lower = 0)
  check_number(alpha_expert, "alpha_expert")
  check_number(c_gate, "c_gate", lower = 0)
  check_number(alpha_gate, "alpha_gate")
  gate_noise <- match_arg(gate_noise)
  if (is.numeric(assign)) {
    if (any(!assign %in% seq_len(k_true)) || !all(seq_len(k_true) %in% assign) ||
        (!is.null(k) && length(assign) != k)) {
      stop_arg("assign", "an integer vector with one true expert (1..", k_true,
               ") per fitted expert, using every true expert", got = assign)
    }
    assign_rule <- "fixed"
  } else {
    assign_rule <- match_arg(assign)
  }
  k_wanted <- k
  function(k, y, X = NULL, Z = NULL, expert = NULL, gate = NULL) {
    if (!is.null(k_wanted) && k != k_wanted) {
      stop_arg("k", "the number of experts init_near_truth() was built for (", k_wanted, ")", got = k)
    }
    if (k < k_true) stop_arg("k", "at least the number of true experts (", k_true, ")", got = k)
    n <- NROW(y)
    owner <- switch(assign_rule,
      fixed = sort(as.integer(assign)),
      round_robin = sort(c(seq_len(k_true), rep_len(seq_len(k_true), k - k_true))),
      random = sort(c(seq_len(k_true), sample.int(k_true, k - k_true, replace = TRUE)))
    )
    if (length(owner) != k) stop_arg("assign", "one true expert per fitted expert (", k, ")")
    start <- near_truth_params(truth, owner, n, c_expert, alpha_expert, c_gate, alpha_gate, gate,
                               gate_noise)
    # A least-squares truth may carry no variances; EM starts need them.
    if (is.null(start$expert$sigma2) && length(dim(start$expert$coef)) == 2 && is.numeric(y)) {
      start$expert$sigma2 <- rep(stats::var(y), k)
    }
    start
  }
}

# Copies of the true atoms (by `owner`), intercepts split, plus noise.
near_truth_params <- function(truth, owner, n, c_expert, alpha_expert, c_gate, alpha_gate,
                              gate, gate_noise = "entry") {
  k <- length(owner)
  copies <- tabulate(owner, ncol(truth$gate$W))
  sd_expert <- c_expert * n^(-alpha_expert)
  sd_gate <- c_gate * n^(-alpha_gate)
  noise <- function(len, sd) if (sd > 0) stats::rnorm(len, sd = sd) else numeric(len)
  W <- truth$gate$W[, owner, drop = FALSE]
  b0 <- truth$gate$b0[owner] - log(copies[owner])
  if (gate_noise == "column") {
    shift <- noise(k, sd_gate)
    W <- sweep(W, 2, shift, "+")
    b0 <- b0 + shift
  } else {
    W <- W + noise(length(W), sd_gate)
    b0 <- b0 + noise(k, sd_gate)
  }
  tau <- truth$gate$tau
  if (!is.null(gate) && isTRUE(as_gate(gate)$estimate_tau)) tau <- tau * exp(noise(1, sd_gate))
  coef <- truth$expert$coef
  coef <- if (length(dim(coef)) == 3) coef[, , owner, drop = FALSE] else coef[, owner, drop = FALSE]
  coef <- coef + noise(length(coef), sd_expert)
  sigma2 <- truth$expert$sigma2
  if (!is.null(sigma2)) {
    s2 <- sigma2[owner]
    sigma2 <- pmax(abs(s2 + noise(k, sd_expert)), 0.01 * s2)
  }
  dimnames(W) <- NULL
  dimnames(coef) <- NULL
  moe_params(W = W, b0 = b0, tau = tau, coef = coef, sigma2 = sigma2)
}
