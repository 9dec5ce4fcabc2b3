# Near-truth starting values (the simulation studies' protocol).

truth <- moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
                    coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.09, 0.16))

test_that("without noise, copies reproduce the truth and share its mass", {
  start <- init_near_truth(truth, k = 4, c_expert = 0, c_gate = 0)
  p <- start(k = 4, y = rnorm(100))
  expect_s3_class(p, "moe_params")
  # Round robin: true experts 1, 2, then extras 1, 2 -> sorted 1, 1, 2, 2.
  expect_equal(p$expert$coef, truth$expert$coef[, c(1, 1, 2, 2)], ignore_attr = TRUE)
  expect_equal(as.numeric(p$gate$W), c(25, 25, 0, 0))
  expect_equal(exp(p$gate$b0), c(exp(-8), exp(-8), 1, 1) / 2)
  # The last fitted expert copies the true reference expert.
  expect_equal(p$expert$coef[, 4], truth$expert$coef[, 2], ignore_attr = TRUE)
  # Explicit assignment.
  fixed <- init_near_truth(truth, k = 3, c_expert = 0, c_gate = 0, assign = c(2, 1, 2))
  q <- fixed(k = 3, y = rnorm(10))
  expect_equal(q$expert$coef, truth$expert$coef[, c(1, 2, 2)], ignore_attr = TRUE)
  expect_equal(exp(q$gate$b0), c(exp(-8), 0.5, 0.5))
})

test_that("noise has sd c * n^(-alpha) and comes from R's RNG", {
  start <- init_near_truth(truth, k = 2, c_expert = 1, alpha_expert = 0.5, c_gate = 2,
                           alpha_gate = 0.25)
  n <- 10000
  set.seed(1)
  draws <- replicate(400, {
    p <- start(k = 2, y = numeric(n))
    c(p$expert$coef[1, 1] - 15, p$gate$b0[1] + 8)
  })
  # 400 draws: the sd estimates are within about 4% (2 standard errors 7%).
  expect_equal(sd(draws[1, ]), 1 * n^-0.5, tolerance = 0.1)
  expect_equal(sd(draws[2, ]), 2 * n^-0.25, tolerance = 0.1)
  set.seed(2); a <- start(k = 2, y = numeric(50))
  set.seed(2); b <- start(k = 2, y = numeric(50))
  expect_identical(a, b)
})

test_that("random assignment keeps every true expert and the reference last", {
  start <- init_near_truth(truth, k = 4, c_expert = 0, c_gate = 0, assign = "random")
  set.seed(3)
  owners <- replicate(50, {
    p <- start(k = 4, y = numeric(20))
    as.numeric(p$expert$coef[1, ] == 15)   # 1 for copies of true expert 1
  })
  expect_true(all(owners[1, ] == 1))       # the first fitted expert copies expert 1
  expect_true(all(owners[4, ] == 0))       # the last copies the reference
  expect_true(length(unique(colSums(owners))) > 1)
})

test_that("the start plugs into moe_control and fits near the truth", {
  set.seed(4)
  d <- rmoe(2000, truth, x = seq(0, 1, length.out = 2000))
  fit <- moe(y ~ x1, data = d, k = 3,
             control = moe_control(init = init_near_truth(truth, k = 3), tol = 1e-6,
                                   n_starts = 2))
  expect_equal(fit$k, 3L)
  expect_lt(voronoi_loss(fit, truth, "rbar"), 5)
})

test_that("bad arguments are named", {
  expect_error(init_near_truth(list()), class = "moe_error_truth")
  expect_error(init_near_truth(truth, k = 1), class = "moe_error_k")
  expect_error(init_near_truth(truth, k = 3, assign = c(1, 1, 1)), class = "moe_error_assign")
  start <- init_near_truth(truth, k = 3)
  expect_error(start(k = 4, y = numeric(10)), class = "moe_error_k")
})

test_that("gate_noise = 'column' shifts each gate column by one draw; 'entry' draws per entry", {
  truth2 <- moe_params(W = cbind(c(2, 1), c(-1, 1)), b0 = c(0.3, 0),
                       coef = cbind(c(0.5, 2, -1), c(-0.5, -1, 2)), sigma2 = c(0.05, 0.05))
  n <- 400
  sd_gate <- 0.005 * n^-0.083
  column <- init_near_truth(truth2, k = 3, c_expert = 0, c_gate = 0.005, alpha_gate = 0.083,
                            gate_noise = "column")
  set.seed(5)
  p <- column(k = 3, y = numeric(n))
  W0 <- truth2$gate$W[, c(1, 1, 2)]
  b00 <- truth2$gate$b0[c(1, 1, 2)] - log(c(2, 2, 1))
  shift <- p$gate$W - W0
  # One scalar per column: both rows of a column and its intercept move alike.
  expect_equal(shift[1, ], shift[2, ])
  expect_equal(shift[1, ], p$gate$b0 - b00)
  set.seed(5)
  expect_equal(shift[1, ], stats::rnorm(3, sd = sd_gate))
  # The default draws an independent value per entry, W before the intercepts.
  entry <- init_near_truth(truth2, k = 3, c_expert = 0, c_gate = 0.005, alpha_gate = 0.083)
  set.seed(5)
  q <- entry(k = 3, y = numeric(n))
  set.seed(5)
  expect_equal(q$gate$W - W0, matrix(stats::rnorm(6, sd = sd_gate), 2), ignore_attr = TRUE)
  expect_equal(q$gate$b0 - b00, stats::rnorm(3, sd = sd_gate))
  expect_error(init_near_truth(truth2, gate_noise = "row"), class = "moe_error_gate_noise")
})
