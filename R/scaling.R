# Internal centring and scaling of the designs and the response.
#
# A fit must not depend on the units or the origin of covariates and response
# wherever the model does not: `y ~ I(x + 1000)` is the same model as
# `y ~ x`. In the original units the normal equations of such a design are
# ill-conditioned (condition ~ (shift / sd)^2), pivot tests skip M-steps and
# Newton steps get damped to nothing, and the fit comes back at its start
# marked converged. The fit therefore runs on standardised copies of the
# designs, and its estimates are mapped back:
# * expert design X: columns scaled by their spread; centred too when X has a
#   constant (intercept) column, which absorbs the shift. The linear
#   predictor X beta is unchanged, so this holds for every expert family and
#   activation.
# * gate input U (inner-product score, no compiled input transform): columns
#   scaled; centred when the shift can be absorbed by the gate intercepts,
#   i.e. with the identity activation or the intercept inside the
#   activation. The Euclidean scores depend on u - w only: their input is
#   centred (w shifted alike); with an estimated temperature and the
#   identity activation it is also scaled by one common factor s, which the
#   temperature absorbs (tau / s^2 for the squared distance, tau / s for the
#   distance; at a fixed temperature the model depends on the units).
#   Cosine scores are not invariant to shifts or per-column scales, and
#   transformed inputs (tanh, sigmoid) neither: those are left alone.
# * Gaussian response with the identity activation: scaled by its standard
#   deviation, and centred when X has an intercept and the gate weights sum
#   to one (always for likelihood fits).
# The log-likelihood in the original units differs from the internal one by
# the Jacobian term -n log(scale of y).

# Centre and scale of the columns of M. `centre`: centre the non-constant
# columns when M has a constant non-zero column (its intercept). `scale`:
# FALSE keeps every scale at 1. The intercept column is scaled to exactly 1.
column_scaling <- function(M, centre = TRUE, scale = TRUE, w = NULL) {
  p <- ncol(M)
  out <- list(centre = numeric(p), scale = rep(1, p), icol = 0L)
  if (p == 0 || nrow(M) == 0 || !scale) return(out)
  first <- M[1, ]
  constant <- if (is.double(M)) cpp_constant_columns(M) else
    vapply(seq_len(p), function(j) all(M[, j] == first[j]), TRUE)
  icol <- which(constant & first != 0)
  out$icol <- if (length(icol)) icol[1] else 0L
  centred <- centre && out$icol > 0
  # Without weights in place in C++ (the same numbers as mean()).
  mom <- if (is.null(w) && is.double(M)) cpp_column_moments(M, centred)
  for (j in seq_len(p)) {
    if (constant[j]) {
      if (j == out$icol) out$scale[j] <- first[j]
      next
    }
    if (is.null(mom)) {
      v <- M[, j]
      cj <- if (centred) wmean(v, w) else 0
      sj <- sqrt(wmean((v - cj)^2, w))
    } else {
      cj <- mom$centre[j]
      sj <- sqrt(mom$msd[j])
    }
    if (!is.finite(sj) || sj <= 0) {
      cj <- 0
      sj <- 1
    }
    out$centre[j] <- cj
    out$scale[j] <- sj
  }
  out
}

# Means with case weights (NULL: none), so that a weighted fit runs in the
# same internal units as the fit of the replicated rows.
wmean <- function(v, w) if (is.null(w)) mean(v) else sum(w * v) / sum(w)

# The scaling of one fit: a function of the data, the case weights and the
# model only, so methods (vcov) can rebuild it from the fitted object.
design_scaling <- function(X, U, y, expert, gate, method, weights = NULL) {
  w <- weights
  xs <- column_scaling(X, centre = TRUE, w = w)
  inner <- identical(gate$score, "inner") && identical(gate$transform, "identity")
  gate_centre <- inner && (gate$activation == "identity" || gate$intercept == "inside")
  us <- column_scaling(if (is.matrix(U)) U else cbind(U), centre = FALSE, scale = inner, w = w)
  if (gate_centre && ncol(U) > 0) {
    # The gate has its own intercepts: every non-constant column is centred.
    in_place <- is.null(w) && is.double(U)
    mom <- if (in_place) cpp_column_moments(U, TRUE)
    constant_u <- if (in_place) cpp_constant_columns(U)
    for (j in seq_len(ncol(U))) {
      if (in_place) {
        if (constant_u[j]) next
        us$centre[j] <- mom$centre[j]
        us$scale[j] <- sqrt(mom$msd[j])
      } else {
        v <- U[, j]
        if (all(v == v[1])) next
        us$centre[j] <- wmean(v, w)
        us$scale[j] <- sqrt(wmean((v - us$centre[j])^2, w))
      }
      if (!is.finite(us$scale[j]) || us$scale[j] <= 0) {
        us$centre[j] <- 0
        us$scale[j] <- 1
      }
    }
  }
  us$icol <- 0L
  us$euclidean <- gate$score %in% c("euclidean", "euclidean_sq") &&
    identical(gate$transform, "identity")
  us$power <- 0
  if (us$euclidean && ncol(U) > 0) {
    us$centre <- apply(U, 2, wmean, w = w)
    if (isTRUE(gate$estimate_tau) && gate$activation == "identity") {
      common <- sqrt(wmean(rowMeans(sweep(U, 2, us$centre)^2), w))
      if (is.finite(common) && common > 0) {
        us$scale <- rep(common, ncol(U))
        us$power <- if (gate$score == "euclidean_sq") 2 else 1
      }
    }
  }
  y_centre <- 0
  y_scale <- 1
  if (expert$family == "gaussian" && expert$activation == "identity") {
    yv <- as.numeric(y)
    normalized <- method == "ml" || gate$normalizer != "sigmoid"
    if (xs$icol > 0 && normalized) y_centre <- wmean(yv, w)
    y_scale <- sqrt(wmean((yv - y_centre)^2, w))
    if (!is.finite(y_scale) || y_scale <= 0) y_scale <- 1
  }
  list(x = xs, u = us, y_centre = y_centre, y_scale = y_scale,
       intercept_inside = gate$intercept == "inside")
}

scale_columns <- function(M, s) {
  if (ncol(M) == 0) return(M)
  if (is.double(M) && length(s$centre) == ncol(M) && length(s$scale) == ncol(M)) {
    # In C++ into one new matrix: the R loop below left two full-length
    # temporaries per column for the garbage collector (176 MB at n = 1e6,
    # 11 columns). The same arithmetic, so the same numbers.
    out <- cpp_scale_columns(M, as.numeric(s$centre), as.numeric(s$scale), as.integer(s$icol))
    dimnames(out) <- dimnames(M)
    return(out)
  }
  # Column by column into one copy (two sweep()s made two full-size copies);
  # the same (x - centre) / scale, so the same numbers.
  out <- M
  attributes(out) <- attributes(M)[c("dim", "dimnames")]
  storage.mode(out) <- "double"
  for (j in seq_len(ncol(M))) {
    if (j == s$icol) {
      out[, j] <- 1
    } else if (s$centre[j] != 0 || s$scale[j] != 1) {
      out[, j] <- (M[, j] - s$centre[j]) / s$scale[j]
    }
  }
  out
}

# Expert coefficients (one column per linear predictor) between the units.
coef_to_internal <- function(B, sc) {
  s <- sc$x
  G <- B * s$scale
  if (s$icol > 0) G[s$icol, ] <- G[s$icol, ] + colSums(B * s$centre)
  G
}

coef_from_internal <- function(G, sc) {
  s <- sc$x
  B <- G / s$scale
  if (s$icol > 0) B[s$icol, ] <- (G[s$icol, ] - colSums(B[-s$icol, , drop = FALSE] *
                                                       s$centre[-s$icol])) / s$scale[s$icol]
  B
}

# moe_params between the original units and the internal ones.
params_to_internal <- function(params, sc, expert) {
  W <- params$gate$W
  if (isTRUE(sc$u$euclidean)) {
    # Scores of u - w: the gate vectors move with the inputs' centre; a
    # common scale s of the inputs goes into the temperature.
    s <- if (length(sc$u$scale)) sc$u$scale[1] else 1
    params$gate$W <- (W - sc$u$centre) / s
    params$gate$tau <- params$gate$tau / s^sc$u$power
    if (sc$intercept_inside) params$gate$b0 <- params$gate$b0 / s^sc$u$power
  } else {
    offset <- colSums(W * sc$u$centre)
    params$gate$W <- W * sc$u$scale
    params$gate$b0 <- params$gate$b0 +
      if (sc$intercept_inside) offset else offset / params$gate$tau
  }
  coef <- params$expert$coef
  if (expert$family == "multinomial") {
    d <- dim(coef)
    params$expert$coef <- array(coef_to_internal(matrix(coef, d[1]), sc), d, dimnames(coef))
  } else {
    G <- coef_to_internal(coef, sc)
    if (sc$x$icol > 0) G[sc$x$icol, ] <- G[sc$x$icol, ] - sc$y_centre
    params$expert$coef <- G / sc$y_scale
    if (!is.null(params$expert$sigma2)) params$expert$sigma2 <- params$expert$sigma2 / sc$y_scale^2
  }
  params
}

params_from_internal <- function(params, sc, expert) {
  if (isTRUE(sc$u$euclidean)) {
    s <- if (length(sc$u$scale)) sc$u$scale[1] else 1
    params$gate$W[] <- params$gate$W * s + sc$u$centre
    params$gate$tau <- params$gate$tau * s^sc$u$power
    if (sc$intercept_inside) params$gate$b0[] <- params$gate$b0 * s^sc$u$power
  } else {
    W <- params$gate$W / sc$u$scale
    offset <- colSums(W * sc$u$centre)
    params$gate$W[] <- W
    params$gate$b0[] <- params$gate$b0 -
      if (sc$intercept_inside) offset else offset / params$gate$tau
  }
  coef <- params$expert$coef
  if (expert$family == "multinomial") {
    d <- dim(coef)
    params$expert$coef[] <- coef_from_internal(matrix(coef, d[1]), sc)
  } else {
    G <- coef * sc$y_scale
    if (sc$x$icol > 0) G[sc$x$icol, ] <- G[sc$x$icol, ] + sc$y_centre
    params$expert$coef[] <- coef_from_internal(G, sc)
    if (!is.null(params$expert$sigma2)) {
      params$expert$sigma2[] <- params$expert$sigma2 * sc$y_scale^2
    }
  }
  params
}

# The fitted object in internal units (designs, response and parameters):
# what the covariance is computed from, since the observed information in
# the original units can be as ill-conditioned as the fit was.
internal_object <- function(object) {
  X <- model_design(object, "expert")
  U <- gate_input(object$gate, model_design(object, "gate"))
  y <- fit_response(object)
  sc <- design_scaling(X, U, y, object$expert, object$gate, object$method,
                       object$weights)
  int <- object
  int$x <- scale_columns(X, sc$x)
  int$z <- scale_columns(U, sc$u)
  int$gate$transform_fun <- NULL
  if (object$expert$family == "gaussian") {
    # The offset is already subtracted from the response (fit_response()).
    int$y <- (as.numeric(y) - sc$y_centre) / sc$y_scale
    int$offset <- NULL
    if (!is.null(object$sigma2)) int$sigma2 <- object$sigma2 / sc$y_scale^2
  }
  int$params <- params_to_internal(object$params, sc, object$expert)
  list(object = int, scaling = sc)
}
