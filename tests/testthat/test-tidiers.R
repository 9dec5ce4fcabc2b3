# broom-style tidiers (issue 13 item 15), registered for the generics package.

tidy_fit <- function() {
  set.seed(1)
  d <- rmoe(300, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                            coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
  list(data = d, fit = moe(y ~ x1, data = d, k = 2))
}

test_that("tidy() lists every free parameter with summary()'s standard errors", {
  skip_if_not_installed("generics")
  ff <- tidy_fit()
  fit <- ff$fit
  td <- generics::tidy(fit)
  expect_s3_class(td, "data.frame")
  expect_identical(names(td), c("component", "expert", "y.level", "term", "estimate",
                                "std.error", "statistic", "p.value"))
  expect_identical(nrow(td), length(coef(fit)))
  # coef() names: gate.expert1.x1, expert1.(Intercept), expert1.sigma2, ...
  nm <- paste0(ifelse(td$component == "gate", "gate.", ""), "expert", td$expert, ".", td$term)
  expect_setequal(nm, names(coef(fit)))
  expect_equal(td$estimate, unname(coef(fit)[nm]))
  expect_equal(td$std.error, unname(sqrt(diag(vcov(fit)))[match(nm, names(coef(fit)))]))
  expect_identical(td$component, rep(c("gate", "expert"), c(2, 6)))
  expect_identical(td$expert, c(1L, 1L, 1L, 1L, 1L, 2L, 2L, 2L))
  expect_identical(td$term[1:5], c("x1", "(Intercept)", "(Intercept)", "x1", "sigma2"))
  ci <- generics::tidy(fit, conf.int = TRUE, conf.level = 0.9)
  expect_equal(ci$conf.high - ci$estimate, qnorm(0.95) * ci$std.error)
  expect_error(generics::tidy(fit, conf.level = 2), class = "moe_error_conf.level")
  # Multinomial experts: the class of each coefficient in y.level.
  m <- moe(Species ~ Sepal.Length, data = iris, k = 1)
  tm <- generics::tidy(m)
  expect_identical(tm$y.level, rep(c("setosa", "versicolor"), each = 2))
  expect_identical(tm$term, rep(c("(Intercept)", "Sepal.Length"), 2))
  # Least squares: the common noise variance is its own component.
  ls <- generics::tidy(moe(y ~ x1, data = ff$data, k = 2, method = "lsq"))
  expect_identical(tail(ls$component, 1), "noise")
})

test_that("glance() gives one row of fit statistics", {
  skip_if_not_installed("generics")
  fit <- tidy_fit()$fit
  gl <- generics::glance(fit)
  expect_identical(nrow(gl), 1L)
  expect_equal(gl$logLik, as.numeric(logLik(fit)))
  expect_equal(gl$AIC, AIC(fit))
  expect_equal(gl$BIC, BIC(fit))
  expect_equal(gl$df.residual, df.residual(fit))
  expect_identical(gl$nobs, nobs(fit))
  expect_identical(gl$gate, "softmax")
})

test_that("augment() adds fitted values, residuals and the most probable expert", {
  skip_if_not_installed("generics")
  ff <- tidy_fit()
  fit <- ff$fit
  au <- generics::augment(fit)
  expect_identical(nrow(au), nrow(ff$data))
  expect_equal(au$.fitted, unname(fitted(fit)))
  expect_equal(au$.resid, unname(residuals(fit)))
  expect_equal(au$.std.resid, unname(residuals(fit, type = "pearson")))
  expect_identical(au$.expert, max.col(fit$posterior, ties.method = "first"))
  nd <- data.frame(x1 = c(-0.5, 0.5))
  an <- generics::augment(fit, newdata = nd)
  expect_equal(an$.fitted, unname(predict(fit, nd)))
  expect_false(".resid" %in% names(an))
  expect_identical(an$.expert, max.col(predict(fit, nd, type = "gate")))
  # na.exclude: the original data get NA rows where the fit dropped them.
  d2 <- ff$data
  d2$x1[2] <- NA
  f2 <- moe(y ~ x1, data = d2, k = 2, na.action = na.exclude)
  a2 <- generics::augment(f2, data = d2)
  expect_identical(nrow(a2), nrow(d2))
  expect_true(is.na(a2$.fitted[2]) && is.na(a2$.expert[2]))
  expect_equal(a2$.fitted, unname(fitted(f2)))
  expect_error(generics::augment(f2, data = d2[1:10, ]), class = "moe_error_data")
  # Multinomial experts: the predicted class and one probability column per class.
  m <- moe(Species ~ Sepal.Length, data = iris, k = 1)
  am <- generics::augment(m)
  expect_identical(am$.fitted, predict(m, type = "class"))
  expect_equal(am$.prob.virginica, unname(fitted(m)[, "virginica"]))
})
