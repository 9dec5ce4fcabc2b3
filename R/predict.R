# Predictions: one row per row of newdata.

# Gate weights, expert outputs and the mixture response at design matrices.
# `offset`: the expert offset of these rows (NULL: none), added to every
# expert mean.
moe_predict_core <- function(object, X, Z, nthreads = object$control$nthreads %||% 1L,
                             arg = "object", offset = NULL) {
  U <- gate_input(object$gate, Z)
  if (!is.double(X)) storage.mode(X) <- "double"
  if (!is.double(U)) storage.mode(U) <- "double"
  object$params <- check_params_design(object$params, X, U, object$expert, arg)
  if (ncol(object$params$gate$W) != object$k) {
    stop_arg(arg, "parameters for its k = ", object$k, " experts")
  }
  cp <- params_to_cpp(object$params, object$expert, object$k)
  # Only the log-weights come back (not the n x q input and the logits).
  lw <- cpp_gate_forward(U, gate_cpp_spec(object$gate), cp$gate, nthreads,
                         log_weights_only = TRUE)$log_weights
  G <- exp(lw)
  enames <- paste0("expert", seq_len(object$k))
  dimnames(G) <- list(rownames(X), enames)
  if (object$expert$family == "gaussian") {
    ev <- cpp_expert_eval(X, matrix(0, 0, 1), expert_cpp_spec(object$expert), cp$expert, nthreads)
    Mu <- ev$mean
    if (!is.null(offset)) Mu <- Mu + offset
    dimnames(Mu) <- list(rownames(X), enames)
    return(list(gate = G, expert = Mu, response = rowSums(G * Mu), log_gate = lw))
  }
  P <- expert_class_probs(object$params$expert$coef, X, object$levels)
  prob <- matrix(0, nrow(X), length(object$levels), dimnames = list(rownames(X), object$levels))
  for (i in seq_len(object$k)) prob <- prob + G[, i] * P[, , i]
  list(gate = G, expert = P, prob = prob, response = prob, log_gate = lw)
}

# n x K x k class probabilities of multinomial experts (last class reference).
expert_class_probs <- function(coef, X, levels) {
  k <- dim(coef)[3]
  K <- dim(coef)[2] + 1
  P <- array(0, c(nrow(X), K, k), dimnames = list(rownames(X), levels, paste0("expert", seq_len(k))))
  for (i in seq_len(k)) {
    eta <- cbind(X %*% coef[, , i, drop = FALSE][, , 1], 0)
    # The row maxima column by column: apply() over the rows took 70% of a
    # one-iteration fit at n = 5e4 (the same numbers).
    mx <- eta[, 1]
    for (j in seq_len(K)[-1]) mx <- pmax(mx, eta[, j])
    eta <- eta - mx
    e <- exp(eta)
    P[, , i] <- e / rowSums(e)
  }
  P
}

#' Predictions from a mixture of experts
#'
#' @param object A fitted [moe()] model.
#' @param newdata A data frame with the covariates (and, for
#'   `type = "posterior"`, the response). Missing: the data the model was fitted
#'   to. For fits from the matrix interface, a list with elements `x`, `z`
#'   (default `x`), `y` and, for fits with an offset, `offset`; or a matrix
#'   used as `x`. The expert offset of a fit (see [moe()]) is taken from
#'   `newdata`.
#' @param type What to predict:
#'   * `"response"`: the mixture mean \eqn{\sum_i G_i(z) \mu_i(x)} (Gaussian) or
#'     the class probabilities (multinomial);
#'   * `"prob"`: class probabilities (multinomial);
#'   * `"class"`: the most probable class (multinomial), a factor;
#'   * `"gate"`: the n x k gate weights;
#'   * `"expert"`: the n x k expert means (Gaussian) or the n x K x k array of
#'     expert class probabilities (multinomial);
#'   * `"posterior"`: the n x k posterior expert probabilities given the
#'     response (likelihood fits).
#' @param se.fit Logical: also return standard errors, by the delta method
#'   from [vcov.moe()] (central differences of the prediction in the free
#'   parameters)? Available for `type = "response"`, `"prob"`, `"gate"` and
#'   `"expert"`. A standard error is `NA` when the prediction moves along a
#'   parameter direction whose variance the likelihood does not identify.
#' @param ... Unused: anything else (`interval = `, a misspelt argument) is
#'   an error.
#' @return A vector, matrix or array with one row per row of `newdata`; rows
#'   of `newdata` with missing values give `NA`. Without `newdata`, rows that
#'   `na.action = na.exclude` dropped from the fit are `NA`, as in
#'   [stats::predict.lm()]. With `se.fit = TRUE`, a list with `fit` (that
#'   result) and `se.fit` (its standard errors, of the same shape).
#' @examples
#' set.seed(2)
#' d <- data.frame(x = runif(300, -1, 1))
#' d$y <- ifelse(runif(300) < plogis(3 * d$x), 2 * d$x, -1) + rnorm(300, sd = 0.2)
#' fit <- moe(y ~ x, data = d, k = 2)
#' predict(fit, newdata = data.frame(x = c(-0.5, 0, 0.5)))
#' predict(fit, newdata = data.frame(x = c(-0.5, 0, 0.5)), type = "gate")
#' predict(fit, newdata = data.frame(x = c(-0.5, 0, 0.5)), se.fit = TRUE)
#' @export
predict.moe <- function(object, newdata,
                        type = c("response", "prob", "class", "gate", "expert", "posterior"),
                        se.fit = FALSE, ...) {
  check_dots(...)
  type <- match_arg(type)
  check_flag(se.fit, "se.fit")
  if (se.fit && type %in% c("class", "posterior")) {
    stop_arg("se.fit", "FALSE for type = \"", type, "\" (standard errors are available for ",
             "\"response\", \"prob\", \"gate\" and \"expert\")")
  }
  multinomial <- object$expert$family == "multinomial"
  if (type %in% c("prob", "class") && !multinomial) {
    stop_arg("type", '"response", "gate", "expert" or "posterior" for Gaussian experts', got = type)
  }
  if (type == "posterior" && object$method != "ml") {
    stop_arg("type", "not \"posterior\" for a least-squares fit, which has no expert densities")
  }
  own_data <- missing(newdata) || is.null(newdata)
  nd <- if (own_data) {
    list(X = model_design(object, "expert"), Z = model_design(object, "gate"), y = object$y,
         offset = object$offset, keep = rep(TRUE, NROW(object$y)))
  } else {
    new_design(object, newdata, need_y = type == "posterior")
  }
  value <- function(obj) {
    core <- moe_predict_core(obj, nd$X, nd$Z, offset = nd$offset)
    switch(type,
      response = core$response,
      prob = core$prob,
      class = factor(obj$levels[max.col(core$prob, ties.method = "first")], levels = obj$levels),
      gate = core$gate,
      expert = core$expert,
      posterior = posterior_probs(obj, nd, core)
    )
  }
  out <- value(object)
  pad <- function(v) if (own_data) pad_excluded(v, object$na.action) else expand_rows(v, nd$keep)
  if (!se.fit) return(pad(out))
  se <- delta_se(object, value, out)
  list(fit = pad(out), se.fit = pad(se))
}

# Delta-method standard errors of a prediction `value(object)` (a numeric
# vector, matrix or array `out`): J V J' with J the central-difference
# Jacobian in the free parameters and V = vcov(object). Variances do not move
# a prediction (means and gate weights only), so their columns are skipped.
# A parameter with an NA variance (a direction the likelihood does not
# identify) leaves the standard error NA unless the prediction does not move
# along it.
delta_se <- function(object, value, out) {
  layout <- free_layout(object)
  theta <- layout$values
  V <- vcov(object)
  use <- which(!layout$variance)
  h <- .Machine$double.eps^(1 / 3) * pmax(abs(theta), 1)
  J <- vapply(use, function(j) {
    up <- down <- theta
    up[j] <- up[j] + h[j]
    down[j] <- down[j] - h[j]
    at <- function(v) {
      obj <- object
      obj$params <- relist_free(object, v)
      as.numeric(value(obj))
    }
    (at(up) - at(down)) / (2 * h[j])
  }, numeric(length(out)))
  J <- matrix(J, nrow = length(out))
  Vu <- V[use, use, drop = FALSE]
  moves <- apply(abs(J), 2, max) > 1e-8 * max(abs(J), 1e-300)
  unknown <- apply(is.na(Vu), 2, any) & moves
  Vu[is.na(Vu)] <- 0
  var <- rowSums((J %*% Vu) * J)
  se <- sqrt(pmax(var, 0))
  # Rows that load on a parameter of unknown variance.
  if (any(unknown)) se[apply(abs(J[, unknown, drop = FALSE]) > 1e-8 * max(abs(J), 1e-300), 1, any)] <- NA
  if (is.null(dim(out))) return(stats::setNames(se, names(out)))
  array(se, dim = dim(out), dimnames = dimnames(out))
}

# Predictions at the fitted data with rows dropped by na.exclude put back as
# NA, as napredict() does for lm (which cannot pad the 3-d expert array).
pad_excluded <- function(out, na_action) {
  if (!inherits(na_action, "exclude")) return(out)
  n_used <- NROW(out)
  keep <- rep(TRUE, n_used + length(na_action))
  keep[na_action] <- FALSE
  used_names <- if (is.null(dim(out))) names(out) else dimnames(out)[[1]]
  full <- expand_rows(out, keep)
  row_names <- character(length(keep))
  row_names[keep] <- used_names %||% as.character(which(keep))
  row_names[!keep] <- names(na_action) %||% as.character(which(!keep))
  if (is.null(dim(full))) names(full) <- row_names else dimnames(full)[[1]] <- row_names
  full
}

posterior_probs <- function(object, nd, core) {
  resp <- response_matrix(nd$y, object$expert)
  if (object$expert$family == "multinomial") {
    if (!all(levels(droplevels(factor(nd$y))) %in% object$levels)) {
      stop_arg("newdata", "a response whose classes were seen in the fit (", paste(object$levels, collapse = ", "), ")")
    }
    yi <- match(as.character(nd$y), object$levels)
    logf <- vapply(seq_len(object$k), function(i) log(core$expert[cbind(seq_along(yi), yi, i)]),
                   numeric(length(yi)))
  } else {
    mu <- core$expert
    s2 <- object$params$expert$sigma2
    logf <- vapply(seq_len(object$k), function(i) {
      stats::dnorm(resp$Y[, 1], mu[, i], sqrt(s2[i]), log = TRUE)
    }, numeric(nrow(mu)))
  }
  a <- core$log_gate + matrix(logf, ncol = object$k)
  m <- row_max(a)
  post <- exp(a - m)
  post <- post / rowSums(post)
  dimnames(post) <- dimnames(core$gate)
  post
}

# Put NA rows back so that the result has one row per row of newdata.
expand_rows <- function(out, keep) {
  if (all(keep)) return(out)
  n <- length(keep)
  if (is.factor(out)) {
    full <- factor(rep(NA, n), levels = levels(out))
    full[keep] <- out
    return(full)
  }
  if (is.null(dim(out))) {
    full <- rep(NA_real_, n)
    full[keep] <- out
    return(full)
  }
  d <- dim(out)
  d[1] <- n
  full <- array(NA_real_, d)
  if (length(d) == 2) full[keep, ] <- out else full[keep, , ] <- out
  dn <- dimnames(out)
  if (!is.null(dn)) { dn[1] <- list(NULL); dimnames(full) <- dn }
  full
}

# Design matrices for new data, in the fit's coding.
new_design <- function(object, newdata, need_y) {
  if (is.null(object$terms)) return(new_design_matrix(object, newdata, need_y))
  if (!is.data.frame(newdata)) newdata <- tryCatch(as.data.frame(newdata), error = function(e) {
    stop_arg("newdata", "a data frame", got = newdata)
  })
  tt <- if (need_y) object$terms$full else stats::delete.response(object$terms$full)
  mf <- tryCatch(
    stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = object$xlevels),
    error = function(e) {
      msg <- conditionMessage(e)
      if (grepl("new level", msg)) {
        stop_arg("newdata", "factor levels seen in the fit: ", msg)
      }
      stop_arg("newdata", "a data frame with the model's variables: ", msg)
    })
  offset <- NULL
  if (!is.null(object$offset)) {
    offset <- formula_offset(mf, object$terms$expert) %||% rep(0, nrow(mf))
    if (!is.null(object$call$offset)) {
      # The `offset` argument of the call, evaluated in newdata as lm does.
      extra <- eval(object$call$offset, newdata, environment(object$terms$full))
      if (!is.numeric(extra) || length(extra) != nrow(mf)) {
        stop_arg("newdata", "the variables of the fit's `offset` argument (one value per row)")
      }
      offset <- offset + extra
    }
  }
  keep <- stats::complete.cases(mf) & (if (is.null(offset)) TRUE else !is.na(offset))
  mf <- mf[keep, , drop = FALSE]
  offset <- offset[keep]
  X <- stats::model.matrix(stats::delete.response(object$terms$expert), mf,
                           contrasts.arg = object$contrasts$expert, xlev = object$xlevels)
  Z <- stats::model.matrix(stats::delete.response(object$terms$gate), mf,
                           contrasts.arg = object$contrasts$gate, xlev = object$xlevels)
  Z <- Z[, colnames(Z) != "(Intercept)", drop = FALSE]
  check_finite_matrix(X, "newdata")
  check_finite_matrix(Z, "newdata")
  y <- if (need_y) stats::model.response(mf)
  list(X = X, Z = Z, y = y, offset = offset, keep = keep)
}

new_design_matrix <- function(object, newdata, need_y) {
  if (!is.list(newdata) || is.data.frame(newdata)) newdata <- list(x = newdata)
  if (is.null(newdata$x)) stop_arg("newdata", "a list with element `x` (and optionally `z`, `y`)")
  x <- as_numeric_matrix(newdata$x, "newdata")
  # The designs' shapes without building them (model_design() would).
  x_names <- if (!is.null(object$x)) colnames(object$x) else dimnames(object$params$expert$coef)[[1]]
  p <- length(x_names)
  has_intercept <- x_names[1] == "(Intercept)"
  X <- if (has_intercept) cbind(`(Intercept)` = 1, x) else x
  if (ncol(X) != p) {
    stop_arg("newdata", "an `x` with ", p - has_intercept, " columns; got ", ncol(x))
  }
  from_x <- gate_from_x(object)
  q <- if (!is.null(object$z)) ncol(object$z) else if (is.numeric(from_x)) length(from_x) else
    ncol(object$inputs$z)
  Z <- if (!is.null(newdata$z)) {
    as_numeric_matrix(newdata$z, "newdata")
  } else if (isFALSE(from_x)) {
    stop_arg("newdata", "a list with the gate covariates `z` as well as `x`: the model was ",
             "fitted with its own `z`")
  } else if (is.null(from_x)) {
    x
  } else {
    # The default z of the fit: x without the columns that were constant there.
    x[, from_x[from_x <= ncol(x)], drop = FALSE]
  }
  if (ncol(Z) != q) stop_arg("newdata", "a `z` with ", q, " columns; got ", ncol(Z))
  if (nrow(Z) != nrow(X)) stop_arg("newdata", "`x` and `z` with the same number of rows")
  if (need_y && is.null(newdata$y)) stop_arg("newdata", "the response `y` for posterior probabilities")
  offset <- NULL
  if (!is.null(object$offset)) {
    if (is.null(newdata$offset)) {
      stop_arg("newdata", "a list with element `offset`: the fit has an expert offset")
    }
    offset <- newdata$offset
    if (!is.numeric(offset) || length(offset) != nrow(X)) {
      stop_arg("newdata", "an `offset` with one value per row of `x` (", nrow(X), ")")
    }
  }
  keep <- stats::complete.cases(X, Z) & (if (is.null(offset)) TRUE else !is.na(offset))
  list(X = X[keep, , drop = FALSE], Z = Z[keep, , drop = FALSE],
       y = if (need_y) newdata$y[keep], offset = offset[keep], keep = keep)
}
