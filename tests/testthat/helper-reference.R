# Plain-R reference implementations of every compiled piece of moegate.
#
# These are deliberately written from the formulas of MODELS.md (sections 1-3)
# and not from the C++ code: straightforward, vectorised R, numerically stable
# only where R itself is (log-sum-exp, plogis(log.p = TRUE)). The tests compare
# the compiled entry points (moegate:::cpp_*) against them.

# ---- small numerics -----------------------------------------------------------

# Row-wise log(sum(exp(A))) without overflow.
ref_lse_rows <- function(A) {
  m <- apply(A, 1, max)
  m + log(rowSums(exp(A - m)))
}

# Central finite-difference gradient of a scalar function f at theta. The
# step is relative to each coordinate so that parameters of very different
# size (a variance of 0.1, a gate vector entry of 3) are differenced alike.
ref_fd_grad <- function(f, theta, h = 1e-5) ref_fd_jacobian(f, theta, h)

# Central finite-difference Jacobian (columns: d f / d theta_j) of a
# vector-valued f, with the same relative steps (a vector for scalar f).
ref_fd_jacobian <- function(f, theta, h = 1e-5) {
  vapply(seq_along(theta), function(j) {
    step <- h * max(1, abs(theta[j]))
    up <- theta
    dn <- theta
    up[j] <- up[j] + step
    dn[j] <- dn[j] - step
    (f(up) - f(dn)) / (2 * step)
  }, numeric(length(f(theta))))
}

# ---- gate pipeline ------------------------------------------------------------

ref_gate_transform <- function(Z, transform) {
  switch(transform,
    identity = Z,
    tanh = tanh(Z),
    sigmoid = stats::plogis(Z),
    stop("unknown transform ", transform)
  )
}

# n x k scores s_ni = score(u_n; w_i).
ref_gate_score <- function(U, W, score, eps_w = 0, eps_u = 0) {
  n <- nrow(U)
  k <- ncol(W)
  norm_u <- sqrt(rowSums(U^2))
  norm_w <- sqrt(colSums(W^2))
  sq_dist <- vapply(seq_len(k), function(i) {
    rowSums((U - matrix(W[, i], n, nrow(W), byrow = TRUE))^2)
  }, numeric(n))
  sq_dist <- matrix(sq_dist, n, k)
  out <- switch(score,
    inner = U %*% W,
    cosine = (U %*% W) / outer(norm_u, norm_w),
    perturbed_cosine = (U %*% W) / outer(norm_u + eps_u, norm_w + eps_w),
    euclidean_sq = -sq_dist,
    euclidean = -sqrt(sq_dist),
    stop("unknown score ", score)
  )
  # Convention of moegate (0/0 taken as 0): a zero input row or a zero gate
  # vector gets cosine score 0.
  if (score %in% c("cosine", "perturbed_cosine")) {
    out[norm_u == 0, ] <- 0
    out[, norm_w == 0] <- 0
  }
  out
}

ref_activation <- function(x, activation) {
  switch(activation,
    identity = x,
    tanh = tanh(x),
    sigmoid = stats::plogis(x),
    logsigmoid = stats::plogis(x, log.p = TRUE),
    gelu = x * stats::pnorm(x),
    relu = pmax(x, 0),
    stop("unknown activation ", activation)
  )
}

# Logits a_ni (steps 1-5 of the pipeline) and log-weights log G_ni (step 6).
# `spec` is a moe_gate object or its C++ list (moegate:::gate_cpp_spec), and
# `params` a list(W = q x k, b0 = k, tau = scalar).
ref_gate_forward <- function(Z, spec, params) {
  U <- ref_gate_transform(Z, spec$transform)
  n <- nrow(U)
  k <- ncol(params$W)
  B0 <- matrix(params$b0, n, k, byrow = TRUE)
  S <- ref_gate_score(U, params$W, spec$score, spec$eps_w, spec$eps_u)
  inside <- identical(spec$intercept, "inside")
  if (inside) S <- S + B0
  H <- ref_activation(S, spec$activation) / params$tau
  if (!inside) H <- H + B0
  normalizer <- spec$normalizer
  logG <- switch(normalizer,
    softmax = H - ref_lse_rows(H),
    normalized_sigmoid = {
      L <- stats::plogis(H, log.p = TRUE)
      L - ref_lse_rows(L)
    },
    sigmoid = stats::plogis(H, log.p = TRUE),
    stop("unknown normalizer ", normalizer)
  )
  list(input = U, logits = H, log_weights = logG)
}

# The gate's EM objective sum_ni R_ni log G_ni.
ref_gate_objective <- function(Z, R, spec, params) {
  sum(R * ref_gate_forward(Z, spec, params)$log_weights)
}

# ---- experts --------------------------------------------------------------------

# Gaussian experts: coef p x k, sigma2 length k, y numeric; mean act(X coef).
ref_gaussian_mean <- function(X, coef, activation = "identity") {
  ref_activation(X %*% coef, activation)
}

ref_gaussian_logdens <- function(X, y, coef, sigma2, activation = "identity") {
  mu <- ref_gaussian_mean(X, coef, activation)
  k <- ncol(coef)
  matrix(vapply(seq_len(k), function(i) {
    stats::dnorm(y, mu[, i], sqrt(sigma2[i]), log = TRUE)
  }, numeric(nrow(X))), nrow(X), k)
}

# Multinomial experts in the C++ layout: coef is p x (k (K - 1)), expert i owns
# columns (i - 1) (K - 1) + 1:(K - 1); the LAST class is the reference (its
# linear predictor is 0). Y is the n x K one-hot response matrix.
ref_multinomial_logdens <- function(X, Y, coef, K) {
  k <- ncol(coef) / (K - 1)
  matrix(vapply(seq_len(k), function(i) {
    eta <- cbind(X %*% coef[, (i - 1) * (K - 1) + seq_len(K - 1), drop = FALSE], 0)
    logp <- eta - ref_lse_rows(eta)
    rowSums(Y * logp)
  }, numeric(nrow(X))), nrow(X), k)
}

# One-hot n x K matrix of a factor.
ref_one_hot <- function(y) {
  y <- factor(y)
  Y <- matrix(0, length(y), nlevels(y))
  Y[cbind(seq_along(y), as.integer(y))] <- 1
  Y
}

# ---- mixture ----------------------------------------------------------------------

# Log-likelihood sum_n log sum_i G_ni f_ni and posterior r_ni, from the n x k
# log-weights and log-densities.
ref_mixture <- function(logG, logF) {
  A <- logG + logF
  lse <- ref_lse_rows(A)
  list(loglik = sum(lse), posterior = exp(A - lse))
}

# Log-likelihood of a Gaussian MoE at gate parameters `gp` (W, b0, tau) and
# expert parameters `ep` (coef, sigma2).
ref_gaussian_moe_loglik <- function(X, y, Z, spec, gp, ep, activation = "identity") {
  logG <- ref_gate_forward(Z, spec, gp)$log_weights
  logF <- ref_gaussian_logdens(X, y, ep$coef, ep$sigma2, activation)
  ref_mixture(logG, logF)
}

# ---- least squares -------------------------------------------------------------

# Residual sum of squares of the regression function m = sum_i G_i act(a_i'x).
ref_lsq_rss <- function(X, y, Z, spec, gp, coef, activation = "identity") {
  G <- exp(ref_gate_forward(Z, spec, gp)$log_weights)
  m <- rowSums(G * ref_gaussian_mean(X, coef, activation))
  sum((y - m)^2)
}

# ---- helpers shared by several test files ---------------------------------------

# Gate spec list for the C++ entry points from a moe_gate object.
cpp_spec <- function(g) moegate:::gate_cpp_spec(g)

# Gaussian / multinomial expert spec lists for the C++ entry points.
cpp_gaussian_spec <- function(activation = "identity", var_floor = 0) {
  list(family = "gaussian", activation = activation, var_floor = var_floor, n_classes = 0L)
}
cpp_multinomial_spec <- function(K) {
  list(family = "multinomial", activation = "identity", var_floor = 0, n_classes = as.integer(K))
}

# Match fitted experts to true ones: the permutation `perm` with fitted expert
# perm[j] matched to true expert j, minimising the total squared distance of
# the expert coefficient columns (k! permutations; k is small in tests).
match_experts <- function(coef_fit, coef_true) {
  k <- ncol(coef_true)
  perms <- all_permutations(k)
  cost <- apply(perms, 1, function(p) sum((coef_fit[, p, drop = FALSE] - coef_true)^2))
  perms[which.min(cost), ]
}

all_permutations <- function(k) {
  if (k == 1) return(matrix(1L, 1, 1))
  sub <- all_permutations(k - 1)
  do.call(rbind, lapply(seq_len(k), function(first) {
    rest <- setdiff(seq_len(k), first)
    cbind(first, matrix(rest[sub], nrow(sub)))
  }))
}

# Largest absolute difference relative to the size of the target (at least 1).
rel_err <- function(actual, expected) {
  if (length(actual) != length(expected)) return(Inf)
  max(abs(actual - expected), 0) / max(1, abs(expected))
}

# One expectation for a whole grid of configurations: `err` is a named vector
# of errors (one per configuration), `tol` a scalar or a vector of the same
# length. Failing configurations are listed by name. One expectation per grid
# instead of one per configuration keeps the gate grid (1080 configurations)
# fast.
expect_all_within <- function(err, tol, what) {
  tol <- rep_len(tol, length(err))
  bad <- which(!(err <= tol))
  shown <- utils::head(bad, 8)
  expect(length(bad) == 0,
         sprintf("%s: %d of %d configurations fail: %s", what, length(bad), length(err),
                 paste0(names(err)[shown], " (", signif(err[shown], 3), ")", collapse = "; ")))
  invisible(err)
}

expect_all_true <- function(ok, what) {
  expect_all_within(ifelse(ok, 0, 1), 0.5, what)
}

# Should slow tests run?
slow_tests <- function() identical(Sys.getenv("MOEGATE_SLOW_TESTS"), "true")
