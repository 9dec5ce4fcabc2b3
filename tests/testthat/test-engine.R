# The per-iteration engine and the fit's fixed costs (issue 16 item 4): the
# shared gate input, the k-means assignment, the gate M-step under the
# gradient rule and the polish's cost rule.

# Two softmax-gated Gaussian experts on two covariates (gate z = x).
engine_data <- function(n, seed) {
  set.seed(seed)
  x <- matrix(rnorm(2 * n), n, 2)
  first <- runif(n) < plogis(0.2 + 3 * x[, 1] - x[, 2])
  mu <- ifelse(first, 1 + 2 * x[, 1], -1 - x[, 1] + x[, 2])
  list(x = x, y = mu + rnorm(n, sd = ifelse(first, sqrt(0.2), sqrt(0.3))))
}

test_that("a gate input read from the expert design in place gives the same fit", {
  dat <- engine_data(600, 7)
  X <- cbind(1, dat$x)
  spec <- cpp_spec(gate_softmax())
  g <- list(W = cbind(c(0.5, -0.3), c(-0.4, 0.2), c(0, 0)), b0 = c(0.1, -0.2, 0), tau = 1)
  e <- list(coef = cbind(c(0.5, 1, 0), c(-0.5, -1, 0.5), c(0, 0.3, -0.2)), sigma2 = c(0.5, 0.6, 0.7))
  ctl <- list(tol = 1e-10, maxit = 30L, nthreads = 1L)
  own <- moegate:::cpp_em_fit(X, matrix(dat$y), dat$x, spec, cpp_gaussian_spec(), g, e,
                              matrix(0, 0, 0), ctl)
  shared <- moegate:::cpp_em_fit(X, matrix(dat$y), matrix(0, 0, 0), spec, cpp_gaussian_spec(),
                                 g, e, matrix(0, 0, 0), c(ctl, list(gate_columns = c(1L, 2L))))
  expect_identical(shared$gate, own$gate)
  expect_identical(shared$expert, own$expert)
  expect_identical(shared$loglik, own$loglik)
  expect_identical(shared$posterior, own$posterior)
})

test_that("the gate input is shared exactly when it is the scaled design's columns 2..p", {
  set.seed(4)
  x <- cbind(a = runif(50), b = rnorm(50))
  X <- cbind(`(Intercept)` = 1, x)
  share <- function(U, gate = gate_softmax()) {
    sc <- moegate:::design_scaling(X, U, rnorm(50), expert_gaussian(), gate, "ml")
    moegate:::shares_gate_columns(X, U, gate, sc)
  }
  expect_true(share(x))
  expect_false(share(x[, 2:1]))                 # other order
  expect_false(share(x[, 1, drop = FALSE]))     # a subset
  expect_false(share(x + 1e-9))                 # other numbers
  expect_false(share(x, gate_cosine()))         # not centred like X
  expect_false(share(x, gate(activation = "tanh")))
})

test_that("the k-means assignment is the nearest-centre rule of the data scaled by column", {
  set.seed(8)
  n <- 300
  X <- cbind(1, runif(n), rnorm(n, sd = 3))
  Y <- matrix(rnorm(n))
  set.seed(2)
  got <- moegate:::kmeans_groups(X, Y, 3)
  # Reference: the whole scaled data, kmeans from the same seed, then every
  # row to its nearest centre (first on ties).
  set.seed(2)
  keep <- apply(X, 2, sd) > 0
  data <- cbind(X[, keep], Y)
  data <- sweep(data, 2, apply(data, 2, sd), "/")
  km <- stats::kmeans(data, centers = 3, iter.max = 30)
  d2 <- sapply(1:3, function(j) colSums((t(data) - km$centers[j, ])^2))
  expect_identical(got, max.col(-d2, ties.method = "first"))
})

test_that("under the gradient rule the softmax gate M-step meets the rule's gradient", {
  dat <- engine_data(3000, 5)
  spec <- cpp_spec(gate_softmax())
  g <- list(W = cbind(c(0.5, -0.3), c(0, 0)), b0 = c(0.1, 0), tau = 1)
  # Responsibilities close to the gate's own weights at g: the M-step's gain
  # is tiny, below gate_tol relative to the objective.
  lw <- moegate:::cpp_gate_forward(dat$x, spec, g, 1L)$log_weights
  R <- exp(lw)
  R[, 1] <- R[, 1] + 2e-6 * sign(dat$x[, 1])
  R <- pmin(pmax(R, 0), 1)
  R <- R / rowSums(R)
  crit <- function(ctl) {
    p <- moegate:::cpp_gate_mstep(dat$x, R, spec, g, ctl)$params
    o <- moegate:::cpp_gate_objective(dat$x, R, spec, p, NULL, 1L)
    max(abs(o$gradient) * pmax(abs(o$theta), 1)) / nrow(R)
  }
  loose <- crit(list(nthreads = 1L, gate_tol = 1e-10, stop = "loglik", grad_tol = 1e-7))
  tight <- crit(list(nthreads = 1L, gate_tol = 1e-10, stop = "gradient", grad_tol = 1e-7))
  expect_gt(loose, 1e-7)
  expect_lte(tight, 1e-7)
})

test_that("a fast EM reaches the gradient rule without a polish; a stalled one is polished", {
  set.seed(2)
  n <- 4000
  x <- matrix(runif(2 * n, -1, 1), n)
  first <- runif(n) < plogis(3 * x[, 1] - 2 * x[, 2])
  y <- ifelse(first, 1 + 2 * x[, 1], -1 - x[, 2]) + rnorm(n, sd = 0.3)
  set.seed(1)
  fit <- moe(x, y, k = 2)
  expect_identical(fit$converged, c(gradient = TRUE))
  expect_lte(fit$gradient_criterion, 1e-6)
  expect_identical(fit$polish[["runs"]], 0)
  # Over-specified (k = 3 for a 2-expert truth): EM crawls and the polish runs.
  set.seed(1)
  over <- moe(x, y, k = 3)
  expect_gt(over$polish[["runs"]], 0)
  expect_true(over$loglik >= fit$loglik)
})

test_that("the blocked rank check finds what qr() of the whole design finds", {
  set.seed(12)
  n <- 70000  # more rows than one block
  m <- cbind(a = 1, b = rnorm(n), c = runif(n), d = rnorm(n, 5))
  m2 <- cbind(m, e = m[, "b"] - 2 * m[, "c"])       # aliased
  m3 <- cbind(m, f = m[, "d"] + 1e-12 * rnorm(n))   # aliased to 12 digits
  for (mm in list(m, m2, m3)) {
    full <- qr(mm, tol = 1e-9)
    blocked <- qr(moegate:::blocked_r_factor(mm, block = 30000L), tol = 1e-9)
    expect_identical(blocked$rank, full$rank)
    expect_identical(blocked$pivot, full$pivot)
  }
  expect_error(moegate:::check_full_rank(m2, "x"), "e is a linear combination",
               class = "moe_error_x")
  expect_invisible(moegate:::check_full_rank(m, "x"))
})

test_that("a default z that is all of x is stored without a copy and predicts as before", {
  dat <- engine_data(500, 4)
  x <- dat$x
  colnames(x) <- c("a", "b")
  set.seed(5)
  fit <- moe(x, dat$y, k = 2)
  # The fit keeps no design, only the user's matrix itself (not a copy),
  # from which the gate covariates are rebuilt without an attribute.
  expect_null(fit$z)
  expect_null(fit$x)
  expect_identical(fit$inputs$x, x)
  expect_null(attr(model.matrix(fit, part = "gate"), "from_x"))
  expect_identical(model.matrix(fit, part = "gate"), x)
  set.seed(5)
  kept <- moe(x, dat$y, k = 2, designs = TRUE)
  expect_null(attr(kept$z, "from_x"))
  expect_identical(kept$z, x)
  new <- x[1:20, ] + 0.1
  expect_equal(predict(fit, newdata = list(x = new), type = "gate"),
               predict(fit, newdata = list(x = new, z = new), type = "gate"))
  # A dropped constant column is recorded, and new x is subset alike.
  set.seed(5)
  fit2 <- moe(cbind(one = 1, x), dat$y, k = 2, intercept = FALSE)
  expect_identical(attr(model.matrix(fit2, part = "gate"), "from_x"), 2:3)
  expect_equal(predict(fit2, newdata = list(x = cbind(one = 1, new)), type = "gate"),
               predict(fit, newdata = list(x = new), type = "gate"), tolerance = 1e-6)
})

test_that("the gate's forward pass can return its log-weights alone", {
  dat <- engine_data(300, 2)
  spec <- cpp_spec(gate_softmax())
  g <- list(W = cbind(c(0.5, -0.3), c(0, 0)), b0 = c(0.1, 0), tau = 1)
  all <- moegate:::cpp_gate_forward(dat$x, spec, g, 1L)
  lean <- moegate:::cpp_gate_forward(dat$x, spec, g, 1L, log_weights_only = TRUE)
  expect_named(lean, "log_weights")
  expect_identical(lean$log_weights, all$log_weights)
})

test_that("constant and shared columns are found in place as in R", {
  M <- cbind(1, c(2, 2, 2), c(1, 2, 1), c(-0, 0, 0), c(0, 0, 1e-300))
  expect_identical(moegate:::cpp_constant_columns(M),
                   apply(M, 2, function(v) all(v == v[1])))
  expect_identical(moegate:::cpp_constant_columns(M[1, , drop = FALSE]), rep(TRUE, 5))
  X <- cbind(1, M[, 2:3])
  expect_true(moegate:::cpp_same_columns(X, 1L, M[, 2:3]))
  expect_false(moegate:::cpp_same_columns(X, 1L, M[, 3:2]))
  expect_false(moegate:::cpp_same_columns(X, 2L, M[, 2:3]))  # out of range
})

test_that("column moments in C++ are mean()'s numbers", {
  set.seed(31)
  M <- cbind(1, matrix(rnorm(3000) * 1e3 + 7, ncol = 3), runif(1000), rep(c(1e-300, 3), 500))
  m <- moegate:::cpp_column_moments(M, TRUE)
  centre <- apply(M, 2, mean)
  expect_identical(m$centre, centre)
  expect_identical(m$msd, vapply(seq_len(ncol(M)), function(j) mean((M[, j] - centre[j])^2), 0))
  m0 <- moegate:::cpp_column_moments(M, FALSE)
  expect_identical(m0$centre, rep(0, ncol(M)))
  expect_identical(m0$msd, apply(M^2, 2, mean))
  # The scaling of a fit is the one the R expressions give (weights: in R).
  X <- cbind(1, M[, 2:4])
  sc <- moegate:::design_scaling(X, M[, 2:4], rnorm(1000), expert_gaussian(), gate_softmax(), "ml")
  expect_identical(sc$x$centre[-1], centre[2:4])
  expect_identical(sc$u$scale, sqrt(vapply(2:4, function(j) mean((M[, j] - centre[j])^2), 0)))
})
