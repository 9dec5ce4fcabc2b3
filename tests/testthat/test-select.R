# moe_select(): the sweep over k, its table, criteria, plan invariance and errors.

select_truth <- moe_params(W = matrix(c(6, 0), 1), b0 = c(0, 0),
                           coef = cbind(c(2, 3), c(-2, -1)), sigma2 = c(0.1, 0.1))
select_data <- function(n = 400, seed = 1) {
  set.seed(seed)
  rmoe(n, select_truth)
}
sweep_table <- function(s) s$table[setdiff(names(s$table), "seconds")]

test_that("moe_select fits every k and returns the documented table", {
  d <- select_data()
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:3,
                                     control = moe_control(maxit = 300)))
  expect_s3_class(sel, "moe_select")
  expect_named(sel$table, c("k", "logLik", "df", "AIC", "BIC", "ICL", "converged", "seconds",
                            "error"))
  expect_equal(sel$table$k, 1:3)
  expect_named(sel$fits, c("1", "2", "3"))
  # Each row agrees with the fit's own logLik and the stats generics.
  for (i in 1:3) {
    fit <- sel$fits[[i]]
    expect_equal(fit$k, i)
    expect_equal(sel$table$logLik[i], as.numeric(logLik(fit)))
    expect_equal(sel$table$df[i], attr(logLik(fit), "df"))
    expect_equal(sel$table$AIC[i], AIC(fit))
    expect_equal(sel$table$BIC[i], BIC(fit))
    post <- fit$posterior
    entropy <- -sum(ifelse(post > 0, post * log(post), 0))
    expect_equal(sel$table$ICL[i], BIC(fit) + 2 * entropy)
  }
  # ICL of one expert: no entropy, equal to BIC.
  expect_equal(sel$table$ICL[1], sel$table$BIC[1])
  expect_true(all(sel$table$ICL >= sel$table$BIC - 1e-9))
  # Well-separated truth with two experts: BIC picks 2.
  expect_equal(sel$best_k, 2L)
  expect_identical(best(sel), sel$best)
  expect_equal(best(sel)$k, 2L)
  expect_equal(best(sel, "AIC")$k, sel$table$k[which.min(sel$table$AIC)])
  expect_identical(as_moe(sel, k = 3), sel$fits[["3"]])
  # The stored call re-fits with update().
  expect_equal(update(sel$fits[["2"]], control = moe_control(maxit = 300))$k, 2L)
  expect_output(print(sel), "chosen by BIC: k = 2")
  pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_invisible(plot(sel))
})

test_that("the criterion argument picks by that criterion", {
  d <- select_data()
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = c(3, 1, 2), criterion = "ICL",
                                     control = moe_control(maxit = 200)))
  expect_equal(sel$table$k, 1:3)
  expect_equal(sel$criterion, "ICL")
  expect_equal(sel$best_k, sel$table$k[which.min(sel$table$ICL)])
})

test_that("several starts per k: the best start is kept and all objectives stored", {
  d <- select_data()
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = 2:3,
                                     control = moe_control(maxit = 200, n_starts = 3,
                                                           init = "random")))
  for (fit in sel$fits) {
    expect_length(fit$start_objective, 3)
    expect_equal(fit$loglik, max(fit$start_objective))
  }
})

test_that("under the default mixed rule start 1 of each k is k-means, start 2 a random partition", {
  d <- select_data()
  sweep <- function(init) {
    suppressWarnings(moe_select(y ~ x1, data = d, k = 2:3, seed = 4,
                                control = moe_control(maxit = 200, n_starts = 2, init = init)))
  }
  mixed <- sweep("mixed")
  km <- sweep("kmeans")
  rnd <- sweep("random")
  # Every task has its own stream (from seed and its position), so start s of
  # the mixed sweep is start s of the sweep with that start's kind.
  for (k in c("2", "3")) {
    expect_identical(mixed$fits[[k]]$start_objective[1], km$fits[[k]]$start_objective[1])
    expect_identical(mixed$fits[[k]]$start_objective[2], rnd$fits[[k]]$start_objective[2])
  }
  expect_identical(sweep_table(mixed), sweep_table(sweep("mixed")))
})

test_that("moe_select gives identical results sequentially and under 2 workers", {
  skip_on_cran()
  skip_if_not_installed("future")
  d <- select_data(300, seed = 3)
  old <- future::plan(future::sequential)
  on.exit(future::plan(old), add = TRUE)
  ctl <- moe_control(maxit = 150, n_starts = 2, init = "random")
  s1 <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:3, control = ctl, seed = 11))
  future::plan(future::multisession, workers = 2)
  s2 <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:3, control = ctl, seed = 11))
  expect_equal(s2$workers, 2)
  expect_identical(sweep_table(s2), sweep_table(s1))
  expect_identical(lapply(s2$fits, `[[`, "params"), lapply(s1$fits, `[[`, "params"))
  # Another seed gives other random starts.
  future::plan(future::sequential)
  s3 <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:3, control = ctl, seed = 12))
  expect_false(identical(lapply(s3$fits, `[[`, "start_objective"),
                         lapply(s1$fits, `[[`, "start_objective")))
})

test_that("warnings of the fits are collected, not repeated", {
  d <- select_data(200)
  expect_warning(sel <- moe_select(y ~ x1, data = d, k = 1:3, control = moe_control(maxit = 3)),
                 class = "moe_select_warning")
  expect_true(any(grepl("did not converge", unlist(sel$warnings))))
})

test_that("a k that fails gets an NA row; all failing is an error", {
  d <- select_data(30)
  # 20 experts with 2 coefficients each need 40 observations.
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = c(1, 20),
                                     control = moe_control(maxit = 50)))
  expect_true(is.na(sel$table$logLik[2]))
  expect_match(sel$table$error[2], "small enough")
  expect_null(sel$fits[["20"]])
  expect_equal(sel$best_k, 1L)
  expect_error(as_moe(sel, k = 20), class = "moe_error_k")
  expect_error(suppressWarnings(moe_select(y ~ x1, data = d, k = 20)), "Every fit")
})

test_that("bad inputs get clear errors", {
  d <- select_data(100)
  expect_error(moe_select(y ~ x1, data = d, k = 0:2), class = "moe_error_k")
  expect_error(moe_select(y ~ x1, data = d, k = c(1, 2.5)), class = "moe_error_k")
  expect_error(moe_select(y ~ x1, data = d, k = c(1, NA)), class = "moe_error_k")
  expect_error(moe_select(y ~ x1, data = d, k = "2"), class = "moe_error_k")
  expect_error(moe_select(y ~ x1, data = d, criterion = "DIC"), class = "moe_error_criterion")
  expect_error(moe_select("y ~ x1", data = d), class = "moe_error_formula")
  expect_error(moe_select(y ~ x1, data = as.matrix(d)), class = "moe_error_data")
  expect_error(moe_select(y ~ x1, data = d, seed = 1.5), class = "moe_error_seed")
  expect_error(moe_select(y ~ x1, data = d, k = 1:2, control = moe_control(maxit = 5),
                          k_max = 3), class = "moe_error_...")
  expect_error(moe_select(y ~ x1, data = d, control = "fast"), class = "moe_error_control")
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:2, control = moe_control(maxit = 50)))
  expect_error(as_moe(sel, k = 3), class = "moe_error_k")
  expect_error(best(sel, criterion = "DIC"), class = "moe_error_criterion")
})

test_that("case weights pass through; ICL counts each row with its weight", {
  d <- select_data(200)
  w <- rep(c(1, 2), 100)
  sel <- suppressWarnings(moe_select(y ~ x1, data = d, k = 1:2, weights = w,
                                     control = moe_control(maxit = 200)))
  fit <- sel$fits[["2"]]
  expect_equal(fit$weights, w)
  expect_equal(nobs(fit), 300)
  post <- fit$posterior
  entropy <- -sum(w * rowSums(post * log(post)))
  expect_equal(sel$table$ICL[2], BIC(fit) + 2 * entropy)
  # Integer weights are replicated rows: same table as the doubled data.
  dd <- d[rep(seq_len(200), w), ]
  sel2 <- suppressWarnings(moe_select(y ~ x1, data = dd, k = 1, control = moe_control(maxit = 200)))
  expect_equal(sel2$table$logLik, sel$table$logLik[1], tolerance = 1e-8)
  expect_error(moe_dendrogram(fit), class = "moe_error_fit")
})
