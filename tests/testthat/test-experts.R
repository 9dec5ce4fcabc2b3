# Experts (src/expert.cpp) and the full log-likelihood (src/em.cpp) against
# the plain-R reference of helper-reference.R.

expert_data <- function(n = 40, p = 3, seed = 1) {
  set.seed(seed)
  X <- cbind(1, matrix(rnorm(n * (p - 1)), n, p - 1))
  list(X = X, n = n, p = p)
}

test_that("Gaussian expert log-densities and means equal the reference", {
  dat <- expert_data()
  k <- 3
  set.seed(2)
  coef <- matrix(rnorm(dat$p * k), dat$p, k)
  sigma2 <- c(0.2, 1, 3.5)
  y <- rnorm(dat$n, sd = 2)
  for (act in c("identity", "tanh", "sigmoid", "relu", "gelu")) {
    out <- moegate:::cpp_expert_eval(dat$X, matrix(y), cpp_gaussian_spec(act),
                                     list(coef = coef, sigma2 = sigma2), 1L)
    expect_equal(out$log_density, ref_gaussian_logdens(dat$X, y, coef, sigma2, act),
                 tolerance = 1e-12, label = act)
    expect_equal(out$mean, ref_gaussian_mean(dat$X, coef, act), tolerance = 1e-12, label = act)
  }
  # Far tails: a residual of 1e4 standard deviations stays finite.
  out <- moegate:::cpp_expert_eval(dat$X, matrix(y + 1e4), cpp_gaussian_spec("identity"),
                                   list(coef = coef, sigma2 = rep(1, k)), 1L)
  expect_true(all(is.finite(out$log_density)))
  expect_equal(out$log_density, ref_gaussian_logdens(dat$X, y + 1e4, coef, rep(1, k)),
               tolerance = 1e-12)
})

test_that("multinomial expert log-densities equal the reference (last class reference), K = 2, 3, 4", {
  dat <- expert_data(n = 60)
  k <- 3
  for (K in 2:4) {
    set.seed(10 + K)
    coef <- matrix(rnorm(dat$p * k * (K - 1), sd = 2), dat$p, k * (K - 1))
    y <- factor(sample(seq_len(K), dat$n, replace = TRUE), levels = seq_len(K))
    Y <- ref_one_hot(y)
    spec <- cpp_multinomial_spec(K)
    out <- moegate:::cpp_expert_eval(dat$X, Y, spec, list(coef = coef, sigma2 = rep(1, k)), 1L)
    ref <- ref_multinomial_logdens(dat$X, Y, coef, K)
    expect_equal(out$log_density, ref, tolerance = 1e-12, label = paste("K =", K))
    # Class probabilities of each expert sum to one: sum over y of exp(logf).
    total <- Reduce(`+`, lapply(seq_len(K), function(cl) {
      Yc <- matrix(0, dat$n, K)
      Yc[, cl] <- 1
      exp(moegate:::cpp_expert_eval(dat$X, Yc, spec, list(coef = coef, sigma2 = rep(1, k)), 1L)$log_density)
    }))
    expect_equal(total, matrix(1, dat$n, k), tolerance = 1e-12)
    # Extreme linear predictors (|eta| ~ 1e3): finite log-probabilities.
    big <- coef * 500
    out <- moegate:::cpp_expert_eval(dat$X, Y, spec, list(coef = big, sigma2 = rep(1, k)), 1L)
    expect_true(all(is.finite(out$log_density)))
    expect_true(all(out$log_density <= 0))
    # Absolute accuracy: log-probabilities of ~ -1e-9 are log(1 + tiny) and
    # carry an absolute (not relative) rounding error of ~1e-16.
    expect_lt(rel_err(out$log_density, ref_multinomial_logdens(dat$X, Y, big, K)), 1e-12)
  }
})

test_that("the multinomial expert's reference class is the last one", {
  # With all coefficients zero except those of class 1, only class 1's
  # probability moves: the last class has linear predictor 0.
  dat <- expert_data(n = 10)
  K <- 3
  coef <- matrix(0, dat$p, K - 1)
  coef[1, 1] <- 2
  spec <- cpp_multinomial_spec(K)
  lp <- function(cl) {
    Yc <- matrix(0, dat$n, K)
    Yc[, cl] <- 1
    moegate:::cpp_expert_eval(dat$X, Yc, spec, list(coef = coef, sigma2 = 1), 1L)$log_density[, 1]
  }
  expect_equal(lp(1) - lp(3), rep(2, dat$n), tolerance = 1e-12)
  expect_equal(lp(2) - lp(3), rep(0, dat$n), tolerance = 1e-12)
})

loglik_cases <- function() {
  list(
    softmax = gate_softmax(),
    cosine = gate_cosine(),
    temperature = gate_temperature(temperature = 0.8),
    sigmoid = gate_sigmoid(),
    activation_gelu = gate_activation("gelu", temperature = 1.3),
    perturbed_cosine = gate_perturbed_cosine(),
    euclidean = gate_euclidean(temperature = 1.5)
  )
}

# Log-likelihood value vs the reference, and its analytic gradient (Fisher's
# identity) vs central finite differences of the compiled log-likelihood.
check_loglik_gradient <- function(X, Y, Z, gate_obj, espec, gp, ep, ref_logF) {
  gspec <- cpp_spec(gate_obj)
  at <- moegate:::cpp_loglik(X, Y, Z, gspec, espec, gp, ep, NULL, TRUE, 1L)
  ref <- ref_mixture(ref_gate_forward(Z, gate_obj, at$gate)$log_weights, ref_logF(at$expert))
  f <- function(theta) moegate:::cpp_loglik(X, Y, Z, gspec, espec, gp, ep, theta, FALSE, 1L)$loglik
  list(value = rel_err(at$loglik, ref$loglik),
       posterior = rel_err(at$posterior, ref$posterior),
       gradient = rel_err(at$gradient, ref_fd_grad(f, at$theta)),
       length = length(at$gradient) == length(at$theta))
}

test_that("log-likelihood gradient matches finite differences: Gaussian linear and activated experts", {
  dat <- expert_data(n = 80, p = 2, seed = 3)
  k <- 3
  set.seed(4)
  Z <- matrix(rnorm(dat$n * 2), dat$n, 2)
  y <- rnorm(dat$n)
  gp <- list(W = matrix(rnorm(2 * k), 2, k), b0 = rnorm(k), tau = 0.8)
  ep <- list(coef = matrix(rnorm(dat$p * k), dat$p, k), sigma2 = c(0.5, 1, 2))
  for (act in c("identity", "tanh", "gelu")) {
    for (nm in names(loglik_cases())) {
      g <- loglik_cases()[[nm]]
      res <- check_loglik_gradient(dat$X, matrix(y), Z, g, cpp_gaussian_spec(act), gp, ep,
                                   function(e) ref_gaussian_logdens(dat$X, y, e$coef, e$sigma2, act))
      label <- paste(act, nm)
      expect_lt(res$value, 1e-12, label = label)
      expect_lt(res$posterior, 1e-10, label = label)
      # Central differences, relative step 1e-5: truncation and rounding
      # errors ~1e-10 relative to |loglik| ~ 1e2; 1e-6 leaves a wide margin.
      expect_lt(res$gradient, 1e-6, label = label)
      expect_true(res$length, label = label)
    }
  }
})

test_that("log-likelihood gradient matches finite differences: multinomial experts", {
  dat <- expert_data(n = 80, p = 2, seed = 5)
  k <- 2
  K <- 3
  set.seed(6)
  Z <- matrix(rnorm(dat$n * 2), dat$n, 2)
  y <- factor(sample(1:K, dat$n, replace = TRUE))
  Y <- ref_one_hot(y)
  gp <- list(W = matrix(rnorm(2 * k), 2, k), b0 = rnorm(k), tau = 0.8)
  ep <- list(coef = matrix(rnorm(dat$p * k * (K - 1)), dat$p, k * (K - 1)), sigma2 = rep(1, k))
  for (nm in names(loglik_cases())) {
    g <- loglik_cases()[[nm]]
    res <- check_loglik_gradient(dat$X, Y, Z, g, cpp_multinomial_spec(K), gp, ep,
                                 function(e) ref_multinomial_logdens(dat$X, Y, e$coef, K))
    expect_lt(res$value, 1e-12, label = nm)
    expect_lt(res$posterior, 1e-10, label = nm)
    expect_lt(res$gradient, 1e-6, label = nm)
    expect_true(res$length, label = nm)
  }
})

test_that("expert M-steps: weighted least squares and weighted variances at the EM fixed point", {
  # At a converged EM fit the Gaussian linear experts satisfy their closed-form
  # M-step: coefficients = weighted least squares with the posterior as
  # weights, variance = weighted mean squared residual. For tanh experts the
  # coefficients solve the weighted non-linear least-squares normal equations.
  dat <- expert_data(n = 400, p = 2, seed = 7)
  set.seed(8)
  Z <- dat$X[, -1, drop = FALSE]
  y <- ifelse(runif(dat$n) < plogis(3 * Z[, 1]), 1 + 2 * Z[, 1], -1 - Z[, 1]) +
    rnorm(dat$n, sd = 0.3)
  k <- 2
  R0 <- cbind(Z[, 1] > 0, Z[, 1] <= 0) * 0.8 + 0.1
  for (act in c("identity", "tanh")) {
    gp <- list(W = matrix(0.1 * (1:k), 1, k), b0 = rep(0, k), tau = 1)
    ep <- list(coef = matrix(0, 2, k), sigma2 = rep(var(y), k))
    res <- moegate:::cpp_em_fit(dat$X, matrix(y), Z, cpp_spec(gate_softmax()),
                                cpp_gaussian_spec(act), gp, ep, R0,
                                list(tol = 1e-14, maxit = 5000L, nthreads = 1L))
    expect_true(res$converged, label = act)
    ref <- ref_gaussian_moe_loglik(dat$X, y, Z, gate_softmax(), res$gate, res$expert, act)
    expect_equal(res$loglik, ref$loglik, tolerance = 1e-12, label = act)
    expect_equal(res$posterior, ref$posterior, tolerance = 1e-10, label = act)
    for (i in seq_len(k)) {
      w <- res$posterior[, i]
      mu <- ref_gaussian_mean(dat$X, res$expert$coef[, i, drop = FALSE], act)[, 1]
      # Convergence to a relative log-likelihood change of 1e-14 leaves the
      # parameters within ~1e-6 of the fixed point.
      expect_equal(res$expert$sigma2[i], sum(w * (y - mu)^2) / sum(w), tolerance = 1e-6)
      if (act == "identity") {
        expect_equal(res$expert$coef[, i], unname(stats::lm.wfit(dat$X, y, w)$coefficients),
                     tolerance = 1e-6)
      } else {
        # Normal equations of sum_n w_n (y_n - tanh(x_n'a))^2, scaled by sum w.
        score <- colSums(w * (y - mu) * (1 - mu^2) * dat$X) / sum(w)
        expect_lt(max(abs(score)), 1e-5)
      }
    }
  }
})
