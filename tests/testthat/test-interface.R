# The R interface behaves like lm()/glm(): offsets, na.exclude, extractors,
# predict() arguments, contrasts and partial matching of choices (issue 13).

boston <- function() {
  B <- MASS::Boston
  B$off <- 0.02 * B$lstat
  B
}

two_expert_data <- function(n = 400, seed = 1) {
  set.seed(seed)
  rmoe(n, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
}

test_that("an offset() term with k = 1 gives lm(..., offset) exactly", {
  skip_if_not_installed("MASS")
  B <- boston()
  fit <- moe(log(medv) ~ rm + offset(off), data = B, k = 1)
  ref <- lm(log(medv) ~ rm + offset(off), data = B)
  expect_equal(unname(fit$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-10)
  expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-10)
  expect_equal(unname(residuals(fit)), unname(residuals(ref)), tolerance = 1e-10)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-10)
  # Without the offset the fit is different: the offset is not dropped.
  plain <- moe(log(medv) ~ rm, data = B, k = 1)
  expect_gt(abs(as.numeric(logLik(plain)) - as.numeric(logLik(fit))), 1)
  # The `offset` argument, evaluated in data, means the same.
  arg <- moe(log(medv) ~ rm, data = B, k = 1, offset = off)
  expect_equal(coef(arg), coef(fit), tolerance = 1e-10)
  # predict() uses the offset of newdata.
  nd <- B[1:6, ]
  nd$off <- c(0, 1, 2, -1, 0.5, 3)
  expect_equal(unname(predict(fit, nd)), unname(predict(ref, nd)), tolerance = 1e-10)
  expect_equal(unname(predict(arg, nd)),
               unname(predict(lm(log(medv) ~ rm, data = B, offset = off), nd)),
               tolerance = 1e-10)
  expect_equal(unname(predict(fit)), unname(fitted(ref)), tolerance = 1e-10)
})

test_that("offsets shift every expert mean of a mixture, also in least squares", {
  d <- two_expert_data()
  d$off <- seq(-1, 1, length.out = nrow(d))
  d$y_shift <- d$y + d$off
  start <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                      coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
  ctl <- moe_control(init = start)
  for (method in c("ml", "lsq")) {
    a <- moe(y ~ x1, data = d, k = 2, method = method, control = ctl)
    b <- moe(y_shift ~ x1 + offset(off), data = d, k = 2, method = method, control = ctl)
    expect_equal(coef(a), coef(b), tolerance = 1e-6)
    expect_equal(unname(fitted(b)), unname(fitted(a) + d$off), tolerance = 1e-6)
    expect_equal(unname(predict(b, type = "expert")),
                 unname(predict(a, type = "expert") + d$off), tolerance = 1e-6)
    expect_equal(summary(a)$coefficients$experts$expert1,
                 summary(b)$coefficients$experts$expert1, tolerance = 1e-4)
  }
  # The matrix interface takes an offset vector and predict() one in newdata.
  m <- moe(cbind(x1 = d$x1), d$y_shift, k = 2, offset = d$off, control = ctl)
  expect_equal(unname(coef(m)), unname(coef(moe(y ~ x1, data = d, k = 2, control = ctl))),
               tolerance = 1e-6)
  expect_error(predict(m, newdata = list(x = cbind(x1 = 0.3))), class = "moe_error_newdata")
  expect_length(predict(m, newdata = list(x = cbind(x1 = 0.3), offset = 2)), 1)
})

test_that("offsets that would have no meaning are refused", {
  d <- two_expert_data()
  d$off <- 1
  expect_error(moe(y ~ x1 | x1 + offset(off), data = d, k = 2), class = "moe_error_formula")
  expect_error(moe(Species ~ Sepal.Length + offset(Petal.Width), data = iris, k = 1),
               class = "moe_error_offset")
  expect_error(moe(y ~ x1 + offset(off), data = d, k = 2,
                   expert = expert_gaussian(activation = "tanh")), class = "moe_error_offset")
  expect_error(moe(y ~ x1 + offset(off), data = d, k = 2, method = "lsq",
                   gate = gate_sigmoid(normalize = FALSE)), class = "moe_error_offset")
  expect_error(moe(cbind(d$x1), d$y, k = 2, offset = 1:3), class = "moe_error_offset")
})

test_that("predict() without newdata pads rows dropped by na.exclude, as lm", {
  skip_if_not_installed("MASS")
  B <- boston()
  B$rm[c(3, 7)] <- NA
  fit <- moe(log(medv) ~ rm, data = B, k = 2, na.action = na.exclude)
  ref <- lm(log(medv) ~ rm, data = B, na.action = na.exclude)
  p <- predict(fit)
  expect_length(p, nrow(B))
  expect_identical(names(p), names(predict(ref)))
  expect_identical(which(is.na(p)), c(`3` = 3L, `7` = 7L))
  expect_equal(p, fitted(fit))
  expect_identical(nrow(predict(fit, type = "gate")), nrow(B))
  expect_true(all(is.na(predict(fit, type = "posterior")[c(3, 7), ])))
  # na.omit keeps the short version, as lm does.
  omit <- moe(log(medv) ~ rm, data = B, k = 2, na.action = na.omit)
  expect_length(predict(omit), nrow(B) - 2)
})

test_that("extractors have lm's meaning", {
  skip_if_not_installed("MASS")
  B <- boston()
  fit <- moe(log(medv) ~ rm + crim | lstat, data = B, k = 2)
  expect_identical(dim(model.matrix(fit)), c(nrow(B), 3L))
  expect_identical(colnames(model.matrix(fit)), c("(Intercept)", "rm", "crim"))
  expect_identical(colnames(model.matrix(fit, part = "gate")), "lstat")
  expect_s3_class(terms(fit), "terms")
  expect_identical(attr(terms(fit, part = "gate"), "term.labels"), "lstat")
  expect_identical(attr(terms(fit), "term.labels"), c("rm", "crim"))
  expect_identical(attr(terms(fit, part = "full"), "term.labels"), c("rm", "crim", "lstat"))
  expect_equal(sigma(fit), sqrt(fit$params$expert$sigma2))
  expect_length(sigma(fit), 2)
  expect_equal(deviance(fit), -2 * as.numeric(logLik(fit)))
  expect_equal(df.residual(fit), nobs(fit) - attr(logLik(fit), "df"))
  expect_identical(weights(fit), rep(1, nrow(B)))
  one <- moe(log(medv) ~ rm, data = B, k = 1)
  ref <- lm(log(medv) ~ rm, data = B)
  expect_equal(unname(model.matrix(one)), unname(model.matrix(ref)))
  # ML variance: RSS / n.
  expect_equal(unname(sigma(one)), sqrt(sum(residuals(ref)^2) / nrow(B)), tolerance = 1e-8)
  ls <- moe(log(medv) ~ rm, data = B, k = 2, method = "lsq")
  expect_length(sigma(ls), 1)
  expect_error(sigma(moe(Species ~ Sepal.Width, data = iris, k = 1)), class = "moe_error")
  m <- moe(cbind(B$rm), log(B$medv), k = 1)
  expect_error(terms(m), class = "moe_error")
  expect_identical(dim(model.matrix(m)), c(nrow(B), 2L))
  expect_error(model.matrix(fit, part = "foo"), class = "moe_error_part")
})

test_that("predict() refuses unknown arguments and gives delta-method standard errors", {
  skip_if_not_installed("MASS")
  d <- two_expert_data()
  fit <- moe(y ~ x1, data = d, k = 2)
  nd <- data.frame(x1 = c(-0.5, 0, 0.5))
  expect_error(predict(fit, nd, interval = "prediction"), class = "moe_error_...")
  expect_error(predict(fit, nd, foo = 1), class = "moe_error_...")
  expect_error(predict(fit, nd, type = "posterior", se.fit = TRUE), class = "moe_error_se.fit")
  p <- predict(fit, nd, se.fit = TRUE)
  expect_named(p, c("fit", "se.fit"))
  expect_equal(p$fit, predict(fit, nd))
  expect_true(all(is.finite(p$se.fit) & p$se.fit > 0))
  g <- predict(fit, nd, type = "gate", se.fit = TRUE)
  expect_identical(dim(g$se.fit), dim(g$fit))
  # Two gate weights that sum to one have the same standard error.
  expect_equal(g$se.fit[, 1], g$se.fit[, 2], tolerance = 1e-5)
  # k = 1: lm's standard errors of the mean, with the ML variance RSS / n.
  B <- boston()
  one <- moe(log(medv) ~ rm, data = B, k = 1)
  ref <- lm(log(medv) ~ rm, data = B)
  nb <- B[c(1, 50, 300), ]
  se_lm <- predict(ref, nb, se.fit = TRUE)$se.fit * sqrt((nrow(B) - 2) / nrow(B))
  expect_equal(unname(predict(one, nb, se.fit = TRUE)$se.fit), unname(se_lm), tolerance = 1e-4)
})

test_that("contrasts are passed to the model matrix as in lm", {
  d <- two_expert_data()
  d$g <- factor(rep(c("a", "b", "c"), length.out = nrow(d)))
  ctr <- list(g = "contr.sum")
  fit <- moe(y ~ x1 + g, data = d, k = 1, contrasts = ctr)
  ref <- lm(y ~ x1 + g, data = d, contrasts = ctr)
  expect_identical(colnames(model.matrix(fit)), colnames(model.matrix(ref)))
  expect_equal(unname(fit$params$expert$coef[, 1]), unname(coef(ref)), tolerance = 1e-10)
  expect_equal(predict(fit, d[1:5, ]), predict(ref, d[1:5, ]), tolerance = 1e-10)
  # Gate part too, and predict() reuses the stored coding.
  g2 <- moe(y ~ x1 | g, data = d, k = 2, contrasts = list(g = contr.helmert))
  expect_identical(colnames(model.matrix(g2, part = "gate")), c("g1", "g2"))
  expect_length(predict(g2, d[1:4, ]), 4)
  # New data are coded as the fit was (the gate coding used to be lost, and
  # predict() coded new data with the default contrasts).
  expect_equal(unname(g2$contrasts$gate$g), unname(contr.helmert(3)))
  expect_equal(predict(g2, d[1:4, ], type = "gate"), predict(g2, type = "gate")[1:4, ])
  expect_error(moe(y ~ x1, data = d, k = 1, contrasts = list(h = "contr.sum")),
               class = "moe_error_contrasts")
  expect_error(moe(y ~ x1, data = d, k = 1, contrasts = "contr.sum"),
               class = "moe_error_contrasts")
})

test_that("choices match partially like match.arg, with classed errors", {
  d <- two_expert_data(300)
  fit <- moe(y ~ x1, data = d, k = 2, method = "m")
  expect_identical(fit$method, "ml")
  expect_identical(moe(y ~ x1, data = d, k = 2, method = "ls")$method, "lsq")
  expect_identical(predict(fit, type = "resp"), predict(fit, type = "response"))
  expect_identical(residuals(fit, type = "pear"), residuals(fit, type = "pearson"))
  expect_identical(coef(fit, type = "par"), coef(fit, type = "params"))
  pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(fit, "post"), fit)
  expect_identical(moe_control(accelerate = "sq")$accelerate, "squarem")
  expect_identical(moe_control(init = "rand")$init, "random")
  expect_identical(expert_gaussian(activation = "ta")$activation, "tanh")
  expect_identical(moe(y ~ x1, data = d, k = 2, gate = "cos")$gate$name,
                   gate_cosine()$name)
  # Ambiguous and unknown abbreviations stay classed errors.
  expect_error(predict(fit, type = "p"), class = "moe_error_type", regexp = "only one")
  expect_error(predict(fit, type = "zzz"), class = "moe_error_type")
  expect_error(moe(y ~ x1, data = d, k = 2, method = ""), class = "moe_error_method")
  expect_error(moe_control(gate_optimizer = ""), class = "moe_error_gate_optimizer")
  expect_error(moe_control(accelerate = NA_character_), class = "moe_error_accelerate")
})

test_that("separation in a multinomial expert gives a classed warning and a summary note", {
  ir <- iris
  ir$setosa <- factor(ir$Species == "setosa")
  expect_warning(fit <- moe(setosa ~ Petal.Length, data = ir, k = 1),
                 class = "moe_separation_warning")
  expect_identical(fit$separation, TRUE)
  notes <- summary(fit)$notes
  expect_true(any(grepl("Separation in expert\\(s\\) 1", notes)))
  # The NA standard errors are put down to separation, not to a gate invariance.
  expect_true(any(grepl("because of separation", notes)))
  expect_false(any(grepl("cosine", notes)))
  # Overlapping classes: no warning.
  expect_no_warning(ok <- moe(Species ~ Sepal.Length, data = iris, k = 1))
  expect_identical(ok$separation, FALSE)
  expect_false(any(grepl("Separation", summary(ok)$notes)))
})

test_that("a gate that cannot vary over the data warns", {
  skip_if_not_installed("MASS")
  B <- MASS::Boston
  fit <- moe(log(medv) ~ rm | rm, data = B, k = 2)
  # The cosine of a single positive covariate is always 1.
  expect_warning(cos_fit <- update(fit, gate = "cosine"), class = "moe_constant_gate_warning")
  expect_lt(diff(range(predict(cos_fit, type = "gate")[, 1])), 1e-12)
  # Two covariates, or a covariate of both signs, let it vary: no warning.
  expect_no_warning(moe(log(medv) ~ rm | rm + lstat, data = B, k = 2, gate = "cosine"),
                    class = "moe_constant_gate_warning")
  B$rm_c <- B$rm - mean(B$rm)
  expect_no_warning(moe(log(medv) ~ rm | rm_c, data = B, k = 2, gate = "cosine"),
                    class = "moe_constant_gate_warning")
  # A gate without covariates is a deliberate mixture of regressions.
  expect_no_warning(moe(log(medv) ~ rm | 1, data = B, k = 2), class = "moe_constant_gate_warning")
})

test_that("summary()'s note on NA standard errors names the cause of this fit", {
  skip_if_not_installed("MASS")
  B <- MASS::Boston
  cos_fit <- moe(log(medv) ~ rm | rm + lstat, data = B, k = 2, gate = "cosine")
  expect_true(any(grepl("cosine gate's invariance", summary(cos_fit)$notes)))
  short <- suppressWarnings(moe(log(medv) ~ rm | lstat, data = B, k = 3,
                                control = moe_control(maxit = 3)))
  notes <- summary(short)$notes
  if (any(grepl("singular", notes))) {
    expect_true(any(grepl("did not converge", notes)))
    expect_false(any(grepl("cosine", notes)))
  }
  expect_identical(moegate:::singular_causes(short)[1],
                   "the fit did not converge (3 iterations; increase `maxit` in moe_control())")
})

test_that("trace names the start, least squares traces, starts signal progress", {
  d <- two_expert_data(300)
  out <- capture.output(f0 <- suppressWarnings(
    moe(y ~ x1, data = d, k = 2, control = moe_control(n_starts = 2, trace = 5, maxit = 10,
                                                      # the relative-change rule at a
                                                      # tolerance no fit meets, so that
                                                      # start 2 reaches iteration 10
                                                      stop = "loglik", tol = 1e-300))))
  expect_true(any(grepl("start 1/2: iteration +5", out)))
  expect_true(any(grepl("start 2/2: iteration +10", out)))
  one <- capture.output(f1 <- moe(y ~ x1, data = d, k = 2, control = moe_control(trace = 5)))
  expect_true(any(grepl("^  iteration +5", one)))
  expect_false(any(grepl("start", one)))
  ls <- capture.output(f3 <- suppressWarnings(
    moe(y ~ x1, data = d, k = 2, method = "lsq", control = moe_control(trace = 10, maxit = 30))))
  expect_true(any(grepl("evaluation +10 +RSS", ls)))
  expect_length(capture.output(f2 <- moe(y ~ x1, data = d, k = 2, method = "lsq")), 0)
  skip_if_not_installed("progressr")
  old <- options(progressr.enable = TRUE)
  on.exit(options(old))
  msgs <- character(0)
  withCallingHandlers(
    moe(y ~ x1, data = d, k = 2, control = moe_control(n_starts = 3, progress = FALSE)),
    progression = function(p) if (identical(p$type, "update")) msgs <<- c(msgs, conditionMessage(p)))
  expect_identical(msgs, c("start 1/3", "start 2/3", "start 3/3"))
  expect_error(moe_control(progress = NA), class = "moe_error_progress")
})
