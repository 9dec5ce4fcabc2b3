# Stopping rules and the Newton / L-BFGS polish of the full log-likelihood.

overspecified_case <- function(n, seed) {
  truth <- moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
                      coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.3, 0.4)^2)
  set.seed(seed)
  d <- rmoe(n, truth, x = seq(0, 1, length.out = n))
  set.seed(100 + seed)
  list(d = d, start = init_near_truth(truth, k = 3, assign = "random")(k = 3, y = d$y))
}

test_that("new control options are validated", {
  expect_error(moe_control(stop = "often"), class = "moe_error_stop")
  expect_error(moe_control(grad_tol = 0), class = "moe_error_grad_tol")
  expect_error(moe_control(polish = "bfgs"), class = "moe_error_polish")
  expect_error(moe_control(polish_at = -1), class = "moe_error_polish_at")
  expect_error(moe_control(polish_maxit = 0.5), class = "moe_error_polish_maxit")
  ctl <- moe_control()
  expect_identical(ctl$stop, "gradient")
  expect_identical(ctl$polish, "newton")
})

test_that("converged is named by the rule that stopped the fit", {
  set.seed(1)
  n <- 400
  x <- runif(n)
  y <- ifelse(runif(n) < plogis(4 * (x - 0.5)), 1 + 2 * x, -1 - x) + rnorm(n, sd = 0.2)
  d <- data.frame(x, y)
  set.seed(2); f_grad <- moe(y ~ x, data = d, k = 2)
  expect_identical(names(f_grad$converged), "gradient")
  expect_true(f_grad$converged)
  expect_lte(f_grad$gradient_criterion, 1e-6)
  set.seed(2); f_ll <- moe(y ~ x, data = d, k = 2, control = moe_control(stop = "loglik"))
  expect_identical(names(f_ll$converged), "loglik")
  expect_true(is.finite(f_ll$gradient_criterion))
  # The gradient rule's fit is at least as good as the relative-change rule's.
  expect_gte(f_grad$loglik, f_ll$loglik - 1e-8 * abs(f_ll$loglik))
  set.seed(2)
  f_max <- suppressWarnings(moe(y ~ x, data = d, k = 2,
                                control = moe_control(stop = "loglik", tol = 1e-300, maxit = 3)))
  expect_identical(names(f_max$converged), "maxit")
  expect_false(f_max$converged)
  expect_equal(f_grad$loglik, f_grad$trace[length(f_grad$trace)])
})

test_that("the gradient criterion is the relative score of the free parameters", {
  case <- overspecified_case(600, 3)
  fit <- suppressWarnings(moe(y ~ x1, data = case$d, k = 3,
                              control = moe_control(init = case$start, stop = "loglik", tol = 1e-4)))
  X <- cbind(1, case$d$x1)
  p <- coef(fit, type = "params")
  ex <- expert_gaussian()
  floor <- ex$var_floor * var(case$d$y)
  ll <- moegate:::cpp_loglik(X, matrix(case$d$y), matrix(case$d$x1),
                             moegate:::gate_cpp_spec(gate_softmax()),
                             moegate:::expert_cpp_spec(ex, var(case$d$y), 0L),
                             list(W = p$gate$W, b0 = p$gate$b0, tau = 1),
                             list(coef = unname(p$expert$coef), sigma2 = unname(p$expert$sigma2)),
                             NULL, TRUE, 1L)
  g <- ll$gradient
  theta <- ll$theta
  k <- 3
  tail_idx <- length(theta) - (k - 1):0
  g[tail_idx] <- g[tail_idx] * (theta[tail_idx] - floor)
  theta[tail_idx] <- log(theta[tail_idx] - floor)
  expect_equal(fit$gradient_criterion, max(abs(g) * pmax(abs(theta), 1)) / 600, tolerance = 1e-6)
})

test_that("polished over-specified fits are monotone and never below plain EM", {
  for (seed in 1:3) {
    case <- overspecified_case(1500, seed)
    fit <- function(...) suppressWarnings(moe(y ~ x1, data = case$d, k = 3,
                                              control = moe_control(init = case$start, ...)))
    plain <- fit(stop = "loglik", tol = 1e-12, maxit = 3000)
    newton <- fit()
    lbfgs <- fit(polish = "lbfgs")
    squarem <- fit(accelerate = "squarem")
    for (f in list(newton, squarem)) {
      expect_true(f$converged, label = paste("seed", seed))
      expect_identical(names(f$converged), "gradient")
    }
    # L-BFGS polishes gain too but stall before the gradient rule holds here.
    for (f in list(newton, lbfgs, squarem)) {
      # The polish gains on plain EM run 3000 iterations (1e-9 relative: rounding).
      expect_gte(f$loglik, plain$loglik - 1e-9 * abs(plain$loglik))
      drops <- diff(f$trace) / (abs(f$trace[-length(f$trace)]) + 1)
      expect_true(all(drops >= -1e-10), label = paste("monotone, seed", seed))
    }
    expect_gt(newton$polish[["runs"]], 0)
    expect_true(newton$iter < 200)
  }
})

test_that("polished fits are identical with 1 and 2 threads", {
  case <- overspecified_case(3000, 2)
  fits <- lapply(1:2, function(nt) {
    suppressWarnings(moe(y ~ x1, data = case$d, k = 3,
                         control = moe_control(init = case$start, nthreads = nt)))
  })
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$trace, fits[[2]]$trace)
  expect_identical(fits[[1]]$polish, fits[[2]]$polish)
})
