# Simulate-then-fit for every named gate: exact-specified k = 2 Gaussian MoE,
# n = 20000, d = 2, started at the truth (the test is about the estimator, not
# about finding the optimum). Data are drawn with plain R from gate_weights().

# Absolute closeness: the largest absolute difference is at most `tol`.
expect_abs_close <- function(object, expected, tol) {
  expect_lte(max(abs(object - expected)), tol)
}

sim_gate_data <- function(gate, truth, n, seed) {
  set.seed(seed)
  x <- matrix(stats::runif(2 * n, -1, 1), n, 2, dimnames = list(NULL, c("x1", "x2")))
  G <- gate_weights(gate, truth, x)
  comp <- 1 + (stats::runif(n) > G[, 1])
  X <- cbind(1, x)
  mu <- rowSums(X * t(truth$expert$coef[, comp]))
  y <- mu + stats::rnorm(n, sd = sqrt(truth$expert$sigma2[comp]))
  data.frame(y = y, x)
}

truth_for <- function(gate) {
  W <- cbind(c(2, -1.5), c(-1, 1))
  b0 <- c(0.5, -0.3)
  if (gate$score %in% c("euclidean_sq", "euclidean")) {
    # Centres inside the data and logits near 0: far from all centres the
    # normalized sigmoid approaches a softmax, whose intercepts are only
    # identified up to a common shift.
    W <- cbind(c(0.5, -0.5), c(-0.5, 0.5))
    b0 <- c(0, -0.5)
  }
  info <- moegate:::gate_info(gate, 2, 2)
  if (info$w_reference) W[, 2] <- 0
  if (info$b_reference) b0[2] <- 0
  moe_params(W = W, b0 = b0, tau = gate$temperature,
             coef = cbind(c(1, 2, -1), c(-1, -1, 1.5)), sigma2 = c(0.25, 0.36))
}

# Gates whose parameters are identified as reported (temperature fixed or
# separately identified), at truths where the likelihood curves clearly.
identifiable <- list(
  softmax = gate_softmax(),
  modified_softmax = gate_modified_softmax(),
  activation_tanh = gate_activation("tanh", temperature = 0.7),
  activation_gelu = gate_activation("gelu", temperature = 1, estimate_temperature = FALSE),
  sigmoid = gate_sigmoid(),
  modified_sigmoid = gate_modified_sigmoid(),
  modified_sigmoid_normalized = gate_modified_sigmoid("normalized"),
  euclidean = gate_euclidean(temperature = 0.5, estimate_temperature = FALSE)
)

# Weights of the fitted and the true gate agree on the data: the check for
# gates whose parameters are identified only in part. With n = 20000 the
# weights are estimated to ~0.01; 0.05 on average is a clear margin.
expect_same_gate <- function(fit, truth, d) {
  x <- as.matrix(d[, c("x1", "x2")])
  G_fit <- gate_weights(fit$gate, fit$params, x)
  G_true <- gate_weights(fit$gate, truth, x)
  # Experts are unordered: match on the expert coefficients.
  perm <- if (sum((fit$params$expert$coef - truth$expert$coef)^2) <=
              sum((fit$params$expert$coef[, 2:1] - truth$expert$coef)^2)) 1:2 else 2:1
  expect_lt(mean(abs(G_fit[, perm] - G_true)), 0.05)
}

for (nm in names(identifiable)) {
  test_that(paste("simulate-then-fit recovers the truth:", nm), {
    g <- identifiable[[nm]]
    truth <- truth_for(g)
    d <- sim_gate_data(g, truth, 20000, seed = 11)
    fit <- moe(y ~ x1 + x2, data = d, k = 2, gate = g,
               control = moe_control(init = truth, tol = 1e-10, maxit = 2000))
    at_truth <- moegate:::cpp_loglik(model.matrix(fit), matrix(d$y), model.matrix(fit, part = "gate"), moegate:::gate_cpp_spec(g),
                                     moegate:::expert_cpp_spec(fit$expert, stats::var(d$y)),
                                     truth$gate, truth$expert, NULL, FALSE, 1L)
    # Started at the truth, EM can only go up.
    expect_gte(fit$loglik, at_truth$loglik - 1e-8 * abs(at_truth$loglik))
    expect_true(all(diff(fit$trace) >= -1e-9 * abs(fit$trace[-1])))
    # Every free parameter within 5 standard errors of the truth (the
    # standard errors come from the observed information; 5 keeps the chance
    # of a false alarm over ~15 parameters below 1e-5).
    se <- sqrt(diag(vcov(fit)))
    expect_false(anyNA(se))
    z <- (coef(fit) - at_truth$theta) / se
    expect_lt(max(abs(z)), 5)
  })
}

test_that("the sigmoid gate with a temperature identifies w / tau only", {
  g <- gate_sigmoid(temperature = 0.5, estimate_temperature = TRUE)
  truth <- truth_for(g)
  d <- sim_gate_data(g, truth, 20000, seed = 14)
  fit <- moe(y ~ x1 + x2, data = d, k = 2, gate = g,
             control = moe_control(init = truth, tol = 1e-10, maxit = 2000))
  expect_same_gate(fit, truth, d)
  # (W, tau) scaled together is a flat direction, reported as such.
  x <- as.matrix(d[1:50, 2:3])
  scaled <- fit$params$gate
  scaled$W <- 2 * scaled$W
  scaled$tau <- 2 * scaled$tau
  expect_equal(gate_weights(g, scaled, x), gate_weights(g, fit$params, x))
  se <- sqrt(diag(vcov(fit)))
  expect_true(is.na(se["gate.log_tau"]))
})

test_that("the cosine gate recovers directions, not norms", {
  g <- gate_cosine()
  truth <- truth_for(g)
  d <- sim_gate_data(g, truth, 20000, seed = 12)
  fit <- moe(y ~ x1 + x2, data = d, k = 2, gate = g,
             control = moe_control(init = truth, tol = 1e-10, maxit = 2000))
  unit <- function(W) sweep(W, 2, sqrt(colSums(W^2)), "/")
  expect_abs_close(unname(unit(fit$params$gate$W)), unname(unit(truth$gate$W)), 0.1)
  expect_same_gate(fit, truth, d)
  # Rescaling a gate vector leaves the fit's weights unchanged.
  W2 <- fit$params$gate$W
  W2[, 1] <- 5 * W2[, 1]
  expect_equal(gate_weights(g, list(W = W2, b0 = fit$params$gate$b0), as.matrix(d[1:50, 2:3])),
               gate_weights(g, fit$params, as.matrix(d[1:50, 2:3])))
})

test_that("the temperature gate identifies w / tau only", {
  g <- gate_temperature(temperature = 0.5)
  truth <- truth_for(g)
  d <- sim_gate_data(g, truth, 20000, seed = 13)
  fit <- moe(y ~ x1 + x2, data = d, k = 2, gate = g,
             control = moe_control(init = truth, tol = 1e-10, maxit = 2000))
  expect_abs_close(unname(fit$params$gate$W / fit$params$gate$tau),
               unname(truth$gate$W / truth$gate$tau), 0.6)
  # The flat direction: scaling (W, tau) together changes nothing.
  scaled <- fit$params$gate
  scaled$W <- 3 * scaled$W
  scaled$tau <- 3 * scaled$tau
  x <- as.matrix(d[1:50, 2:3])
  expect_equal(gate_weights(g, scaled, x), gate_weights(g, fit$params, x))
})

test_that("the perturbed cosine gate identifies differences of w / (||w|| + eps_w)", {
  # Under the softmax, logit differences are (v_i - v_j)'u / (||u|| + eps_u)
  # with v = w / (||w|| + eps_w): a common shift of all v (while they stay in
  # the unit ball) changes nothing, so q directions are flat.
  g <- gate_perturbed_cosine(eps_w = 1, eps_u = 1)
  truth <- truth_for(g)
  d <- sim_gate_data(g, truth, 20000, seed = 11)
  fit <- moe(y ~ x1 + x2, data = d, k = 2, gate = g,
             control = moe_control(init = truth, tol = 1e-10, maxit = 2000))
  expect_same_gate(fit, truth, d)
  v <- function(W, eps) sweep(W, 2, sqrt(colSums(W^2)) + eps, "/")
  dv <- function(W) { V <- v(W, 1); V[, 1] - V[, 2] }
  expect_abs_close(unname(dv(fit$params$gate$W)), unname(dv(truth$gate$W)), 0.1)
  # Shift both v by the same small vector: identical weights.
  V <- v(fit$params$gate$W, 1)
  V2 <- V + c(0.05, -0.03)
  W2 <- sweep(V2, 2, 1 - sqrt(colSums(V2^2)), "/")   # invert v = w / (||w|| + 1)
  x <- as.matrix(d[1:50, c("x1", "x2")])
  expect_equal(gate_weights(g, list(W = W2, b0 = fit$params$gate$b0), x),
               gate_weights(g, fit$params, x))
  # ... which the standard errors report as unidentified gate vectors.
  se <- sqrt(diag(vcov(fit)))
  expect_true(all(is.na(se[grep("^gate\\.expert[0-9]+\\.x", names(se))])))
  expect_false(anyNA(se[grep("^expert", names(se))]))
})
