# Short-run start selection: moe_control(start_maxit, start_tol, start_keep).

start_selection_data <- function(seed = 21, n = 600) {
  set.seed(seed)
  x <- runif(n, -1, 1)
  g <- runif(n) < plogis(4 * x)
  y <- ifelse(g, 1 + 2 * x, -1 - x) + rnorm(n, sd = 0.3)
  data.frame(x, y)
}

test_that("the start-selection arguments are validated by name", {
  expect_error(moe_control(start_maxit = -1), class = "moe_error_start_maxit")
  expect_error(moe_control(start_maxit = 1.5), class = "moe_error_start_maxit")
  expect_error(moe_control(start_maxit = "a"), class = "moe_error_start_maxit")
  expect_error(moe_control(start_tol = 0), class = "moe_error_start_tol")
  expect_error(moe_control(start_tol = c(1e-3, 1e-4)), class = "moe_error_start_tol")
  expect_error(moe_control(start_keep = 0), class = "moe_error_start_keep")
  expect_error(moe_control(start_keep = NA), class = "moe_error_start_keep")
  expect_null(moe_control()$start_maxit)
  # A tolerance alone: the short runs stop by it or at maxit.
  expect_identical(moe_control(start_tol = 1e-3, maxit = 50)$start_maxit, 50L)
  expect_identical(moe_control(start_maxit = 0)$start_maxit, 0L)
})

test_that("short-run selection is reproducible from the seed and reports every start", {
  d <- start_selection_data()
  ctl <- moe_control(n_starts = 5, start_maxit = 3, start_keep = 2)
  set.seed(4); f1 <- moe(y ~ x, data = d, k = 3, control = ctl)
  set.seed(4); f2 <- moe(y ~ x, data = d, k = 3, control = ctl)
  expect_identical(coef(f1, type = "params"), coef(f2, type = "params"))
  expect_identical(f1$start_objective, f2$start_objective)
  expect_identical(f1$trace, f2$trace)
  so <- f1$start_objective
  expect_length(so, 5)
  short <- attr(so, "short_run")
  continued <- attr(so, "continued")
  expect_length(short, 5)
  # The two best short runs went on, and only they.
  expect_identical(continued, rank(-short, ties.method = "first") <= 2)
  # A start that stopped after its short run reports that run's objective;
  # a continued one its final objective, at least its short run's (EM and
  # the polish never lower the log-likelihood).
  expect_identical(so[!continued], short[!continued])
  expect_true(all(so[continued] >= short[continued] - 1e-8 * abs(short[continued])))
  # The fit is the best continued start, and no lower than any short run.
  expect_identical(f1$loglik, max(so[continued]))
  expect_true(f1$loglik >= max(short) - 1e-8 * abs(f1$loglik))
  expect_true(isTRUE(f1$converged))
  # The kept start's iterations count its short run too.
  expect_gte(f1$iter, 3)
  expect_identical(length(f1$trace), sum(!is.na(f1$trace)))
})

test_that("a continued start is the start's full run (relative-change rule, every start kept)", {
  # EM's next iterate depends on the parameters alone: a short run of 2
  # iterations continued to the rule follows the full run's path when no
  # polish can fire (the relative-change rule) and every start goes on. Not
  # bit for bit: the gate's Newton M-step keeps work from its previous step
  # within a run (measured: log-likelihoods differ by about 1e-16
  # relative), hence the tolerance.
  d <- start_selection_data(seed = 8)
  base <- list(n_starts = 3, stop = "loglik", tol = 1e-8)
  set.seed(2); full <- moe(y ~ x, data = d, k = 3, control = do.call(moe_control, base))
  set.seed(2); sel <- moe(y ~ x, data = d, k = 3,
                          control = do.call(moe_control, c(base, start_maxit = 2, start_keep = 3)))
  expect_equal(coef(sel, type = "params"), coef(full, type = "params"), tolerance = 1e-8)
  expect_equal(sel$loglik, full$loglik, tolerance = 1e-12)
  expect_identical(sel$iter, full$iter)
  expect_equal(sel$trace, full$trace, tolerance = 1e-12)
  expect_equal(as.numeric(sel$start_objective), as.numeric(full$start_objective), tolerance = 1e-12)
  expect_true(all(attr(sel$start_objective, "continued")))
})

test_that("short-run selection leaves single-start and least-squares fits alone", {
  d <- start_selection_data(seed = 5)
  set.seed(3); a <- moe(y ~ x, data = d, k = 2, control = moe_control(n_starts = 1))
  set.seed(3); b <- moe(y ~ x, data = d, k = 2, control = moe_control(n_starts = 1, start_maxit = 2))
  expect_identical(coef(a, type = "params"), coef(b, type = "params"))
  expect_null(attr(b$start_objective, "short_run"))
  set.seed(3); a <- moe(y ~ x, data = d, k = 2, method = "lsq", control = moe_control(n_starts = 2))
  set.seed(3); b <- moe(y ~ x, data = d, k = 2, method = "lsq",
                        control = moe_control(n_starts = 2, start_maxit = 2))
  expect_identical(coef(a, type = "params"), coef(b, type = "params"))
})

test_that("a loose start_tol stops the short runs early", {
  d <- start_selection_data(seed = 13)
  set.seed(6)
  f <- moe(y ~ x, data = d, k = 3,
           control = moe_control(n_starts = 4, start_tol = 1e-2, start_keep = 1))
  short <- attr(f$start_objective, "short_run")
  expect_length(short, 4)
  expect_true(f$loglik >= max(short) - 1e-8 * abs(f$loglik))
  expect_identical(sum(attr(f$start_objective, "continued")), 1L)
})
