# The EM driver (src/em.cpp via R/fit.R): monotonicity, reproducibility,
# restarts, recovery of the truth, user starts and the variance floor.

# Gaussian MoE data from a gate, in plain R: X is n x d (gate covariates z = x),
# experts have intercept first.
sim_gaussian_moe <- function(n, W, b0, coef, sigma2, g = gate_softmax(), tau = 1) {
  d <- nrow(W)
  X <- matrix(rnorm(n * d), n, d)
  G <- exp(ref_gate_forward(X, g, list(W = W, b0 = b0, tau = tau))$log_weights)
  u <- runif(n)
  label <- 1 + rowSums(u > t(apply(G, 1, cumsum)))
  label <- pmin(label, ncol(W))
  mu <- rowSums(cbind(1, X) * t(coef[, label, drop = FALSE]))
  list(x = X, y = mu + rnorm(n, sd = sqrt(sigma2[label])), label = label)
}

# Multinomial MoE data with K classes (last class reference in every expert).
sim_multinomial_moe <- function(n, W, b0, coef, K) {
  d <- nrow(W)
  X <- matrix(rnorm(n * d), n, d)
  G <- exp(ref_gate_forward(X, gate_softmax(), list(W = W, b0 = b0, tau = 1))$log_weights)
  label <- apply(G, 1, function(p) sample.int(ncol(W), 1, prob = p))
  Xd <- cbind(1, X)
  y <- vapply(seq_len(n), function(r) {
    eta <- c(Xd[r, ] %*% coef[, , label[r]], 0)
    sample.int(K, 1, prob = exp(eta - max(eta)))
  }, integer(1))
  list(x = X, y = factor(y, levels = seq_len(K), labels = letters[seq_len(K)]))
}

gaussian_data_2 <- function(n = 600, seed = 1) {
  set.seed(seed)
  sim_gaussian_moe(n, W = cbind(c(3, -1), c(0, 0)), b0 = c(0.2, 0),
                   coef = cbind(c(1, 2, 0), c(-1, -1, 1)), sigma2 = c(0.2, 0.3))
}

# Warnings that a fit may legitimately raise in these tests (short fits);
# a monotonicity warning is never legitimate and is re-raised.
fit_quietly <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (inherits(w, "moe_monotonicity_warning")) stop(w)
    invokeRestart("muffleWarning")
  })
}

# The trace never decreases: allow -1e-8 relative for rounding of sums of
# n log-densities.
expect_monotone <- function(trace, label) {
  drops <- diff(trace) / (abs(trace[-length(trace)]) + 1)
  expect_true(length(trace) >= 2, label = label)
  expect_gte(min(drops), -1e-8, label = label)
}

em_gates <- list(softmax = gate_softmax(), modified_softmax = gate_modified_softmax(),
                 temperature = gate_temperature(), activation = gate_activation("tanh"),
                 sigmoid = gate_sigmoid(), modified_sigmoid = gate_modified_sigmoid(),
                 euclidean = gate_euclidean(), cosine = gate_cosine(),
                 perturbed_cosine = gate_perturbed_cosine())

test_that("the EM log-likelihood never decreases: Gaussian experts, every named gate", {
  dat <- gaussian_data_2()
  for (nm in names(em_gates)) {
    set.seed(2)
    fit <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = em_gates[[nm]],
                           control = moe_control(maxit = 150, tol = 1e-12)))
    expect_monotone(fit$trace, nm)
    expect_equal(fit$loglik, fit$trace[length(fit$trace)])
  }
  # Activated (tanh) experts: the M-step is L-BFGS, still monotone.
  set.seed(3)
  fit <- fit_quietly(moe(dat$x, dat$y, k = 2, expert = expert_gaussian("tanh"),
                         control = moe_control(maxit = 150, tol = 1e-12)))
  expect_monotone(fit$trace, "tanh experts")
})

test_that("the EM log-likelihood never decreases: multinomial experts", {
  set.seed(4)
  coef <- array(c(2, 1, -1, 0, 0.5, 1,  -1, -2, 0, 1, 1, 0), c(3, 2, 2))
  dat <- sim_multinomial_moe(800, W = cbind(c(2, 1), c(0, 0)), b0 = c(0, 0), coef = coef, K = 3)
  for (nm in c("softmax", "cosine", "temperature", "sigmoid", "modified_softmax")) {
    set.seed(5)
    fit <- fit_quietly(moe(dat$x, dat$y, k = 2, gate = em_gates[[nm]],
                           control = moe_control(maxit = 150, tol = 1e-12)))
    expect_s3_class(fit, "moe_multinomial")
    expect_monotone(fit$trace, nm)
  }
})

test_that("SQUAREM acceleration keeps the log-likelihood monotone", {
  skip_if_not("accelerate" %in% names(formals(moe_control)), "no SQUAREM in moe_control()")
  dat <- gaussian_data_2()
  for (nm in c("softmax", "cosine", "temperature")) {
    set.seed(6)
    fit <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = em_gates[[nm]],
                           control = moe_control(maxit = 100, tol = 1e-12, accelerate = "squarem")))
    expect_monotone(fit$trace, nm)
  }
})

test_that("the log-likelihood and posterior reported are those of the returned parameters", {
  # Gate M-steps hand their last pass (log-weights at the result) to the next
  # E-step instead of a fresh forward pass: the result must not depend on it.
  # Unconverged fits (maxit 60, tol 1e-12) move by about 1e-5 per iteration,
  # so weights one iteration stale would show.
  dat <- gaussian_data_2()
  cases <- list(list("softmax", NULL), list("softmax", 1L), list("softmax", 50L),
                list("activation", NULL), list("cosine", NULL), list("temperature", NULL),
                list("perturbed_cosine", 5L), list("sigmoid", NULL))
  for (cs in cases) {
    gm <- cs[[2]]
    g <- em_gates[[cs[[1]]]]
    set.seed(7)
    fit <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = g,
                           control = moe_control(maxit = 60, tol = 1e-12, gate_maxit = gm)))
    ref <- ref_gaussian_moe_loglik(cbind(1, dat$x), dat$y, dat$x, g,
                                   fit$params$gate, fit$params$expert)
    label <- paste(cs[[1]], "gate_maxit", if (is.null(gm)) "default" else gm)
    expect_equal(fit$loglik, ref$loglik, tolerance = 1e-10, label = label)
    expect_equal(unname(fit$posterior), unname(ref$posterior), tolerance = 1e-8, label = label)
    expect_monotone(fit$trace, label)
  }
})

test_that("softmax EM with cached gate weights follows an EM without any cache", {
  # The Newton gate M-step starts from the log-weights and probabilities left
  # by the previous M-step's accepted pass. A plain EM loop built from
  # uncached pieces (E-step from cpp_loglik, weighted least squares in R,
  # cpp_gate_mstep without a cache) must give the same iterates. One Newton
  # step per M-step (gate_maxit = 1), so stale weights would change the step
  # itself instead of being corrected by further steps.
  dat <- gaussian_data_2(n = 800, seed = 3)
  X <- cbind(1, dat$x)
  k <- 3
  spec <- cpp_spec(gate_softmax())
  ctl <- list(tol = 0, maxit = 8L, nthreads = 1L, gate_maxit = 1L)
  g <- list(W = cbind(c(0.5, -0.3), c(-0.4, 0.2), c(0, 0)), b0 = c(0.1, -0.2, 0), tau = 1)
  e <- list(coef = cbind(c(0.5, 1, 0), c(-0.5, -1, 0.5), c(0, 0.3, -0.2)), sigma2 = c(0.5, 0.6, 0.7))
  fit <- moegate:::cpp_em_fit(X, matrix(dat$y), dat$x, spec, cpp_gaussian_spec(), g, e,
                              matrix(0, 0, 0), ctl)
  expect_equal(fit$iter, 8L)
  for (it in 1:8) {
    R <- moegate:::cpp_loglik(X, matrix(dat$y), dat$x, spec, cpp_gaussian_spec(), g, e,
                              NULL, FALSE, 1L)$posterior
    for (i in 1:k) {
      w <- R[, i]
      e$coef[, i] <- stats::lm.wfit(X, dat$y, w)$coefficients
      e$sigma2[i] <- sum(w * (dat$y - X %*% e$coef[, i])^2) / sum(w)
    }
    g <- moegate:::cpp_gate_mstep(dat$x, R, spec, g, ctl)$params
  }
  expect_equal(fit$gate$W, g$W, tolerance = 1e-9)
  expect_equal(fit$gate$b0, g$b0, tolerance = 1e-9)
  expect_equal(fit$expert$coef, e$coef, tolerance = 1e-9)
  expect_equal(fit$expert$sigma2, e$sigma2, tolerance = 1e-9)
  ll <- moegate:::cpp_loglik(X, matrix(dat$y), dat$x, spec, cpp_gaussian_spec(), g, e,
                             NULL, FALSE, 1L)$loglik
  expect_equal(fit$loglik, ll, tolerance = 1e-12)
})

test_that("the Gaussian E-step equals log-densities and log-weights combined in R", {
  # The E-step turns the experts' log-densities into the posterior in place,
  # block by block of rows, with one log per many rows for the
  # log-likelihood; the reference is dnorm() and a plain-R log-softmax.
  # n = 2500 covers two whole blocks of rows (1024) and a partial one.
  dat <- gaussian_data_2(n = 2500, seed = 11)
  X <- cbind(1, dat$x)
  spec <- cpp_spec(gate_softmax())
  g <- list(W = cbind(c(0.5, -0.3), c(-0.4, 0.2), c(0, 0)), b0 = c(0.1, -0.2, 0), tau = 1)
  e <- list(coef = cbind(c(0.5, 1, 0), c(-0.5, -1, 0.5), c(0, 0.3, -0.2)), sigma2 = c(0.5, 0.6, 0.7))
  run <- function(nthreads, weights = NULL) {
    moegate:::cpp_loglik(X, matrix(dat$y), dat$x, spec, cpp_gaussian_spec(), g, e, NULL, FALSE,
                         nthreads, weights)
  }
  one <- run(1L)
  mu <- X %*% e$coef
  logF <- sapply(1:3, function(i) stats::dnorm(dat$y, mu[, i], sqrt(e$sigma2[i]), log = TRUE))
  # Same arithmetic as the full-matrix pass, to rounding of dnorm's.
  expect_equal(one$log_density, logF, tolerance = 1e-12)
  H <- sweep(dat$x %*% g$W, 2, g$b0, "+")
  logG <- H - log(rowSums(exp(H)))
  A <- logG + one$log_density
  m <- apply(A, 1, max)
  lse <- m + log(rowSums(exp(A - m)))
  expect_equal(one$posterior, exp(A - lse), tolerance = 1e-12)
  expect_equal(one$loglik, sum(lse), tolerance = 1e-12)
  # Fixed blocks: the same numbers on 2 threads.
  expect_identical(run(2L)$posterior, one$posterior)
  expect_identical(run(2L)$loglik, one$loglik)
  # Case weights, some zero: the weighted sum, and the reported posterior unweighted.
  w <- rep(c(0, 1, 2.5), length.out = nrow(X))
  wt <- run(1L, w)
  expect_equal(wt$loglik, sum(w * lse), tolerance = 1e-12)
  expect_equal(wt$posterior[w > 0, ], one$posterior[w > 0, ], tolerance = 1e-14)
})

test_that("the fit records the work of its gate M-steps", {
  dat <- gaussian_data_2()
  set.seed(8)
  # Plain EM: one M-step per iteration (SQUAREM, the default, takes three).
  fit <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = gate_cosine(),
                         control = moe_control(maxit = 20, tol = 1e-12, accelerate = "none")))
  expect_named(fit$gate_work, c("steps", "passes", "light_passes"))
  # Fisher scoring: one full pass per EM iteration at least, one step at most.
  expect_gte(fit$gate_work[["passes"]], fit$iter)
  expect_lte(fit$gate_work[["steps"]], fit$iter)
  set.seed(8)
  fit <- fit_quietly(moe(dat$x, dat$y, k = 3, control = moe_control(maxit = 20, tol = 1e-12)))
  expect_gte(fit$gate_work[["steps"]], 1)
  expect_equal(fit$gate_work[["passes"]], 0)  # Newton, not Fisher scoring
})

test_that("the same seed gives an identical fit", {
  dat <- gaussian_data_2(seed = 7)
  fits <- lapply(1:2, function(i) {
    set.seed(99)
    moe(dat$x, dat$y, k = 2, control = moe_control(n_starts = 2))
  })
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$trace, fits[[2]]$trace)
  expect_identical(fits[[1]]$start_objective, fits[[2]]$start_objective)
  # A random-partition start, multinomial experts and the formula interface.
  set.seed(8)
  d <- data.frame(x = rnorm(300))
  d$y <- factor(ifelse(runif(300) < plogis(2 * d$x), "a", sample(c("b", "c"), 300, TRUE)))
  fits <- lapply(1:2, function(i) {
    set.seed(3)
    fit_quietly(moe(y ~ x, data = d, k = 2, control = moe_control(init = "random", maxit = 50)))
  })
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$trace, fits[[2]]$trace)
})

test_that("restarts keep the best start", {
  dat <- gaussian_data_2(seed = 9)
  set.seed(10)
  fit <- fit_quietly(moe(dat$x, dat$y, k = 3,
                         control = moe_control(n_starts = 4, init = "random", maxit = 200)))
  expect_length(fit$start_objective, 4)
  expect_identical(max(fit$start_objective), fit$loglik)
  expect_identical(fit$trace[length(fit$trace)], fit$loglik)
})

test_that("parameters of a k = 3, d = 2 softmax-gated Gaussian MoE are recovered (n = 20000)", {
  set.seed(2024)
  n <- 20000
  W <- cbind(c(2, -1), c(-1, 2), c(0, 0))
  b0 <- c(0.3, -0.2, 0)
  coef <- cbind(c(1, 2, -1), c(-1, -1, 2), c(0, 0.5, 0.5))
  sigma2 <- c(0.25, 0.5, 0.1)
  dat <- sim_gaussian_moe(n, W, b0, coef, sigma2)
  fit <- moe(dat$x, dat$y, k = 3, control = moe_control(n_starts = 3, tol = 1e-10))
  expect_true(fit$converged)
  # Experts are unordered: match them by their coefficients, then express the
  # gate relative to the fitted expert matched to the true reference (3).
  perm <- match_experts(unname(fit$params$expert$coef), coef)
  gp <- list(W = unname(fit$params$gate$W[, perm] - fit$params$gate$W[, perm[3]]),
             b0 = unname(fit$params$gate$b0[perm] - fit$params$gate$b0[perm[3]]), tau = 1)
  ep <- list(coef = unname(fit$params$expert$coef[, perm]),
             sigma2 = unname(fit$params$expert$sigma2[perm]))
  # Standard errors from the observed information: the Hessian of the
  # log-likelihood by central differences of its analytic gradient, at the
  # matched fit in the truth's parametrisation (W_1, W_2, b0_1, b0_2, coef,
  # sigma2). Every estimate must lie within 5 standard errors (SEs here are
  # ~0.05 for the gate and ~0.01 for the experts, i.e. c / sqrt(n) with c of
  # 1 to 7); with 18 parameters a false alarm has probability ~1e-5.
  Xd <- cbind(1, dat$x)
  gspec <- cpp_spec(gate_softmax())
  espec <- cpp_gaussian_spec()
  grad_at <- function(theta) {
    moegate:::cpp_loglik(Xd, matrix(dat$y), dat$x, gspec, espec, gp, ep, theta, TRUE, 1L)$gradient
  }
  theta <- moegate:::cpp_loglik(Xd, matrix(dat$y), dat$x, gspec, espec, gp, ep, NULL, FALSE, 1L)$theta
  H <- vapply(seq_along(theta), function(j) {
    h <- 1e-5 * max(1, abs(theta[j]))
    e <- replace(numeric(length(theta)), j, h)
    (grad_at(theta + e) - grad_at(theta - e)) / (2 * h)
  }, numeric(length(theta)))
  H <- (H + t(H)) / 2
  se <- sqrt(diag(solve(-H)))
  truth <- c(W[, 1:2], b0[1:2], coef, sigma2)
  expect_length(theta, length(truth))
  expect_true(all(is.finite(se)))
  expect_lt(max(abs(theta - truth) / se), 5)
  # The score at the fit is ~0 on its own scale (its sd under the truth is
  # about 1 / se): EM stopped close to the maximum.
  expect_lt(max(abs(grad_at(theta)) * se), 0.05)
})

test_that("a start at the truth ends at a log-likelihood >= that of the truth", {
  set.seed(11)
  n <- 3000
  W <- cbind(c(2, -1), c(-1, 2), c(0, 0))
  b0 <- c(0.3, -0.2, 0)
  coef <- cbind(c(1, 2, -1), c(-1, -1, 2), c(0, 0.5, 0.5))
  sigma2 <- c(0.25, 0.5, 0.1)
  dat <- sim_gaussian_moe(n, W, b0, coef, sigma2)
  truth <- moe_params(W = W, b0 = b0, coef = coef, sigma2 = sigma2)
  ll_truth <- ref_gaussian_moe_loglik(cbind(1, dat$x), dat$y, dat$x, gate_softmax(),
                                      truth$gate, truth$expert)$loglik
  fit <- moe(dat$x, dat$y, k = 3, control = moe_control(init = truth, tol = 1e-10))
  expect_equal(fit$trace[1], ll_truth, tolerance = 1e-12)
  expect_gte(fit$loglik, ll_truth)
  # The same for a gate estimated with a temperature and a cosine gate (whose
  # gate vectors must not be zero: see the known-bug test below).
  truth_cos <- truth
  truth_cos$gate$W <- W + 0.3
  for (g in list(gate_temperature(), gate_cosine())) {
    start <- if (g$score == "cosine") truth_cos else truth
    fit <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = g, control = moe_control(init = start)))
    ll0 <- ref_gaussian_moe_loglik(cbind(1, dat$x), dat$y, dat$x, g, start$gate, start$expert)$loglik
    expect_equal(fit$trace[1], ll0, tolerance = 1e-12)
    expect_gte(fit$loglik, ll0)
  }
})

test_that("a cosine-gate start with a zero gate vector does not freeze the gate", {
  # A start in the softmax reference convention (w_k = 0), e.g. the truth or
  # coef(fit, type = "params") of a softmax fit, used for a cosine gate.
  set.seed(14)
  n <- 2000
  W <- cbind(c(2, -1), c(-1, 2), c(0, 0))
  coef <- cbind(c(1, 2, -1), c(-1, -1, 2), c(0, 0.5, 0.5))
  dat <- sim_gaussian_moe(n, W + 0.3, c(0.3, -0.2, 0), coef, c(0.25, 0.5, 0.1), g = gate_cosine())
  start <- moe_params(W = W, b0 = c(0.3, -0.2, 0), coef = coef, sigma2 = c(0.25, 0.5, 0.1))
  fit <- tryCatch(fit_quietly(moe(dat$x, dat$y, k = 3, gate = gate_cosine(),
                                  control = moe_control(init = start))),
                  moe_error = function(e) "refused")
  # Either the start is refused with a classed error naming `init`, or the
  # gate M-step moves the gate away from the start.
  if (!identical(fit, "refused")) {
    expect_false(isTRUE(all.equal(unname(fit$params$gate$W), W)))
    nearby <- start
    nearby$gate$W <- W + 0.3
    fit_nearby <- fit_quietly(moe(dat$x, dat$y, k = 3, gate = gate_cosine(),
                                  control = moe_control(init = nearby)))
    expect_gt(fit$loglik, fit_nearby$loglik - 1)
  } else {
    expect_identical(fit, "refused")
  }
})

test_that("user-supplied starting values via moe_params are used", {
  dat <- gaussian_data_2(seed = 12)
  init <- moe_params(W = matrix(c(1, 0.5, 0, 0), 2), b0 = c(0.1, 0),
                     coef = cbind(c(0.5, 1, 0), c(-0.5, -1, 0.5)), sigma2 = c(1, 2))
  Xd <- cbind(1, dat$x)
  ll_init <- ref_gaussian_moe_loglik(Xd, dat$y, dat$x, gate_softmax(), init$gate,
                                     init$expert)$loglik
  fit <- fit_quietly(moe(dat$x, dat$y, k = 2, control = moe_control(init = init, maxit = 1)))
  # The first trace entry is the log-likelihood at the user's parameters.
  expect_equal(fit$trace[1], ll_init, tolerance = 1e-12)
  expect_length(fit$trace, 2)
  # A start function and a list of starts (one per start).
  fun_fit <- fit_quietly(moe(dat$x, dat$y, k = 2,
                             control = moe_control(init = function(k, ...) init, maxit = 1)))
  expect_identical(fun_fit$params, fit$params)
  init2 <- init
  init2$expert$coef <- init$expert$coef[, 2:1]
  list_fit <- fit_quietly(moe(dat$x, dat$y, k = 2,
                              control = moe_control(init = list(init, init2), n_starts = 2, maxit = 1)))
  expect_length(list_fit$start_objective, 2)
  expect_identical(list_fit$start_objective[1], fit$loglik)
  # Parameters for the wrong number of experts are refused.
  expect_error(moe(dat$x, dat$y, k = 3, control = moe_control(init = init)),
               class = "moe_error", regexp = "init")
})

test_that("a collapsing fit hits the variance floor, warns, and returns no NaN", {
  # Five distinct (x, y) points, each repeated 20 times: experts with an
  # intercept and a slope fit pairs of points exactly, so their variances
  # collapse to the floor var_floor * var(y).
  x <- rep(c(-1, 0, 1, 2, 3), each = 20)
  y <- rep(c(0.5, 2, -1, 1, 0), each = 20)
  for (k in c(3, 4)) {
    set.seed(13)
    fit <- NULL
    expect_warning(
      fit <- withCallingHandlers(
        moe(x, y, k = k, control = moe_control(init = "random", n_starts = 2)),
        moe_degenerate_warning = function(w) invokeRestart("muffleWarning"),
        moe_convergence_warning = function(w) invokeRestart("muffleWarning")),
      class = "moe_variance_floor_warning")
    expect_false(anyNA(unlist(fit$params)))
    expect_true(all(is.finite(unlist(fit$params))))
    expect_true(is.finite(fit$loglik))
    expect_true(any(fit$floor_binds))
    floor <- 1e-6 * var(y)
    expect_true(all(fit$params$expert$sigma2 >= floor * (1 - 1e-12)))
    expect_equal(unname(fit$params$expert$sigma2[fit$floor_binds]),
                 rep(floor, sum(fit$floor_binds)), tolerance = 1e-10)
  }
})
