# Bad input: every error is of class "moe_error" and names the argument.

check_data <- function(n = 60, seed = 51) {
  set.seed(seed)
  x <- matrix(rnorm(2 * n), n, 2)
  list(x = x, y = rnorm(n), n = n,
       d = data.frame(x1 = x[, 1], x2 = x[, 2], y = rnorm(n)))
}

test_that("non-finite values in the matrix interface are refused", {
  dat <- check_data()
  for (bad in c(NA, NaN, Inf, -Inf)) {
    x <- dat$x
    x[3, 1] <- bad
    # The message names the design matrix (`X` of the workhorse moe_fit(), see
    # the known-bug test below for the user-facing name) and the row.
    expect_error(moe(x, dat$y, k = 2), class = "moe_error", regexp = "`[xX]`.*row\\(s\\) 3")
    expect_error(moe(dat$x, dat$y, z = x, k = 2), class = "moe_error", regexp = "`[zZ]`")
    y <- dat$y
    y[2] <- bad
    expect_error(moe(dat$x, y, k = 2), class = "moe_error", regexp = "`y`")
  }
  # The workhorse itself.
  x <- cbind(1, dat$x)
  x[4, 2] <- NA
  expect_error(moe_fit(dat$y, x, dat$x, k = 2), class = "moe_error", regexp = "`X`")
  expect_error(moe_fit(dat$y, cbind(1, dat$x), x, k = 2), class = "moe_error", regexp = "`Z`")
})

test_that("matrix-interface errors name the user's arguments `x` and `z`", {
  dat <- check_data()
  x <- dat$x
  x[3, 1] <- NA
  expect_error(moe(x, dat$y, k = 2), class = "moe_error", regexp = "`x`")
  expect_error(moe(dat$x, dat$y, z = x, k = 2), class = "moe_error", regexp = "`z`")
  expect_error(moe(dat$x, dat$y[-1], k = 2), class = "moe_error", regexp = "`x`|`y`")
})

test_that("linearly dependent designs are refused, naming the aliased column", {
  dat <- check_data()
  # An intercept column in x duplicates the one moe() adds: before this check
  # the expert M-step silently returned zero coefficients.
  x1 <- cbind(const1 = 1, dat$x)
  expect_error(moe(x1, dat$y, k = 2), class = "moe_error",
               regexp = "`x`.*linearly independent.*const1.*intercept = FALSE")
  # With intercept = FALSE it is the intercept; the default z = x drops it.
  set.seed(1)
  fit1 <- moe(x1, dat$y, k = 2, intercept = FALSE)
  set.seed(1)
  fit2 <- moe(dat$x, dat$y, k = 2)
  expect_equal(fit1$loglik, fit2$loglik, tolerance = 1e-10)
  expect_equal(ncol(model.matrix(fit1, part = "gate")), ncol(dat$x))
  x2 <- cbind(dat$x, twice = 2 * dat$x[, 1])
  expect_error(moe(x2, dat$y, k = 2), class = "moe_error", regexp = "twice")
  # A constant gate covariate duplicates the gate's own intercept b0 (inner
  # product scores only; the cosine score has no intercept to collide with).
  z <- cbind(dat$x, const = 3)
  expect_error(moe(dat$x, dat$y, z = z, k = 2), class = "moe_error", regexp = "`z`.*const")
  expect_error(moe_fit(dat$y, cbind(1, dat$x), z, k = 2), class = "moe_error", regexp = "`Z`")
  dd <- data.frame(y = dat$y, a = dat$x[, 1], b = 2 * dat$x[, 1])
  expect_error(moe(y ~ a + b, data = dd, k = 2), class = "moe_error", regexp = "b")
})

test_that("missing values in the formula interface are dropped as in lm", {
  dat <- check_data()
  d <- dat$d
  d$y[2] <- NA
  d$x1[5] <- NA
  fit <- moe(y ~ x1 + x2, data = d, k = 1)
  ref <- lm(y ~ x1 + x2, data = d)
  expect_identical(fit$nobs, nobs(ref))
  expect_equal(fit$nobs, dat$n - 2)
  expect_identical(nobs(fit), nobs(ref))
  expect_equal(unname(fit$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-6)
  expect_identical(unname(c(fit$na.action)), unname(c(ref$na.action)))
  expect_length(fit$residuals, dat$n - 2L)
  # na.fail is honoured too.
  expect_error(moe(y ~ x1 + x2, data = d, k = 1, na.action = na.fail))
})

test_that("Inf in the formula interface is refused with a classed error", {
  dat <- check_data()
  d <- dat$d
  d$x1[7] <- Inf
  expect_error(moe(y ~ x1 + x2, data = d, k = 2), class = "moe_error", regexp = "`data`.*x1.*row\\(s\\) 7")
  d <- dat$d
  d$y[7] <- -Inf
  expect_error(moe(y ~ x1 + x2, data = d, k = 2), class = "moe_error", regexp = "`y`")
  d <- dat$d
  d$x2[8] <- Inf
  expect_error(moe(y ~ x1 | x2, data = d, k = 2), class = "moe_error", regexp = "`data`.*x2")
})

test_that("bad k is refused", {
  dat <- check_data()
  for (k in list(0, -1, 1.5, NA, "a", c(2, 3), Inf)) {
    expect_error(moe(dat$x, dat$y, k = k), class = "moe_error", regexp = "`k`")
  }
  # Too large for the data: 3 coefficients per expert, 60 observations.
  expect_error(moe(dat$x, dat$y, k = 21), class = "moe_error", regexp = "`k`.*small enough")
  expect_error(moe(y ~ x1, data = dat$d, k = 31), class = "moe_error", regexp = "`k`")
  expect_error(moe(dat$x, dat$y), class = "moe_error", regexp = "`k`")
})

test_that("a factor response with one class is refused", {
  dat <- check_data()
  expect_error(moe(dat$x, factor(rep("a", dat$n)), k = 1), class = "moe_error", regexp = "`y`")
  d <- dat$d
  d$y <- factor(rep("a", dat$n), levels = c("a", "b"))
  expect_error(moe(y ~ x1, data = d, k = 1), class = "moe_error", regexp = "`y`.*two classes")
  # A numeric response cannot have multinomial experts' one class either.
  expect_error(moe(dat$x, rep(1, dat$n), k = 1, expert = "multinomial"),
               class = "moe_error", regexp = "`y`")
  # A constant response for Gaussian experts.
  expect_error(moe(dat$x, rep(1, dat$n), k = 1), class = "moe_error", regexp = "`y`")
})

test_that("covariates that are neither numeric nor factors are refused", {
  dat <- check_data()
  d <- dat$d
  d$when <- as.Date("2020-01-01") + seq_len(dat$n)
  expect_error(moe(y ~ x1 + when, data = d, k = 1), class = "moe_error", regexp = "`data`.*when")
  expect_error(moe(y ~ x1 | when, data = d, k = 1), class = "moe_error", regexp = "`data`.*when")
  d <- dat$d
  d$cx <- complex(real = d$x1, imaginary = 1)
  expect_error(moe(y ~ x1 + cx, data = d, k = 1), class = "moe_error", regexp = "`data`")
  # Matrix interface: a data frame with a character column.
  expect_error(moe(data.frame(a = dat$x[, 1], b = letters[1:3][rep(1:3, 20)]), dat$y, k = 1),
               class = "moe_error", regexp = "`x`")
  expect_error(moe(as.character(dat$x), dat$y, k = 1), class = "moe_error", regexp = "`x`")
})

test_that("a list column in the data is refused with a classed error", {
  dat <- check_data()
  d <- dat$d
  d$lst <- I(as.list(seq_len(dat$n)))
  expect_error(moe(y ~ x1 + lst, data = d, k = 1), class = "moe_error", regexp = "`data`")
})

test_that("mismatched dimensions in the matrix interface are refused", {
  dat <- check_data()
  expect_error(moe(dat$x, dat$y[-1], k = 2), class = "moe_error", regexp = "`[xX]`.*one row per response")
  expect_error(moe(dat$x, dat$y, z = dat$x[-1, ], k = 2), class = "moe_error",
               regexp = "`[zZ]`.*one row per response")
  # User starting values with the wrong gate dimension.
  init <- moe_params(W = matrix(0, 3, 2), b0 = c(0, 0), coef = matrix(0, 3, 2), sigma2 = c(1, 1))
  expect_error(moe(dat$x, dat$y, k = 2, control = moe_control(init = init)),
               class = "moe_error", regexp = "`init`")
  # moe_params() itself.
  expect_error(moe_params(W = matrix(0, 2, 2), b0 = 0, coef = matrix(0, 3, 2)),
               class = "moe_error", regexp = "`b0`")
  expect_error(moe_params(W = matrix(0, 2, 2), b0 = c(0, 0), coef = matrix(0, 3, 3)),
               class = "moe_error", regexp = "`coef`")
  expect_error(moe_params(W = matrix(0, 2, 2), b0 = c(0, 0), coef = matrix(0, 3, 2), sigma2 = c(1, -1)),
               class = "moe_error", regexp = "`sigma2`")
  # predict() with a new x of the wrong width.
  fit <- moe(dat$x, dat$y, k = 1)
  expect_error(predict(fit, newdata = list(x = matrix(0, 2, 3))), class = "moe_error",
               regexp = "`newdata`")
})

test_that("unseen factor levels in predict(newdata) are refused", {
  dat <- check_data()
  d <- dat$d
  d$g <- factor(rep(c("a", "b"), length.out = dat$n))
  fit <- moe(y ~ x1 + g, data = d, k = 1)
  expect_error(predict(fit, newdata = data.frame(x1 = 0, x2 = 0, g = "c")),
               class = "moe_error", regexp = "`newdata`.*new level")
  # Seen levels are fine, and rows with NA give NA.
  pr <- predict(fit, newdata = data.frame(x1 = c(0, NA), x2 = 0, g = c("a", "b")))
  expect_length(pr, 2)
  expect_true(is.na(pr[2]))
  expect_error(predict(fit, newdata = data.frame(x2 = 0, g = "a")), class = "moe_error",
               regexp = "`newdata`")
})

test_that("invalid moe_control values are refused", {
  expect_error(moe_control(tol = 0), class = "moe_error", regexp = "`tol`")
  expect_error(moe_control(tol = -1e-8), class = "moe_error", regexp = "`tol`")
  expect_error(moe_control(tol = NA), class = "moe_error", regexp = "`tol`")
  expect_error(moe_control(maxit = 0), class = "moe_error", regexp = "`maxit`")
  expect_error(moe_control(maxit = 10.5), class = "moe_error", regexp = "`maxit`")
  expect_error(moe_control(n_starts = 1.5), class = "moe_error", regexp = "`n_starts`")
  expect_error(moe_control(n_starts = 0), class = "moe_error", regexp = "`n_starts`")
  expect_error(moe_control(nthreads = 0), class = "moe_error", regexp = "`nthreads`")
  expect_error(moe_control(nthreads = "2"), class = "moe_error", regexp = "`nthreads`")
  expect_error(moe_control(init = "foo"), class = "moe_error", regexp = "`init`")
  expect_error(moe_control(init = list(1, 2)), class = "moe_error", regexp = "`init`")
  expect_error(moe_control(trace = -1), class = "moe_error", regexp = "`trace`")
  expect_error(moe_control(gate_tol = 0), class = "moe_error", regexp = "`gate_tol`")
  expect_error(moe_control(gate_maxit = 0), class = "moe_error", regexp = "`gate_maxit`")
  expect_error(moe_control(gate_optimizer = "newton"), class = "moe_error",
               regexp = "`gate_optimizer`")
  expect_null(moe_control()$gate_maxit)
  expect_error(moe_control(expert_maxit = 0), class = "moe_error", regexp = "`expert_maxit`")
  # Through moe(): a plain list is validated the same way; anything else is refused.
  dat <- check_data()
  expect_error(moe(dat$x, dat$y, k = 2, control = list(tol = 0)), class = "moe_error", regexp = "`tol`")
  expect_error(moe(dat$x, dat$y, k = 2, control = "fast"), class = "moe_error", regexp = "`control`")
  # A start function that returns something else.
  expect_error(moe(dat$x, dat$y, k = 2, control = moe_control(init = function(...) 1)),
               class = "moe_error", regexp = "`init`")
})

test_that("unknown gates, experts and gate pieces are refused", {
  dat <- check_data()
  expect_error(moe(dat$x, dat$y, k = 2, gate = "foo"), class = "moe_error", regexp = "`gate`")
  expect_error(moe(dat$x, dat$y, k = 2, gate = 3), class = "moe_error", regexp = "`gate`")
  expect_error(moe(y ~ x1, data = dat$d, k = 2, gate = "softmx"), class = "moe_error",
               regexp = "`gate`.*softmax")
  expect_error(moe(dat$x, dat$y, k = 2, expert = "poisson"), class = "moe_error", regexp = "`expert`")
  expect_error(gate(score = "foo"), class = "moe_error", regexp = "`score`")
  expect_error(gate(activation = "swish"), class = "moe_error", regexp = "`activation`")
  expect_error(gate(normalizer = "sparsemax"), class = "moe_error", regexp = "`normalizer`")
  expect_error(gate(transform = "exp"), class = "moe_error", regexp = "`transform`")
  expect_error(gate(temperature = 0), class = "moe_error", regexp = "`temperature`")
  expect_error(gate(score = "perturbed_cosine"), class = "moe_error", regexp = "`eps_w`")
  expect_error(gate(eps_u = -1), class = "moe_error", regexp = "`eps_u`")
  expect_error(expert_gaussian(activation = "softplus"), class = "moe_error", regexp = "`activation`")
  expect_error(expert_gaussian(var_floor = -1), class = "moe_error", regexp = "`var_floor`")
  expect_error(moe(dat$x, dat$y, k = 2, foo = 1), class = "moe_error", regexp = "`...`")
  # A user transform that does not return a matrix with one row per row of z.
  expect_error(moe(dat$x, dat$y, k = 2, gate = gate(transform = function(z) z[-1, ])),
               class = "moe_error", regexp = "`transform`")
})

test_that("least squares with multinomial experts is refused", {
  dat <- check_data()
  yf <- factor(rep(c("a", "b"), length.out = dat$n))
  expect_error(moe(dat$x, yf, k = 2, method = "lsq"), class = "moe_error", regexp = "`method`")
  d <- dat$d
  d$yf <- yf
  expect_error(moe(yf ~ x1, data = d, k = 2, method = "lsq"), class = "moe_error", regexp = "`method`")
})

test_that("choice arguments validated by match.arg give classed errors", {
  dat <- check_data()
  expect_error(moe(dat$x, dat$y, k = 2, method = "foo"), class = "moe_error", regexp = "`method`")
  expect_error(gate(intercept = "middle"), class = "moe_error", regexp = "`intercept`")
})
