# The population-level computation of the softmax paper's vanishing-expert
# claim: no sampling, only the model's conditional densities integrated over
# the covariate by quadrature.

#' How close an over-specified vanishing-expert model can get to the truth
#'
#' For the softmax paper's "vanishing expert" (a true multinomial expert whose
#' class probabilities do not depend on \eqn{x}) fitted with two atoms, the
#' rate at which the two atoms' **slope blocks** can be estimated is governed by
#' how small the Hellinger distance to the truth can be made while those blocks
#' stay at a given discrepancy \eqn{\delta} from the truth: if
#' \eqn{h(\delta) = \min\{H(p_\theta, p^*) : \|s(\theta) - s^*\| = \delta\}}
#' behaves like \eqn{\delta^r}, the slope blocks converge at
#' \eqn{n^{-1/(2r)}} (the density converges at \eqn{n^{-1/2}}); a local
#' exponent that grows without bound as \eqn{\delta \to 0} is a rate slower
#' than any polynomial. This function computes \eqn{h(\delta)} on a grid of
#' \eqn{\delta} and its local exponent \eqn{d \log h / d \log \delta}, for the
#' softmax, modified softmax (\eqn{M = \tanh}) and modified sigmoid gates.
#'
#' The truth is the exact-fit vanishing-expert truth of
#' [study_setting_softmax_multinomial()] (`"vanishing_exact"`): \eqn{x \sim
#' U(-3, 3)}, \eqn{K = 3} classes, gate \eqn{w^* = (4, 0)}, \eqn{b_0^* = (0,
#' 0)} (for the modified sigmoid, weights \eqn{\propto e^{b_{0i}} \sigma(w_i
#' x)}); expert 1 with intercepts \eqn{t^*_1 = (2, -1)} and slopes
#' \eqn{\eta^*_1 = 0}, expert 2 with \eqn{t^*_2 = (-1, 2)}, \eqn{\eta^*_2 =
#' (-2, 2)}. The fitted model has three atoms: two (a, b) in the cell of
#' expert 1 and one for expert 2. The slope blocks are \eqn{s = (w_a - w^*_1,
#' \eta_a, w_b - w^*_1, \eta_b)} (6 numbers); everything else (both atoms'
#' gate intercepts and expert intercepts, expert 2's parameters and, for the
#' modified sigmoid, its gate slope) is free. \eqn{H^2 = \frac12 E_x \sum_y
#' (\sqrt{p_\theta(y|x)} - \sqrt{p^*(y|x)})^2} is computed with `n_nodes`
#' Gauss-Legendre nodes, which is accurate down to \eqn{H^2 \approx
#' 10^{-30}}, and minimised over the free parameters and the direction of
#' \eqn{s} as a nonlinear least-squares problem (Levenberg-Marquardt with a
#' central-difference Jacobian, which resolves \eqn{H^2} far below what a
#' general-purpose optimiser of \eqn{H^2} reaches) from `starts` random
#' starts plus the previous \eqn{\delta}'s optimum (warm start).
#'
#' **Not identified at all**: the atoms' expert intercepts (with their gate
#' intercepts) at zero slope discrepancy: two atoms with the same gate vector
#' whose class probabilities mix to the true ones, \eqn{\rho\,
#' \mathrm{softmax}(t_a) + (1 - \rho)\, \mathrm{softmax}(t_b) =
#' \mathrm{softmax}(t^*_1)}, give exactly the true \eqn{p(y|x)} under any gate
#' (a whole curve of parameters at Hellinger distance 0), so no loss on those
#' blocks can converge and they are left free here.
#'
#' @param gate `"softmax"`, `"modified_softmax"` or `"modified_sigmoid"`.
#' @param delta Discrepancies of the slope blocks (decreasing is best: each
#'   optimum warm-starts the next).
#' @param n_nodes Gauss-Legendre nodes on \eqn{[-3, 3]}.
#' @param starts Random starts per \eqn{\delta} besides the warm start.
#' @param maxit Iterations of each Levenberg-Marquardt run.
#' @param seed Seed of the random starts (the caller's stream is left as it
#'   was).
#' @return A data frame with `gate`, `delta`, `hellinger` (the minimal
#'   \eqn{H}), `exponent` (the local exponent between this \eqn{\delta} and the
#'   previous one) and `converged` (all optimisers' codes 0).
#' @seealso [study_setting_softmax_multinomial()], [study_verdicts()].
#' @examples
#' vanishing_hellinger_profile("modified_softmax", delta = c(0.3, 0.2), n_nodes = 16,
#'                             starts = 1, maxit = 10)
#' @export
vanishing_hellinger_profile <- function(gate = c("softmax", "modified_softmax",
                                                 "modified_sigmoid"),
                                        delta = c(0.3, 0.2, 0.1, 0.05, 0.02, 0.01),
                                        n_nodes = 40, starts = 3, maxit = 300, seed = 1) {
  gate <- match_arg(gate)
  if (!is.numeric(delta) || length(delta) < 1 || any(!is.finite(delta)) || any(delta <= 0)) {
    stop_arg("delta", "positive numbers", got = delta)
  }
  n_nodes <- check_count(n_nodes, "n_nodes", lower = 4)
  starts <- check_count(starts, "starts", lower = 0)
  maxit <- check_count(maxit, "maxit")
  check_number(seed, "seed", integer = TRUE)
  q <- gauss_legendre(n_nodes, -3, 3)
  truth <- vanishing_exact_truth()
  z <- if (gate == "modified_softmax") tanh(q$x) else q$x
  sigmoid <- gate == "modified_sigmoid"
  class_probs <- function(t, eta) {
    L <- cbind(t[1] + eta[1] * q$x, t[2] + eta[2] * q$x, 0)
    L <- L - do.call(pmax, lapply(seq_len(ncol(L)), function(j) L[, j]))
    E <- exp(L)
    E / rowSums(E)
  }
  gate_weights <- function(w, b) {
    L <- if (sigmoid) {
      sweep(-log1p(exp(-outer(z, w))), 2, b, "+")
    } else {
      outer(z, w) + matrix(b, length(z), length(w), byrow = TRUE)
    }
    L <- L - do.call(pmax, lapply(seq_len(ncol(L)), function(j) L[, j]))
    E <- exp(L)
    E / rowSums(E)
  }
  t1 <- truth$expert$coef[1, , 1]
  t2 <- truth$expert$coef[1, , 2]
  eta2 <- truth$expert$coef[2, , 2]
  w1 <- truth$gate$W[1, 1]
  density <- function(w, b, experts) {
    G <- gate_weights(w, b)
    Reduce(`+`, lapply(seq_along(experts), function(j) G[, j] * experts[[j]]))
  }
  p_true <- density(c(w1, 0), c(0, 0), list(class_probs(t1, c(0, 0)), class_probs(t2, eta2)))
  root_true <- sqrt(p_true)
  # theta: z (6, the direction of s), b_a, b_b, t_a (2), t_b (2), t2 (2), eta2 (2)
  # and, for the modified sigmoid, w2.
  unpack <- function(theta, d) {
    s <- d * theta[1:6] / sqrt(sum(theta[1:6]^2))
    list(w = c(w1 + s[1], w1 + s[4], if (sigmoid) theta[17] else 0),
         b = c(theta[7], theta[8], 0),
         experts = list(class_probs(theta[9:10], s[2:3]), class_probs(theta[11:12], s[5:6]),
                        class_probs(theta[13:14], theta[15:16])))
  }
  # H^2 = sum of squared residuals (x has density 1/6 on [-3, 3]).
  scale <- sqrt(0.5 * q$w / 6)
  residuals <- function(theta, d) {
    u <- unpack(theta, d)
    as.numeric(scale * (sqrt(density(u$w, u$b, u$experts)) - root_true))
  }
  base <- c(rep(0, 6), log(0.5), log(0.5), t1, t1, t2, eta2, if (sigmoid) 0)
  rows <- with_local_seed(seed, {
    warm <- NULL
    lapply(delta, function(d) {
      inits <- lapply(seq_len(starts), function(i) {
        th <- base + c(stats::rnorm(6), stats::rnorm(length(base) - 6, sd = 0.3))
        th
      })
      if (!is.null(warm)) inits <- c(list(warm), inits)
      if (length(inits) == 0) inits <- list(base + c(stats::rnorm(6), rep(0, length(base) - 6)))
      best <- NULL
      codes <- integer()
      for (th in inits) {
        o <- levenberg_marquardt(th, residuals, d = d, maxit = maxit)
        codes <- c(codes, o$convergence)
        if (is.null(best) || o$value < best$value) best <- o
      }
      warm <<- best$par
      data.frame(gate = gate, delta = d, hellinger = sqrt(best$value),
                 converged = all(codes == 0))
    })
  })
  out <- do.call(rbind, rows)
  out$exponent <- c(NA_real_, diff(log(out$hellinger)) / diff(log(out$delta)))
  out[, c("gate", "delta", "hellinger", "exponent", "converged")]
}

# Minimise sum(residuals(par, ...)^2) by Levenberg-Marquardt with a
# central-difference Jacobian. convergence 0: relative decrease below 1e-12
# (or no step improves on a damping of 1e12 times the curvature).
levenberg_marquardt <- function(par, residuals, ..., maxit = 300) {
  r <- residuals(par, ...)
  f <- sum(r^2)
  lambda <- 1e-3
  converged <- FALSE
  for (it in seq_len(maxit)) {
    h <- 1e-6 * pmax(abs(par), 1)
    J <- vapply(seq_along(par), function(j) {
      e <- numeric(length(par))
      e[j] <- h[j]
      (residuals(par + e, ...) - residuals(par - e, ...)) / (2 * h[j])
    }, numeric(length(r)))
    A <- crossprod(J)
    g <- crossprod(J, r)
    d <- diag(A) + 1e-12 * max(diag(A))
    repeat {
      step <- tryCatch(solve(A + lambda * diag(d, length(d)), -g), error = function(e) NULL)
      if (!is.null(step)) {
        r_new <- residuals(par + drop(step), ...)
        f_new <- sum(r_new^2)
        if (is.finite(f_new) && f_new < f) break
      }
      lambda <- lambda * 4
      if (lambda > 1e12) break
    }
    if (lambda > 1e12) {
      converged <- TRUE
      break
    }
    par <- par + drop(step)
    decrease <- f - f_new
    r <- r_new
    f <- f_new
    lambda <- max(lambda / 3, 1e-12)
    if (decrease < 1e-12 * f) {
      converged <- TRUE
      break
    }
  }
  list(par = par, value = f, convergence = if (converged) 0L else 1L, iterations = it)
}

# Gauss-Legendre nodes and weights on [a, b] (Golub-Welsch).
gauss_legendre <- function(n, a = -1, b = 1) {
  i <- seq_len(n - 1)
  J <- matrix(0, n, n)
  J[cbind(i, i + 1)] <- J[cbind(i + 1, i)] <- i / sqrt(4 * i^2 - 1)
  e <- eigen(J, symmetric = TRUE)
  x <- e$values
  w <- 2 * e$vectors[1, ]^2
  ord <- order(x)
  list(x = (b - a) / 2 * x[ord] + (a + b) / 2, w = (b - a) / 2 * w[ord])
}
