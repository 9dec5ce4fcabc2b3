# EM for multinomial logistic experts: the Boehning-certified Newton M-step
# (src/expert.cpp), monotone EM, convergence on a regular truth, and the
# behaviour on separated data (no finite maximum).

# K = 3 classes, k = 3 experts, d = 2 (the truth of bench/bench-multinom.R);
# `scale` multiplies the expert coefficients (10: classes separated within
# experts).
multinom_case <- function(n, seed, scale = 1) {
  coef <- array(0, c(3, 2, 3))
  coef[, , 1] <- rbind(c(2, 0), c(1, -1), c(0, 1))
  coef[, , 2] <- rbind(c(0, 2), c(-1, 1), c(1, 0))
  coef[, , 3] <- rbind(c(-1, -1), c(0, 1), c(-1, 0))
  truth <- moe_params(W = rbind(c(5, -5, 0), c(5, 5, 0)), b0 = c(0, 0, 0), coef = scale * coef)
  set.seed(seed)
  rmoe(n, truth, expert = "multinomial")
}

test_that("k = 1 multinomial experts with case weights equal nnet::multinom, also one Newton step per EM iteration", {
  skip_if_not_installed("nnet")
  set.seed(7)
  n <- 400
  d <- data.frame(x1 = runif(n, -2, 2), x2 = rnorm(n))
  eta <- cbind(1 + 2 * d$x1 - d$x2, -0.5 + d$x2, 0)
  p <- exp(eta) / rowSums(exp(eta))
  d$y <- factor(apply(p, 1, function(pr) sample(c("a", "b", "c"), 1, prob = pr)))
  w <- runif(n, 0.2, 3)
  d$y_c <- relevel(d$y, ref = "c")
  ref <- nnet::multinom(y_c ~ x1 + x2, data = d, weights = w, trace = FALSE, maxit = 1000,
                        reltol = 1e-14)
  for (inner in c(25, 1)) {
    fit <- moe(y ~ x1 + x2, data = d, k = 1, weights = w,
               control = moe_control(expert_maxit = inner, expert_tol = 1e-14))
    # Both reach the weighted maximum: multinom's BFGS to a relative deviance
    # change of 1e-14, moegate's Newton to its gradient rule.
    expect_equal(unname(fit$params$expert$coef[, , 1]), unname(t(coef(ref))[, c("a", "b")]),
                 tolerance = 1e-5, label = paste("expert_maxit", inner))
    expect_gte(fit$loglik, as.numeric(logLik(ref)) - 1e-7)
    expect_true(isTRUE(fit$converged))
  }
})

test_that("multinomial EM is monotone, also with one certified Newton step per M-step and near-deterministic experts", {
  for (scale in c(1, 3)) {
    d <- multinom_case(2000, seed = 3, scale = scale)
    for (inner in c(25, 1)) {
      set.seed(1)
      warned <- character()
      fit <- withCallingHandlers(
        moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
            control = moe_control(accelerate = "none", polish = "none",
                                  expert_maxit = inner, maxit = 150)),
        warning = function(w) {
          warned <<- c(warned, class(w)[1])
          invokeRestart("muffleWarning")
        })
      label <- sprintf("scale %g, expert_maxit %d", scale, inner)
      expect_gt(length(fit$trace), 20)
      # Rounding in sums over n moves the log-likelihood by ~1e-12 relative.
      expect_true(all(diff(fit$trace) >= -1e-10 * abs(fit$loglik)), label = label)
      expect_false("moe_monotonicity_warning" %in% warned, label = label)
    }
  }
})

test_that("multinomial EM converges on a regular K = 3, k = 3 truth in well under 1000 iterations", {
  # A sample whose maximum is finite (at n = 3000 some samples of this truth
  # are separated within an expert: see the next test).
  d <- multinom_case(5000, seed = 3)
  set.seed(1)
  fit <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial")
  expect_identical(names(fit$converged), "gradient")
  expect_true(isTRUE(fit$converged))
  expect_lte(fit$gradient_criterion, 1e-6)
  expect_lt(fit$iter, 200)
  expect_false(any(fit$separation))
  expect_lt(max(abs(fit$params$expert$coef)), 50)
  # The same fit by plain EM to the gradient rule gives the same maximum.
  set.seed(1)
  plain <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
               control = moe_control(accelerate = "none"))
  expect_true(isTRUE(plain$converged))
  expect_lt(fit$iter, plain$iter)
  expect_equal(fit$loglik, plain$loglik, tolerance = 1e-8)
})

test_that("separated multinomial experts stop cleanly and say the likelihood has no finite maximum", {
  d <- multinom_case(2000, seed = 1, scale = 10)
  set.seed(1)
  warned <- character()
  fit <- withCallingHandlers(
    moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial"),
    warning = function(w) {
      warned <<- c(warned, class(w)[1])
      if (inherits(w, "moe_separation_warning")) {
        expect_match(conditionMessage(w), "no finite maximum")
      }
      invokeRestart("muffleWarning")
    })
  expect_true("moe_separation_warning" %in% warned)
  expect_false("moe_convergence_warning" %in% warned)
  expect_true(any(fit$separation))
  # The fitted probabilities converge while the coefficients run off: the
  # gradient rule stops the fit long before maxit.
  expect_true(isTRUE(fit$converged))
  expect_lt(fit$iter, 1000)
  expect_true(is.finite(fit$loglik))
  # Stopped by maxit, a separated fit gets the separation warning only, which
  # says where EM stopped (more iterations cannot reach a maximum).
  ir <- iris
  ir$setosa <- factor(ir$Species == "setosa")
  expect_warning(short <- moe(setosa ~ Petal.Length, data = ir, k = 1,
                              control = moe_control(maxit = 1, polish = "none")),
                 "no finite maximum.*EM stopped after 1 iterations",
                 class = "moe_separation_warning")
  expect_false(isTRUE(short$converged))
  expect_identical(short$separation, TRUE)
})

# ---- the Newton polish's analytic observed information ------------------------

# Minus the Hessian of sum_n w_n log sum_i G_ni f_ni wrt the free coordinates
# (W[, 1:(k-1)] by column, b0[1:(k-1)], then the expert coefficients by
# column), in plain R from Louis' identity written in parameter space: per row
# and component, the complete-data score s_i and information C_i of
# log G_i + log f_i, then sum_i r_i C_i - (sum_i r_i s_i s_i' - sbar sbar').
ref_multinomial_information <- function(X, Y, Z, spec, gp, ep, w = NULL, transform = identity) {
  U <- transform(Z)
  n <- nrow(X); p <- ncol(X); q <- ncol(U); k <- ncol(gp$W); K <- ncol(Y)
  inside <- identical(spec$intercept, "inside")
  logG <- ref_gate_forward(Z, spec, gp)$log_weights
  logF <- ref_multinomial_logdens(X, Y, ep$coef, K)
  R <- ref_mixture(logG, logF)$posterior
  ng <- (q + 1) * (k - 1)
  m <- ng + length(ep$coef)
  if (is.null(w)) w <- rep(1, n)
  info <- matrix(0, m, m)
  for (row in seq_len(n)) {
    if (w[row] == 0) next
    g <- exp(logG[row, ])
    # d h_j / d theta for the free gate logits j < k.
    a <- lapply(seq_len(k - 1), function(j) {
      v <- numeric(m)
      v[(j - 1) * q + seq_len(q)] <- U[row, ] / gp$tau
      v[q * (k - 1) + j] <- if (inside) 1 / gp$tau else 1
      v
    })
    gate_info <- matrix(0, m, m)
    for (j in seq_len(k - 1)) for (jj in seq_len(k - 1)) {
      gate_info <- gate_info + ((j == jj) * g[j] - g[j] * g[jj]) * tcrossprod(a[[j]], a[[jj]])
    }
    S <- matrix(0, m, k)
    C <- vector("list", k)
    for (i in seq_len(k)) {
      cols <- (i - 1) * (K - 1) + seq_len(K - 1)
      eta <- c(X[row, ] %*% ep$coef[, cols, drop = FALSE], 0)
      pr <- exp(eta - max(eta)); pr <- pr / sum(pr)
      e <- lapply(seq_len(K - 1), function(cc) {
        v <- numeric(m)
        v[ng + (cols[cc] - 1) * p + seq_len(p)] <- X[row, ]
        v
      })
      s <- numeric(m)
      for (j in seq_len(k - 1)) s <- s + ((i == j) - g[j]) * a[[j]]
      for (cc in seq_len(K - 1)) s <- s + (Y[row, cc] - pr[cc]) * e[[cc]]
      S[, i] <- s
      Ce <- matrix(0, m, m)
      for (cc in seq_len(K - 1)) for (c2 in seq_len(K - 1)) {
        Ce <- Ce + ((cc == c2) * pr[cc] - pr[cc] * pr[c2]) * tcrossprod(e[[cc]], e[[c2]])
      }
      C[[i]] <- gate_info + Ce
    }
    r <- R[row, ]
    sbar <- S %*% r
    Hn <- Reduce(`+`, Map(function(Ci, ri) ri * Ci, C, r)) -
      S %*% (r * t(S)) + tcrossprod(sbar)
    info <- info + w[row] * Hn
  }
  info
}

test_that("the polish's analytic observed information matches finite differences of the score and a plain-R reference", {
  set.seed(21)
  n <- 60; K <- 3; k <- 3
  Z <- matrix(rnorm(n * 2), n, 2)
  X <- cbind(1, matrix(rnorm(n * 2), n, 2))
  Y <- ref_one_hot(sample(seq_len(K), n, TRUE))
  espec <- cpp_multinomial_spec(K)
  w <- runif(n, 0.2, 3)
  w[1:4] <- 0
  gates <- list(outside = list(gate_softmax(), identity),
                inside = list(gate(intercept = "inside", temperature = 0.7), identity),
                tanh = list(gate_modified_softmax(), tanh))
  for (scale in c(1, 8)) {  # 8: probabilities near 0 and 1 in gate and experts
    gp <- list(W = cbind(scale * matrix(rnorm(4), 2, 2), 0), b0 = c(rnorm(2), 0), tau = 0.7)
    ep <- list(coef = scale * matrix(rnorm(3 * k * (K - 1)), 3), sigma2 = rep(1, k))
    for (nm in names(gates)) for (weighted in c(FALSE, TRUE)) {
      g <- gates[[nm]][[1]]
      gspec <- cpp_spec(g)
      cw <- if (weighted) w else NULL
      label <- paste(nm, "scale", scale, if (weighted) "weighted" else "unweighted")
      oi <- moegate:::cpp_observed_information(X, Y, Z, gspec, espec, gp, ep, 1L, cw)
      expect_false(is.null(oi$information), label = label)
      expect_equal(dim(oi$information), rep(length(oi$theta), 2), label = label)
      score <- function(theta) {
        moegate:::cpp_loglik(X, Y, Z, gspec, espec, gp, ep, theta, TRUE, 1L, cw)$gradient
      }
      fd <- -ref_fd_jacobian(score, oi$theta)
      # Central differences of the analytic score with relative steps 1e-5:
      # truncation and rounding errors about 1e-9 of the largest entry.
      expect_all_within(max(abs(oi$information - fd)) / max(abs(fd)), 1e-7,
                        paste(label, "vs differences"))
      ref <- ref_multinomial_information(X, Y, Z, g, gp, ep, cw, gates[[nm]][[2]])
      expect_all_within(max(abs(oi$information - ref)) / max(abs(ref)), 1e-10,
                        paste(label, "vs plain R"))
      expect_equal(oi$information, t(oi$information), tolerance = 1e-12, label = label)
    }
  }
  # 1 and 2 threads agree exactly (fixed blocks, ordered sums).
  big <- multinom_case(40000, seed = 2)
  Xb <- cbind(1, as.matrix(big[, c("x1", "x2")]))
  Yb <- ref_one_hot(big$y)
  gp <- list(W = cbind(matrix(c(5, 5, -5, 5), 2), 0), b0 = c(0, 0, 0), tau = 1)
  ep <- list(coef = matrix(rnorm(3 * k * (K - 1)), 3), sigma2 = rep(1, k))
  one <- moegate:::cpp_observed_information(Xb, Yb, Xb[, -1], cpp_spec(gate_softmax()), espec,
                                            gp, ep, 1L)
  two <- moegate:::cpp_observed_information(Xb, Yb, Xb[, -1], cpp_spec(gate_softmax()), espec,
                                            gp, ep, 2L)
  expect_identical(one$information, two$information)
  # No analytic form (the polish then differences the score): other gates,
  # Gaussian experts with an activated mean (test-information-gaussian.R has
  # the linear ones).
  expect_null(moegate:::cpp_observed_information(X, Y, Z, cpp_spec(gate_cosine()), espec,
                                                 gp, ep, 1L)$information)
  expect_null(moegate:::cpp_observed_information(X, matrix(rnorm(n)), Z, cpp_spec(gate_softmax()),
                                                 cpp_gaussian_spec("tanh"), gp,
                                                 list(coef = matrix(0, 3, k), sigma2 = rep(1, k)),
                                                 1L)$information)
})

test_that("the Newton polish with the analytic information reaches the maximum in few evaluations", {
  d <- multinom_case(5000, seed = 3)
  set.seed(1)
  fit <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial")
  expect_identical(names(fit$converged), "gradient")
  expect_lte(fit$gradient_criterion, 1e-6)
  # The same start polished by L-BFGS (no information) reaches the same
  # maximum; with the differenced information each Newton iteration cost 26
  # evaluations, now one pass plus the step's.
  set.seed(1)
  lbfgs <- moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
               control = moe_control(polish = "lbfgs"))
  expect_equal(fit$loglik, lbfgs$loglik, tolerance = 1e-8)
  if (fit$polish[["runs"]] > 0) expect_lt(fit$polish[["evaluations"]], 26 * fit$polish[["runs"]])
})
