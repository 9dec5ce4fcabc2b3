# Base-graphics plots (R/plot.R): each view draws on a png device.

truth2 <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0.3, 0),
                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.15))

with_png <- function(code) {
  path <- tempfile(fileext = ".png")
  grDevices::png(path)
  on.exit({
    grDevices::dev.off()
    unlink(path)
  })
  force(code)
}

test_that("every view of a Gaussian fit draws and returns the fit invisibly", {
  set.seed(1)
  fit <- moe(y ~ x1, data = rmoe(300, truth2), k = 2)
  with_png({
    for (what in c("gate", "loglik", "fit", "posterior")) {
      expect_invisible(out <- plot(fit, what))
      expect_identical(out, fit)
    }
    expect_silent(plot(fit, "gate", covariate = "x1", main = "my title", ylim = c(0, 1)))
    expect_silent(plot(fit, "fit", covariate = 2))
  })
})

test_that("the RNG is not touched by plotting", {
  set.seed(2)
  sim <- rmoe(200, moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0),
                              coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2))),
              expert = "multinomial", levels = c("a", "b", "c"))
  fit <- suppressWarnings(moe(y ~ x1, data = sim, k = 2, control = moe_control(maxit = 50)))
  before <- .Random.seed
  with_png({
    expect_invisible(plot(fit, "posterior"))
    expect_invisible(plot(fit, "gate"))
    expect_invisible(plot(fit, "loglik"))
  })
  expect_identical(.Random.seed, before)
  expect_error(with_png(plot(fit, "fit")), class = "moe_error_what")
})

test_that("several covariates, factors and separate gate covariates", {
  set.seed(3)
  n <- 300
  d <- data.frame(x1 = runif(n, -1, 1), x2 = rnorm(n), f = factor(sample(c("u", "v"), n, TRUE)))
  d$y <- ifelse(runif(n) < plogis(3 * d$x1 + (d$f == "v")), 1 + d$x1, -1 + 0.5 * d$x2) +
    rnorm(n, sd = 0.3)
  fit <- moe(y ~ x1 + x2 | x1 + f, data = d, k = 2)
  with_png({
    expect_invisible(plot(fit, "gate"))
    expect_invisible(plot(fit, "gate", covariate = "fv"))
    expect_invisible(plot(fit, "fit", covariate = "x2"))
    expect_invisible(plot(fit, "posterior", covariate = "x2"))
  })
  expect_error(plot(fit, "gate", covariate = "x2"), class = "moe_error_covariate")
  expect_error(plot(fit, "fit", covariate = "(Intercept)"), class = "moe_error_covariate")
  expect_error(plot(fit, "nonsense"))
})

test_that("least-squares fits plot everything but the EM trace", {
  set.seed(4)
  fit <- suppressWarnings(moe(y ~ x1, data = rmoe(300, truth2), k = 2, method = "lsq",
                              gate = gate_sigmoid(normalize = FALSE)))
  with_png({
    expect_invisible(plot(fit, "gate"))
    expect_invisible(plot(fit, "fit"))
    expect_invisible(plot(fit, "posterior"))
  })
  expect_error(plot(fit, "loglik"), class = "moe_error_what")
})
