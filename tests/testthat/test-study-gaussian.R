# Study settings of the temperature and cosine-router papers.

test_that("the temperature-paper settings construct with their documented truths", {
  for (s in c("softmax", "temperature", "activation_tanh", "activation_gelu")) {
    setting <- study_setting_temperature(s)
    expect_s3_class(setting, "moe_study_setting")
    expect_equal(setting$k, 2L)
    expect_equal(setting$method, "ml")
    expect_true(is.function(setting$loss))
  }
  # The softmax truth has the temperature truth's effective logits w / tau.
  soft <- study_setting_temperature("softmax")$truth
  temp <- study_setting_temperature("temperature")$truth
  expect_equal(soft$gate$W, temp$gate$W / temp$gate$tau)
  expect_true(study_setting_temperature("temperature")$gate$estimate_tau)
  expect_equal(study_setting_temperature("activation_gelu")$gate$activation, "gelu")
  expect_error(study_setting_temperature("identity"))
})

test_that("the cosine-router settings construct with their documented truths", {
  for (s in c("linear", "cosine", "perturbed_cosine")) {
    setting <- study_setting_cosine(s)
    expect_s3_class(setting, "moe_study_setting")
    expect_equal(setting$method, "lsq")
    expect_equal(setting$expert$activation, "tanh")
    expect_equal(dim(setting$truth$gate$W), c(2L, 2L))
  }
  expect_equal(study_setting_cosine("perturbed_cosine")$gate$eps_w, 1)
  expect_equal(study_setting_cosine("perturbed_cosine", eps = 0.01)$gate$eps_u, 0.01)
  # Over-specified variant (the k = 3 study of the vignette).
  expect_equal(study_setting_cosine("cosine", k = 3)$k, 3L)
})

test_that("the temperature loss ignores the (w, tau) scaling; the raw loss does not", {
  setting <- study_setting_temperature("temperature")
  truth <- setting$truth
  # Same model, gate vectors and temperature both doubled.
  scaled <- truth
  scaled$gate$W <- 2 * truth$gate$W
  scaled$gate$tau <- 2 * truth$gate$tau
  fit <- list(params = scaled, gate = setting$gate, expert = setting$expert, method = "ml")
  value <- setting$loss(fit, truth)
  expect_equal(value[["loss"]], 0, tolerance = 1e-10)
  expect_gt(value[["raw"]], 0.5)
  expect_equal(value[["tau"]], log(2))
  # The spread moves along that ray.
  expect_equal(setting$spread(truth, 2), scaled)
  expect_equal(setting$two_start(scaled), log(2 * 0.5))
})

test_that("the perturbed-cosine loss ignores a common shift of v = w / (||w|| + eps_w)", {
  setting <- study_setting_cosine("perturbed_cosine")
  truth <- setting$truth
  eps <- setting$gate$eps_w
  v <- sweep(truth$gate$W, 2, sqrt(colSums(truth$gate$W^2)) + eps, "/")
  # A shift that keeps both v inside the unit ball (a valid w exists).
  v_shift <- v + c(0, -0.1)
  expect_true(all(sqrt(colSums(v_shift^2)) < 1))
  # Invert v = w / (||w|| + eps): ||w|| = eps ||v|| / (1 - ||v||).
  nv <- sqrt(colSums(v_shift^2))
  shifted <- truth
  shifted$gate$W <- sweep(v_shift, 2, eps / (1 - nv), "*")
  fit <- list(params = shifted, gate = setting$gate, expert = setting$expert, method = "lsq")
  z <- matrix(seq(-1, 1, length.out = 200), 100)
  # Same logit differences, so the same gate weights...
  expect_equal(gate_weights(setting$gate, shifted, z), gate_weights(setting$gate, truth, z),
               tolerance = 1e-8)
  # ... and zero losses: the raw loss maps the shifted v back (v_2 = v_2*).
  value <- setting$loss(fit, truth)
  expect_equal(value[["loss"]], 0, tolerance = 1e-8)
  expect_equal(value[["D1"]], 0, tolerance = 1e-6)
  # The norms of a cosine router are not seen by the gate, but by the raw loss.
  cos <- study_setting_cosine("cosine")
  stretched <- cos$spread(truth, 1.5)
  fit <- list(params = stretched, gate = cos$gate, expert = cos$expert, method = "lsq")
  expect_equal(gate_weights(cos$gate, stretched, z), gate_weights(cos$gate, truth, z))
  v <- cos$loss(fit, truth)
  expect_equal(v[["loss"]], 0.5 * sqrt(5))
  expect_equal(v[["direction"]], 0)
  # eps = 0.01: the main loss is the identified v loss; the raw one is beside it.
  small <- study_setting_cosine("perturbed_cosine", eps = 0.01)
  fit <- list(params = truth, gate = small$gate, expert = small$expert, method = "lsq")
  v <- small$loss(fit, truth)
  expect_equal(v[["loss"]], 0)
  expect_true("raw" %in% names(v))
})

test_that("a tiny study of every setting runs in seconds", {
  settings <- c(lapply(c("softmax", "temperature", "activation_tanh", "activation_gelu"),
                       study_setting_temperature, n_grid = c(300, 600), n_rep = 1,
                       two_start = 1),
                lapply(c("linear", "cosine", "perturbed_cosine"), study_setting_cosine,
                       n_grid = c(300, 600), n_rep = 1, two_start = 1))
  for (setting in settings) {
    time <- system.time(study <- rate_study(setting, seed = 1))
    expect_lt(time[["elapsed"]], 20)
    expect_true(all(is.na(study$error)), info = setting$name)
    expect_true(all(is.finite(study$loss) & study$loss >= 0), info = setting$name)
    expect_true(any(c("loss_raw", "loss_direction") %in% names(study)), info = setting$name)
    if (!is.null(setting$two_start)) expect_true(all(study$gap >= 0), info = setting$name)
  }
})

test_that("the over-specified cosine-router loss is the D1 Voronoi loss on raw parameters", {
  # The truth with its first expert split into two equal copies (intercepts
  # b0 - log 2): the same regression function, loss 0 for both routers.
  for (router in c("cosine", "perturbed_cosine")) {
    setting <- study_setting_cosine(router, k = 3)
    expect_true(setting$start_loss)
    truth <- setting$truth
    split <- truth
    split$gate$W <- truth$gate$W[, c(1, 1, 2)]
    split$gate$b0 <- c(truth$gate$b0[c(1, 1)] - log(2), truth$gate$b0[2])
    split$expert$coef <- truth$expert$coef[, c(1, 1, 2)]
    split$expert$sigma2 <- truth$expert$sigma2[c(1, 1, 2)]
    fit <- list(params = split, gate = setting$gate, expert = setting$expert, method = "lsq")
    value <- setting$loss(fit, truth)
    expect_equal(value[["loss"]], 0, tolerance = 1e-8, info = router)
    expect_equal(value[["D1"]], 0, tolerance = 1e-8, info = router)
    expect_equal(value[["split"]], 1)
    # Moving the two copies' expert intercepts by +-h: a cell of two atoms
    # with squared exponents, each of weight exp(b0_1) / 2: exp(b0_1) h^2.
    h <- 0.1
    moved <- split
    moved$expert$coef[1, 1:2] <- moved$expert$coef[1, 1:2] + c(h, -h)
    fit$params <- moved
    value <- setting$loss(fit, truth)
    expect_equal(value[["experts"]], exp(truth$gate$b0[1]) * h^2, tolerance = 1e-8)
    expect_equal(value[["loss"]], value[["experts"]], tolerance = 1e-8)
  }
  # Cosine: scaling the norms is invisible to the gate and to the identified
  # loss, not to the raw one (each atom's w term: weight times ||(c - 1) w||
  # to the cell's exponent).
  setting <- study_setting_cosine("cosine", k = 3)
  truth <- setting$truth
  split <- truth
  split$gate$W <- truth$gate$W[, c(1, 1, 2)]
  split$gate$b0 <- c(truth$gate$b0[c(1, 1)] - log(2), truth$gate$b0[2])
  split$expert$coef <- truth$expert$coef[, c(1, 1, 2)]
  stretched <- setting$spread(split, 1.5)
  fit <- list(params = stretched, gate = setting$gate, expert = setting$expert, method = "lsq")
  value <- setting$loss(fit, truth)
  expect_equal(value[["D1"]], 0, tolerance = 1e-8)
  w1 <- sqrt(sum(truth$gate$W[, 1]^2))
  w2 <- sqrt(sum(truth$gate$W[, 2]^2))
  expected <- exp(truth$gate$b0[1]) * (0.5 * w1)^2 + exp(truth$gate$b0[2]) * 0.5 * w2
  expect_equal(value[["loss"]], expected, tolerance = 1e-8)
  # Perturbed: a common shift of v leaves every loss at 0.
  setting <- study_setting_cosine("perturbed_cosine", k = 3)
  eps <- setting$gate$eps_w
  v <- sweep(split$gate$W, 2, sqrt(colSums(split$gate$W^2)) + eps, "/") + c(0, -0.1)
  shifted <- split
  shifted$gate$W <- sweep(v, 2, eps / (1 - sqrt(colSums(v^2))), "*")
  fit <- list(params = shifted, gate = setting$gate, expert = setting$expert, method = "lsq")
  value <- setting$loss(fit, truth)
  expect_equal(value[["loss"]], 0, tolerance = 1e-6)
  expect_equal(value[["w"]], 0, tolerance = 1e-6)
})
