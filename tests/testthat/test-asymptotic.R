gaussian_truth <- function() {
  moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0), coef = cbind(c(1, 2), c(-1, -1)),
             sigma2 = c(0.1, 0.1))
}

test_that("relist_free() inverts free_layout() for every kind of fit", {
  set.seed(1)
  d <- rmoe(500, gaussian_truth())
  fits <- list(
    softmax = moe(y ~ x1, data = d, k = 2),
    temperature = moe(y ~ x1, data = d, k = 2, gate = gate_temperature(temperature = 0.5)),
    lsq = moe(y ~ x1, data = d, k = 2, method = "lsq", gate = "cosine")
  )
  truth_m <- study_setting_softmax_multinomial("exact")$truth
  dm <- rmoe(500, truth_m, expert = expert_multinomial())
  fits$multinomial <- moe(y ~ x1, data = dm, k = 2, expert = "multinomial",
                          control = moe_control(init = truth_m))
  for (nm in names(fits)) {
    fit <- fits[[nm]]
    back <- moegate:::relist_free(fit, coef(fit))
    expect_equal(unclass(back), unclass(fit$params), tolerance = 1e-12, info = nm)
    # A changed free value lands where free_layout() reads it.
    shifted <- coef(fit)
    shifted[1] <- shifted[1] + 0.25
    expect_equal(moegate:::free_layout(modifyList(fit, list(params = moegate:::relist_free(fit, shifted))))$values,
                 shifted, info = nm)
  }
})

test_that("the expected information agrees with the observed information of a large fit", {
  # Both estimate the same matrix; the observed one at the MLE has sampling
  # error of relative order n^(-1/2) (about 1% here), so 5% in Frobenius norm.
  rel <- function(a, b) sqrt(sum((a - b)^2)) / sqrt(sum(b^2))
  set.seed(2)
  n <- 20000
  d <- rmoe(n, gaussian_truth())
  fit <- moe(y ~ x1, data = d, k = 2, control = moe_control(init = gaussian_truth()))
  expect_lt(rel(moegate:::expected_information(fit), moegate:::observed_information(fit) / n), 0.05)

  lsq <- moe(y ~ x1, data = d, k = 2, method = "lsq", control = moe_control(init = gaussian_truth()))
  P <- length(coef(lsq)) - 1
  expect_lt(rel(moegate:::expected_information(lsq), moegate:::observed_information(lsq) / n), 0.05)
  expect_equal(dim(moegate:::expected_information(lsq)), c(P, P))

  truth_m <- moe_params(W = matrix(c(3, 0), 1), b0 = c(0, 0),
                        coef = array(c(2, 4, -1, 1, -2, -4, 1, -1), c(2, 2, 2)))
  dm <- rmoe(n, truth_m, expert = expert_multinomial())
  fit_m <- moe(y ~ x1, data = dm, k = 2, expert = "multinomial", control = moe_control(init = truth_m))
  expect_lt(rel(moegate:::expected_information(fit_m), moegate:::observed_information(fit_m) / n), 0.05)
})

test_that("asymptotic_loss() predicts the mean loss of an exactly specified study", {
  setting <- moe_study_setting(gaussian_truth(), k = 2, n_grid = 4000, n_rep = 40, loss = "D1",
                               control = moe_control(tol = 1e-10))
  pred <- asymptotic_loss(setting, n_info = 2e4, nsim = 400)
  study <- rate_study(setting, seed = 3, progress = FALSE)
  # The mean of 40 losses has a relative standard error of about 8%.
  expect_equal(mean(study$loss), pred$mean, tolerance = 0.25)
  expect_equal(attr(pred, "null_directions"), 0L)
  expect_gt(attr(pred, "condition"), 1)
  # Far in the asymptotic regime the prediction falls exactly as n^(-1/2).
  far <- asymptotic_loss(setting, n = c(1e6, 1e8), n_info = 5000, nsim = 400)
  expect_equal(diff(log(far$mean)) / diff(log(far$n)), -0.5, tolerance = 0.02)
  # Same seed, same prediction; the caller's stream is left alone.
  set.seed(9)
  before <- runif(1)
  set.seed(9)
  again <- asymptotic_loss(setting, n = 1e6, n_info = 5000, nsim = 400)
  expect_equal(runif(1), before)
  expect_identical(again$mean, far$mean[1])
})

test_that("asymptotic_loss() sees the invariance of the dense-to-sparse gate", {
  setting <- study_setting_temperature("temperature", n_grid = c(1000, 4000), n_rep = 2)
  pred <- asymptotic_loss(setting, n_info = 4000, nsim = 20)
  expect_equal(attr(pred, "null_directions"), 1L)
  expect_true(all(is.finite(pred$mean)))
  reference <- asymptotic_loss(study_setting_temperature("softmax", n_grid = 1000), n_info = 4000,
                               nsim = 20)
  expect_equal(attr(reference, "null_directions"), 0L)
})

test_that("asymptotic_loss() refuses what it cannot predict", {
  over <- moe_study_setting(gaussian_truth(), k = 3, n_grid = 1000, loss = "D1")
  expect_error(asymptotic_loss(over), "exactly specified")
  setting <- moe_study_setting(gaussian_truth(), k = 2, n_grid = 1000, loss = "D1")
  expect_error(asymptotic_loss(list()), "setting")
  expect_error(asymptotic_loss(setting, n = -1), "`n`")
  expect_error(asymptotic_loss(setting, n = 1000, n_info = 0), "n_info")
  expect_error(asymptotic_loss(setting, n = 1000, n_info = 500, nsim = 2, loss = "nope"), "loss")
})

test_that("seeded helpers do not depend on the session's RNG kind and restore it", {
  setting <- moe_study_setting(gaussian_truth(), k = 2, n_grid = 1000, loss = "D1")
  default <- asymptotic_loss(setting, n_info = 2000, nsim = 20)
  d <- expand.grid(n = c(100, 300, 1000), replication = 1:5)
  d$loss <- d$n^(-0.5) * (1 + (d$replication - 3) / 10)
  slopes <- rate_slopes(d, B = 50)
  old <- RNGkind("L'Ecuyer-CMRG")
  on.exit(RNGkind(old[1], old[2], old[3]))
  set.seed(4)
  state <- .Random.seed
  expect_identical(asymptotic_loss(setting, n_info = 2000, nsim = 20)$mean, default$mean)
  expect_identical(rate_slopes(d, B = 50)$lower, slopes$lower)
  expect_identical(RNGkind()[1], "L'Ecuyer-CMRG")
  expect_identical(.Random.seed, state)
})
