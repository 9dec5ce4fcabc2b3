# The shipped settings of the two multinomial logistic studies (papers 1, 2).

softmax_settings <- c("exact", "overspecified", "vanishing", "vanishing_modified",
                      "vanishing_exact", "vanishing_exact_modified")
sigmoid_settings <- c("softmax", "modified_sigmoid", "sigmoid_temperature",
                      "euclidean_temperature")

test_that("every multinomial study setting constructs with a valid truth", {
  for (s in softmax_settings) {
    st <- study_setting_softmax_multinomial(s)
    expect_s3_class(st, "moe_study_setting")
    expect_identical(dim(st$truth$expert$coef), c(2L, 2L, 2L))  # p x (K - 1) x k*, K = 3
    exact <- s %in% c("exact", "vanishing_exact", "vanishing_exact_modified")
    expect_identical(st$k, if (exact) 2L else 3L)
    expect_identical(st$loss, "D1")
    expect_true(is.character(attr(st, "theory")))
    vanishing <- grepl("vanishing", s)
    expect_identical(all(st$truth$expert$coef[2, , 1] == 0), vanishing)
    expect_true(all(st$truth$expert$coef[2, , 2] != 0))
  }
  expect_identical(study_setting_softmax_multinomial("vanishing_modified")$gate$transform, "tanh")
  for (s in sigmoid_settings) {
    st <- study_setting_sigmoid_multinomial(s)
    expect_s3_class(st, "moe_study_setting")
    expect_identical(dim(st$truth$expert$coef), c(2L, 2L, 2L))
  }
  expect_true(study_setting_sigmoid_multinomial("sigmoid_temperature")$gate$estimate_tau)
  expect_identical(study_setting_sigmoid_multinomial("euclidean_temperature")$gate$score,
                   "euclidean")
  expect_identical(study_setting_softmax_multinomial("vanishing_exact_modified")$gate$transform,
                   "tanh")
  expect_error(study_setting_softmax_multinomial("nope"))
})

test_that("the truths simulate three classes and score zero loss against themselves", {
  settings <- c(lapply(softmax_settings, study_setting_softmax_multinomial),
                lapply(sigmoid_settings, study_setting_sigmoid_multinomial))
  for (st in settings) {
    set.seed(1)
    d <- rmoe(500, st$truth, x = st$x_dist(500, 1), expert = st$expert, gate = st$gate)
    expect_setequal(as.character(unique(d$y)), c("1", "2", "3"))
    # every class is reasonably frequent, so the expert coefficients are estimable
    expect_gt(min(table(d$y)) / 500, 0.05)
    expect_equal(voronoi_loss(st$truth, st$truth, "D1", gate = st$gate, expert = st$expert), 0)
  }
})

test_that("a tiny study of each multinomial setting runs in seconds", {
  skip_if_not_installed("future.apply")
  for (st in c(lapply(softmax_settings, study_setting_softmax_multinomial,
                      n_grid = c(300, 600), n_rep = 1, maxit = 30),
               lapply(sigmoid_settings, study_setting_sigmoid_multinomial,
                      n_grid = c(300, 600), n_rep = 1, maxit = 30))) {
    # At n = 300 an over-specified multinomial expert may see one class only:
    # the separation warning is expected there.
    study <- suppressWarnings(rate_study(st, seed = 1), classes = "moe_separation_warning")
    expect_s3_class(study, "moe_rate_study")
    expect_identical(nrow(study), 2L)
    expect_true(all(is.na(study$error)))
    expect_true(all(is.finite(study$loglik)))
  }
  st <- study_setting_sigmoid_multinomial("sigmoid_temperature", n_grid = 300, n_rep = 1,
                                          maxit = 30)
  study <- rate_study(st, seed = 1)
  expect_true(all(c("loss_w", "loss_D1", "gap", "start_c") %in% names(study)))
})

test_that("the sigmoid temperature loss sees tau along the ray; the spread moves along it", {
  st <- study_setting_sigmoid_multinomial("sigmoid_temperature")
  moved <- st$spread(st$truth, 2)
  z <- matrix(seq(-2, 2, length.out = 50))
  # The inner-product gate cannot see the move, the Euclidean one can.
  expect_equal(gate_weights(st$gate, moved, z), gate_weights(st$gate, st$truth, z))
  eu <- study_setting_sigmoid_multinomial("euclidean_temperature")
  expect_gt(max(abs(gate_weights(eu$gate, moved, z) - gate_weights(eu$gate, eu$truth, z))), 0.01)
  fit <- list(params = moved, gate = st$gate, expert = st$expert, method = "ml")
  v <- st$loss(fit, st$truth)
  expect_equal(v[["loss"]], log(2))
  expect_equal(v[["w"]], 2)
})

test_that("the population profile: small positive Hellinger distances, validated input", {
  time <- system.time(p <- vanishing_hellinger_profile("modified_softmax", delta = c(0.3, 0.2),
                                                       n_nodes = 16, starts = 1, maxit = 10))
  expect_lt(time[["elapsed"]], 30)
  expect_named(p, c("gate", "delta", "hellinger", "exponent", "converged"))
  expect_true(all(p$hellinger > 0 & p$hellinger < 0.1))
  expect_true(is.na(p$exponent[1]) && is.finite(p$exponent[2]))
  expect_error(vanishing_hellinger_profile("softmax", delta = -1), class = "moe_error_delta")
  q <- gauss_legendre(10, -3, 3)
  expect_equal(sum(q$w), 6)
  expect_equal(sum(q$w * q$x^4), 2 * 3^5 / 5)
})

test_that("the temperature truth has no separable class; grad_tol reaches the control", {
  st <- study_setting_sigmoid_multinomial("euclidean_temperature", grad_tol = 1e-5)
  expect_identical(st$control$grad_tol, 1e-5)
  expect_identical(study_setting_sigmoid_multinomial("sigmoid_temperature")$control$grad_tol, 1e-6)
  x <- seq(-2, 2, length.out = 201)
  for (i in 1:2) {
    cf <- st$truth$expert$coef[, , i]
    logits <- cbind(cf[1, 1] + cf[2, 1] * x, cf[1, 2] + cf[2, 2] * x, 0)
    prob <- exp(logits) / rowSums(exp(logits))
    # Every class keeps a probability bounded away from 0 and 1 over the
    # covariates' range: no class is separable inside either expert's region.
    expect_gt(min(prob), 0.03)
    expect_lt(max(prob), 0.9)
  }
})
