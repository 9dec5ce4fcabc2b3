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

test_that("the default is SQUAREM with one gate Newton step per EM iteration", {
  set.seed(11)
  n <- 600
  x <- runif(n)
  y <- ifelse(runif(n) < plogis(5 * (x - 0.5)), 1 + 2 * x, -1 - x) + rnorm(n, sd = 0.3)
  d <- data.frame(x, y)
  fit <- function(...) {
    set.seed(3)
    moe(y ~ x, data = d, k = 2, control = moe_control(...))
  }
  default <- fit()
  expect_identical(default$params, fit(accelerate = "squarem", gate_maxit = 1)$params)
  expect_identical(default$trace, fit(accelerate = "squarem", gate_maxit = 1)$trace)
  # Plain EM with the default gate M-step: one Newton step per EM iteration;
  # solved to gate_tol (gate_maxit = 50) it takes more.
  plain <- fit(accelerate = "none")
  expect_lte(plain$gate_work[["steps"]], plain$iter)
  solved <- fit(accelerate = "none", gate_maxit = 50)
  expect_gt(solved$gate_work[["steps"]], solved$iter)
  # All three reach the same maximum (gradient rule), the default in fewer
  # iterations, monotone.
  for (f in list(default, plain, solved)) {
    expect_identical(names(f$converged), "gradient")
    expect_equal(f$loglik, solved$loglik, tolerance = 1e-9)
  }
  expect_lt(default$iter, plain$iter)
  expect_true(all(diff(default$trace) >= -1e-10 * abs(default$loglik)))
})

test_that("the gradient criterion is free of units and falls only near a stationary point", {
  case <- overspecified_case(600, 3)
  fit <- function(d, ...) suppressWarnings(moe(y ~ x1, data = d, k = 3,
                                               control = moe_control(init = case$start, ...)))
  early <- fit(case$d, stop = "loglik", maxit = 2)
  expect_gt(early$gradient_criterion, 1e-4)
  done <- fit(case$d)
  expect_true(done$converged)
  expect_lte(done$gradient_criterion, 1e-6)
  # Response and covariate in other units and origin: the same criterion.
  d2 <- transform(case$d, y = 10 * y + 3, x1 = 100 * x1)
  start2 <- case$start
  start2$gate$W <- start2$gate$W / 100
  start2$expert$coef <- rbind(10 * start2$expert$coef[1, ] + 3, start2$expert$coef[2, ] / 10)
  start2$expert$sigma2 <- 100 * start2$expert$sigma2
  early2 <- suppressWarnings(moe(y ~ x1, data = d2, k = 3,
                                 control = moe_control(init = start2, stop = "loglik", maxit = 2)))
  expect_equal(early2$gradient_criterion, early$gradient_criterion, tolerance = 1e-6)
})

test_that("polished over-specified fits are monotone and never below plain EM", {
  for (seed in 1:3) {
    case <- overspecified_case(1500, seed)
    fit <- function(...) suppressWarnings(moe(y ~ x1, data = case$d, k = 3,
                                              control = moe_control(init = case$start, ...)))
    plain <- fit(stop = "loglik", tol = 1e-12, maxit = 3000, accelerate = "none")
    newton <- fit(accelerate = "none")
    lbfgs <- fit(polish = "lbfgs", accelerate = "none")
    squarem <- fit()  # the default: SQUAREM with the Newton polish
    for (f in list(newton, squarem)) {
      expect_true(f$converged, label = paste("seed", seed))
      expect_identical(names(f$converged), "gradient")
    }
    # L-BFGS polishes are monotone too, but their line searches can carry the
    # fit into another basin (seed 3: 0.04 below plain EM), so only Newton
    # (the default) and SQUAREM with Newton are held to plain EM's value.
    for (f in list(newton, lbfgs, squarem)) {
      if (!identical(f, lbfgs)) {
        # Plain EM ran 3000 iterations to tol 1e-12 (1e-9 relative: rounding).
        expect_gte(f$loglik, plain$loglik - 1e-9 * abs(plain$loglik))
      }
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
