# Fits do not depend on the units or the origin of covariates and response
# wherever the model does not (issue 15 item 5): the designs are centred and
# scaled internally and the estimates mapped back.

invariance_data <- function(n = 300) {
  set.seed(1)
  d <- data.frame(x = runif(n, -1, 1))
  first <- runif(n) < plogis(4 * d$x)
  d$y <- ifelse(first, 1 + 2 * d$x, -1 - d$x) + rnorm(n, sd = 0.3)
  d$cls <- factor(ifelse(runif(n) < plogis(2 * d$x), "a", ifelse(runif(n) < 0.5, "b", "c")))
  d
}

# Shifts and scales of the sweep in issue 15, where 70 of 136 fits were wrong.
sweep_units <- c(paste0("x * 1e", c(-7, -4, -1, 3, 5, 7)), paste0("x + 1e", c(1, 3, 5, 6)))

test_that("k = 1 fits match lm() and nnet::multinom() in any units of x", {
  d <- invariance_data()
  ref_lm <- lm(y ~ x, d)
  ref_mn <- nnet::multinom(cls ~ x, d, trace = FALSE, reltol = 1e-14)
  for (u in sweep_units) {
    d$u <- eval(parse(text = u), d)
    f <- moe(y ~ u, data = d, k = 1)
    expect_true(f$converged, label = u)
    # lm() on the unshifted x: the same model (lm's own rank test drops
    # x + 1e7 at its default tolerance).
    expect_equal(f$loglik, as.numeric(logLik(ref_lm)), tolerance = 1e-10, label = u)
    expect_equal(unname(fitted(f)), unname(fitted(ref_lm)), tolerance = 1e-8, label = u)
    m <- moe(cls ~ u, data = d, k = 1)
    # nnet stops at its own relative tolerance: agreement to ~1e-9.
    expect_equal(m$loglik, as.numeric(logLik(ref_mn)), tolerance = 1e-8, label = u)
  }
  # The issue's reproducer: coefficients (0, 0) and log-likelihood -368 before.
  d$u <- d$x + 1000
  f <- moe(y ~ I(x + 1000), data = d, k = 1)
  expect_equal(unname(coef(f)[1:2]), unname(coef(lm(y ~ I(x + 1000), d))), tolerance = 1e-6)
  # Standard errors: lm's with the maximum-likelihood variance.
  se_lm <- sqrt(diag(vcov(lm(y ~ I(x + 1000), d))) * (nrow(d) - 2) / nrow(d))
  expect_equal(unname(sqrt(diag(vcov(f)))[1:2]), unname(se_lm), tolerance = 1e-5)
})

test_that("k = 2 fits are invariant to shifts and scales of expert and gate covariates", {
  d <- invariance_data()
  set.seed(5)
  ref <- moe(y ~ x, data = d, k = 2)
  set.seed(5)
  ref_gate <- moe(y ~ x | x, data = d, k = 2)
  se_ref <- sqrt(diag(vcov(ref)))
  for (u in sweep_units) {
    d$u <- eval(parse(text = u), d)
    s <- if (grepl("*", u, fixed = TRUE)) as.numeric(sub("x * ", "", u, fixed = TRUE)) else 1
    set.seed(5)
    f <- moe(y ~ u, data = d, k = 2)
    expect_true(f$converged, label = u)
    expect_equal(f$loglik, ref$loglik, tolerance = 1e-9, label = u)
    expect_equal(fitted(f), fitted(ref), tolerance = 1e-6, label = u)
    # Slopes' standard errors scale with 1 / s; the variances' do not move.
    se <- sqrt(diag(vcov(f)))
    slope <- grepl("\\.u$", names(se))
    expect_equal(unname(se[slope] * s), unname(se_ref[slope]), tolerance = 1e-5, label = u)
    s2 <- grepl("sigma2", names(se))
    expect_equal(unname(se[s2]), unname(se_ref[s2]), tolerance = 1e-5, label = u)
    set.seed(5)
    g <- moe(y ~ x | u, data = d, k = 2)
    expect_equal(g$loglik, ref_gate$loglik, tolerance = 1e-9, label = u)
    expect_equal(predict(g, type = "gate"), predict(ref_gate, type = "gate"), tolerance = 1e-6,
                 label = u)
  }
})

test_that("multinomial k = 2 fits are invariant to the units of x", {
  d <- invariance_data()
  ctl <- moe_control(maxit = 200)
  set.seed(5)
  ref <- suppressWarnings(moe(cls ~ x, data = d, k = 2, control = ctl))
  for (u in c("x * 1e-6", "x * 1e5", "x + 1e4")) {
    d$u <- eval(parse(text = u), d)
    set.seed(5)
    m <- suppressWarnings(moe(cls ~ u, data = d, k = 2, control = ctl))
    expect_equal(m$loglik, ref$loglik, tolerance = 1e-9, label = u)
    expect_equal(fitted(m), fitted(ref), tolerance = 1e-6, label = u)
  }
})

test_that("the Gaussian response may have any origin and units", {
  d <- invariance_data()
  set.seed(5)
  ref <- moe(y ~ x, data = d, k = 2)
  n <- nrow(d)
  for (a in c(1e-7, 1e7)) {
    d$ya <- d$y * a
    set.seed(5)
    f <- moe(ya ~ x, data = d, k = 2)
    expect_equal(f$loglik, ref$loglik - n * log(a), tolerance = 1e-10)
    expect_equal(fitted(f) / a, fitted(ref), tolerance = 1e-8)
    expect_equal(f$params$expert$sigma2 / a^2, ref$params$expert$sigma2, tolerance = 1e-6)
  }
  # y + 1e10 warned that the log-likelihood decreased; the doubles holding it
  # resolve ~2e-6, which bounds the agreement.
  d$yb <- d$y + 1e10
  set.seed(5)
  expect_no_warning(f <- moe(yb ~ x, data = d, k = 2))
  expect_equal(f$loglik, ref$loglik, tolerance = 1e-6)
  expect_equal(f$params$expert$coef[2, ], ref$params$expert$coef[2, ], tolerance = 1e-4)
  # Least squares as well.
  set.seed(5)
  l_ref <- moe(y ~ x, data = d, k = 2, method = "lsq")
  d$ya <- d$y * 1e6
  set.seed(5)
  l <- moe(ya ~ x, data = d, k = 2, method = "lsq")
  expect_equal(l$rss / 1e12, l_ref$rss, tolerance = 1e-6)
})

test_that("user starting values are read in the original units", {
  d <- invariance_data()
  d$u <- d$x * 1e4 + 5e4
  set.seed(5)
  f <- moe(y ~ u, data = d, k = 2, control = moe_control(tol = 1e-13))
  # Restarting from the estimate stays there.
  g <- moe(y ~ u, data = d, k = 2,
           control = moe_control(tol = 1e-13, init = coef(f, type = "params")))
  expect_equal(g$loglik, f$loglik, tolerance = 1e-10)
  expect_lte(g$iter, 3)
  expect_equal(g$params$expert$coef, f$params$expert$coef, tolerance = 1e-6)
})

test_that("the Gaussian M-step's rank test does not depend on column scales", {
  # Called directly, without the R-level centring: [1, x + 1000] is well
  # posed; the absolute pivot test skipped the M-step and kept the start.
  set.seed(2)
  n <- 200
  x <- runif(n, -1, 1)
  y <- 1 + 2 * x + rnorm(n, sd = 0.3)
  X <- cbind(1, x + 1000)
  res <- moegate:::cpp_em_fit(X, matrix(y), matrix(x), cpp_spec(gate_softmax()),
                              cpp_gaussian_spec(), list(W = matrix(0, 1, 1), b0 = 0, tau = 1),
                              list(coef = matrix(0, 2, 1), sigma2 = var(y)),
                              matrix(1, n, 1), list(tol = 1e-12, maxit = 50L, nthreads = 1L))
  expect_equal(as.numeric(res$expert$coef), unname(coef(lm(y ~ I(x + 1000)))), tolerance = 1e-6)
})

test_that("Euclidean gates are invariant to shifts, and to scales with an estimated temperature", {
  d <- invariance_data()
  set.seed(5)
  ref <- moe(y ~ x | x, data = d, k = 2, gate = gate_euclidean())
  for (u in c("x + 1e3", "x + 1e6", "x * 1e-4", "x * 1e4")) {
    d$u <- eval(parse(text = u), d)
    set.seed(5)
    g <- moe(y ~ x | u, data = d, k = 2, gate = gate_euclidean())
    # Before: -194 at x * 1e4 (the temperature had to travel to 1e8).
    expect_equal(g$loglik, ref$loglik, tolerance = 1e-9, label = u)
    # The fits stop at the gradient rule (1e-6) on a flat direction of this
    # likelihood: fitted values agree to a few 1e-6 (x * 1e4: 3e-6), the
    # log-likelihoods to 1e-9.
    expect_equal(fitted(g), fitted(ref), tolerance = 1e-5, label = u)
  }
  # At a fixed temperature only shifts leave the model unchanged.
  fixed <- gate_euclidean(estimate_temperature = FALSE)
  set.seed(5)
  ref <- moe(y ~ x | x, data = d, k = 2, gate = fixed)
  d$u <- d$x + 1e4
  set.seed(5)
  g <- moe(y ~ x | u, data = d, k = 2, gate = fixed)
  # This fit converges slowly: both stop at the EM tolerance (relative change
  # 1e-8), a few 1e-8 apart.
  expect_equal(g$loglik, ref$loglik, tolerance = 1e-7)
})

test_that("temperature gates keep identified standard errors in any units", {
  d <- invariance_data()
  set.seed(5)
  ref <- moe(y ~ x, data = d, k = 2, gate = gate_temperature())
  d$u <- d$x * 100 + 1e4
  set.seed(5)
  f <- moe(y ~ x | u, data = d, k = 2, gate = gate_temperature())
  expect_equal(f$loglik, ref$loglik, tolerance = 1e-9)
  se <- summary(f)$coefficients$gate[, "Std. Error"]
  se_ref <- summary(ref)$coefficients$gate[, "Std. Error"]
  # Only w / tau is identified: w and log tau have no standard error.
  expect_true(is.na(se["log_tau"]) && is.na(se_ref["log_tau"]))
  se_e <- summary(f)$coefficients$experts$expert1[, "Std. Error"]
  se_e_ref <- summary(ref)$coefficients$experts$expert1[, "Std. Error"]
  expect_equal(se_e, se_e_ref, tolerance = 1e-4)
})

test_that("trace lines report the objective in the response's units", {
  d <- invariance_data()
  d$ya <- d$y * 1e3
  set.seed(5)
  out <- capture.output(f <- moe(ya ~ x, data = d, k = 2, control = moe_control(trace = 1)))
  last <- utils::tail(grep("log-likelihood", out, value = TRUE), 1)
  expect_equal(as.numeric(sub(".*log-likelihood ", "", last)), f$loglik, tolerance = 1e-8)
  set.seed(5)
  out <- capture.output(l <- moe(ya ~ x, data = d, k = 2, method = "lsq",
                                 control = moe_control(trace = 1)))
  rss <- as.numeric(sub(".*RSS ", "", grep("RSS", out, value = TRUE)))
  expect_equal(min(rss), l$rss, tolerance = 1e-8)
})

test_that("origin-dependent gates warn when their inputs sit far from the origin", {
  d <- invariance_data()
  d$u <- d$x + 1e3
  # The saturated gates are also (correctly) reported as constant, and the
  # activation gate's fit crawls to maxit there (a convergence warning).
  muffle <- function(w) invokeRestart("muffleWarning")
  quiet_constant <- function(expr) {
    withCallingHandlers(expr, moe_constant_gate_warning = muffle,
                        moe_convergence_warning = muffle)
  }
  expect_warning(quiet_constant(moe(y ~ x | u, data = d, k = 2, gate = gate_activation())),
                 class = "moe_gate_origin_warning")
  expect_warning(quiet_constant(moe(y ~ x | u, data = d, k = 2, gate = gate_modified_softmax())),
                 class = "moe_gate_origin_warning")
  # Shift-invariant gates are centred internally and do not warn.
  expect_no_warning(moe(y ~ x | u, data = d, k = 2))
  expect_no_warning(moe(y ~ x | u, data = d, k = 2, gate = gate_euclidean()))
  # Nor do origin-dependent gates on centred inputs.
  expect_no_warning(moe(y ~ x | x, data = d, k = 2, gate = gate_activation()))
})
