# Case weights (issue 13 item 7): a weight of m means the same as m copies of
# the row, in the E-step, every M-step, least squares and logLik.

weight_data <- function(n = 300, seed = 1) {
  set.seed(seed)
  d <- rmoe(n, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                          coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
  # Classes that overlap (no separation): probabilities smooth in x1.
  eta <- cbind(2 * d$x1, -d$x1 + 0.3, 0)
  p <- exp(eta) / rowSums(exp(eta))
  d$yf <- factor(c("a", "b", "c")[apply(p, 1, function(pr) sample.int(3, 1, prob = pr))])
  d$w <- sample(0:3, n, replace = TRUE)
  d
}

replicate_rows <- function(d) d[rep(seq_len(nrow(d)), d$w), ]

start2 <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0.1, 0),
                     coef = cbind(c(0.8, 1.5), c(-0.5, -1)), sigma2 = c(0.2, 0.2))

test_that("integer weights equal replicated rows: Gaussian experts, EM", {
  d <- weight_data()
  # Plain EM: SQUAREM (the default) extrapolates along second differences of
  # the iterates, which near convergence are of the order of the rounding,
  # so the two paths part at the gradient rule's tolerance (~1e-6 here).
  ctl <- moe_control(init = start2, tol = 1e-12, accelerate = "none")
  a <- moe(y ~ x1, data = d, k = 2, weights = w, control = ctl)
  b <- moe(y ~ x1, data = replicate_rows(d), k = 2, control = ctl)
  # Same EM path up to the order of summation.
  expect_equal(coef(a), coef(b), tolerance = 1e-10)
  expect_equal(as.numeric(logLik(a)), as.numeric(logLik(b)), tolerance = 1e-12)
  expect_identical(a$iter, b$iter)
  expect_equal(nobs(a), nobs(b))
  expect_equal(AIC(a), AIC(b), tolerance = 1e-12)
  expect_equal(vcov(a), vcov(b), tolerance = 1e-7)
  expect_identical(weights(a), as.numeric(d$w))
  # The stored posterior is the posterior, not scaled by the weights.
  expect_equal(unname(rowSums(a$posterior)), rep(1, nrow(d)))
  # Without the weights the fit differs: they are not ignored.
  plain <- moe(y ~ x1, data = d, k = 2, control = ctl)
  expect_gt(max(abs(coef(plain) - coef(a))), 1e-3)
  # The matrix interface takes them too.
  m <- moe(cbind(x1 = d$x1), d$y, k = 2, weights = d$w, control = ctl)
  expect_equal(unname(coef(m)), unname(coef(a)), tolerance = 1e-10)
})

test_that("integer weights equal replicated rows: multinomial experts, EM", {
  d <- weight_data()
  start <- coef(suppressWarnings(moe(yf ~ x1, data = d, k = 2, weights = w,
                                     control = moe_control(maxit = 5, accelerate = "none"))), type = "params")
  # The classes come from one expert, so k = 2 converges slowly: the two fits
  # are compared after the same 100 EM iterations (plain EM: SQUAREM, the
  # multinomial default, drives this over-specified fit to a separated expert
  # within them). The expert M-step stops after a Newton step predicted to gain
  # less than sqrt(expert_tol) relative; whether one does compares sums whose
  # rounding differs between weighted and replicated rows, and a flipped choice
  # persists along this slow fit's flat direction. With a tight expert_tol the
  # coefficients agree to ~4e-7 after 100 iterations (the log-likelihoods to
  # 1e-12); with the default 1e-10, to ~1e-4.
  ctl <- moe_control(init = start, maxit = 100, accelerate = "none", expert_tol = 1e-14)
  a <- suppressWarnings(moe(yf ~ x1, data = d, k = 2, weights = w, control = ctl),
                        classes = "moe_convergence_warning")
  b <- suppressWarnings(moe(yf ~ x1, data = replicate_rows(d), k = 2, control = ctl),
                        classes = "moe_convergence_warning")
  expect_identical(a$iter, b$iter)
  expect_equal(coef(a), coef(b), tolerance = 1e-5)
  expect_equal(as.numeric(logLik(a)), as.numeric(logLik(b)), tolerance = 1e-12)
  expect_equal(nobs(a), nobs(b))
})

test_that("integer weights equal replicated rows: least squares", {
  set.seed(1)
  n <- 300
  x <- runif(n, -1, 1)
  G <- plogis(4 * x)
  d <- data.frame(x1 = x, y = G * (1 + 2 * x) + (1 - G) * (-1 - x) + rnorm(n, sd = 0.1),
                  w = sample(0:3, n, replace = TRUE))
  # The weighted objective and its gradient are those of the replicated rows.
  X <- cbind(1, d$x1)
  idx <- rep(seq_len(n), d$w)
  gs <- moegate:::gate_cpp_spec(gate_softmax())
  gp <- list(W = matrix(c(3, 0), 1), b0 = c(0.2, 0), tau = 1)
  cf <- cbind(c(1, 2), c(-1, -1))
  a0 <- moegate:::cpp_lsq_objective(X, matrix(d$y), cbind(d$x1), gs, "identity", gp, cf,
                                    NULL, 1L, as.numeric(d$w))
  b0 <- moegate:::cpp_lsq_objective(X[idx, ], matrix(d$y[idx]), cbind(d$x1[idx]), gs,
                                    "identity", gp, cf, NULL, 1L)
  expect_equal(a0$value, b0$value, tolerance = 1e-12)
  expect_equal(a0$gradient, b0$gradient, tolerance = 1e-10)
  st <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0), coef = cf, sigma2 = c(0.1, 0.1))
  a <- moe(y ~ x1, data = d, k = 2, weights = w, method = "lsq", control = moe_control(init = st))
  b <- moe(y ~ x1, data = d[idx, ], k = 2, method = "lsq", control = moe_control(init = st))
  # L-BFGS from the same start: the paths agree up to rounding in the sums.
  expect_equal(coef(a), coef(b), tolerance = 1e-6)
  expect_equal(as.numeric(logLik(a)), as.numeric(logLik(b)), tolerance = 1e-8)
  expect_equal(nobs(a), nobs(b))
})

test_that("k = 1 with weights equals lm, glm and multinom", {
  d <- weight_data()
  d$v <- runif(nrow(d), 0.2, 3)
  fit <- moe(y ~ x1, data = d, k = 1, weights = v)
  ref <- lm(y ~ x1, data = d, weights = v)
  expect_equal(unname(fit$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-10)
  # Frequency weights: the ML variance is the weighted RSS over the summed weights.
  expect_equal(unname(fit$params$expert$sigma2), sum(d$v * residuals(ref)^2) / sum(d$v),
               tolerance = 1e-10)
  ls <- moe(y ~ x1, data = d, k = 1, weights = v, method = "lsq")
  expect_equal(unname(ls$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-6)
  d$yb <- factor(d$y > 0, levels = c(TRUE, FALSE))
  bin <- moe(yb ~ x1, data = d, k = 1, weights = w)
  gref <- glm(I(yb == "TRUE") ~ x1, family = binomial, data = d, weights = w)
  expect_equal(unname(coef(bin)), unname(coef(gref)), tolerance = 1e-7)
  skip_if_not_installed("nnet")
  mn <- moe(yf ~ x1, data = d, k = 1, weights = w)
  mref <- nnet::multinom(relevel(yf, "c") ~ x1, data = d, weights = w, trace = FALSE,
                         reltol = 1e-14, abstol = 1e-14)
  # nnet's BFGS stops at its tolerance: agreement to about 1e-5.
  expect_equal(unname(mn$params$expert$coef[, , 1]), unname(t(coef(mref))), tolerance = 1e-5)
  expect_equal(as.numeric(logLik(mn)), as.numeric(logLik(mref)), tolerance = 1e-8)
})

test_that("zero weights drop rows and results do not depend on the thread count", {
  d <- weight_data()
  # Plain EM, as above: the kept rows sum in another order.
  ctl <- moe_control(init = start2, tol = 1e-12, accelerate = "none")
  a <- moe(y ~ x1, data = d, k = 2, weights = w, control = ctl)
  kept <- d[d$w > 0, ]
  b <- moe(y ~ x1, data = kept, k = 2, weights = w, control = ctl)
  expect_equal(coef(a), coef(b), tolerance = 1e-10)
  two <- moe(y ~ x1, data = d, k = 2, weights = w,
             control = moe_control(init = start2, tol = 1e-12, nthreads = 2,
                                   accelerate = "none"))
  expect_identical(coef(two), coef(a))
  # SQUAREM (the default) gives identical results on 1 and 2 threads too.
  sq <- lapply(1:2, function(nt) moe(y ~ x1, data = d, k = 2, weights = w,
                                      control = moe_control(init = start2, nthreads = nt)))
  expect_identical(coef(sq[[1]]), coef(sq[[2]]))
})

test_that("bad weights are refused with classed errors", {
  d <- weight_data(100)
  expect_error(moe(y ~ x1, data = d, k = 2, weights = -w), class = "moe_error_weights")
  d$bad <- d$w
  d$bad[3] <- Inf
  expect_error(moe(y ~ x1, data = d, k = 2, weights = bad), class = "moe_error_weights")
  d$zero <- 0
  expect_error(moe(y ~ x1, data = d, k = 2, weights = zero), class = "moe_error_weights")
  expect_error(moe(cbind(d$x1), d$y, k = 2, weights = 1:3), class = "moe_error_weights")
  expect_error(moe(cbind(d$x1), d$y, k = 2, weights = rep("a", 100)), class = "moe_error_weights")
  # Rows with NA weights are dropped by na.action, as in lm.
  d$na <- d$w
  d$na[1:5] <- NA
  expect_equal(nobs(moe(y ~ x1, data = d, k = 1, weights = na)), sum(d$w[-(1:5)]))
})

test_that("model.frame() of a fit without a stored frame keeps weights and offset", {
  d <- weight_data(100)
  d$off <- d$x1 / 2
  fit <- moe(y ~ x1, data = d, k = 1, weights = w, offset = off, model = FALSE)
  mf <- model.frame(fit)
  expect_equal(unname(model.weights(mf)), d$w)
  expect_equal(unname(model.offset(mf)), d$off)
})
