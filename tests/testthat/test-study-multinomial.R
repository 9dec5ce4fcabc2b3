# The shipped settings of the two multinomial logistic studies (papers 1, 2).

softmax_settings <- c("exact", "overspecified", "vanishing", "vanishing_modified")
sigmoid_settings <- c("softmax", "modified_sigmoid", "sigmoid_temperature",
                      "euclidean_temperature")

test_that("every multinomial study setting constructs with a valid truth", {
  for (s in softmax_settings) {
    st <- study_setting_softmax_multinomial(s)
    expect_s3_class(st, "moe_study_setting")
    expect_identical(dim(st$truth$expert$coef), c(2L, 2L, 2L))  # p x (K - 1) x k*, K = 3
    expect_identical(st$k, if (s == "exact") 2L else 3L)
    expect_identical(st$loss, "D1")
    expect_true(is.character(attr(st, "theory")))
    vanishing <- s %in% c("vanishing", "vanishing_modified")
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
                   "euclidean_sq")
  expect_error(study_setting_softmax_multinomial("nope"))
})

test_that("the truths simulate three classes and score zero loss against themselves", {
  settings <- c(lapply(softmax_settings, study_setting_softmax_multinomial),
                lapply(sigmoid_settings, study_setting_sigmoid_multinomial))
  for (st in settings) {
    set.seed(1)
    d <- rmoe(500, st$truth, x = runif(500, -1, 1), expert = st$expert, gate = st$gate)
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
  expect_true("loss_identified" %in% names(rate_study(st, seed = 1)))
})
