# Fits in forked children (parallel::mclapply(), future's multicore plan)
# after the parent ran OpenMP threads: GNU OpenMP's thread pool does not
# survive fork() and the child hung in its first parallel region (issue 15
# item 3). A forked child runs single-threaded; results do not depend on the
# thread count, so they equal the parent's. Each check runs in a callr
# process with a timeout, so that a hang fails the test instead of the run.

test_that("fits in forked children finish and equal the parent's", {
  skip_on_os("windows")
  # Child R processes with timeouts of minutes: run by tools/test.sh (NOT_CRAN),
  # not by R CMD check on CRAN's shared machines.
  skip_on_cran()
  skip_if_not_installed("callr")
  res <- callr::r(function() {
    library(moegate)
    set.seed(1)
    # Above the minimum-work rule's 2 * 16384 rows (numerics.h), so the
    # parent's passes really run on two threads.
    n <- 2 * moegate:::cpp_thread_count(2L, 1)$min_rows_per_thread + 1000
    d <- data.frame(x = runif(n, -1, 1))
    d$y <- ifelse(runif(n) < plogis(3 * d$x), 1 + 2 * d$x, -1 - d$x) + rnorm(n, sd = 0.3)
    fit_once <- function() {
      set.seed(2)
      moe(y ~ x, data = d, k = 2, gate = gate_cosine(),
          control = moe_control(nthreads = 2, maxit = 20))$loglik
    }
    parent <- suppressWarnings(fit_once())
    children <- parallel::mclapply(1:2, function(i) suppressWarnings(fit_once()),
                                   mc.cores = 2)
    out <- list(parent = parent, mclapply = unlist(children))
    # future runs multicore futures in forked children (here, outside
    # RStudio and on a Unix-alike).
    if (requireNamespace("future", quietly = TRUE)) {
      future::plan(future::multicore, workers = 2)
      f <- future::future(suppressWarnings(fit_once()), seed = NULL)
      out$future <- future::value(f)
      future::plan(future::sequential)
    }
    out
  }, timeout = 60)
  expect_identical(res$mclapply, rep(res$parent, 2))
  if (!is.null(res$future)) expect_identical(res$future, res$parent)
})
