# S3 methods of fitted mixtures of experts (R/methods.R).

truth2 <- moe_params(W = matrix(c(4, 0), 1, dimnames = list("x1", NULL)), b0 = c(0.3, 0),
                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.15))

fit_two <- function(n = 600, seed = 11, ...) {
  set.seed(seed)
  d <- rmoe(n, truth2)
  list(data = d, fit = moe(y ~ x1, data = d, k = 2, ...))
}

test_that("print and summary produce the documented objects", {
  ff <- fit_two()
  fit <- ff$fit
  expect_output(expect_identical(print(fit), fit), "log-likelihood")
  expect_output(print(fit), "softmax")
  s <- summary(fit)
  expect_s3_class(s, "summary.moe")
  cols <- c("Estimate", "Std. Error", "z value", "Pr(>|z|)")
  expect_identical(colnames(s$coefficients$gate), cols)
  expect_identical(rownames(s$coefficients$gate), c("expert1.x1", "expert1.(Intercept)"))
  expect_length(s$coefficients$experts, 2)
  for (tab in s$coefficients$experts) {
    expect_identical(rownames(tab), c("(Intercept)", "x1", "sigma2"))
    expect_identical(colnames(tab), cols)
    expect_true(all(is.finite(tab[, 1:2])))
    expect_true(is.na(tab["sigma2", "z value"]))
  }
  expect_output(print(s), "Std. Error")
  expect_output(print(s), "reference")
})

test_that("coef() packs the free parameters in the compiled order", {
  fit <- fit_two()$fit
  cf <- coef(fit)
  expect_identical(names(cf), c("gate.expert1.x1", "gate.expert1.(Intercept)",
                                "expert1.(Intercept)", "expert1.x1", "expert2.(Intercept)",
                                "expert2.x1", "expert1.sigma2", "expert2.sigma2"))
  expect_length(cf, fit$df)
  cp <- moegate:::params_to_cpp(fit$params, fit$expert, fit$k)
  theta <- moegate:::cpp_loglik(model.matrix(fit), matrix(fit$y), model.matrix(fit, part = "gate"), moegate:::gate_cpp_spec(fit$gate),
                                moegate:::expert_cpp_spec(fit$expert), cp$gate, cp$expert,
                                NULL, FALSE, 1L)$theta
  expect_equal(unname(cf), theta)
  expect_s3_class(coef(fit, type = "params"), "moe_params")
  expect_identical(coef(fit, type = "params"), fit$params)
})

test_that("vcov() is a symmetric positive definite matrix named like coef()", {
  fit <- fit_two()$fit
  V <- vcov(fit)
  expect_identical(dimnames(V), list(names(coef(fit)), names(coef(fit))))
  expect_equal(V, t(V))
  expect_true(all(eigen(V, symmetric = TRUE, only.values = TRUE)$values > 0))
  s <- summary(fit)
  se <- c(stats::setNames(s$coefficients$gate[, 2], paste0("gate.", rownames(s$coefficients$gate))),
          unlist(lapply(1:2, function(i) {
            tab <- s$coefficients$experts[[i]]
            stats::setNames(tab[, 2], paste0("expert", i, ".", rownames(tab)))
          })))
  expect_equal(sqrt(diag(V)), se[names(coef(fit))])
})

test_that("the observed information matches second differences of the log-likelihood", {
  fit <- fit_two(n = 300)$fit
  info <- moegate:::observed_information(fit)
  cp <- moegate:::params_to_cpp(fit$params, fit$expert, fit$k)
  ll <- function(theta) {
    moegate:::cpp_loglik(model.matrix(fit), matrix(fit$y), model.matrix(fit, part = "gate"), moegate:::gate_cpp_spec(fit$gate),
                         moegate:::expert_cpp_spec(fit$expert), cp$gate, cp$expert, theta,
                         FALSE, 1L)$loglik
  }
  theta <- unname(coef(fit))
  h <- 1e-4
  # Diagonal second differences of the log-likelihood itself: accurate to
  # about h^2 times the fourth derivative, hence the 1e-4 relative tolerance.
  d2 <- vapply(seq_along(theta), function(j) {
    e <- replace(numeric(length(theta)), j, h)
    (ll(theta + e) - 2 * ll(theta) + ll(theta - e)) / h^2
  }, 0)
  expect_equal(diag(info), -d2, tolerance = 1e-4)
})

test_that("logLik, AIC, BIC and nobs agree with the manual formulas", {
  fit <- fit_two()$fit
  ll <- logLik(fit)
  expect_s3_class(ll, "logLik")
  expect_identical(attr(ll, "df"), fit$df)
  expect_identical(attr(ll, "nobs"), 600L)
  expect_identical(nobs(fit), 600L)
  expect_equal(fit$df, 8)
  expect_equal(AIC(fit), -2 * fit$loglik + 2 * 8)
  expect_equal(BIC(fit), -2 * fit$loglik + log(600) * 8)
  # The Gaussian mixture density at the estimate, computed in plain R.
  p <- fit$params
  G <- predict(fit, type = "gate")
  dens <- vapply(1:2, function(i) {
    dnorm(fit$y, model.matrix(fit) %*% p$expert$coef[, i], sqrt(p$expert$sigma2[i]))
  }, numeric(600))
  expect_equal(as.numeric(ll), sum(log(rowSums(G * dens))))
})

test_that("fitted and residuals have one entry per observation", {
  ff <- fit_two()
  fit <- ff$fit
  expect_length(fitted(fit), 600)
  expect_equal(fitted(fit) + residuals(fit), stats::setNames(ff$data$y, names(fitted(fit))))
  pr <- residuals(fit, type = "pearson")
  expect_length(pr, 600)
  # Pearson residuals of a correct model have mean ~0 and variance ~1.
  expect_lt(abs(mean(pr)), 0.15)
  expect_lt(abs(var(pr) - 1), 0.2)
  expect_error(residuals(fit, type = "deviance"))
})

test_that("multinomial and least-squares residuals", {
  mt <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0),
                   coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2)))
  set.seed(6)
  sim <- rmoe(300, mt, expert = "multinomial", levels = c("a", "b", "c"))
  fit <- suppressWarnings(moe(y ~ x1, data = sim, k = 2, control = moe_control(maxit = 50)))
  P <- fitted(fit)
  expect_identical(dim(P), c(300L, 3L))
  expect_equal(unname(rowSums(P)), rep(1, 300))
  onehot <- outer(as.integer(sim$y), 1:3, "==") * 1
  expect_equal(unname(residuals(fit)), onehot - unname(P))
  expect_equal(residuals(fit, type = "pearson"), residuals(fit) / sqrt(P * (1 - P)))
  set.seed(7)
  d <- rmoe(300, truth2)
  fit_lsq <- suppressWarnings(moe(y ~ x1, data = d, k = 2, method = "lsq"))
  expect_equal(residuals(fit_lsq, type = "pearson"), residuals(fit_lsq) / sqrt(fit_lsq$sigma2))
  expect_equal(sum(residuals(fit_lsq)^2), fit_lsq$rss)
})

test_that("na.exclude pads fitted values and residuals", {
  ff <- fit_two(n = 200)
  d <- ff$data
  d$x1[c(3, 10)] <- NA
  fit <- moe(y ~ x1, data = d, k = 2, na.action = na.exclude)
  expect_identical(nobs(fit), 198L)
  expect_length(fitted(fit), 200)
  expect_true(all(is.na(residuals(fit)[c(3, 10)])))
})

test_that("formula, model.frame and update work through stats", {
  ff <- fit_two(n = 300)
  fit <- ff$fit
  expect_s3_class(formula(fit), "formula")
  expect_identical(nrow(model.frame(fit)), 300L)
  d <- ff$data
  fit_nomodel <- moe(y ~ x1, data = d, k = 2, model = FALSE)
  expect_identical(dim(model.frame(fit_nomodel)), c(300L, 2L))
  fit3 <- update(fit, k = 3)
  expect_s3_class(fit3, "moe")
  expect_identical(fit3$k, 3L)
  expect_identical(ncol(fit3$params$gate$W), 3L)
  d$x2 <- rnorm(300)
  fit_x2 <- update(fit, . ~ . + x2, data = d)
  expect_identical(colnames(model.matrix(fit_x2)), c("(Intercept)", "x1", "x2"))
})

test_that("matrix fits have methods too, but no formula", {
  set.seed(3)
  d <- rmoe(300, truth2)
  X <- as.matrix(d["x1"])
  fit <- moe(X, d$y, k = 2)
  expect_identical(names(coef(fit))[1:2], c("gate.expert1.x1", "gate.expert1.(Intercept)"))
  expect_error(formula(fit), class = "moe_error_x")
  expect_error(model.frame(fit), class = "moe_error_formula")
  expect_identical(update(fit, k = 1)$k, 1L)
  expect_output(print(summary(fit)), "Expert 2")
})

test_that("k = 1 Gaussian standard errors are lm's with the ML variance", {
  set.seed(4)
  n <- 250
  d <- data.frame(x1 = rnorm(n), x2 = runif(n))
  d$y <- 1 + 2 * d$x1 - d$x2 + rnorm(n)
  fit <- moe(y ~ x1 + x2, data = d, k = 1)
  tab <- summary(fit)$coefficients$experts$expert1
  lm_fit <- lm(y ~ x1 + x2, data = d)
  expect_equal(tab[1:3, "Estimate"], coef(lm_fit), tolerance = 1e-8)
  # lm's standard errors use RSS / (n - p), maximum likelihood RSS / n.
  se_lm <- coef(summary(lm_fit))[, "Std. Error"] * sqrt((n - 3) / n)
  expect_equal(tab[1:3, "Std. Error"], se_lm, tolerance = 1e-4)
  # The variance's standard error is the Gaussian sqrt(2 / n) sigma^2.
  expect_equal(tab["sigma2", "Std. Error"], sqrt(2 / n) * fit$params$expert$sigma2[1],
               tolerance = 1e-4)
  expect_identical(nrow(summary(fit)$coefficients$gate), 0L)
  expect_output(print(summary(fit)), "no free gate parameters")
})

test_that("k = 1 multinomial standard errors are nnet::multinom's", {
  skip_if_not_installed("nnet")
  set.seed(5)
  n <- 300
  d <- data.frame(x1 = rnorm(n), x2 = runif(n))
  eta <- cbind(0, 0.5 - d$x1, -0.3 + d$x1 + d$x2)
  pr <- exp(eta) / rowSums(exp(eta))
  d$g <- factor(c("a", "b", "c")[apply(pr, 1, function(p) sample(3, 1, prob = p))])
  mn <- nnet::multinom(g ~ x1 + x2, data = d, trace = FALSE)
  # multinom takes the first level as reference, moegate the last.
  d$g_last <- factor(d$g, levels = c("b", "c", "a"))
  fit <- moe(g_last ~ x1 + x2, data = d, k = 1)
  tab <- summary(fit)$coefficients$experts$expert1
  expect_identical(rownames(tab), paste0(rep(c("b", "c"), each = 3), ".",
                                         c("(Intercept)", "x1", "x2")))
  # multinom stops at its default relative tolerance 1e-8 of the deviance
  # (BFGS), so its estimates, and the Hessian at them, agree to about 1e-4;
  # 1e-3 leaves room.
  expect_equal(tab[, "Estimate"], as.numeric(t(coef(mn))), tolerance = 1e-3,
               ignore_attr = TRUE)
  expect_equal(tab[, "Std. Error"], as.numeric(t(summary(mn)$standard.errors)),
               tolerance = 1e-3, ignore_attr = TRUE)
  expect_identical(names(coef(fit))[1], "expert1.b.(Intercept)")
  expect_output(print(fit), "reference class \"a\"")
})

test_that("non-identified directions give NA standard errors with a note", {
  ff <- fit_two()
  fit_t <- moe(y ~ x1, data = ff$data, k = 2, gate = gate_temperature())
  s <- summary(fit_t)
  se <- s$coefficients$gate[, "Std. Error"]
  # Only w / tau is identified: w and log tau have no standard error of their
  # own, the intercept and the experts do.
  expect_true(is.na(se["expert1.x1"]) && is.na(se["log_tau"]))
  expect_true(is.finite(se["expert1.(Intercept)"]))
  expect_true(all(is.finite(s$coefficients$experts$expert1[, "Std. Error"])))
  expect_true(any(grepl("singular", s$notes)))
  expect_output(print(s), "Note: The observed information is singular")
  # The identified standard errors are those of the softmax fit.
  s_soft <- summary(ff$fit)
  expect_equal(s$coefficients$experts$expert1[, 2], s_soft$coefficients$experts$expert1[, 2],
               tolerance = 1e-3)
})

test_that("least-squares fits get standard errors from the Hessian of the RSS", {
  ff <- fit_two(n = 400)
  fit <- suppressWarnings(moe(y ~ x1, data = ff$data, k = 2, method = "lsq"))
  cf <- coef(fit)
  expect_identical(tail(names(cf), 1), "sigma2")
  expect_length(cf, fit$df)
  s <- summary(fit)
  expect_equal(s$noise[1, "Std. Error"], sqrt(2 / 400) * fit$sigma2)
  expect_output(print(s), "Noise variance")
  expect_output(print(fit), "Noise variance")
  expect_identical(dim(vcov(fit)), c(length(cf), length(cf)))
})

test_that("print.moe_params shows gate and experts", {
  expect_output(print(truth2), "<moe_params> 2 experts, Gaussian")
  mp <- moe_params(W = matrix(c(1, 0), 1), b0 = c(0, 0), tau = 0.5,
                   coef = array(1:8 / 4, c(2, 2, 2)))
  expect_output(print(mp), "multinomial")
  expect_output(print(mp), "Temperature: 0.5")
})
