# study_maxima(): the second-order check, the Newton continuation, the loss's
# parts and the sharpening profile of a study's stored fits.

step_study <- function(n) {
  # A gate that is a step between grid points: the likelihood rises towards
  # a hard split, so its supremum is at infinite sharpness (a run-off).
  truth <- moe_params(W = matrix(c(2e4, 0), 1), b0 = c(-1e4, 0), coef = cbind(c(0, 0), c(5, 0)),
                      sigma2 = c(0.1, 0.1))
  start <- moe_params(W = matrix(c(20, 0), 1), b0 = c(-10, 0), coef = cbind(c(0, 0), c(5, 0)),
                      sigma2 = c(0.1, 0.1))
  s <- moe_study_setting(truth, k = 2, n_grid = n, n_rep = 1, loss = "D1",
                         x_dist = function(n, d) matrix(seq(0, 1, length.out = n), n, 1),
                         control = moe_control(init = start, maxit = 500))
  suppressWarnings(rate_study(s, seed = 1, progress = FALSE))
}

test_that("study_maxima() validates its arguments", {
  st <- step_study(101)
  expect_error(study_maxima(data.frame(n = 1)), class = "moe_error_study")
  expect_error(study_maxima(st, rows = 2), class = "moe_error_rows")
  expect_error(study_maxima(st, grad_tol = 0), class = "moe_error_grad_tol")
  expect_error(study_maxima(st, sharpen = 0.5), class = "moe_error_sharpen")
  expect_error(study_maxima(st, progress = NA), class = "moe_error_progress")
  expect_error(study_maxima(st, progress = "yes"), class = "moe_error_progress")
  s <- attr(st, "setting")
  s$method <- "other"
  bad <- st
  attr(bad, "setting") <- s
  expect_error(study_maxima(bad), class = "moe_error_study")
  # Least squares: no sharpening profile (it is the likelihood's).
  lsq <- rate_study(study_setting_cosine("cosine", n_grid = 300, n_rep = 1, two_start = 0),
                    seed = 1, progress = FALSE)
  expect_error(study_maxima(lsq, sharpen = 10), class = "moe_error_sharpen")
})

test_that("least-squares fits are continued to the minimum of the RSS, invariances left out", {
  # Exact-fit cosine and perturbed cosine routers (k = 2), well inside their
  # regular regime at n = 2000: a few Newton steps from the stored fit to a
  # relative gradient of 1e-9, a positive definite information beyond the
  # invariances (cosine: the 2 norms; perturbed: the 2-dimensional v shift),
  # whose own eigenvalues are zero up to the differencing error.
  for (router in c("cosine", "perturbed_cosine")) {
    s <- study_setting_cosine(router, n_grid = 2000, n_rep = 1, two_start = 0)
    st <- rate_study(s, seed = 2, progress = FALSE)
    m <- study_maxima(st)
    expect_true(m$at_maximum, info = router)
    # Stopped by the criterion, or by a step whose gain is at the rounding
    # level of the RSS with the criterion within the study's own tolerance
    # (which of the two depends on the machine's libm at the last digits).
    expect_true(m$newton_stop %in% c("criterion", "rounding"), info = router)
    expect_lte(m$criterion_after, if (m$newton_stop == "criterion") 1e-9 else 1e-6)
    expect_gt(m$info_min, 1e-6)
    expect_lt(m$info_null, 1e-6)
    expect_gte(m$loglik_gain, 0)
    expect_true(all(c("loss_direction", "loss_experts", "loss_D1") %in% names(m)))
    # The stored fit is near the minimum: the identified losses barely move.
    expect_equal(m$loss_D1, st$loss_D1, tolerance = 0.05)
    expect_equal(m$expert_slope, max(sqrt(colSums(st$params[[1]]$expert$coef[-1, ]^2))),
                 tolerance = 0.05)
    # Moved away from the minimum, the fit is continued back to it.
    moved <- st
    moved$params[[1]]$expert$coef[] <- moved$params[[1]]$expert$coef + 0.05
    back <- study_maxima(moved)
    expect_true(back$at_maximum)
    expect_gt(back$loglik_gain, 1)
    expect_equal(back$loss_D1, m$loss_D1, tolerance = 1e-3)
  }
})

test_that("fits at a maximum pass; the loss is the stored one and its parts add up", {
  # Exactly specified (k = 2) and over-specified (k = 3) NeurIPS 2023 fits at
  # small n, gradient rule with Newton polish (the regular over-specified case
  # on which a run-off detector in the polish once misfired).
  for (k in 2:3) {
    s <- study_setting_neurips2023(k = k, n_grid = 400, n_rep = 2, n_starts = 1)
    s$control$stop <- "gradient"
    s$control$polish <- "newton"
    st <- rate_study(s, seed = 3, progress = FALSE)
    m <- study_maxima(st)
    expect_true(all(m$at_maximum))
    expect_true(all(m$info_min > 0))
    expect_true(all(m$newton_steps <= 10))
    expect_true(all(m$loglik_gain >= 0))
    # The continuation barely moves a converged fit: the same loss.
    expect_equal(m$loss, st$loss, tolerance = 1e-3)
    parts <- m[, grep("^loss_", names(m))]
    expect_equal(rowSums(parts), m$loss, tolerance = 1e-8)
  }
})

test_that("a fit that is not at a maximum is continued or flagged", {
  s <- study_setting_neurips2023(k = 2, n_grid = 400, n_rep = 1, n_starts = 1)
  st <- rate_study(s, seed = 3, progress = FALSE)
  moved <- st
  moved$params[[1]]$expert$coef[] <- moved$params[[1]]$expert$coef + 0.3
  one <- study_maxima(moved, newton_maxit = 1)
  expect_identical(one$newton_stop, "maxit")
  expect_false(one$at_maximum)
  full <- study_maxima(moved)
  expect_true(full$at_maximum)
  expect_gt(full$loglik_gain, 1)
  expect_gt(full$max_change, 0.1)
  expect_equal(full$loss, study_maxima(st)$loss, tolerance = 1e-4)
})

test_that("a fit with a variance at its floor is flagged, not an error", {
  # A component collapsed onto a few observations sits on the boundary of
  # the parameter space: no interior maximum to continue to (two public-noise
  # NeurIPS k = 4 fits end there, one of them once failed the check).
  s <- study_setting_neurips2023(k = 2, n_grid = 400, n_rep = 2, n_starts = 1)
  st <- rate_study(s, seed = 3, progress = FALSE)
  collapsed <- st
  collapsed$params[[1]]$expert$sigma2[1] <- 0
  m <- study_maxima(collapsed, sharpen = c(2, 10))
  expect_identical(m$newton_stop, c("variance_floor", m$newton_stop[2]))
  expect_identical(m$at_maximum, c(FALSE, TRUE))
  expect_true(all(is.na(m$error)))
  expect_identical(m$loglik[1], st$loglik[1])
  expect_equal(m$loss[1], maximum_losses(s, collapsed$params[[1]])[[1]])
  expect_true(is.na(m$sharpen_gain[1]))
  expect_false(any(attr(m, "profile")$row == 1))
})

test_that("a run-off shows as a vanishing curvature and a rising sharpening profile", {
  # The fit meets the gradient rule far along the path (gate vector in the
  # tens of thousands): the local curvature there is zero to rounding, which
  # is why a local check cannot certify a finite maximum on its own.
  st <- step_study(201)
  expect_true(st$converged)
  m <- study_maxima(st, newton_maxit = 10, sharpen = c(10, 100))
  expect_gt(m$sharpness, 1e3)
  expect_lt(abs(m$info_min), 1e-5)
  prof <- attr(m, "profile")
  expect_identical(prof$multiple[prof$requested], c(10, 100))
  expect_gt(nrow(prof), 2)  # the warm-start grid between them
  expect_true(all(prof$gain > -1e-8))
  expect_equal(prof$sharpness, m$sharpness * prof$multiple, tolerance = 1e-6)
})

test_that("the sharpening profile finds a higher likelihood than an over-specified local maximum", {
  # NeurIPS 2023, k = 3 at n = 500, replication 2 of seed 3 (task 3 of the
  # grid 500, 1000): a local maximum (positive definite information) whose
  # likelihood is exceeded along the sharpening of the split (gain about 4.3
  # at 100 times the sharpness).
  s <- study_setting_neurips2023(k = 3, n_grid = c(500, 1000), n_rep = 2, n_starts = 1)
  s$control$stop <- "gradient"
  s$control$polish <- "newton"
  st <- rate_study(s, seed = 3, progress = FALSE)
  m <- study_maxima(st, rows = 2, sharpen = c(10, 100))
  expect_true(m$at_maximum)
  expect_gt(m$sharpen_gain, 1)
  expect_true(m$sharpen_top)
})

test_that("the v-ball check of perturbed-cosine least squares: objective, gradient, verdicts", {
  # Over-specified (k = 3) perturbed cosine router, gradient rule with the
  # Newton polish and the run-off guard at its default: at n = 1000, seed 4,
  # the guard stops replications 1-4 and 6 of 6 (ratios 9.8-9.95; without it
  # they run on to ratios 28-600), replication 5 is an interior fit (ratio 2.3).
  ctl <- moe_control(tol = 1e-10, maxit = 1000, stop = "gradient", polish = "newton")
  s <- study_setting_cosine("perturbed_cosine", n_grid = 1000, n_rep = 5, k = 3,
                            two_start = 0, control = ctl)
  st <- rate_study(s, seed = 4, progress = FALSE)
  expect_identical(st$runoff, c(1, 1, 1, 1, 0))
  # The problem's RSS at the stored fit is the compiled one, and its
  # gradient in the polar parameters matches central differences.
  # Replication 1's data, from the stream study_maxima() rebuilds it with.
  data <- local({
    restore <- moegate:::rng_snapshot()
    on.exit(restore())
    RNGkind("L'Ecuyer-CMRG")
    assign(".Random.seed", moegate:::lecuyer_streams(4, 1)[[1]], envir = .GlobalEnv)
    moegate:::study_data(s, 1000)
  })
  p <- st$params[[1]]
  pr <- moegate:::ball_problem(s, data, p)
  cp <- moegate:::params_to_cpp(p, s$expert, 3)
  rss <- moegate:::cpp_lsq_objective(data$X, matrix(data$y), data$Z,
                                     moegate:::gate_cpp_spec(s$gate), "tanh", cp$gate,
                                     cp$expert$coef, NULL, 1L)$value
  # The same RSS through v instead of w (division by ||w|| + eps_w): 1e-12.
  expect_equal(pr$fn(pr$par0) * pr$n, rss, tolerance = 1e-12)
  h <- 1e-6
  num <- vapply(seq_along(pr$par0), function(j) {
    e <- replace(numeric(length(pr$par0)), j, h)
    (pr$fn(pr$par0 + e) - pr$fn(pr$par0 - e)) / (2 * h)
  }, 0)
  # Central differences of RSS / n (about 0.05) with h = 1e-6: error ~1e-9.
  expect_equal(pr$gr(pr$par0), num, tolerance = 1e-6)
  expect_equal(unname(sqrt(colSums(pr$v(pr$par0)^2))), unname(pr$par0[1:3]), tolerance = 1e-15)
  # The checks: guard-stopped fits have their best point on the boundary of
  # the ball (not a finite minimum), the interior fit inside, unmoved.
  m <- study_maxima(st, newton_maxit = 10)
  expect_identical(m$boundary, c(TRUE, TRUE, TRUE, TRUE, FALSE))
  expect_true(all(m$ball_ratio[1:4] > 1e6))
  expect_lt(m$ball_ratio[5], 10)
  expect_false(any(m$at_maximum[1:4]))
  expect_true(m$at_maximum[5])
  expect_true(all(m$ball_gain[1:4] > 0))
  expect_equal(m$ball_gain[5], 0, tolerance = 1e-12)
  expect_error(study_maxima(st, boundary_tol = 0), class = "moe_error_boundary_tol")
})

test_that("study_maxima() gives the same checks and profiles under a 2-worker plan", {
  skip_on_cran()
  skip_if_not_installed("future")
  old <- future::plan(future::sequential)
  on.exit(future::plan(old), add = TRUE)
  st <- step_study(c(200, 400))
  seq_m <- study_maxima(st, sharpen = c(2, 4), newton_maxit = 5)
  future::plan(future::multisession, workers = 2)
  par_m <- study_maxima(st, sharpen = c(2, 4), newton_maxit = 5)
  future::plan(future::sequential)
  expect_identical(par_m, seq_m)
  expect_equal(nrow(seq_m), 2)
  expect_setequal(unique(attr(seq_m, "profile")$row), seq_m$row)
})
