# The fitted object keeps no design matrices by default (as lm(x = FALSE)):
# methods rebuild them from the model frame or the caller's matrices.
# `designs = TRUE` stores them; every method must give identical results in
# both storage modes.

designs_data <- function(n = 400) {
  set.seed(21)
  d <- data.frame(x1 = runif(n, -1, 1), x2 = rnorm(n),
                  g = factor(sample(c("a", "b", "c"), n, TRUE)))
  first <- runif(n) < plogis(3 * d$x1)
  d$y <- ifelse(first, 1 + 2 * d$x2, -1 - d$x1) + rnorm(n, sd = 0.3) + 0.5 * (d$g == "b")
  d$cls <- factor(ifelse(runif(n) < plogis(2 * d$x1 + d$x2), "u", sample(c("v", "w"), n, TRUE)))
  d$w <- rexp(n)
  d$off <- 0.1 * d$x2
  d
}

# Two fits from the same seed, without and with stored designs.
fit_both <- function(call_fun) {
  set.seed(4)
  lean <- suppressWarnings(call_fun(FALSE))
  set.seed(4)
  kept <- suppressWarnings(call_fun(TRUE))
  list(lean = lean, kept = kept)
}

# What the methods return, computed on one fit.
method_results <- function(fit, newdata) {
  gaussian <- fit$expert$family == "gaussian"
  types <- if (gaussian) c("response", "gate", "expert") else c("response", "prob", "class", "gate", "expert")
  if (fit$method == "ml") types <- c(types, "posterior")
  out <- list(
    coef = coef(fit), params = coef(fit, type = "params"), fitted = fitted(fit),
    residuals = residuals(fit), pearson = residuals(fit, type = "pearson"),
    logLik = logLik(fit), AIC = AIC(fit), BIC = BIC(fit), nobs = nobs(fit),
    weights = weights(fit), vcov = vcov(fit),
    summary = stats::coef(summary(fit)),
    x = model.matrix(fit), z = model.matrix(fit, part = "gate"),
    simulate = simulate(fit, nsim = 2, seed = 3),
    own = lapply(setNames(types, types), function(t) predict(fit, type = t)),
    new = lapply(setNames(types, types), function(t) predict(fit, newdata = newdata, type = t)),
    se = predict(fit, newdata = newdata, se.fit = TRUE),
    tidy = generics::tidy(fit), glance = generics::glance(fit),
    augment = structure(generics::augment(fit), terms = NULL),
    info = moegate:::observed_information(fit)
  )
  # (Without the terms, whose environment is the fitting function's frame.)
  if (!is.null(fit$terms)) out$frame <- structure(model.frame(fit), terms = NULL)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  for (what in c("gate", if (fit$method == "ml") "loglik", if (gaussian) "fit", "posterior")) {
    plot(fit, what = what)
  }
  out
}

expect_same_methods <- function(pair, newdata) {
  skip_if_not_installed("generics")
  expect_null(pair$lean$x)
  expect_null(pair$lean$z)
  expect_false(is.null(pair$kept$x))
  a <- method_results(pair$lean, newdata)
  b <- method_results(pair$kept, newdata)
  for (nm in names(b)) expect_identical(a[[nm]], b[[nm]], label = nm)
  # The rebuilt designs are the stored ones.
  expect_identical(model.matrix(pair$lean), pair$kept$x)
  expect_identical(model.matrix(pair$lean, part = "gate"), pair$kept$z)
}

test_that("formula fits: every method is the same with and without stored designs", {
  d <- designs_data()
  nd <- d[1:15, ]
  nd$x2[3] <- NA  # a row of newdata with a missing value gives NA
  # (bquote: the stored calls hold TRUE / FALSE, for update().)
  pair <- fit_both(function(keep) {
    eval(bquote(moe(y ~ x1 + x2 + g | x1 + g, data = d, k = 2, weights = w, offset = off,
                    designs = .(keep))))
  })
  expect_same_methods(pair, nd)
  # update() refits from the call, keeping the storage mode.
  set.seed(4)
  up_lean <- update(pair$lean, k = 3)
  set.seed(4)
  up_kept <- update(pair$kept, k = 3)
  expect_null(up_lean$x)
  expect_identical(coef(up_lean), coef(up_kept))
  # No bar: the gate covariates are the expert design without its intercept.
  pair <- fit_both(function(keep) moe(y ~ x1 + x2, data = d, k = 3, designs = keep))
  expect_same_methods(pair, nd)
})

test_that("formula fits without a stored model frame rebuild it from the call", {
  d <- designs_data()
  pair <- fit_both(function(keep) moe(y ~ x1 + x2 | x1, data = d, k = 2, model = FALSE,
                                      designs = keep))
  expect_null(pair$lean$model)
  expect_same_methods(pair, d[1:10, ])
})

test_that("multinomial and least-squares fits: the same with and without stored designs", {
  d <- designs_data()
  pair <- fit_both(function(keep) moe(cls ~ x1 + x2, data = d, k = 2, designs = keep))
  expect_same_methods(pair, d[1:10, ])
  pair <- fit_both(function(keep) moe(y ~ x1 + x2, data = d, k = 2, method = "lsq",
                                      designs = keep))
  expect_same_methods(pair, d[1:10, ])
})

test_that("matrix fits: the same with and without stored designs, no copy of the data", {
  d <- designs_data()
  x <- cbind(a = d$x1, b = d$x2)
  pair <- fit_both(function(keep) moe(x, d$y, k = 2, designs = keep))
  # The object references the caller's matrix (the same memory).
  expect_identical(tracemem(pair$lean$inputs$x), tracemem(x))
  untracemem(x)
  expect_same_methods(pair, list(x = x[1:10, ] + 0.1, y = d$y[1:10]))
  # The gate's own covariates.
  z <- cbind(zz = d$x1^2)
  pair <- fit_both(function(keep) moe(x, d$y, k = 2, z = z, designs = keep))
  expect_same_methods(pair, list(x = x[1:10, ], z = z[1:10, , drop = FALSE], y = d$y[1:10]))
  # An intercept in x (intercept = FALSE): the default z drops it.
  x1 <- cbind(one = 1, x)
  pair <- fit_both(function(keep) moe(x1, d$y, k = 2, intercept = FALSE, designs = keep))
  expect_identical(attr(model.matrix(pair$lean, part = "gate"), "from_x"), 2:3)
  expect_same_methods(pair, list(x = x1[1:10, ], y = d$y[1:10]))
  # Columns without names are named as before.
  xu <- unname(x)
  pair <- fit_both(function(keep) moe(xu, d$y, k = 2, designs = keep))
  expect_identical(rownames(coef(pair$lean, type = "params")$gate$W), c("z1", "z2"))
  expect_same_methods(pair, list(x = xu[1:10, ], y = d$y[1:10]))
})

test_that("designs must be TRUE or FALSE", {
  d <- designs_data(100)
  expect_error(moe(y ~ x1, data = d, k = 2, designs = "yes"), class = "moe_error_designs")
  expect_error(moe(cbind(d$x1), d$y, k = 2, designs = NA), class = "moe_error_designs")
})

test_that("a model frame without missing values is not copied by na.omit", {
  d <- designs_data(200)
  fit <- moe(y ~ x1 + x2, data = d, k = 2)
  # The frame's columns are the data's own (na.omit would have subset them).
  expect_identical(tracemem(model.frame(fit)$x1), tracemem(d$x1))
  untracemem(d$x1)
  # With missing values the rows are dropped as before, for na.omit and na.exclude.
  d$x2[c(5, 9)] <- NA
  set.seed(1)
  fit_na <- moe(y ~ x1 + x2, data = d, k = 2)
  set.seed(1)
  fit_ref <- moe(y ~ x1 + x2, data = d[-c(5, 9), ], k = 2)
  expect_equal(nobs(fit_na), 198)
  expect_identical(coef(fit_na), coef(fit_ref))
  set.seed(1)
  fit_ex <- moe(y ~ x1 + x2, data = d, k = 2, na.action = na.exclude)
  expect_length(fitted(fit_ex), 200)
  expect_true(all(is.na(fitted(fit_ex)[c(5, 9)])))
  expect_error(moe(y ~ x1 + x2, data = d, k = 2, na.action = na.fail), class = "moe_error_data")
})
