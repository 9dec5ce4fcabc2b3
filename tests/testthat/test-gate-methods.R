# Everything the foundation offers works for every gate: fitting with restarts
# and user starts, predict, simulate, summary, coef, logLik, plot, nthreads.

all_gates <- list(
  softmax = gate_softmax(),
  modified_softmax = gate_modified_softmax(),
  modified_softmax_fun = gate_modified_softmax(transform = function(z) atan(z)),
  temperature = gate_temperature(),
  activation_tanh = gate_activation("tanh"),
  activation_gelu = gate_activation("gelu"),
  sigmoid = gate_sigmoid(),
  sigmoid_temperature = gate_sigmoid(estimate_temperature = TRUE),
  modified_sigmoid = gate_modified_sigmoid(),
  euclidean = gate_euclidean(),
  cosine = gate_cosine(),
  perturbed_cosine = gate_perturbed_cosine(),
  custom_inside = gate(score = "euclidean", activation = "sigmoid", intercept = "inside",
                       temperature = 0.5, estimate_temperature = TRUE)
)

gate_data <- function(n = 400, seed = 3) {
  set.seed(seed)
  d <- data.frame(x1 = stats::runif(n, -1, 1), x2 = stats::runif(n, -1, 1))
  first <- stats::runif(n) < stats::plogis(3 * d$x1 - 2 * d$x2)
  d$y <- ifelse(first, 1 + 2 * d$x1, -1 - d$x2) + stats::rnorm(n, sd = 0.3)
  d$cls <- factor(ifelse(first, sample(c("a", "b", "c"), n, TRUE, prob = c(0.7, 0.2, 0.1)),
                         sample(c("a", "b", "c"), n, TRUE, prob = c(0.1, 0.3, 0.6))))
  d
}

for (nm in names(all_gates)) {
  test_that(paste("the fitted-model interface works with the", nm, "gate"), {
    g <- all_gates[[nm]]
    d <- gate_data()
    ctl <- moe_control(n_starts = 2, maxit = 200, tol = 1e-8)
    set.seed(10)
    fit <- suppressWarnings(moe(y ~ x1 + x2, data = d, k = 2, gate = g, control = ctl))
    expect_s3_class(fit, "moe_gaussian")
    expect_true(is.finite(fit$loglik))
    expect_equal(fit$loglik, max(fit$start_objective))
    expect_true(all(diff(fit$trace) >= -1e-9 * abs(fit$trace[-1])))
    nd <- data.frame(x1 = c(-0.5, 0, 0.5), x2 = c(0.2, NA, -0.2))
    expect_length(predict(fit, nd), 3)
    expect_true(is.na(predict(fit, nd)[2]))
    G <- predict(fit, nd, type = "gate")
    expect_equal(dim(G), c(3L, 2L))
    expect_equal(unname(rowSums(G[c(1, 3), ])), c(1, 1))
    expect_equal(dim(predict(fit, type = "posterior")), c(nrow(d), 2L))
    sims <- simulate(fit, nsim = 2, seed = 1)
    expect_equal(dim(sims), c(nrow(d), 2L))
    expect_identical(sims, simulate(fit, nsim = 2, seed = 1))
    expect_output(print(summary(fit)), "Gate")
    expect_equal(length(coef(fit)), attr(logLik(fit), "df") - 0L)
    expect_equal(AIC(fit), -2 * fit$loglik + 2 * attr(logLik(fit), "df"))
    f <- tempfile(fileext = ".png")
    grDevices::png(f)
    plot(fit, what = "gate")
    plot(fit, what = "loglik")
    grDevices::dev.off()
    expect_true(file.exists(f))
    # User-supplied start at the fit: EM stays at (or above) it.
    refit <- suppressWarnings(moe(y ~ x1 + x2, data = d, k = 2, gate = g,
                                  control = moe_control(init = coef(fit, type = "params"),
                                                        maxit = 50)))
    expect_gte(refit$loglik, fit$loglik - 1e-6 * abs(fit$loglik))
    # Threads do not change the fit.
    set.seed(10)
    two <- suppressWarnings(update(fit, control = moe_control(n_starts = 2, maxit = 200,
                                                              tol = 1e-8, nthreads = 2)))
    expect_identical(two$params, fit$params)
  })
}

test_that("multinomial experts work with every normalized gate", {
  d <- gate_data(600)
  for (nm in c("softmax", "modified_softmax", "sigmoid", "modified_sigmoid", "euclidean",
               "perturbed_cosine")) {
    fit <- suppressWarnings(moe(cls ~ x1 + x2, data = d, k = 2, gate = all_gates[[nm]],
                                control = moe_control(maxit = 100)))
    expect_s3_class(fit, "moe_multinomial")
    expect_true(all(diff(fit$trace) >= -1e-9 * abs(fit$trace[-1])), info = nm)
    P <- predict(fit, d[1:5, ], type = "prob")
    expect_equal(unname(rowSums(P)), rep(1, 5), info = nm)
    expect_s3_class(predict(fit, d[1:5, ], type = "class"), "factor")
  }
})

test_that("least squares works with the unnormalized sigmoid and other gates", {
  d <- gate_data()
  for (g in list(gate_sigmoid(normalize = FALSE), gate_softmax(), gate_cosine(),
                 gate_perturbed_cosine())) {
    fit <- suppressWarnings(moe(y ~ x1 + x2, data = d, k = 2, gate = g, method = "lsq",
                                expert = expert_gaussian(activation = "tanh")))
    expect_true(is.finite(fit$rss))
    expect_equal(fit$sigma2, fit$rss / nrow(d))
    expect_length(predict(fit, d[1:4, ]), 4)
    expect_equal(dim(simulate(fit, nsim = 1, seed = 2)), c(nrow(d), 1L))
    expect_error(predict(fit, type = "posterior"), class = "moe_error")
  }
  expect_error(moe(y ~ x1 + x2, data = d, k = 2, gate = gate_sigmoid(normalize = FALSE)),
               class = "moe_error", regexp = "`gate`")
})
