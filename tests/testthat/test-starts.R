# Starting values: the k-means start without per-row R work.

test_that("n_distinct_rows() counts what nrow(unique()) counts", {
  set.seed(11)
  for (trial in 1:20) {
    n <- sample(1:60, 1)
    d <- sample(1:3, 1)
    # Few distinct values, so duplicated rows are common; signed zeros too.
    m <- matrix(sample(c(-1, 0, -0, 0.5, 2), n * d, replace = TRUE), n, d)
    expect_identical(moegate:::n_distinct_rows(m), nrow(unique(m)))
  }
  expect_identical(moegate:::n_distinct_rows(matrix(c(-0, 0, 1, 1), 2)), 1L)
  expect_identical(moegate:::n_distinct_rows(matrix(1:3 / 7, 3)), 3L)
  expect_identical(moegate:::n_distinct_rows(matrix(5, 1, 2)), 1L)
})

test_that("k-means starts are reproducible from the seed", {
  set.seed(3)
  n <- 400
  x <- runif(n)
  y <- ifelse(runif(n) < 0.5, 1 + 2 * x, -1 - x) + rnorm(n, sd = 0.2)
  X <- cbind(1, x)
  set.seed(5); a <- moegate:::kmeans_groups(X, matrix(y), 3)
  set.seed(5); b <- moegate:::kmeans_groups(X, matrix(y), 3)
  expect_identical(a, b)
  expect_setequal(unique(a), 1:3)
  set.seed(9); f1 <- moe(y ~ x, data = data.frame(x, y), k = 2, control = moe_control(n_starts = 2))
  set.seed(9); f2 <- moe(y ~ x, data = data.frame(x, y), k = 2, control = moe_control(n_starts = 2))
  expect_identical(coef(f1, type = "params"), coef(f2, type = "params"))
  expect_identical(f1$start_objective, f2$start_objective)
})

test_that("the k-means data prepared once per fit gives each start the groups it gets alone", {
  # kmeans_data() is what the starts of one fit share; it draws no random
  # numbers, so a start's groups from the shared preparation equal those of
  # a preparation of its own, below and above the 20000-row subsample.
  set.seed(4)
  for (n in c(300, 20001)) {
    x <- runif(n)
    X <- cbind(1, x, 0)  # a constant column: dropped from the clustering
    Y <- matrix(ifelse(runif(n) < 0.5, 1 + 2 * x, -1 - x) + rnorm(n, sd = 0.2))
    set.seed(8); prep <- moegate:::kmeans_data(X, Y)
    expect_identical(prep$keep_x, c(FALSE, TRUE, FALSE))
    expect_equal(prep$scales, c(sd(x), sd(Y[, 1])))
    if (n <= 20000) {
      expect_identical(prep$distinct, nrow(unique(prep$data)))
      expect_equal(unname(prep$data), unname(cbind(x / sd(x), Y[, 1] / sd(Y[, 1]))))
    } else {
      expect_null(prep$data)  # a subsample is drawn per start
    }
    after_prep <- runif(1)
    set.seed(8); expect_identical(runif(1), after_prep)
    set.seed(6); shared <- lapply(1:2, function(s) moegate:::kmeans_groups(X, Y, 3, prep))
    set.seed(6); alone <- lapply(1:2, function(s) moegate:::kmeans_groups(X, Y, 3))
    expect_identical(shared, alone)
  }
})

test_that("too few distinct rows for k clusters fall back to a random partition", {
  X <- cbind(1, rep(c(0, 1), each = 10))
  Y <- matrix(rep(c(0, 1), each = 10))
  set.seed(1)
  g <- moegate:::kmeans_groups(X, Y, 3)
  set.seed(1)
  expect_identical(g, sample.int(3, 20, replace = TRUE))
})

# The default start rule "mixed": odd starts k-means, even starts random
# partitions (moe_control()'s documentation says why).
mixed_data <- function() {
  # The three-expert truth of bench/bench-select.R, n = 600: over-specified
  # with k = 4, several optima.
  set.seed(3)
  n <- 600
  Z <- matrix(runif(2 * n, -1, 1), n, 2, dimnames = list(NULL, c("x1", "x2")))
  H <- cbind(Z %*% cbind(c(4, 1), c(-2, 3.5)), 0)
  G <- exp(H - apply(H, 1, max))
  G <- G / rowSums(G)
  label <- 1L + rowSums(t(apply(G, 1, cumsum)) < runif(n))
  coef <- cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2))
  mu <- rowSums(cbind(1, Z) * t(coef)[label, ])
  data.frame(y = mu + rnorm(n, sd = c(0.3, 0.4, 0.35)[label]), Z)
}

test_that("the mixed rule alternates k-means and random partitions, reproducibly", {
  expect_identical(vapply(1:4, function(s) moegate:::start_rule("mixed", s), ""),
                   c("kmeans", "random", "kmeans", "random"))
  expect_identical(moe_control()$init, "mixed")
  expect_identical(moe_control(init = "mix")$init, "mixed")
  expect_identical(moegate:::start_rule("kmeans", 2), "kmeans")
  d <- mixed_data()
  fit <- function(init, n_starts, seed) {
    set.seed(seed)
    moe(y ~ x1 + x2, data = d, k = 4, control = moe_control(n_starts = n_starts, init = init))
  }
  a <- fit("mixed", 4, 1)
  b <- fit("mixed", 4, 1)
  expect_identical(a$start_objective, b$start_objective)
  expect_identical(coef(a, type = "params"), coef(b, type = "params"))
  # One start: the k-means start of earlier versions, draw for draw.
  expect_identical(fit("mixed", 1, 2)$start_objective, fit("kmeans", 1, 2)$start_objective)
  # Start 2 is a random partition drawn after start 1's k-means draws.
  set.seed(1)
  m1 <- moe(y ~ x1 + x2, data = d, k = 4, control = moe_control(init = "kmeans"))
  m2 <- moe(y ~ x1 + x2, data = d, k = 4, control = moe_control(init = "random"))
  expect_equal(a$start_objective[1:2], c(m1$loglik, m2$loglik), tolerance = 1e-12)
})

test_that("the mixed rule finds a higher optimum where k-means starts all agree", {
  d <- mixed_data()
  set.seed(1)
  km <- moe(y ~ x1 + x2, data = d, k = 4, control = moe_control(n_starts = 4, init = "kmeans"))
  set.seed(1)
  mixed <- moe(y ~ x1 + x2, data = d, k = 4, control = moe_control(n_starts = 4))
  # All four k-means starts end in one optimum (within 0.01: the same point,
  # reached by different EM paths); a random partition reaches a better one.
  # The gap (1.6 log-likelihood units when written; 19 of 20 k-means starts
  # from seeds 1-5 end at the same -390.93) is between distinct
  # optima, so it does not hinge on the last digits of EM.
  expect_lt(diff(range(km$start_objective)), 0.01)
  expect_gt(mixed$loglik, km$loglik + 0.5)
  expect_gt(max(mixed$start_objective[c(2, 4)]), max(mixed$start_objective[c(1, 3)]))
})

test_that("multinomial k-means starts cluster the covariates, not the classes", {
  # Three covariate regions, each with the same class mix: clusters of the
  # covariates are the regions. With the one-hot response among the
  # clustered columns (earlier versions) the same seed gave clusters that
  # mixed the regions (66 / 75 / 68 rows of each in one of them).
  set.seed(21)
  n <- 600
  x <- c(runif(n / 3, -3, -2), runif(n / 3, -0.5, 0.5), runif(n / 3, 2, 3))
  y <- factor(sample(c("a", "b", "c"), n, replace = TRUE))
  X <- cbind(1, x)
  Y <- moegate:::response_matrix(y, expert_multinomial())$Y
  start <- function() {
    set.seed(4)
    moegate:::make_start("kmeans", 1, y, list(Y = Y, n_classes = 3L), X, cbind(x), cbind(x),
                         3, expert_multinomial(), gate_softmax(),
                         list(n = n, p = 2, q = 1, k = 3, K = 3), NULL, NULL)$groups
  }
  groups <- start()
  region <- cut(x, c(-4, -1, 1, 4))
  expect_true(all(rowSums(table(groups, region) > 0) == 1))
  expect_setequal(unique(groups), 1:3)
  expect_identical(start(), groups)  # reproducible from the seed
})

test_that("the k-means start passes on no warning of stats::kmeans(), and the same partition", {
  # 2e4 Gaussian rows (seed 2): Hartigan-Wong's quick-transfer stage stops at
  # its 1e6 steps and kmeans() warns; the start uses the partition either way.
  set.seed(2)
  X <- cbind(1, matrix(rnorm(4e4), ncol = 2))
  Y <- matrix(rnorm(2e4))
  prep <- moegate:::kmeans_data(X, Y)
  set.seed(1)
  expect_warning(km <- stats::kmeans(prep$data, centers = 3, iter.max = 30))
  set.seed(1)
  expect_no_warning(g <- moegate:::kmeans_groups(X, Y, 3, prep))
  expect_identical(g, moegate:::cpp_nearest_centre(X, which(prep$keep_x), Y,
                                                   as.numeric(prep$scales), unname(km$centers)))
  # A fit from there warns of nothing either.
  d <- data.frame(x1 = X[, 2], x2 = X[, 3], y = Y[, 1])
  set.seed(1)
  expect_no_warning(moe(y ~ x1 + x2, data = d, k = 3))
})
