# EM for multinomial logistic experts: the Boehning-certified Newton M-step
# (src/expert.cpp), monotone EM, convergence on a regular truth, and the
# behaviour on separated data (no finite maximum).

# K = 3 classes, k = 3 experts, d = 2 (the truth of bench/bench-multinom.R);
# `scale` multiplies the expert coefficients (10: classes separated within
# experts).
multinom_case <- function(n, seed, scale = 1) {
  coef <- array(0, c(3, 2, 3))
  coef[, , 1] <- rbind(c(2, 0), c(1, -1), c(0, 1))
  coef[, , 2] <- rbind(c(0, 2), c(-1, 1), c(1, 0))
  coef[, , 3] <- rbind(c(-1, -1), c(0, 1), c(-1, 0))
  truth <- moe_params(W = rbind(c(5, -5, 0), c(5, 5, 0)), b0 = c(0, 0, 0), coef = scale * coef)
  set.seed(seed)
  rmoe(n, truth, expert = "multinomial")
}

test_that("k = 1 multinomial experts with case weights equal nnet::multinom, also one Newton step per EM iteration", {
  skip_if_not_installed("nnet")
  set.seed(7)
  n <- 400
  d <- data.frame(x1 = runif(n, -2, 2), x2 = rnorm(n))
  eta <- cbind(1 + 2 * d$x1 - d$x2, -0.5 + d$x2, 0)
  p <- exp(eta) / rowSums(exp(eta))
  d$y <- factor(apply(p, 1, function(pr) sample(c("a", "b", "c"), 1, prob = pr)))
  w <- runif(n, 0.2, 3)
  d$y_c <- relevel(d$y, ref = "c")
  ref <- nnet::multinom(y_c ~ x1 + x2, data = d, weights = w, trace = FALSE, maxit = 1000,
                        reltol = 1e-14)
  for (inner in c(25, 1)) {
    fit <- moe(y ~ x1 + x2, data = d, k = 1, weights = w,
               control = moe_control(expert_maxit = inner, expert_tol = 1e-14))
    # Both reach the weighted maximum: multinom's BFGS to a relative deviance
    # change of 1e-14, moegate's Newton to its gradient rule.
    expect_equal(unname(fit$params$expert$coef[, , 1]), unname(t(coef(ref))[, c("a", "b")]),
                 tolerance = 1e-5, label = paste("expert_maxit", inner))
    expect_gte(fit$loglik, as.numeric(logLik(ref)) - 1e-7)
    expect_true(isTRUE(fit$converged))
  }
})

test_that("multinomial EM is monotone, also with one certified Newton step per M-step and near-deterministic experts", {
  for (scale in c(1, 3)) {
    d <- multinom_case(2000, seed = 3, scale = scale)
    for (inner in c(25, 1)) {
      set.seed(1)
      warned <- character()
      fit <- withCallingHandlers(
        moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
            control = moe_control(accelerate = "none", polish = "none",
                                  expert_maxit = inner, maxit = 150)),
        warning = function(w) {
          warned <<- c(warned, class(w)[1])
          invokeRestart("muffleWarning")
        })
      label <- sprintf("scale %g, expert_maxit %d", scale, inner)
      expect_gt(length(fit$trace), 20)
      # Rounding in sums over n moves the log-likelihood by ~1e-12 relative.
      expect_true(all(diff(fit$trace) >= -1e-10 * abs(fit$loglik)), label = label)
      expect_false("moe_monotonicity_warning" %in% warned, label = label)
    }
  }
})

test_that("multinomial EM converges on a regular K = 3, k = 3 truth in well under 1000 iterations", {
  # A sample whose maximum is finite (at n = 3000 some samples of this truth
  # are separated within an expert: see the next test).
  d <- multinom_case(5000, seed = 3)
  set.seed(1)
  fit <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial")
  expect_identical(names(fit$converged), "gradient")
  expect_true(isTRUE(fit$converged))
  expect_lte(fit$gradient_criterion, 1e-6)
  expect_lt(fit$iter, 200)
  expect_false(any(fit$separation))
  expect_lt(max(abs(fit$params$expert$coef)), 50)
  # The same fit by plain EM to the gradient rule gives the same maximum.
  set.seed(1)
  plain <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
               control = moe_control(accelerate = "none"))
  expect_true(isTRUE(plain$converged))
  expect_lt(fit$iter, plain$iter)
  expect_equal(fit$loglik, plain$loglik, tolerance = 1e-8)
})

test_that("separated multinomial experts stop cleanly and say the likelihood has no finite maximum", {
  d <- multinom_case(2000, seed = 1, scale = 10)
  set.seed(1)
  warned <- character()
  fit <- withCallingHandlers(
    moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial"),
    warning = function(w) {
      warned <<- c(warned, class(w)[1])
      if (inherits(w, "moe_separation_warning")) {
        expect_match(conditionMessage(w), "no finite maximum")
      }
      invokeRestart("muffleWarning")
    })
  expect_true("moe_separation_warning" %in% warned)
  expect_false("moe_convergence_warning" %in% warned)
  expect_true(any(fit$separation))
  # The fitted probabilities converge while the coefficients run off: the
  # gradient rule stops the fit long before maxit.
  expect_true(isTRUE(fit$converged))
  expect_lt(fit$iter, 1000)
  expect_true(is.finite(fit$loglik))
  # Stopped by maxit, a separated fit gets the separation warning only, which
  # says where EM stopped (more iterations cannot reach a maximum).
  ir <- iris
  ir$setosa <- factor(ir$Species == "setosa")
  expect_warning(short <- moe(setosa ~ Petal.Length, data = ir, k = 1,
                              control = moe_control(maxit = 1, polish = "none")),
                 "no finite maximum.*EM stopped after 1 iterations",
                 class = "moe_separation_warning")
  expect_false(isTRUE(short$converged))
  expect_identical(short$separation, TRUE)
})
