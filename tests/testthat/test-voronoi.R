# Voronoi losses and density-level errors.

truth2 <- moe_params(W = matrix(c(1, 0), 1), b0 = c(0.5, 0),
                     coef = cbind(c(0, 1), c(2, 3)), sigma2 = c(1, 1))

test_that("singleton cells: D1 is the weighted sum of block norms", {
  fit <- truth2
  fit$expert$coef[, 1] <- c(-0.2, 1.1)   # b off by 0.2, a off by 0.1
  expected <- exp(0.5) * (0.2 + 0.1)
  expect_equal(voronoi_loss(fit, truth2, "D1", translation = "reference"), expected)
  # No translation improves on the right convention here (see the hand
  # computation: the loss is piecewise linear with its kink at 0).
  expect_equal(voronoi_loss(fit, truth2, "D1"), expected, tolerance = 1e-8)
  # Every cell is a singleton, so rbar gives the same.
  expect_equal(voronoi_loss(fit, truth2, "rbar", translation = "reference"), expected)
})

test_that("a two-atom cell uses the cell-size exponents", {
  fit <- moe_params(W = matrix(c(1, 1, 0), 1), b0 = c(0.5 - log(2), 0.5 - log(2), 0),
                    coef = cbind(c(0.1, 1.1), c(-0.1, 0.9), c(2, 3)), sigma2 = c(1, 1, 1))
  d <- voronoi_loss(fit, truth2, "D1", translation = "reference", detail = TRUE)
  expect_equal(d$cells, c(1L, 1L, 2L))
  expect_equal(d$cell_sizes, c(2L, 1L))
  expect_equal(d$weight, 0)
  # Each of the two atoms carries exp(0.5) / 2, with b and a both off by 0.1.
  expect_equal(d$loss, exp(0.5) * (0.1^2 + 0.1^2))
  # rbar(2) = 4 for b, rbar(2) / 2 = 2 for a.
  expect_equal(voronoi_loss(fit, truth2, "rbar", translation = "reference"),
               exp(0.5) * (0.1^4 + 0.1^2))
  expect_equal(voronoi_loss(fit, truth2, "rbar"), exp(0.5) * (0.1^4 + 0.1^2), tolerance = 1e-8)
  # A user table: everything squared in cells of two, 1 in singletons.
  expect_equal(voronoi_loss(fit, truth2, list(default = c(1, 2)), translation = "reference"),
               exp(0.5) * (0.1^2 + 0.1^2))
  expect_equal(voronoi_loss(fit, truth2, function(block, m) if (m > 1) 2 else 1,
                            translation = "reference"), exp(0.5) * (0.1^2 + 0.1^2))
})

test_that("ties go to the lowest true atom", {
  truth <- moe_params(W = matrix(c(0, 0), 1), b0 = c(0, 0), coef = cbind(c(1, 0), c(-1, 0)),
                      sigma2 = c(1, 1))
  fit <- moe_params(W = matrix(c(0, 0), 1), b0 = c(0, 0), coef = cbind(c(0, 0), c(-1, 0)),
                    sigma2 = c(1, 1))
  d <- voronoi_loss(fit, truth, "D1", detail = TRUE)
  expect_equal(d$cells, c(1L, 2L))
  expect_equal(d$loss, 1)
  # The same fitted atom twice: both in cell 1, true atom 2 left empty.
  fit2 <- moe_params(W = matrix(c(0, 0), 1), b0 = c(0, 0), coef = cbind(c(0, 0), c(0, 0)),
                     sigma2 = c(1, 1))
  d2 <- voronoi_loss(fit2, truth, "D1", translation = "reference", detail = TRUE)
  expect_equal(d2$cells, c(1L, 1L))
  expect_equal(d2$weight, 1 + 1)        # |2 - 1| + |0 - 1|
  expect_equal(d2$parameter, 2 * 1^2)   # two atoms, b off by 1, squared
})

test_that("the loss is zero at the truth, for every family and table", {
  for (ex in list("D1", "rbar")) {
    expect_equal(voronoi_loss(truth2, truth2, ex), 0)
    expect_equal(voronoi_loss(truth2, truth2, ex, translation = "reference"), 0)
  }
  mtruth <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0.5, 0),
                       coef = array(c(1, 2, -1, 0, 0, -2, 1, 1), c(2, 2, 2)))
  expect_equal(voronoi_loss(mtruth, mtruth, "D1"), 0)
  mfit <- mtruth
  mfit$expert$coef[1, 1, 1] <- 1.5
  expect_equal(voronoi_loss(mfit, mtruth, "D1", translation = "reference"), exp(0.5) * 0.5)
  # Gates without the translation invariance: sigmoid weights, no search.
  expect_equal(voronoi_loss(truth2, truth2, gate = gate_sigmoid()), 0)
  expect_gt(voronoi_loss(truth2, moe_params(W = matrix(c(1, 0.5), 1), b0 = c(0.5, 0),
                                            coef = truth2$expert$coef, sigma2 = c(1, 1)),
                         gate = gate_cosine()), 0)
})

# The reference-splitting case of the public NeurIPS 2023 code: extra experts
# split the true reference expert, so in the fitted reference convention each
# copy has intercept about 0 instead of -log(m).
neurips_truth <- moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
                            coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.09, 0.16))
split_reference_fit <- function(m, eps) {
  # m copies of the reference expert (the last m experts), perturbed by eps,
  # written in the fit's own reference convention (last expert: w = 0, b0 = 0).
  shifts <- eps * seq(-1, 1, length.out = m)
  W <- c(25 + eps, shifts - shifts[m])
  b0 <- c(-8 + log(m) + eps, shifts - shifts[m])
  coef <- cbind(c(15 + eps, -20 - eps), rbind(-5 + shifts, 20 - shifts))
  moe_params(W = matrix(W, 1), b0 = b0, coef = coef, sigma2 = c(0.09, 0.16 + abs(shifts)))
}

test_that("translation-optimised loss goes to 0 when extra experts split the reference", {
  for (m in 2:3) {
    eps <- 10^-(1:4)
    opt <- vapply(eps, function(e) voronoi_loss(split_reference_fit(m, e), neurips_truth, "rbar"), 0)
    ref <- vapply(eps, function(e) {
      voronoi_loss(split_reference_fit(m, e), neurips_truth, "rbar", translation = "reference")
    }, 0)
    expect_true(all(diff(opt) < 0))
    expect_lt(opt[4], 1e-4)
    # The reference convention stalls at m - 1: 1 for k = 3, 2 for k = 4.
    expect_equal(ref, rep(m - 1, 4), tolerance = 0.15)
    expect_equal(ref[4], m - 1, tolerance = 1e-3)
    expect_true(all(opt <= ref))
  }
  # Exactly split truth: zero loss, whichever expert is written last.
  exact <- split_reference_fit(3, 0)
  expect_equal(voronoi_loss(exact, neurips_truth, "rbar"), 0, tolerance = 1e-10)
})

test_that("permuting the fitted experts leaves the loss unchanged", {
  fit <- split_reference_fit(3, 0.05)
  base <- voronoi_loss(fit, neurips_truth, "rbar")
  for (perm in list(c(4, 2, 3, 1), c(2, 3, 4, 1), c(1, 3, 2, 4))) {
    # Reorder, then re-express in the new last expert's reference convention,
    # as a fit that happened to list its experts in this order would be.
    W <- fit$gate$W[, perm, drop = FALSE]
    b0 <- fit$gate$b0[perm]
    permuted <- moe_params(W = W - W[, 4], b0 = b0 - b0[4], coef = fit$expert$coef[, perm],
                           sigma2 = fit$expert$sigma2[perm])
    expect_equal(voronoi_loss(permuted, neurips_truth, "rbar"), base, tolerance = 1e-6)
    expect_equal(voronoi_loss(permuted, neurips_truth, "D1"),
                 voronoi_loss(fit, neurips_truth, "D1"), tolerance = 1e-6)
  }
})

test_that("loss inputs are validated", {
  expect_error(voronoi_loss(list(), truth2), class = "moe_error_fit")
  expect_error(voronoi_loss(truth2, list()), class = "moe_error_truth")
  expect_error(voronoi_loss(truth2, truth2, "D3"), class = "moe_error_exponents")
  expect_error(voronoi_loss(truth2, truth2, list(w = 1)), class = "moe_error_exponents")
  bigger <- moe_params(W = matrix(c(1, 0), 2, 2), b0 = c(0, 0), coef = truth2$expert$coef,
                       sigma2 = c(1, 1))
  expect_error(voronoi_loss(bigger, truth2), class = "moe_error_truth")
})

test_that("a fitted model is accepted directly", {
  set.seed(11)
  d <- rmoe(400, truth2)
  fit <- moe(y ~ x1, data = d, k = 2)
  expect_equal(voronoi_loss(fit, truth2), voronoi_loss(fit$params, truth2))
  expect_lt(voronoi_loss(fit, truth2), 2)
})

test_that("density errors match closed forms", {
  one <- function(mean, s2) moe_params(W = matrix(0, 1, 1), b0 = 0, coef = matrix(c(mean, 0), 2),
                                       sigma2 = s2)
  grid <- function(n, d) matrix(seq(-1, 1, length.out = 50), 50, 1)
  e <- density_error(one(0, 1), one(1, 1), x_dist = grid)
  expect_equal(e[["hellinger"]], sqrt(1 - exp(-1 / 8)), tolerance = 1e-6)
  # The total variation's integrand has a kink where the densities cross:
  # Gauss-Hermite is then accurate to about 1%, not to machine precision.
  expect_equal(e[["total_variation"]], 2 * pnorm(0.5) - 1, tolerance = 0.02)
  expect_equal(e[["l2"]], 1)
  zero <- density_error(truth2, truth2, n_mc = 500, x_dist = function(n, d) matrix(runif(n), n, d))
  expect_equal(as.numeric(zero), c(0, 0, 0))
  expect_equal(attr(zero, "n_mc"), 500)
  # Multinomial: exact sums over the classes.
  m1 <- moe_params(W = matrix(0, 1, 1), b0 = 0, coef = array(c(log(3), 0), c(2, 1, 1)))
  m2 <- moe_params(W = matrix(0, 1, 1), b0 = 0, coef = array(c(0, 0), c(2, 1, 1)))
  em <- density_error(m1, m2, x_dist = grid)
  p <- c(0.75, 0.25)
  expect_equal(em[["total_variation"]], 0.25)
  expect_equal(em[["hellinger"]], sqrt(0.5 * sum((sqrt(p) - sqrt(0.5))^2)))
  # Least squares: only the L2 distance of regression functions.
  el <- density_error(one(0, 1), one(0.5, 1), x_dist = grid, method = "lsq")
  expect_equal(names(el), "l2")
  expect_equal(el[["l2"]], 0.5)
})
