# 1 and 2 OpenMP threads give bit-identical fits: rows are processed in fixed
# blocks of 1024 and every reduction sums the blocks in order (numerics.h).
# The minimum-work rule gives a pass over n rows at most one thread per
# `min_rows` rows, so the data here have 2 * min_rows + 1000 rows: the
# parallel loops really split the work.

min_rows <- moegate:::cpp_thread_count(2L, 1)$min_rows_per_thread

fits_by_threads <- function(fit_fun) {
  lapply(1:2, function(nt) {
    set.seed(61)
    withCallingHandlers(fit_fun(nt),
                        moe_convergence_warning = function(w) invokeRestart("muffleWarning"))
  })
}

expect_identical_fits <- function(fits) {
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$trace, fits[[2]]$trace)
  expect_identical(fits[[1]]$loglik, fits[[2]]$loglik)
  expect_identical(fits[[1]]$posterior, fits[[2]]$posterior)
  expect_identical(fits[[1]]$iter, fits[[2]]$iter)
}

thread_data <- function(n = 2 * min_rows + 1000, seed = 62) {
  set.seed(seed)
  x <- matrix(rnorm(2 * n), n, 2)
  first <- runif(n) < plogis(2 * x[, 1] - x[, 2])
  y <- ifelse(first, 1 + x[, 1], -1 + 2 * x[, 2]) + rnorm(n, sd = 0.5)
  yc <- factor(ifelse(first, ifelse(runif(n) < plogis(x[, 2]), "a", "b"),
                      sample(c("a", "b", "c"), n, TRUE)))
  list(x = x, y = y, yc = yc)
}

test_that("small passes over the data run on one thread (minimum-work rule)", {
  tc <- function(requested, n) moegate:::cpp_thread_count(as.integer(requested), n)$threads
  expect_gte(min_rows, 1024)
  expect_identical(tc(2, 2000), 1L)
  expect_identical(tc(2, 2 * min_rows - 1), 1L)
  expect_identical(tc(2, 2 * min_rows), 2L)
  expect_identical(tc(4, 3 * min_rows), 3L)
  expect_identical(tc(4, 1e9), 4L)
  expect_identical(tc(1, 1e9), 1L)
})

test_that("fits are identical with 1 and 2 threads on both sides of the threshold", {
  # Just below 2 * min_rows both thread counts run every pass on one thread;
  # at 2 * min_rows the passes over all rows use two (the E-step, the gate
  # and expert M-steps), with the same blocks and the same order of sums.
  for (n in c(2 * min_rows - 1, 2 * min_rows)) {
    dat <- thread_data(n = n, seed = 64)
    fits <- fits_by_threads(function(nt) {
      moe(dat$x, dat$y, k = 2, control = moe_control(nthreads = nt, maxit = 15))
    })
    expect_identical_fits(fits)
    fits <- fits_by_threads(function(nt) {
      moe(dat$x[, 1, drop = FALSE], dat$yc, k = 2, gate = gate(activation = "tanh"),
          control = moe_control(nthreads = nt, maxit = 10))
    })
    expect_identical_fits(fits)
  }
})

test_that("nthreads = 2 is accepted end to end", {
  dat <- thread_data(n = 2048)
  # Smoke test that nthreads = 2 is accepted end to end.
  fit <- withCallingHandlers(moe(dat$x, dat$y, k = 2, control = moe_control(nthreads = 2, maxit = 5)),
                             moe_convergence_warning = function(w) invokeRestart("muffleWarning"))
  expect_equal(fit$control$nthreads, 2L)
})

test_that("Gaussian softmax fits are identical with 1 and 2 threads", {
  dat <- thread_data()
  fits <- fits_by_threads(function(nt) {
    # An over-specified k = 3 converges slowly; 30 iterations exercise every
    # parallel loop many times, which is all this test needs.
    moe(dat$x, dat$y, k = 3, control = moe_control(nthreads = nt, maxit = 30, tol = 1e-10))
  })
  expect_identical_fits(fits)
})

test_that("multinomial softmax fits are identical with 1 and 2 threads", {
  dat <- thread_data()
  fits <- fits_by_threads(function(nt) {
    moe(dat$x, dat$yc, k = 2, control = moe_control(nthreads = nt, maxit = 40))
  })
  expect_s3_class(fits[[1]], "moe_multinomial")
  expect_identical_fits(fits)
})

test_that("cosine-gate and other L-BFGS gate fits are identical with 1 and 2 threads", {
  dat <- thread_data()
  for (g in list(gate_cosine(), gate_temperature())) {
    fits <- fits_by_threads(function(nt) {
      moe(dat$x, dat$y, k = 2, gate = g, control = moe_control(nthreads = nt, maxit = 40))
    })
    expect_identical_fits(fits)
  }
})

test_that("activated experts and least squares are identical with 1 and 2 threads", {
  dat <- thread_data()
  fits <- fits_by_threads(function(nt) {
    moe(dat$x, dat$y, k = 2, expert = expert_gaussian("tanh"),
        control = moe_control(nthreads = nt, maxit = 30))
  })
  expect_identical_fits(fits)
  fits <- fits_by_threads(function(nt) {
    moe(dat$x, dat$y, k = 2, gate = gate_perturbed_cosine(), method = "lsq",
        control = moe_control(nthreads = nt, maxit = 60))
  })
  expect_identical(fits[[1]]$params, fits[[2]]$params)
  expect_identical(fits[[1]]$rss, fits[[2]]$rss)
})

test_that("the log-likelihood and its gradient are identical with 1 and 2 threads", {
  dat <- thread_data()
  X <- cbind(1, dat$x)
  gp <- list(W = matrix(c(1, -1, 0.5, 0.2), 2), b0 = c(0.1, 0), tau = 1)
  ep <- list(coef = matrix(c(1, 1, 0, -1, 0, 2), 3), sigma2 = c(0.3, 0.4))
  for (g in list(gate_softmax(), gate_cosine(), gate_euclidean())) {
    one <- moegate:::cpp_loglik(X, matrix(dat$y), dat$x, cpp_spec(g), cpp_gaussian_spec(),
                                gp, ep, NULL, TRUE, 1L)
    two <- moegate:::cpp_loglik(X, matrix(dat$y), dat$x, cpp_spec(g), cpp_gaussian_spec(),
                                gp, ep, NULL, TRUE, 2L)
    expect_identical(one, two)
  }
})

test_that("large fits are identical with 1 and 2 threads (slow)", {
  skip_if_not(slow_tests(), "set MOEGATE_SLOW_TESTS=true")
  dat <- thread_data(n = 100000, seed = 63)
  for (g in list(gate_softmax(), gate_perturbed_cosine(), gate_euclidean())) {
    fits <- fits_by_threads(function(nt) {
      moe(dat$x, dat$y, k = 3, gate = g, control = moe_control(nthreads = nt, maxit = 100))
    })
    expect_identical_fits(fits)
  }
})
