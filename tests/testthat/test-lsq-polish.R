# The gradient rule and Newton polish of least-squares fits (src/lsq.cpp,
# moe_control(stop = "gradient", polish = "newton")).

# y = sum_i G_i(x) tanh(a_i'x) + noise from two experts, x in R^2 and z = x.
sim_polish <- function(g, n = 800, seed = 61) {
  set.seed(seed)
  x <- matrix(runif(2 * n, -2, 2), n, 2)
  W <- cbind(c(2, -1), c(-1, 1.5))
  if (g$normalizer == "softmax" && g$score == "inner") W[, 2] <- 0
  gp <- list(W = W, b0 = c(0.3, 0), tau = 1)
  coef <- cbind(c(0.5, 1.5, -1), c(-0.5, -1, 0.8))
  G <- exp(ref_gate_forward(x, g, gp)$log_weights)
  y <- rowSums(G * tanh(cbind(1, x) %*% coef)) + rnorm(n, sd = 0.2)
  list(x = x, X = cbind(1, x), y = y)
}

polish_quietly <- function(expr) {
  withCallingHandlers(expr, moe_convergence_warning = function(w) invokeRestart("muffleWarning"))
}

fit_lsq <- function(dat, g, k, control, seed = 62) {
  set.seed(seed)
  polish_quietly(moe(dat$x, dat$y, k = k, gate = g, expert = expert_gaussian("tanh"),
                     method = "lsq", control = control))
}

# The criterion of moe_control(stop = "gradient") on the RSS, by the formula.
ref_lsq_criterion <- function(gradient, theta, n) {
  max(abs(gradient) * pmax(abs(theta), 1)) / n
}

test_that("the Newton polish never raises the RSS, also on over-specified cosine routers", {
  cases <- list(softmax_k3 = list(gate_softmax(), 3), cosine_k3 = list(gate_cosine(), 3),
                perturbed_cosine_k3 = list(gate_perturbed_cosine(), 3),
                cosine_k2 = list(gate_cosine(), 2))
  for (nm in names(cases)) {
    g <- cases[[nm]][[1]]
    k <- cases[[nm]][[2]]
    dat <- sim_polish(g)
    # The over-specified perturbed cosine fit runs off (the run-off guard,
    # on by default, stops it in L-BFGS: test-runoff.R); this test is about
    # the polish, so the guard is off.
    plain <- fit_lsq(dat, g, k, moe_control(tol = 1e-10, runoff_ratio = Inf))
    polished <- fit_lsq(dat, g, k, moe_control(tol = 1e-10, stop = "gradient", polish = "newton",
                                               runoff_ratio = Inf))
    # The same start and the same L-BFGS path: the polish starts where the
    # plain fit ended and accepts only steps that lower the RSS.
    expect_lte(polished$rss, plain$rss, label = nm)
    expect_equal(polished$rss, plain$rss - polished$polish[["gain"]],
                 tolerance = 1e-12, label = nm)
    expect_lte(polished$gradient_criterion, plain$gradient_criterion, label = nm)
    expect_identical(plain$polish[["runs"]], 0, label = nm)
    expect_identical(names(plain$converged), "rss", label = nm)
    expect_true(names(polished$converged) %in% c("gradient", "stalled", "maxit"), label = nm)
    expect_identical(unname(polished$converged),
                     polished$gradient_criterion <= 1e-6, label = nm)
  }
})

test_that("the polished fit meets the gradient rule on a regular fit, by the formula", {
  g <- gate_softmax()
  dat <- sim_polish(g, n = 600)
  set.seed(63)
  gp <- list(W = matrix(c(0.5, -0.5, 0, 0), 2), b0 = c(0.1, 0), tau = 1)
  coef0 <- matrix(c(0.2, 1, -0.5, -0.2, -0.5, 0.5), 3)
  ctl <- function(...) utils::modifyList(list(tol = 1e-10, maxit = 1000L, nthreads = 1L,
                                              trace = 0L, grad_tol = 1e-9, polish_maxit = 100L),
                                         list(...))
  res <- moegate:::cpp_lsq_fit(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh", gp, coef0,
                               ctl(stop = "gradient", polish = "newton"))
  expect_identical(res$stop_rule, "gradient")
  expect_true(res$converged)
  at <- moegate:::cpp_lsq_objective(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh",
                                    res$gate, res$coef, NULL, 1L)
  expect_equal(at$value, res$rss, tolerance = 1e-14)
  crit <- ref_lsq_criterion(at$gradient, at$theta, nrow(dat$X))
  expect_lte(crit, 1e-9)
  expect_equal(res$gradient_criterion, crit, tolerance = 1e-12)
  # L-BFGS alone from the same start (its own tests): the same criterion
  # reported, here above the tight grad_tol.
  plain <- moegate:::cpp_lsq_fit(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh", gp, coef0,
                                 ctl(stop = "loglik", polish = "newton"))
  at0 <- moegate:::cpp_lsq_objective(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh",
                                     plain$gate, plain$coef, NULL, 1L)
  expect_equal(plain$gradient_criterion, ref_lsq_criterion(at0$gradient, at0$theta, nrow(dat$X)),
               tolerance = 1e-12)
  expect_identical(plain$polish[["runs"]], 0)
  expect_lte(res$rss, plain$rss)
  # The gradient rule without a polish only judges L-BFGS's end point.
  bare <- moegate:::cpp_lsq_fit(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh", gp, coef0,
                                ctl(stop = "gradient", polish = "none"))
  expect_identical(bare$rss, plain$rss)
  expect_identical(bare$converged, plain$gradient_criterion <= 1e-9)
  expect_identical(bare$stop_rule, if (bare$converged) "gradient" else "stalled")
  # A polish cut at one Newton iteration before a criterion of 1e-300 holds.
  cut <- moegate:::cpp_lsq_fit(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh", gp, coef0,
                               ctl(stop = "gradient", polish = "newton", polish_maxit = 1L,
                                   grad_tol = 1e-300))
  expect_false(cut$converged)
  expect_true(cut$stop_rule %in% c("maxit", "stalled"))
  expect_lte(cut$rss, plain$rss)
})

test_that("a polished fit matches lm (k = 1) and optim cannot improve it (k = 2)", {
  set.seed(64)
  n <- 400
  x <- matrix(rnorm(2 * n), n, 2)
  y <- drop(1 + x %*% c(2, -1)) + rnorm(n)
  fit <- polish_quietly(moe(x, y, k = 1, method = "lsq",
                            control = moe_control(stop = "gradient", grad_tol = 1e-10)))
  ref <- stats::lm(y ~ x)
  expect_equal(fit$rss, sum(residuals(ref)^2), tolerance = 1e-10)
  expect_equal(unname(drop(fit$params$expert$coef)), unname(coef(ref)), tolerance = 1e-7)
  expect_true(isTRUE(fit$converged))

  # k = 2, the softmax gate and tanh experts: BFGS from the polished point
  # (with the same analytic gradient) finds no RSS lower by more than its own
  # rounding, relative 1e-10.
  g <- gate_softmax()
  dat <- sim_polish(g, n = 500, seed = 65)
  gp <- list(W = matrix(c(0.5, -0.5, 0, 0), 2), b0 = c(0.1, 0), tau = 1)
  coef0 <- matrix(c(0.2, 1, -0.5, -0.2, -0.5, 0.5), 3)
  res <- moegate:::cpp_lsq_fit(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh", gp, coef0,
                               list(tol = 1e-10, maxit = 1000L, nthreads = 1L, trace = 0L,
                                    stop = "gradient", grad_tol = 1e-8, polish = "newton",
                                    polish_maxit = 100L))
  obj <- function(theta) {
    moegate:::cpp_lsq_objective(dat$X, matrix(dat$y), dat$x, cpp_spec(g), "tanh",
                                res$gate, res$coef, theta, 1L)
  }
  theta <- obj(NULL)$theta
  opt <- stats::optim(theta, function(t) obj(t)$value, function(t) obj(t)$gradient,
                      method = "BFGS", control = list(reltol = 1e-16, maxit = 500))
  expect_gte(opt$value, res$rss * (1 - 1e-10))
})

test_that("the polished least-squares fit is the same on 1 and 2 threads", {
  g <- gate_cosine()
  # Above 2 x 16384 rows, so that 2 threads do run (numerics.h).
  dat <- sim_polish(g, n = 40000, seed = 66)
  fits <- lapply(1:2, function(nt) {
    fit_lsq(dat, g, 2, moe_control(stop = "gradient", polish = "newton", nthreads = nt,
                                   maxit = 200))
  })
  expect_identical(fits[[1]]$rss, fits[[2]]$rss)
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$converged, fits[[2]]$converged)
  expect_identical(fits[[1]]$polish, fits[[2]]$polish)
})

test_that("least squares keeps the relative-change rule unless stop is given", {
  expect_identical(moe_control()$lsq_stop, "loglik")
  expect_identical(moe_control()$stop, "gradient")
  expect_identical(moe_control(stop = "gradient")$lsq_stop, "gradient")
  expect_identical(moe_control(stop = "loglik")$lsq_stop, "loglik")
  expect_identical(moegate:::as_control(list(stop = "gradient"))$lsq_stop, "gradient")
  g <- gate_cosine()
  dat <- sim_polish(g, n = 300)
  default <- fit_lsq(dat, g, 2, moe_control())
  loglik <- fit_lsq(dat, g, 2, moe_control(stop = "loglik", polish = "newton"))
  expect_identical(default$params, loglik$params)
  expect_identical(default$polish[["runs"]], 0)
  expect_identical(names(default$converged), "rss")
  # A control without the field (saved by an earlier version) is read the same way.
  old <- moe_control()
  old$lsq_stop <- NULL
  expect_identical(fit_lsq(dat, g, 2, old)$params, default$params)
  expect_error(moe_control(stop = "rss"), class = "moe_error", regexp = "`stop`")
  expect_error(moe_control(stop = "gradient", polish_maxit = 0), class = "moe_error",
               regexp = "`polish_maxit`")
  expect_error(moe_control(stop = "gradient", grad_tol = -1), class = "moe_error",
               regexp = "`grad_tol`")
})

test_that("a stored control rebuilds with the same least-squares rule", {
  for (ctl in list(moe_control(), moe_control(stop = "gradient"), moe_control(stop = "loglik"),
                   moe_control(lsq_stop = "gradient"))) {
    again <- do.call(moe_control, unclass(ctl))
    expect_identical(again$lsq_stop, ctl$lsq_stop)
    expect_identical(again$stop, ctl$stop)
  }
  expect_identical(moe_control(stop = "loglik", lsq_stop = "gradient")$lsq_stop, "gradient")
  expect_error(moe_control(lsq_stop = "rss"), "lsq_stop")
  expect_error(moe_control(lsq_stop = 1), "lsq_stop")
})
