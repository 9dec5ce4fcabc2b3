# Study settings, the parallel driver and the rate estimates.

small_truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
                          coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
# The fits without timing and run attributes: what must be reproducible.
drop_time <- function(s) {
  s <- within(as.data.frame(s), rm(seconds))
  attributes(s) <- attributes(s)[c("names", "row.names", "class")]
  s
}
small_setting <- function(...) {
  moe_study_setting(small_truth, k = 2, n_grid = c(200, 400, 800), n_rep = 2, loss = "D1",
                    control = moe_control(tol = 1e-8, maxit = 300), name = "small", ...)
}

test_that("a small study runs in seconds and returns the documented columns", {
  time <- system.time(study <- rate_study(small_setting(), seed = 1))
  expect_lt(time[["elapsed"]], 20)
  expect_s3_class(study, c("moe_rate_study", "data.frame"))
  expect_equal(nrow(study), 6)
  expect_named(study, c("n", "replication", "loss", "loss_reference", "loglik", "loglik_truth",
                        "iterations", "converged", "seconds", "error", "stuck", "params"))
  expect_equal(study$n, rep(c(200L, 400L, 800L), each = 2))
  expect_equal(study$replication, rep(1:2, 3))
  expect_true(all(is.na(study$error)))
  expect_true(all(study$loss >= 0 & study$loss <= study$loss_reference + 1e-12))
  expect_true(all(study$loglik >= study$loglik_truth - 1))
  expect_s3_class(study$params[[1]], "moe_params")
  expect_equal(attr(study, "seed"), 1)
  expect_output(print(study), "small")
  # Same seed, same study (timing aside).
  again <- rate_study(small_setting(), seed = 1)
  expect_identical(drop_time(again), drop_time(study))
  other <- rate_study(small_setting(), seed = 2)
  expect_false(identical(other$loss, study$loss))
})

test_that("progress = TRUE shows a bar outside interactive sessions too", {
  skip_if_not_installed("progressr")
  future::plan(future::sequential)
  # The study scripts run under Rscript, where progressr is off by default.
  op <- options(progressr.handlers = NULL)
  on.exit(options(op))
  progressr::handlers("txtprogressbar")
  out <- utils::capture.output(invisible(rate_study(small_setting(), seed = 1, progress = TRUE)),
                               type = "message")
  expect_true(any(grepl("100%", out)) || any(grepl("=", out)))
  quiet <- utils::capture.output(invisible(rate_study(small_setting(), seed = 1, progress = FALSE)),
                                 type = "message")
  expect_false(any(grepl("=", quiet)))
})

test_that("failed fits are recorded, not fatal", {
  # n = 3 cannot hold 2 experts with 2 coefficients each.
  setting <- moe_study_setting(small_truth, k = 2, n_grid = c(3, 300), n_rep = 2, loss = "D1")
  expect_warning(study <- rate_study(setting, seed = 1), class = "moe_study_warning")
  expect_equal(nrow(study), 4)
  expect_true(all(is.na(study$loss[study$n == 3])))
  expect_match(study$error[study$n == 3], "k")
  expect_false(any(study$stuck[study$n == 3]))
  expect_true(all(!is.na(study$loss[study$n == 300])))
  # A loss function that throws is caught as well.
  broken <- moe_study_setting(small_truth, k = 2, n_grid = 200, n_rep = 1,
                              loss = function(fit, truth) stop("no loss today"))
  expect_warning(s1 <- rate_study(broken, seed = 1), "no loss today", class = "moe_study_warning")
  expect_equal(s1$error, "no loss today")
  expect_true(is.na(s1$loss))
  # Extra named losses become columns.
  two <- moe_study_setting(small_truth, k = 2, n_grid = c(200, 300), n_rep = 1,
                           loss = function(fit, truth) c(total = voronoi_loss(fit, truth), two = 2))
  s2 <- rate_study(two, seed = 1)
  expect_true("loss_two" %in% names(s2))
  expect_equal(s2$loss_two, c(2, 2))
})

test_that("results are identical under sequential and 2-worker multisession plans", {
  skip_on_cran()
  skip_if_not_installed("future")
  skip_if_not_installed("future.apply")
  old <- future::plan(future::sequential)
  on.exit(future::plan(old), add = TRUE)
  setting <- moe_study_setting(small_truth, k = 3, n_grid = c(300, 600), n_rep = 3,
                               loss = "rbar", control = moe_control(tol = 1e-6, n_starts = 2))
  seq_study <- rate_study(setting, seed = 7)
  future::plan(future::multisession, workers = 2)
  par_study <- rate_study(setting, seed = 7, scheduling = 2)
  expect_identical(drop_time(par_study), drop_time(seq_study))
  expect_equal(attr(par_study, "workers"), 2)
})

test_that("rate_slopes recovers a known power law", {
  set.seed(5)
  d <- expand.grid(n = round(10^seq(2, 5, length.out = 12)), replication = 1:30)
  d$loss <- 3 * d$n^(-0.5) * exp(rnorm(nrow(d), sd = 0.3))
  s <- rate_slopes(d, B = 300)
  expect_s3_class(s, "moe_rate_slopes")
  expect_equal(s$statistic, c("mean", "median", "mean", "mean"))
  expect_equal(s$sizes, c("all", "all", "lower half", "upper half"))
  expect_equal(s$slope, rep(-0.5, 4), tolerance = 0.06)
  expect_true(all(s$lower < -0.5 & s$upper > -0.5))
  expect_true(all(s$lower < s$slope & s$slope < s$upper))
  grid <- sort(unique(d$n))
  expect_equal(c(s$n_min[3], s$n_max[3], s$n_min[4], s$n_max[4]), grid[c(1, 6, 7, 12)])
  by_n <- attr(s, "by_n")
  expect_equal(nrow(by_n), 12)
  expect_true(all(is.na(by_n$share_stuck)))
  # A rate that flattens (1 / log n) shows a flatter upper half.
  d$loss <- 1 / log(d$n) * exp(rnorm(nrow(d), sd = 0.1))
  f <- rate_slopes(d, B = 100)
  expect_gt(f$slope[4], f$slope[3])
  expect_gt(f$slope[1], -0.3)
  # The bootstrap leaves the global RNG alone.
  set.seed(9); u1 <- runif(1)
  set.seed(9); invisible(rate_slopes(d, B = 20)); u2 <- runif(1)
  expect_identical(u1, u2)
  expect_output(print(s), "Slopes")
})

test_that("BCa intervals: levels as in the boot package, percentile when unbiased", {
  # Symmetric bootstrap distribution around the estimate and symmetric
  # jackknife: z0 = 0 and a = 0, so the BCa levels are the percentile ones.
  jack <- list(slopes = c(-1.1, -0.9, -1.05, -0.95), strata = rep(2L, 4))
  lv <- moegate:::bca_levels(bs = c(-1.2, -0.8, -1.1, -0.9), est = -1, jack = jack, alpha = 0.025)
  expect_equal(lv$z0, 0)
  expect_equal(lv$a, 0)
  expect_equal(lv$levels, c(0.025, 0.975))
  # Against boot::boot.ci(type = "bca") with the same replicates and
  # influence values (one stratum): its order-statistic positions are the
  # BCa levels times R + 1.
  skip_if_not_installed("boot")
  set.seed(11)
  x <- rexp(40)
  b <- boot::boot(x, function(v, i) log(mean(v[i])), R = 499)
  loo <- vapply(seq_along(x), function(j) log(mean(x[-j])), numeric(1))
  L <- (length(x) - 1) * (b$t0 - loo)
  ci <- boot::boot.ci(b, type = "bca", conf = 0.9, L = L)$bca
  ours <- moegate:::bca_levels(c(b$t), b$t0, list(slopes = loo, strata = rep(length(x), length(x))),
                               alpha = 0.05)
  # boot.ci rounds the positions to two decimals.
  expect_equal(ours$levels * (499 + 1), unname(ci[1, 2:3]), tolerance = 1e-3)
})

test_that("rate_slopes: BCa interval for heavy-tailed losses, percentile on request", {
  # The shipped k = 4 NeurIPS 2023 run: a few fits far from the truth at
  # small n make the bootstrap slopes of the mean sit above the estimate
  # (the percentile interval hardly reaches it); BCa reports the bias
  # (z0 < -1) and moves the interval down.
  file <- system.file("extdata", "neurips2023_k4.rds", package = "moegate")
  skip_if(file == "", "the k = 4 run is not installed")
  d <- as.data.frame(readRDS(file))[, c("n", "replication", "loss")]
  bca <- rate_slopes(d, B = 199)
  pct <- rate_slopes(d, B = 199, interval = "percentile")
  expect_identical(attr(bca, "interval"), "bca")
  expect_identical(attr(pct, "interval"), "percentile")
  expect_equal(bca$slope, pct$slope)
  expect_true(all(is.na(pct$z0)))
  expect_lt(bca$z0[1], -1)
  expect_lt(bca$lower[1], pct$lower[1])
  expect_lt(bca$upper[1], pct$upper[1])
  expect_output(print(bca), "BCa")
  expect_output(print(bca), "z0")
  expect_output(print(pct), "percentile")
  expect_error(rate_slopes(d, interval = "basic"), "interval")
  # Well-behaved losses: small z0, interval around the estimate.
  set.seed(5)
  g <- expand.grid(n = round(10^seq(2, 5, length.out = 12)), replication = 1:30)
  g$loss <- 3 * g$n^(-0.5) * exp(rnorm(nrow(g), sd = 0.3))
  w <- rate_slopes(g, B = 300)
  expect_true(all(abs(w$z0) < 0.5))
})

test_that("the log-log plot draws", {
  set.seed(6)
  d <- expand.grid(n = c(100, 300, 1000, 3000), replication = 1:5)
  d$loss <- d$n^(-0.5) * rexp(nrow(d))
  d$stuck <- FALSE
  class(d) <- c("moe_rate_study", "data.frame")
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_invisible(plot(d))
  # The asymptotic prediction widens the y range to include itself.
  prediction <- data.frame(n = c(100, 3000), mean = c(1e-4, 1e-5))
  expect_invisible(plot(d, asymptotic = prediction))
  expect_lte(10^graphics::par("usr")[3], 1e-5)
  expect_error(plot(d, asymptotic = 1), class = "moe_error_asymptotic")
})

test_that("settings are validated and the NeurIPS 2023 protocol is as published", {
  expect_error(moe_study_setting(list(), k = 2, n_grid = 100), class = "moe_error_truth")
  expect_error(moe_study_setting(small_truth, k = 2, n_grid = c(0, 10)), class = "moe_error_n_grid")
  expect_error(moe_study_setting(small_truth, k = 2, n_grid = 100, loss = "D7"),
               class = "moe_error_exponents")
  expect_error(rate_study(list()), class = "moe_error_setting")
  s2 <- study_setting_neurips2023(k = 2)
  expect_equal(length(s2$n_grid), 200)
  expect_equal(range(s2$n_grid), c(100, 1e5))
  expect_equal(s2$n_rep, 40)
  expect_equal(s2$control$n_starts, 1L)
  expect_equal(s2$control$tol, 1e-6)
  expect_equal(s2$control$maxit, 2000L)
  s4 <- study_setting_neurips2023(k = 4)
  expect_equal(range(s4$n_grid), c(1e4, 1e5))
  expect_equal(s4$control$n_starts, 5L)
  expect_equal(s4$x_dist(5, 1)[, 1], seq(0, 1, by = 0.25))
  expect_equal(s4$truth$expert$sigma2, c(0.09, 0.16))
  expect_error(study_setting_neurips2023(k = 5), class = "moe_error_k")
  expect_output(print(s4), "k = 4")
})

test_that("a NaN or infinite loss is a failed fit with its reason; name = NA is refused", {
  for (bad in list(NaN, Inf, NA_real_)) {
    setting <- moe_study_setting(small_truth, k = 2, n_grid = 200, n_rep = 1,
                                 loss = function(fit, truth) bad)
    expect_warning(s <- rate_study(setting, seed = 1), "returned", class = "moe_study_warning")
    expect_true(is.na(s$loss))
    expect_match(s$error, format(bad))
  }
  # An infinite secondary loss too; a missing secondary one is allowed.
  setting <- moe_study_setting(small_truth, k = 2, n_grid = 200, n_rep = 1,
                               loss = function(fit, truth) c(a = 1, b = -Inf))
  expect_warning(s <- rate_study(setting, seed = 1), "loss_b")
  setting <- moe_study_setting(small_truth, k = 2, n_grid = 200, n_rep = 1,
                               loss = function(fit, truth) c(a = 1, b = NA))
  expect_no_warning(s <- rate_study(setting, seed = 1))
  expect_equal(s$loss, 1)
  expect_error(moe_study_setting(small_truth, k = 2, n_grid = 200, name = NA),
               class = "moe_error_name")
  expect_error(moe_study_setting(small_truth, k = 2, n_grid = 200, name = NA_character_),
               class = "moe_error_name")
})

test_that("rate_study() gives user losses their globals and packages and leaves RNGkind() alone", {
  skip_on_cran()
  skip_if_not_installed("future")
  old_plan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old_plan), add = TRUE)
  loss_shift <- 0.25
  uses_global <- function(fit, truth) voronoi_loss(fit, truth, "D1") + loss_shift
  environment(uses_global) <- globalenv()
  setting <- moe_study_setting(small_truth, k = 2, n_grid = c(200, 300), n_rep = 1,
                               loss = uses_global)
  # Without the global every fit fails on the workers; the warning names the error.
  expect_warning(s0 <- rate_study(setting, seed = 1), "loss_shift", class = "moe_study_warning")
  expect_true(all(is.na(s0$loss)))
  s1 <- rate_study(setting, seed = 1, globals = list(loss_shift = loss_shift))
  s2 <- rate_study(setting, seed = 1, globals = "loss_shift")
  expect_true(all(is.na(s1$error)))
  expect_equal(s1$loss, s2$loss)
  expect_true(all(s1$loss >= 0.25))
  # A package the loss calls unqualified.
  pkg_loss <- function(fit, truth) median(c(voronoi_loss(fit, truth, "D1"), 0, 1))
  environment(pkg_loss) <- globalenv()
  setting <- moe_study_setting(small_truth, k = 2, n_grid = 200, n_rep = 1, loss = pkg_loss)
  s3 <- rate_study(setting, seed = 1, packages = "stats")
  expect_true(is.na(s3$error))
  expect_error(rate_study(setting, globals = "no_such_object_here"), class = "moe_error_globals")
  expect_error(rate_study(setting, packages = 1), class = "moe_error_packages")
  # The caller's generator is left as found.
  old_kind <- RNGkind()
  on.exit(do.call(RNGkind, as.list(old_kind)), add = TRUE)
  RNGkind("Mersenne-Twister", "Inversion", "Rejection")
  set.seed(5)
  before <- .Random.seed
  invisible(rate_study(small_setting(), seed = 1))
  expect_identical(RNGkind(), c("Mersenne-Twister", "Inversion", "Rejection"))
  expect_identical(.Random.seed, before)
  suppressWarnings(RNGkind("Wichmann-Hill"))
  invisible(rate_study(small_setting(), seed = 1))
  expect_identical(RNGkind()[1], "Wichmann-Hill")
})

test_that("spread starts, the two-start check and start losses are recorded", {
  ray <- function(p, c) {
    p$gate$W <- p$gate$W * c
    p
  }
  setting <- small_setting(spread = ray, spread_range = 0.2, two_start = function(p) p$gate$W[1, 1],
                           two_start_reps = 1, start_loss = TRUE)
  expect_output(print(setting), "two starts")
  study <- rate_study(setting, seed = 1)
  expect_true(all(c("start_c", "gap", "loss_start") %in% names(study)))
  expect_true(all(study$start_c >= exp(-0.2) & study$start_c <= exp(0.2)))
  expect_equal(is.na(study$gap), study$replication > 1)
  expect_true(all(study$gap[!is.na(study$gap)] >= 0))
  expect_true(all(study$loss_start > 0))
  expect_error(small_setting(two_start = function(p) 1), class = "moe_error_spread")
  expect_error(small_setting(spread = 1), class = "moe_error_spread")
  expect_error(small_setting(spread = ray, two_start_c = c(1, -1), two_start = function(p) 1),
               class = "moe_error_two_start_c")
  bad <- small_setting(spread = function(p, c) 1)
  expect_warning(s <- rate_study(bad, seed = 1), "spread function")
})

test_that("run_studies() records wall time and machine, and saves; study_options() parses", {
  file <- tempfile(fileext = ".rds")
  run <- suppressMessages(run_studies(list(a = small_setting()), workers = NULL, file = file,
                                      progress = FALSE, B = 50, extra = list(note = "x")))
  expect_s3_class(run, "moe_study_run")
  expect_true(file.exists(file))
  saved <- readRDS(file)
  expect_named(saved$studies, "a")
  expect_true(saved$elapsed[["a"]] >= 0 && saved$total >= saved$elapsed[["a"]])
  expect_true(all(c("cores", "cpu", "R", "platform", "moegate") %in% names(saved$machine)))
  expect_identical(saved$note, "x")
  expect_true(saved$complete)
  expect_false(file.exists(paste0(file, ".partial")))
  expect_output(print(run), "wall time")
  expect_error(run_studies(list(small_setting())), class = "moe_error_settings")
  o <- study_options(list(workers = 2, out = "x", flag = FALSE),
                     args = c("--workers=1", "--out=y", "--flag=TRUE"))
  expect_identical(o, list(workers = 1, out = "y", flag = TRUE))
  expect_error(study_options(list(a = 1), args = "--b=2"), class = "moe_error_args")
  expect_error(study_options(list(a = 1), args = "--a=x"), class = "moe_error_args")
})

test_that("combine_study_runs() joins batches with different seeds as more replications", {
  run <- function(seed, setting = small_setting()) {
    suppressMessages(run_studies(list(a = setting), seed = seed, workers = NULL,
                                 progress = FALSE, B = 20, extra = list(commit = "abc")))
  }
  first <- run(1)
  second <- run(2)
  both <- combine_study_runs(first, second)
  expect_s3_class(both, "moe_study_run")
  s <- both$studies$a
  expect_s3_class(s, "moe_rate_study")
  expect_equal(nrow(s), 12)
  expect_equal(s$replication, rep(1:4, 3))
  expect_equal(s$batch, rep(c(1, 1, 2, 2), 3))
  expect_equal(attr(s, "setting")$n_rep, 4)
  expect_equal(attr(s, "seed"), c(1, 2))
  # The second batch's rows are that run's, renumbered.
  b2 <- s[s$batch == 2, ]
  expect_identical(b2$loss, second$studies$a$loss)
  expect_identical(b2$replication, second$studies$a$replication + 2L)
  expect_identical(s$loss[s$batch == 1], first$studies$a$loss)
  expect_equal(both$batches$seed, c(1, 2))
  expect_equal(both$batches$replications, c(2, 2))
  expect_equal(both$batches$commit, c("abc", "abc"))
  expect_equal(both$total, first$total + second$total)
  expect_true(both$complete)
  expect_output(print(both), "2 batches: seeds 1, 2")
  expect_s3_class(rate_slopes(s, B = 20), "data.frame")
  # Three batches, given as a list.
  expect_equal(nrow(combine_study_runs(list(first, second, run(3)))$studies$a), 18)
  expect_error(combine_study_runs(first, first), class = "moe_error_...")
  expect_error(combine_study_runs(first), class = "moe_error_...")
  other_grid <- run(2, moe_study_setting(small_truth, k = 2, n_grid = c(200, 400), n_rep = 2,
                                         loss = "D1", name = "small"))
  expect_error(combine_study_runs(first, other_grid), "n_grid", class = "moe_error_...")
  renamed <- second
  names(renamed$studies) <- "b"
  expect_error(combine_study_runs(first, renamed), class = "moe_error_...")
})

test_that("refit_study() replays stored fits from their own random streams", {
  ray <- function(p, c) {
    p$gate$W <- p$gate$W * c
    p
  }
  setting <- small_setting(spread = ray)
  study <- rate_study(setting, seed = 7)
  set.seed(99)
  before <- stats::runif(1)
  set.seed(99)
  again <- refit_study(study, rows = c(1, 4, 6))
  # Same code, same streams: the same data, start and fit.
  expect_equal(unique(again$n), study$n[c(1, 4, 6)])
  expect_equal(again$refit, again$stored)
  expect_true(all(again$relative == 0))
  expect_equal(again$loglik_refit, again$loglik_stored)
  expect_equal(again$start_c_refit, again$start_c_stored)
  expect_equal(stats::runif(1), before)  # the caller's stream is left alone
  # Another control changes the fit, not the data or the start.
  loose <- refit_study(study, rows = 6, control = moe_control(tol = 1e-2, maxit = 2,
                                                              stop = "loglik", polish = "none"))
  expect_equal(loose$start_c_refit, loose$start_c_stored)
  expect_false(isTRUE(all.equal(loose$loglik_refit, loose$loglik_stored, tolerance = 1e-10)))
  expect_error(refit_study(study, rows = 0), class = "moe_error_rows")
  expect_error(refit_study(as.data.frame(study)[, 1:3], rows = 1), class = "moe_error_study")
  two <- study
  attr(two, "seed") <- c(1, 2)
  expect_error(refit_study(two, rows = 1), class = "moe_error_study")
})

test_that("refit_study() reports a failed refit instead of stopping", {
  # The loss fails at n = 400 only (log-likelihoods about -115 at n = 200,
  # -260 at 400).
  flaky <- moe_study_setting(small_truth, k = 2, n_grid = c(200, 400), n_rep = 2,
                             loss = function(fit, truth) if (abs(fit$loglik) > 180) NA else 1,
                             control = moe_control(tol = 1e-8, maxit = 300))
  study <- suppressWarnings(rate_study(flaky, seed = 3))
  again <- refit_study(study, rows = 1:4)
  expect_equal(nrow(again), 4)
  expect_equal(is.na(again$error_refit), is.na(study$error))
  expect_true(any(!is.na(again$error_refit)) && any(is.na(again$error_refit)))
  expect_true(all(is.na(again$refit[!is.na(again$error_refit)])))
  expect_equal(again$refit[is.na(again$error_refit)], again$stored[is.na(again$error_refit)])
})
