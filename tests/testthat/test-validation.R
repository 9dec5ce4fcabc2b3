# Malformed inputs get a classed moe error before any compiled call
# (issue 15 items 1, 5b, 5c, 5e, 6).

validation_data <- function(n = 150) {
  set.seed(11)
  d <- data.frame(x = runif(n, -1, 1), z = rnorm(n))
  d$y <- ifelse(runif(n) < plogis(3 * d$x), 1 + 2 * d$x, -1 - d$x) + rnorm(n, sd = 0.3)
  d
}

test_that("starting values of the wrong shape, type or sign are refused", {
  d <- validation_data()
  fit <- moe(y ~ x, data = d, k = 2)
  p <- coef(fit, type = "params")
  refit <- function(init) moe(y ~ x, data = d, k = 2, control = moe_control(init = init))
  bad <- list(
    extra_column = function(p) { p$expert$coef <- cbind(p$expert$coef, 1); p },
    one_column = function(p) { p$expert$coef <- p$expert$coef[, 1, drop = FALSE]; p },
    ten_columns = function(p) { p$expert$coef <- matrix(1, 2, 10); p },
    extra_row = function(p) { p$expert$coef <- rbind(p$expert$coef, 1); p },
    sigma2_length = function(p) { p$expert$sigma2 <- 1; p },
    sigma2_negative = function(p) { p$expert$sigma2 <- c(-1, 1); p },
    sigma2_na = function(p) { p$expert$sigma2 <- c(NA, 1); p },
    tau_length = function(p) { p$gate$tau <- c(1, 2); p },
    tau_negative = function(p) { p$gate$tau <- -1; p },
    W_na = function(p) { p$gate$W[1] <- NA; p },
    W_columns = function(p) { p$gate$W <- cbind(p$gate$W, 0); p },
    W_rows = function(p) { p$gate$W <- rbind(p$gate$W, 0); p },
    W_character = function(p) { p$gate$W <- "a"; p },
    b0_length = function(p) { p$gate$b0 <- 1; p },
    coef_na = function(p) { p$expert$coef[1] <- NA; p },
    coef_inf = function(p) { p$expert$coef[1] <- Inf; p },
    no_gate = function(p) { p$gate <- NULL; p }
  )
  for (nm in names(bad)) {
    expect_error(refit(bad[[nm]](p)), class = "moe_error_init", info = nm)
  }
  expect_error(refit(bad$one_column(p)), "2 x 2 matrix")
  # Multinomial experts: the coefficient array must be p x (K - 1) x k.
  d$cls <- factor(ifelse(d$y > 0, "a", ifelse(d$x > 0, "b", "c")))
  # These classes are separated by x: the separation warning is expected.
  mfit <- suppressWarnings(moe(cls ~ x, data = d, k = 2), classes = "moe_separation_warning")
  mp <- coef(mfit, type = "params")
  mp$expert$coef <- mp$expert$coef[, , 1, drop = FALSE]
  expect_error(moe(cls ~ x, data = d, k = 2, control = moe_control(init = mp)),
               class = "moe_error_init")
})

test_that("gate_weights() checks the shape and type of its parameters", {
  z <- matrix(1:3, ncol = 1)
  expect_error(gate_weights("softmax", list(W = "a", b0 = c(0, 0)), z), class = "moe_error_params")
  expect_error(gate_weights("softmax", list(W = matrix(NA, 1, 2), b0 = c(0, 0)), z),
               class = "moe_error_params")
  expect_error(gate_weights("softmax", list(W = matrix(1, 1, 2), b0 = c(NA, 0)), z),
               class = "moe_error_params")
  expect_error(gate_weights("softmax", list(W = list(1, 2), b0 = c(0, 0)), z),
               class = "moe_error_params")
  expect_error(gate_weights("softmax", list(W = matrix(1, 2, 2), b0 = c(0, 0)), z),
               class = "moe_error_z")
  expect_error(gate_weights("softmax", list(W = matrix(1, 1, 2), b0 = 0), z),
               class = "moe_error_params")
})

test_that("integer inputs are accepted and give the same fits as doubles", {
  d <- validation_data()
  xi <- matrix(seq_len(150) %% 7L, ncol = 1)
  set.seed(3)
  fi <- moe(xi, d$y, k = 2)
  set.seed(3)
  fd <- moe(xi + 0, d$y, k = 2)
  expect_equal(fi$loglik, fd$loglik)
  expect_s3_class(moe(d$x, d$y, z = matrix(seq_len(150), ncol = 1), k = 1), "moe")
  expect_equal(gate_weights("softmax", list(W = matrix(c(1, 0), 1), b0 = c(0, 0)), z = 1:5),
               gate_weights("softmax", list(W = matrix(c(1, 0), 1), b0 = c(0, 0)), z = 1:5 + 0))
  p <- moe_params(W = matrix(c(1, 0), 1), b0 = c(0, 0), coef = cbind(c(1, 2), c(-1, 0)),
                  sigma2 = c(0.1, 0.1))
  set.seed(1)
  expect_equal(nrow(rmoe(params = p, x = 1:50)), 50)
})

test_that("a two-column response is refused", {
  d <- validation_data()
  expect_error(moe(cbind(y, z) ~ x, data = d, k = 2), class = "moe_error_formula")
  expect_error(moe(cbind(y, z) ~ x, data = d, k = 2, control = moe_control(init = "random")),
               class = "moe_error_formula")
  expect_error(moe_fit(cbind(d$y, d$z), cbind(1, d$x), matrix(d$x), k = 2), class = "moe_error_y")
})

test_that("predict() and density_error() check parameter shapes against the design", {
  d <- validation_data()
  fit <- moe(y ~ x, data = d, k = 2)
  p <- coef(fit, type = "params")
  wrong <- p
  wrong$expert$coef <- rbind(p$expert$coef, 1)
  expect_error(density_error(fit, wrong, n_mc = 100), class = "moe_error_truth")
  tampered <- fit
  tampered$params <- wrong
  expect_error(predict(tampered, newdata = d), class = "moe_error_object")
  # A matrix fit with its own z needs z in newdata.
  fz <- moe(d$x, d$y, z = cbind(d$z), k = 2)
  expect_error(predict(fz, newdata = cbind(d$x)), class = "moe_error_newdata")
  expect_equal(predict(fz, newdata = list(x = cbind(d$x), z = cbind(d$z))), fitted(fz),
               ignore_attr = TRUE)
  # The default z drops x's constant column at fit time, and predict() too.
  X <- cbind(1, d$x)
  fm <- moe(X, d$y, k = 2, intercept = FALSE)
  expect_equal(predict(fm, newdata = X), fitted(fm), ignore_attr = TRUE)
})

test_that("constructor flags and counts are validated", {
  expect_error(gate_sigmoid(normalize = NA), class = "moe_error_normalize")
  expect_error(gate_sigmoid(normalize = "yes"), class = "moe_error_normalize")
  expect_error(gate_euclidean(squared = NA), class = "moe_error_squared")
  expect_error(gate_euclidean(normalize = 2), class = "moe_error_normalize")
  expect_error(gate(name = NULL), class = "moe_error_name")
  expect_error(gate(name = NA_character_), class = "moe_error_name")
  expect_error(moe_control(maxit = 3e9), class = "moe_error_maxit")
  expect_error(moe_control(n_starts = 3e9), class = "moe_error_n_starts")
  expect_error(moe_control(nthreads = 3e9), class = "moe_error_nthreads")
  expect_error(moe_control(accelerate = character(0)), class = "moe_error_accelerate")
  expect_no_warning(moe_control(maxit = 1e6))
})

test_that("an expert design without columns is refused with a clear error", {
  d <- validation_data()
  d$cls <- factor(ifelse(d$y > 0, "a", "b"))
  expect_error(moe(y ~ 0 | z, data = d, k = 2), class = "moe_error_formula")
  expect_error(moe(y ~ -1 | z, data = d, k = 2), "y ~ 1 | z")
  expect_error(moe(cls ~ 0 | z, data = d, k = 2), class = "moe_error_formula")
  expect_error(moe_fit(d$y, matrix(0, nrow(d), 0), matrix(d$z), k = 2), class = "moe_error_X")
  # The intercept-only expert (a constant mean) is supported.
  expect_s3_class(moe(y ~ 1 | z, data = d, k = 2), "moe")
  expect_s3_class(moe(cls ~ 1 | z, data = d, k = 2), "moe")
})

test_that("gate_weights() refuses scores that overflow instead of returning NaN", {
  big <- list(W = matrix(c(1e300, 0), 1), b0 = c(0, 0))
  expect_error(gate_weights("softmax", big, z = 1e300), class = "moe_error_params")
  expect_error(gate_weights(gate_euclidean(), big, z = -1e300), class = "moe_error_params")
  tiny_tau <- list(W = matrix(c(1, 0), 1), b0 = c(0, 0), tau = 1e-300)
  expect_error(gate_weights(gate_euclidean(), tiny_tau, z = 1e10), class = "moe_error_params")
  # Large but representable scores keep finite weights.
  w <- gate_weights("softmax", list(W = matrix(c(1e5, 0), 1), b0 = c(0, 0)), z = c(-1, 1))
  expect_true(all(is.finite(w)))
  expect_equal(rowSums(w), c(1, 1))
})

test_that("voronoi_loss() refuses intercepts whose weights overflow instead of returning Inf", {
  truth <- moe_params(W = matrix(c(2, 0), 1), b0 = c(800, 0),
                      coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  fit <- moe_params(W = matrix(c(2.1, 0), 1), b0 = c(1, 0),
                    coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  expect_error(voronoi_loss(fit, truth), class = "moe_error_truth")
  truth$gate$b0 <- c(1, 0)
  expect_true(is.finite(voronoi_loss(fit, truth)))
})

test_that("a fit that stops with identical experts warns", {
  d <- validation_data()
  fit <- moe(y ~ x, data = d, k = 1)
  p1 <- coef(fit, type = "params")
  same <- moe_params(W = matrix(c(0.5, 0.5), 1), b0 = c(0, 0),
                     coef = cbind(p1$expert$coef, p1$expert$coef),
                     sigma2 = rep(p1$expert$sigma2, 2))
  expect_warning(f <- moe(y ~ x, data = d, k = 2, control = moe_control(init = same)),
                 class = "moe_identical_experts_warning")
  expect_equal(f$loglik, fit$loglik, tolerance = 1e-8)
  # A regular fit does not warn.
  expect_no_warning(moe(y ~ x, data = d, k = 2))
})

test_that("rmoe() names `params` when its parameters do not fit the design", {
  p <- moe_params(W = matrix(c(1, 0), 1), b0 = c(0, 0), coef = cbind(c(1, 2), c(-1, 0)),
                  sigma2 = c(0.1, 0.1))
  bad <- p
  bad$gate$W <- matrix(1, 3, 2)
  set.seed(1)
  expect_error(rmoe(50, bad), class = "moe_error_params")
  bad <- p
  bad$expert$sigma2 <- c(NA, 1)
  expect_error(rmoe(50, bad), class = "moe_error_params")
})
