# Simulation: rmoe() and simulate.moe() (R/simulate.R).

truth2 <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0.3, 0),
                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.15))

test_that("rmoe returns a data frame that moe() fits directly", {
  set.seed(1)
  sim <- rmoe(50, truth2)
  expect_s3_class(sim, "data.frame")
  expect_identical(names(sim), c("y", "x1", "expert"))
  expect_identical(nrow(sim), 50L)
  expect_true(all(sim$expert %in% 1:2))
  expect_true(all(abs(sim$x1) <= 1))
  expect_identical(attr(sim, "truth")$params, truth2)
  expect_s3_class(moe(y ~ x1, data = sim, k = 2), "moe_gaussian")
})

test_that("rmoe is reproducible from R's RNG", {
  set.seed(2)
  a <- rmoe(100, truth2)
  set.seed(2)
  b <- rmoe(100, truth2)
  expect_identical(a, b)
  expect_false(identical(a$y, rmoe(100, truth2)$y))
})

test_that("latent experts follow the gate and responses the experts", {
  set.seed(3)
  n <- 20000
  sim <- rmoe(n, truth2)
  G <- plogis(4 * sim$x1 + 0.3)
  # Binomial sampling error of the share of expert 1: sd about 0.0035.
  expect_equal(mean(sim$expert == 1), mean(G), tolerance = 0.02)
  one <- sim$expert == 1
  r1 <- sim$y[one] - (1 + 2 * sim$x1[one])
  r2 <- sim$y[!one] - (-1 - sim$x1[!one])
  expect_lt(abs(mean(r1)), 0.02)
  expect_equal(var(r1), 0.1, tolerance = 0.05)
  expect_equal(var(r2), 0.15, tolerance = 0.05)
})

test_that("rmoe output fits back to roughly the truth", {
  set.seed(4)
  sim <- rmoe(3000, truth2)
  fit <- moe(y ~ x1, data = sim, k = 2)
  # Experts are unordered: match by the sign of the intercept.
  est <- fit$params
  i1 <- which.max(est$expert$coef[1, ])
  i2 <- 3 - i1
  expect_equal(unname(est$expert$coef[, c(i1, i2)]), truth2$expert$coef, tolerance = 0.05)
  expect_equal(unname(est$expert$sigma2[c(i1, i2)]), truth2$expert$sigma2, tolerance = 0.1)
  # Gate in the convention with the other expert as reference.
  w <- est$gate$W[1, i1] - est$gate$W[1, i2]
  b <- est$gate$b0[i1] - est$gate$b0[i2]
  # Standard errors at n = 3000 are about 0.16 (w) and 0.06 (b): 3 of them.
  expect_lt(abs(w - 4), 0.5)
  expect_lt(abs(b - 0.3), 0.2)
})

test_that("rmoe uses given covariates, separate gate covariates and other gates", {
  x <- matrix(seq(-1, 1, length.out = 40))
  set.seed(5)
  sim <- rmoe(params = truth2, x = x)
  expect_identical(sim$x1, as.numeric(x))
  z <- cbind(runif(40), runif(40))
  tz <- moe_params(W = cbind(c(1, -1), c(0, 0)), b0 = c(0, 0), coef = truth2$expert$coef,
                   sigma2 = c(0.1, 0.1))
  sim_z <- rmoe(40, tz, x = x, z = z)
  expect_identical(names(sim_z), c("y", "x1", "z1", "z2", "expert"))
  expect_s3_class(moe(y ~ x1 | z1 + z2, data = sim_z, k = 2), "moe")
  # Covariates from x_dist, several expert covariates.
  t3 <- moe_params(W = matrix(c(1, 2, 0, 0), 2), b0 = c(0, 0),
                   coef = cbind(c(0, 1, 1), c(1, -1, 0)), sigma2 = c(1, 1))
  sim3 <- rmoe(30, t3, gate = gate_cosine(),
               x_dist = function(n, d) matrix(rnorm(n * d), n, d))
  expect_identical(names(sim3), c("y", "x1", "x2", "expert"))
  expect_true(any(abs(sim3$x1) > 1))
  expect_identical(nrow(rmoe(10, moe_params(W = matrix(1, 1, 1), b0 = 0, coef = matrix(2),
                                            sigma2 = 1), intercept = FALSE)), 10L)
})

test_that("rmoe simulates multinomial experts", {
  mt <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0),
                   coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2)))
  set.seed(6)
  sim <- rmoe(400, mt, expert = "multinomial", levels = c("a", "b", "c"))
  expect_s3_class(sim$y, "factor")
  expect_identical(levels(sim$y), c("a", "b", "c"))
  expect_identical(levels(rmoe(5, mt, expert = "multinomial")$y), c("1", "2", "3"))
  # One expert: the class probabilities of the single multinomial model.
  m1 <- moe_params(W = matrix(0, 1, 1), b0 = 0, coef = array(c(0.5, 1, -0.5, 0), c(2, 2, 1)))
  set.seed(7)
  big <- rmoe(20000, m1, expert = "multinomial")
  eta <- cbind(0.5 + big$x1, -0.5, 0)
  p <- colMeans(exp(eta) / rowSums(exp(eta)))
  expect_equal(as.numeric(table(big$y)) / 20000, p, tolerance = 0.03)
})

test_that("the unnormalised sigmoid gate simulates the regression model", {
  ts <- moe_params(W = matrix(c(4, -4), 1), b0 = c(0, 0),
                   coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.05, 0.05))
  set.seed(8)
  sim <- rmoe(5000, ts, gate = gate_sigmoid(normalize = FALSE))
  expect_true(all(is.na(sim$expert)))
  m <- plogis(4 * sim$x1) * (1 + 2 * sim$x1) + plogis(-4 * sim$x1) * (-1 - sim$x1)
  expect_equal(var(sim$y - m), 0.05, tolerance = 0.05)
})

test_that("rmoe validates its arguments", {
  expect_error(rmoe(10, list()), class = "moe_error_params")
  expect_error(rmoe(10, truth2, x = matrix(0, 10, 2)), class = "moe_error_x")
  expect_error(rmoe(5, truth2, x = matrix(0, 10, 1)), class = "moe_error_n")
  expect_error(rmoe(params = truth2), class = "moe_error_n")
  expect_error(rmoe(10, truth2, z = matrix(0, 10, 2)), class = "moe_error_params")
  expect_error(rmoe(10, truth2, expert = "multinomial"), class = "moe_error_params")
  expect_error(rmoe(10, truth2, x_dist = function(n, d) 1), class = "moe_error_x_dist")
  mt <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0), coef = array(0, c(2, 2, 2)))
  expect_error(rmoe(10, mt, expert = "multinomial", levels = c("a", "b")),
               class = "moe_error_levels")
})

test_that("simulate.moe follows the stats::simulate seed convention", {
  set.seed(9)
  sim <- rmoe(300, truth2)
  fit <- moe(y ~ x1, data = sim, k = 2)
  s1 <- simulate(fit, nsim = 3, seed = 123)
  expect_s3_class(s1, "data.frame")
  expect_identical(dim(s1), c(300L, 3L))
  expect_identical(names(s1), c("sim_1", "sim_2", "sim_3"))
  expect_identical(s1, simulate(fit, nsim = 3, seed = 123))
  expect_identical(as.integer(attr(s1, "seed")), 123L)
  # A given seed leaves the caller's stream untouched ...
  set.seed(10)
  before <- .Random.seed
  simulate(fit, seed = 1)
  expect_identical(.Random.seed, before)
  # ... and without a seed the state before the draw is recorded.
  s0 <- simulate(fit)
  expect_identical(attr(s0, "seed"), before)
  .Random.seed <<- attr(s0, "seed")
  expect_identical(simulate(fit)$sim_1, s0$sim_1)
  # Simulated responses have the spread of the data.
  expect_equal(sd(s1$sim_1), sd(sim$y), tolerance = 0.15)
})

test_that("simulate.moe handles multinomial and least-squares fits", {
  mt <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0),
                   coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2)))
  set.seed(11)
  sim <- rmoe(300, mt, expert = "multinomial", levels = c("a", "b", "c"))
  # EM on two multinomial experts converges slowly; only the draws matter here.
  fit <- suppressWarnings(moe(y ~ x1, data = sim, k = 2, control = moe_control(maxit = 50)))
  s <- simulate(fit, nsim = 2, seed = 1)
  expect_s3_class(s$sim_1, "factor")
  expect_identical(levels(s$sim_2), c("a", "b", "c"))
  set.seed(12)
  d <- rmoe(300, truth2)
  fit_lsq <- suppressWarnings(moe(y ~ x1, data = d, k = 2, method = "lsq"))
  s_lsq <- simulate(fit_lsq, seed = 2)
  expect_equal(var(s_lsq$sim_1 - fitted(fit_lsq)), fit_lsq$sigma2, tolerance = 0.25)
})
