# The Newton polish's analytic observed information for Gaussian experts
# (linear means) under the linear softmax gate, in the polish's free
# coordinates: coefficients, then phi_i = log(sigma2_i - floor).

# The free score from cpp_loglik()'s raw one (variances last): d/dphi =
# (sigma2 - floor) d/dsigma2.
gaussian_free_score <- function(X, Y, Z, gspec, espec, gp, ep, k, w = NULL) {
  function(th) {
    v <- seq(length(th) - k + 1, length(th))
    raw <- th
    raw[v] <- exp(th[v]) + espec$var_floor
    g <- moegate:::cpp_loglik(X, Y, Z, gspec, espec, gp, ep, raw, TRUE, 1L, w)$gradient
    g[v] <- g[v] * exp(th[v])
    g
  }
}

test_that("the Gaussian experts' analytic observed information matches differences of the score", {
  set.seed(5)
  n <- 80; k <- 3
  Z <- matrix(rnorm(n * 2), n, 2)
  X <- cbind(1, Z)
  Y <- matrix(rnorm(n, 2 * Z[, 1]), n)
  w <- runif(n, 0.2, 3)
  w[1:4] <- 0
  gp <- list(W = cbind(matrix(rnorm(4), 2, 2), 0), b0 = c(rnorm(2), 0), tau = 0.7)
  for (fl in c(0, 0.01)) {
    espec <- cpp_gaussian_spec(var_floor = fl)
    for (scale in c(1, 8)) {  # 8: posteriors near 0 and 1
      ep <- list(coef = scale * matrix(rnorm(3 * k), 3), sigma2 = c(0.05, 1.3, 2) + fl)
      for (g in list(gate_softmax(), gate(intercept = "inside", temperature = 0.7))) {
        for (cw in list(NULL, w)) {
          gspec <- cpp_spec(g)
          label <- sprintf("floor %g, scale %g, intercept %s, %s", fl, scale, g$intercept,
                           if (is.null(cw)) "unweighted" else "weighted")
          oi <- moegate:::cpp_observed_information(X, Y, Z, gspec, espec, gp, ep, 1L, cw)
          expect_false(is.null(oi$information), label = label)
          score <- gaussian_free_score(X, Y, Z, gspec, espec, gp, ep, k, cw)
          expect_equal(score(oi$theta), oi$score, tolerance = 1e-10, label = label)
          fd <- -ref_fd_jacobian(score, oi$theta)
          # Central differences with relative steps 1e-5: at scale 8 (a variance
          # of 0.05, posteriors near 0 and 1) their error reaches about 1e-7 of
          # the largest entry; a wrong derivative term is off by far more.
          expect_all_within(max(abs(oi$information - fd)) / max(abs(fd)), 1e-6,
                            paste(label, "vs differences"))
          expect_equal(oi$information, t(oi$information), tolerance = 1e-12, label = label)
        }
      }
    }
  }
  # 1 and 2 threads agree exactly (fixed blocks, ordered sums).
  set.seed(6)
  nb <- 40000
  Zb <- matrix(rnorm(nb), nb, 1)
  Xb <- cbind(1, Zb)
  Yb <- matrix(rnorm(nb, 3 * Zb[, 1]), nb)
  gb <- list(W = cbind(matrix(c(2, -1), 1), 0), b0 = c(0.5, 0, 0), tau = 1)
  eb <- list(coef = matrix(rnorm(6), 2), sigma2 = c(0.5, 1, 2))
  one <- moegate:::cpp_observed_information(Xb, Yb, Zb, cpp_spec(gate_softmax()),
                                            cpp_gaussian_spec(), gb, eb, 1L)
  two <- moegate:::cpp_observed_information(Xb, Yb, Zb, cpp_spec(gate_softmax()),
                                            cpp_gaussian_spec(), gb, eb, 2L)
  expect_false(is.null(one$information))
  expect_identical(one$information, two$information)
})

test_that("Gaussian Newton polish with the analytic information reaches the gradient rule", {
  # Over-specified: a k* = 2 truth fitted with k = 3, from a start that EM
  # alone leaves short of the maximum.
  truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                      coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  set.seed(11)
  d <- rmoe(3000, truth)
  plain <- suppressWarnings(moe(y ~ x1, data = d, k = 3,
                                control = moe_control(stop = "loglik", polish = "none",
                                                      accelerate = "none", tol = 1e-8)))
  fit <- moe(y ~ x1, data = d, k = 3, control = moe_control(init = plain$params))
  expect_true(isTRUE(fit$converged) || identical(fit$converged, "gradient"))
  expect_lte(fit$gradient_criterion, 1e-6)
  expect_gte(fit$loglik, plain$loglik - 1e-8)
})

test_that("the trust-region polish reaches the gradient rule and never lowers the log-likelihood", {
  truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                      coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  for (seed in 11:13) {
    set.seed(seed)
    d <- rmoe(3000, truth)
    # A start that EM alone leaves short of the maximum (over-specified, k = 4).
    plain <- suppressWarnings(moe(y ~ x1, data = d, k = 4,
                                  control = moe_control(stop = "loglik", polish = "none",
                                                        accelerate = "none", tol = 1e-6)))
    label <- paste("seed", seed)
    tr <- moe(y ~ x1, data = d, k = 4, control = moe_control(init = plain$params, polish = "trust"))
    expect_identical(names(tr$converged), "gradient", label = label)
    expect_lte(tr$gradient_criterion, 1e-6)
    expect_gte(tr$loglik, plain$loglik - 1e-8)
    expect_gt(tr$polish[["runs"]], 0)
    # The polish's log-likelihood is the one of its parameters.
    expect_equal(as.numeric(logLik(tr)), tr$loglik, tolerance = 1e-10, label = label)
  }
})

test_that("polish = \"trust\" is the Newton polish where the information is not analytic", {
  # A cosine gate has no analytic information: both polishes take the same
  # path (an over-specified fit, k = 3, so that a polish runs).
  set.seed(3)
  d <- data.frame(x1 = rnorm(400), x2 = rnorm(400))
  d$y <- ifelse(d$x1 > 0, 2 * d$x2, -d$x2) + rnorm(400, sd = 0.3)
  fit_with <- function(p) {
    set.seed(1)
    suppressWarnings(moe(y ~ x1 + x2, data = d, k = 3, gate = gate_cosine(),
                         control = moe_control(polish = p, n_starts = 1)))
  }
  a <- fit_with("newton")
  b <- fit_with("trust")
  expect_gt(a$polish[["runs"]], 0)
  expect_identical(a$params, b$params)
  expect_identical(a$loglik, b$loglik)
})

test_that("the trust-region polish gives the same fit on 1 and 2 threads", {
  truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                      coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  set.seed(21)
  d <- rmoe(40000, truth)
  init <- suppressWarnings(moe(y ~ x1, data = d, k = 3,
                               control = moe_control(stop = "loglik", polish = "none",
                                                     accelerate = "none", tol = 1e-5)))$params
  fits <- lapply(1:2, function(nt) {
    moe(y ~ x1, data = d, k = 3,
        control = moe_control(init = init, polish = "trust", nthreads = nt))
  })
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$loglik, fits[[2]]$loglik)
})
