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

test_that("too few distinct rows for k clusters fall back to a random partition", {
  X <- cbind(1, rep(c(0, 1), each = 10))
  Y <- matrix(rep(c(0, 1), each = 10))
  set.seed(1)
  g <- moegate:::kmeans_groups(X, Y, 3)
  set.seed(1)
  expect_identical(g, sample.int(3, 20, replace = TRUE))
})
