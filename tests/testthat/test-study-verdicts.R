# The table of verdicts is computed from stored studies.

fake_study <- function(rate, gap_rate = NULL, seed = 1, sd = 0.2) {
  set.seed(seed)
  d <- expand.grid(n = round(10^seq(3, 5, length.out = 6)), replication = 1:10)
  d$loss <- d$n^rate * exp(rnorm(nrow(d), sd = sd))
  d$loss_tau <- d$loss
  d$loss_raw <- d$loss
  if (!is.null(gap_rate)) d$gap <- d$n^gap_rate * exp(rnorm(nrow(d), sd = 0.2))
  d
}

test_that("study_verdicts() decides from the stored slopes", {
  dir <- tempfile()
  dir.create(dir)
  run <- list(studies = list(temperature = fake_study(0, gap_rate = 0),
                             activation_gelu = fake_study(-0.5, gap_rate = -0.5),
                             activation_tanh = fake_study(-0.5)))
  saveRDS(run, file.path(dir, "temperature-gaussian.rds"))
  v <- study_verdicts(dir, B = 50)
  expect_s3_class(v, "moe_study_verdicts")
  expect_true(all(c("paper", "claim", "fast_slope", "slow_slope", "verdict") %in% names(v)))
  contrast <- v[!is.na(v$slow), ]
  expect_true(all(contrast$verdict == "reproduced"))
  expect_equal(contrast$fast_slope[1], rate_slopes(run$studies$activation_gelu, "loss_tau",
                                                   B = 50)$slope[1])
  expect_equal(contrast$slow_gap_slope[1], 0, tolerance = 0.15)
  # The identified-loss row expects n^(-1/2), which a flat loss is not.
  expect_match(v$verdict[is.na(v$slow)], "not reproduced")
  expect_output(print(v), "reproduced")
  # A subset of the columns prints as a data frame (the help example does this).
  expect_output(print(v[, c("paper", "verdict")]), "temperature")
  # Both sides polynomial: the claim is not reproduced.
  run$studies$temperature <- fake_study(-0.5, gap_rate = -0.5)
  saveRDS(run, file.path(dir, "temperature-gaussian.rds"))
  v <- study_verdicts(dir, B = 50)
  expect_true(all(grepl("not reproduced", v$verdict[!is.na(v$slow)])))
  # Three sizes cannot decide a contrast, whatever their slopes.
  few <- function(st) st[st$n %in% sort(unique(st$n))[1:3], ]
  run$studies <- lapply(list(temperature = fake_study(0, gap_rate = 0),
                             activation_gelu = fake_study(-0.5, gap_rate = -0.5),
                             activation_tanh = fake_study(-0.5)), few)
  saveRDS(run, file.path(dir, "temperature-gaussian.rds"))
  v <- study_verdicts(dir, B = 50)
  expect_true(all(grepl("not decided: only 3 sample sizes", v$verdict[!is.na(v$slow)])))
  # A single rate whose interval holds both the theory's -1/2 and a flat rate
  # is not decided, however it is centred.
  run$studies <- list(temperature = fake_study(-0.25, gap_rate = 0, sd = 4),
                      activation_gelu = fake_study(-0.5, gap_rate = -0.5),
                      activation_tanh = fake_study(-0.5))
  saveRDS(run, file.path(dir, "temperature-gaussian.rds"))
  v <- study_verdicts(dir, B = 50)
  single <- v[is.na(v$slow), ]
  expect_true(single$fast_lower < -0.5 && single$fast_upper > -0.15)
  expect_match(single$verdict, "^not decided by the slope \\(interval .* holds the theory's slope and a flat rate")
  expect_error(study_verdicts(file.path(dir, "nope")), class = "moe_error_dir")
  empty <- tempfile()
  dir.create(empty)
  expect_error(study_verdicts(empty), class = "moe_error_dir")
})

test_that("the shipped results give a verdict for every claim", {
  skip_if(system.file("extdata", "temperature-gaussian.rds", package = "moegate") == "")
  v <- study_verdicts(B = 50, papers = 1)
  expect_true(all(nzchar(v$verdict)))
  expect_true(all(is.finite(v$fast_slope)))
})

test_that("over-specified rows compare the fits' loss with their starts'", {
  dir <- tempfile()
  dir.create(dir)
  st <- fake_study(-1)
  st$iterations <- 50
  st$loss_start <- st$loss / 3
  saveRDS(list(studies = list(k3 = st, k4 = st)), file.path(dir, "neurips2023-starts.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_equal(nrow(v), 2)
  expect_true(all(grepl("cannot be shown by simulation", v$verdict)))
  expect_true(all(grepl("3.00 times their starts'", v$verdict)))
  st$loss_start <- st$loss * 2
  saveRDS(list(studies = list(k3 = st, k4 = st)), file.path(dir, "neurips2023-starts.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_true(all(grepl("faster than the theory", v$verdict)))
  # Fits that stopped after a few EM iterations are not at the maximum.
  st$iterations <- 3
  saveRDS(list(studies = list(k3 = st, k4 = st)), file.path(dir, "neurips2023-starts.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_true(all(grepl("median of 3 EM iterations", v$verdict)))
  # Fits run to the maximum (gradient rule) are judged on their own slope.
  st$converged <- TRUE
  saveRDS(list(studies = list(k3 = st)), file.path(dir, "neurips2023-starts-gradient.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_equal(nrow(v), 3)
  expect_match(v$verdict[grepl("gradient", v$claim)],
               "with fits meeting the gradient rule .*not checked for a maximum")
  # With study_maxima() of those fits shipped, the verdict says what it found.
  checks <- data.frame(n = st$n, replication = st$replication, at_maximum = TRUE,
                       newton_steps = 2L, loss = st$loss, loss_w = 0.9 * st$loss,
                       sharpen_gain = ifelse(st$replication <= 3, 0.5, -1), error = NA)
  checks$sharpen_gain[st$n == max(st$n)] <- NA
  saveRDS(list(checks = list(ours = checks)), file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  g <- v$verdict[grepl("gradient", v$claim)]
  expect_match(g, sprintf("fits at finite local maxima \\(all %d", nrow(st)))
  expect_match(g, "90% of the summed loss the gate-vector \\(w\\) term")
  expect_match(g, sprintf("in 15 of %d fits profiled", sum(!is.na(checks$sharpen_gain))))
  # 15 of 50 profiled fits are not the global maximum: more than a fifth, so
  # the slope of these fits is not the estimator's rate.
  expect_match(g, "^cannot be shown by simulation with these fits \\(the slope alone: (not )?reproduced\\)")
  expect_match(g, "not the maximum-likelihood estimator")
  expect_match(g, "0.5 times their starts'")
  # A slope that would not decide anyway says why, once.
  wide <- fake_study(-0.25, sd = 4)
  wide$iterations <- 50
  wide$converged <- TRUE
  wide$loss_start <- wide$loss
  saveRDS(list(studies = list(k3 = wide)), file.path(dir, "neurips2023-starts-gradient.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  g <- v$verdict[grepl("gradient", v$claim)]
  expect_match(g, paste0("^cannot be shown by simulation with these fits \\(the slope alone: not decided, ",
                         "interval .* holds the theory's slope and a flat rate\\) with fits"))
  expect_false(grepl("not decided by the slope", g))
  saveRDS(list(studies = list(k3 = st)), file.path(dir, "neurips2023-starts-gradient.rds"))
  few_rising <- checks
  few_rising$sharpen_gain[!is.na(few_rising$sharpen_gain)] <- -1
  few_rising$sharpen_gain[1] <- 0.5
  saveRDS(list(checks = list(ours = few_rising)), file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  g <- v$verdict[grepl("gradient", v$claim)]
  expect_false(grepl("cannot be shown", g))
  expect_match(g, "in 1 of 50 fits profiled")
  checks$at_maximum[1:2] <- FALSE
  saveRDS(list(checks = list(ours = checks)), file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_match(v$verdict[grepl("gradient", v$claim)],
               sprintf("%d of %d pass the second-order check", nrow(st) - 2, nrow(st)))
  # Three sizes whose slope interval holds -1/2 decide nothing.
  few <- fake_study(-0.5)
  few <- few[few$n %in% sort(unique(few$n))[1:3], ]
  few$iterations <- 50
  few$converged <- TRUE
  few$loss_start <- few$loss
  saveRDS(list(studies = list(k3 = few)), file.path(dir, "neurips2023-starts-gradient.rds"))
  checks <- data.frame(n = few$n, at_maximum = TRUE, newton_steps = 1L, loss = few$loss,
                       loss_w = few$loss / 2, sharpen_gain = NA, error = NA)
  saveRDS(list(checks = list(ours = checks)), file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  expect_match(v$verdict[grepl("gradient", v$claim)], "^not decided by the slope \\(only 3 sample sizes")
  # k = 4's checks are read under "<run>_k4", never k = 3's.
  saveRDS(list(studies = list(k3 = st, k4 = st)), file.path(dir, "neurips2023-starts-gradient.rds"))
  checks <- data.frame(n = st$n, replication = st$replication, at_maximum = TRUE,
                       newton_steps = 2L, loss = st$loss, loss_w = 0.9 * st$loss,
                       sharpen_gain = NA, error = NA)
  k4_checks <- checks
  k4_checks$at_maximum[1] <- FALSE
  k4_checks$loss_w <- 0.5 * st$loss
  saveRDS(list(checks = list(ours = checks)), file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  g4 <- v$verdict[grepl("^k = 4", v$claim) & grepl("gradient", v$claim)]
  expect_match(g4, "not checked for a maximum")
  saveRDS(list(checks = list(ours = checks, ours_k4 = k4_checks)),
          file.path(dir, "neurips2023-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 5)
  g3 <- v$verdict[grepl("^k = 3", v$claim) & grepl("gradient", v$claim)]
  g4 <- v$verdict[grepl("^k = 4", v$claim) & grepl("gradient", v$claim)]
  expect_match(g3, sprintf("fits at finite local maxima \\(all %d", nrow(st)))
  expect_match(g4, sprintf("%d of %d pass the second-order check", nrow(st) - 1, nrow(st)))
  expect_match(g4, "50% of the summed loss the gate-vector")
})

test_that("the sigmoid rows include the two-start gap in the replications that ran it", {
  dir <- tempfile()
  dir.create(dir)
  eu <- fake_study(-0.5, gap_rate = -0.5)
  ip <- fake_study(0, gap_rate = 0, seed = 2)
  # The check runs in the first replications only: the rest carry NA.
  eu$gap[eu$replication > 4] <- NA
  ip$gap[ip$replication > 4] <- NA
  eu$loss_w <- eu$loss
  ip$loss_w <- ip$loss
  saveRDS(list(studies = list(euclidean = eu, inner = ip)), file.path(dir, "sigmoid-multinomial.rds"))
  v <- study_verdicts(dir, B = 50, papers = 3)
  expect_equal(nrow(v), 3)
  expect_identical(v$loss, c("loss", "loss_w", "gap"))
  expect_true(all(v$verdict == "reproduced"))
  g <- eu[!is.na(eu$gap), ]
  expect_equal(v$fast_slope[3], rate_slopes(g, "gap", B = 50)$slope[1])
  # A gap that shrinks on the inner-product side too: not reproduced.
  ip$gap <- eu$gap
  saveRDS(list(studies = list(euclidean = eu, inner = ip)), file.path(dir, "sigmoid-multinomial.rds"))
  v <- study_verdicts(dir, B = 50, papers = 3)
  expect_match(v$verdict[3], "not reproduced")
})

test_that("the over-specified cosine-router rows use the losses at the checked minima", {
  dir <- tempfile()
  dir.create(dir)
  with_experts <- function(st) {
    st$loss_experts <- st$loss
    st
  }
  # Stored fits: both routers flat (as if stopped short of the minimum).
  run <- list(studies = list(cosine = with_experts(fake_study(0, gap_rate = 0)),
                             perturbed_cosine = with_experts(fake_study(0, gap_rate = 0, seed = 2))))
  saveRDS(run, file.path(dir, "cosine-router-k3.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_identical(nrow(v), 2L)
  expect_match(v$claim, "over-specified \\(k = 3\\)")
  expect_true(all(grepl("^cannot be shown by simulation", v$verdict)))
  expect_match(v$verdict, "no check that the fits reach the least-squares minimum")
  # Without a check nothing is claimed about how many fits reach the minimum.
  expect_false(any(grepl("too few fits reach", v$verdict)))
  # The check continues the perturbed router's fits to losses falling like
  # n^(-1/2); every fit passes: the contrast is reproduced, from the
  # continued losses (not the stored ones).
  check_of <- function(st, rate, pass = TRUE) {
    set.seed(3)
    data.frame(row = seq_len(nrow(st)), n = st$n, replication = st$replication,
               at_maximum = pass, info_min = 1e-3, loss = st$n^rate * exp(rnorm(nrow(st), sd = 0.2)),
               loss_experts = st$n^rate * exp(rnorm(nrow(st), sd = 0.2)))
  }
  checks <- list(cosine = check_of(run$studies$cosine, 0),
                 perturbed_cosine = check_of(run$studies$perturbed_cosine, -0.5))
  saveRDS(list(checks = checks), file.path(dir, "cosine-router-k3-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_true(all(grepl("^reproduced; losses at the fits' least-squares minima", v$verdict)))
  continued <- run$studies$perturbed_cosine
  continued$loss <- checks$perturbed_cosine$loss
  expect_equal(v$fast_slope[1], rate_slopes(continued, "loss", B = 50)$slope[1])
  expect_match(v$verdict[1], "perturbed_cosine 60 of 60 \\(n = 100000: 10 of 10\\)")
  # Too few fits at a minimum at the largest n: not shown.
  checks$cosine$at_maximum[checks$cosine$n == max(checks$cosine$n)][1:3] <- FALSE
  saveRDS(list(checks = checks), file.path(dir, "cosine-router-k3-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_true(all(grepl("^cannot be shown by simulation with these fits \\(the slopes would be reproduced\\)",
                        v$verdict)))
  expect_match(v$verdict, "cosine 57 of 60 \\(n = 100000: 7 of 10\\)")
  # A run-off passes the local check with a vanishing eigenvalue: not regular.
  checks$cosine$at_maximum <- TRUE
  checks$cosine$info_min[checks$cosine$n == max(checks$cosine$n)][1:3] <- 1e-10
  saveRDS(list(checks = checks), file.path(dir, "cosine-router-k3-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_match(v$verdict, "cosine 57 of 60 \\(n = 100000: 7 of 10\\)")
})

test_that("the gradient-rule cosine-router rows count v-ball boundary fits as off the minimum", {
  dir <- tempfile()
  dir.create(dir)
  with_experts <- function(st, runoff = NULL) {
    st$loss_experts <- st$loss
    if (!is.null(runoff)) st$runoff <- runoff
    st
  }
  pc <- fake_study(0, gap_rate = 0, seed = 2)
  guard <- as.numeric(seq_len(nrow(pc)) %% 5 == 0)
  run <- list(studies = list(cosine = with_experts(fake_study(0, gap_rate = 0)),
                             perturbed_cosine = with_experts(pc, guard)))
  saveRDS(run, file.path(dir, "cosine-router-k3-gradient.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  # Only the gradient file: its two rows, labelled by the rule.
  expect_identical(nrow(v), 2L)
  expect_match(v$claim, "relative gradient, with Newton polish and run-off guard")
  expect_match(v$verdict, "cosine-router-k3-gradient-maximum.rds")
  check_of <- function(st, rate, boundary = NULL) {
    set.seed(3)
    out <- data.frame(row = seq_len(nrow(st)), n = st$n, replication = st$replication,
                      at_maximum = TRUE, info_min = 1e-3,
                      loss = st$n^rate * exp(rnorm(nrow(st), sd = 0.2)),
                      loss_experts = st$n^rate * exp(rnorm(nrow(st), sd = 0.2)))
    if (!is.null(boundary)) out$boundary <- boundary
    out
  }
  # Every fit at a regular minimum: reproduced, 0 on the boundary.
  checks <- list(cosine = check_of(run$studies$cosine, 0),
                 perturbed_cosine = check_of(pc, -0.5, boundary = FALSE))
  saveRDS(list(checks = checks), file.path(dir, "cosine-router-k3-gradient-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_true(all(grepl("^reproduced", v$verdict)))
  expect_match(v$verdict[1], sprintf(paste0("perturbed_cosine 60 of 60 \\(n = 100000: 10 of 10; ",
                                            "0 on the boundary of the v-ball \\(no finite minimum\\), ",
                                            "%d of 60 fits stopped by the run-off guard\\)"),
                                     sum(guard)))
  # Boundary fits (at_maximum still TRUE, as a check made before the column
  # would say) are not at a regular minimum: 3 of 10 at the largest n.
  big <- which(pc$n == max(pc$n))[1:3]
  checks$perturbed_cosine$boundary[big] <- TRUE
  saveRDS(list(checks = checks), file.path(dir, "cosine-router-k3-gradient-maximum.rds"))
  v <- study_verdicts(dir, B = 50, papers = 2)
  expect_true(all(grepl("^cannot be shown by simulation with these fits", v$verdict)))
  expect_match(v$verdict[1], "perturbed_cosine 57 of 60 \\(n = 100000: 7 of 10; 3 on the boundary")
})
