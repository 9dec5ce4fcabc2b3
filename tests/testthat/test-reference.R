# moegate against established packages: lm (k = 1 Gaussian), nnet::multinom
# (k = 1 multinomial) and flexmix (softmax-gated Gaussian MoE).

test_that("k = 1 Gaussian reproduces lm's coefficients and log-likelihood", {
  set.seed(31)
  n <- 200
  d <- data.frame(x1 = rnorm(n), x2 = runif(n), g = factor(sample(c("u", "v", "w"), n, TRUE)))
  d$y <- 1 + 2 * d$x1 - d$x2 + (d$g == "v") + rnorm(n, sd = 0.5)
  ref <- lm(y ~ x1 + x2 + g, data = d)
  fit <- moe(y ~ x1 + x2 + g, data = d, k = 1)
  expect_equal(unname(fit$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-6)
  expect_identical(rownames(fit$params$expert$coef), names(coef(ref)))
  # moegate's variance is the ML estimate RSS / n, as in logLik.lm.
  expect_equal(unname(fit$params$expert$sigma2), sum(residuals(ref)^2) / n, tolerance = 1e-6)
  expect_equal(fit$loglik, as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_equal(fit$df, attr(logLik(ref), "df"))
  # The logLik method carries df and nobs, so AIC and BIC agree with lm's.
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_equal(attr(logLik(fit), "df"), attr(logLik(ref), "df"))
  expect_equal(attr(logLik(fit), "nobs"), nobs(ref))
  expect_equal(AIC(fit), AIC(ref), tolerance = 1e-6)
  expect_equal(BIC(fit), BIC(ref), tolerance = 1e-6)
  expect_equal(unname(fit$fitted.values), unname(fitted(ref)), tolerance = 1e-6)
  # The gate is irrelevant with one expert: any gate gives lm's fit.
  for (g in list(gate_cosine(), gate_sigmoid(), gate_temperature())) {
    fit_g <- moe(y ~ x1 + x2 + g, data = d, k = 1, gate = g)
    expect_equal(unname(fit_g$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-6)
    expect_equal(fit_g$loglik, as.numeric(logLik(ref)), tolerance = 1e-6)
  }
})

test_that("k = 1 fits count lm's degrees of freedom whatever the gate", {
  set.seed(32)
  d <- data.frame(x = rnorm(100))
  d$y <- 1 + d$x + rnorm(100)
  df_lm <- attr(logLik(lm(y ~ x, data = d)), "df")
  for (g in list(gate_cosine(), gate_sigmoid(), gate_temperature(), gate_euclidean())) {
    fit <- moe(y ~ x, data = d, k = 1, gate = g)
    expect_equal(fit$df, df_lm, label = g$name)
  }
})

test_that("k = 1 multinomial reproduces nnet::multinom", {
  skip_if_not_installed("nnet")
  set.seed(33)
  n <- 500
  d <- data.frame(x1 = rnorm(n), x2 = rnorm(n))
  eta <- cbind(0.5 + d$x1 - d$x2, -0.5 + 2 * d$x2, 0)
  p <- exp(eta) / rowSums(exp(eta))
  d$y <- factor(apply(p, 1, function(pr) sample(c("a", "b", "c"), 1, prob = pr)))
  fit <- moe(y ~ x1 + x2, data = d, k = 1, control = moe_control(expert_tol = 1e-14))
  # moegate's reference class is the LAST level ("c"); multinom's is the
  # FIRST level: relevel so that both use "c".
  d$y_c <- relevel(d$y, ref = "c")
  ref <- nnet::multinom(y_c ~ x1 + x2, data = d, trace = FALSE, maxit = 1000)
  cf_ref <- t(coef(ref))  # p x (K - 1), columns a, b
  cf_fit <- fit$params$expert$coef[, , 1]
  expect_identical(colnames(cf_fit), c("a", "b"))
  # multinom stops BFGS at a relative change of the deviance of 1e-8
  # (reltol), which leaves its coefficients ~1e-4 from the optimum that
  # moegate's Newton iterations reach to machine precision.
  expect_equal(unname(cf_fit), unname(cf_ref[, c("a", "b")]), tolerance = 1e-4)
  expect_equal(fit$loglik, as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_gte(fit$loglik, as.numeric(logLik(ref)) - 1e-8)
  expect_equal(fit$df, attr(logLik(ref), "df"))
  expect_equal(AIC(fit), AIC(ref), tolerance = 1e-6)
  # Class probabilities agree too.
  expect_equal(unname(fit$fitted.values[, c("a", "b", "c")]),
               unname(predict(ref, type = "probs")[, c("a", "b", "c")]), tolerance = 1e-4)
})

# Softmax-gated Gaussian MoE data with gate covariate z = x.
flexmix_data <- function(k, n = 600, seed = 34) {
  set.seed(seed)
  x <- runif(n, -2, 2)
  W <- if (k == 2) c(2, 0) else c(3, -2, 0)
  b0 <- if (k == 2) c(0.5, 0) else c(0, 1, 0)
  G <- exp(ref_gate_forward(matrix(x), gate_softmax(), list(W = matrix(W, 1), b0 = b0, tau = 1))$log_weights)
  label <- apply(G, 1, function(p) sample.int(k, 1, prob = p))
  a <- rbind(c(1, -1, 0.5)[1:k], c(2, -1, 0)[1:k])
  y <- a[1, label] + a[2, label] * x + rnorm(n, sd = 0.4)
  data.frame(x = x, z = x, y = y, label = label)
}

test_that("the softmax Gaussian MoE matches flexmix from the same start (k = 2, 3)", {
  skip_if_not_installed("flexmix")
  suppressPackageStartupMessages(requireNamespace("flexmix"))
  for (k in 2:3) {
    d <- flexmix_data(k)
    n <- nrow(d)
    # Both packages start with an M-step from the same hard partition (the
    # simulated labels); moegate's columns are the partition's groups, as
    # flexmix's components are.
    fl <- flexmix::flexmix(y ~ x, data = d, k = k, model = flexmix::FLXMRglm(),
                           concomitant = flexmix::FLXPmultinom(~ z), cluster = d$label,
                           control = list(minprior = 0, tolerance = 1e-10, iter.max = 2000))
    R0 <- matrix(0, n, k)
    R0[cbind(seq_len(n), d$label)] <- 1
    res <- moegate:::cpp_em_fit(
      cbind(1, d$x), matrix(d$y), matrix(d$z), cpp_spec(gate_softmax()),
      cpp_gaussian_spec(var_floor = 1e-6 * var(d$y)),
      list(W = matrix(0.1 * seq_len(k), 1), b0 = rep(0, k), tau = 1),
      list(coef = matrix(0, 2, k), sigma2 = rep(var(d$y), k)), R0,
      list(tol = 1e-12, maxit = 5000L, nthreads = 1L))
    expect_true(res$converged)
    ll_fl <- fl@logLik
    # flexmix's M-step estimates sigma by the weighted lm residual variance
    # with n_i - p degrees of freedom, so its fixed point is not the maximum
    # likelihood estimate: its log-likelihood is slightly lower (by ~p^2 / (4
    # n_i) per expert from the variances plus the knock-on effect on the other
    # parameters: ~1e-2 here). moegate must be at least as high, and at the
    # same mode (difference well below 0.1).
    expect_gte(res$loglik, ll_fl - 1e-6)
    expect_lt(res$loglik - ll_fl, 0.1)
    # Same mode: coefficients within 0.01 and sigma within 2% (the df
    # correction n_i / (n_i - p) is ~1%), gate within 0.05 after expressing
    # flexmix's gate (first component reference) relative to the last one.
    par_fl <- flexmix::parameters(fl)
    expect_equal(res$expert$coef, unname(par_fl[c("coef.(Intercept)", "coef.x"), ]), tolerance = 0.01)
    expect_equal(sqrt(res$expert$sigma2), unname(par_fl["sigma", ]), tolerance = 0.02)
    gate_fl <- flexmix::parameters(fl, which = "concomitant")
    gate_fl <- gate_fl - gate_fl[, k]
    expect_equal(res$gate$b0, unname(gate_fl["(Intercept)", ]), tolerance = 0.05)
    expect_equal(c(res$gate$W), unname(gate_fl["z", ]), tolerance = 0.05)
  }
})

test_that("moe() with restarts reaches at least flexmix's log-likelihood", {
  skip_if_not_installed("flexmix")
  d <- flexmix_data(2, seed = 35)
  fl <- flexmix::flexmix(y ~ x, data = d, k = 2, model = flexmix::FLXMRglm(),
                         concomitant = flexmix::FLXPmultinom(~ z), cluster = d$label,
                         control = list(minprior = 0, tolerance = 1e-10, iter.max = 2000))
  set.seed(36)
  fit <- moe(y ~ x | z, data = d, k = 2, control = moe_control(n_starts = 3, tol = 1e-12))
  # As above: flexmix's df-corrected variances put it slightly below the MLE.
  expect_gte(fit$loglik, fl@logLik - 1e-6)
  expect_lt(fit$loglik - fl@logLik, 0.1)
})
