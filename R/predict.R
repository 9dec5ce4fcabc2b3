# Predictions: one row per row of newdata.

# Gate weights, expert outputs and the mixture response at design matrices.
moe_predict_core <- function(object, X, Z, nthreads = object$control$nthreads %||% 1L,
                             arg = "object") {
  U <- gate_input(object$gate, Z)
  storage.mode(X) <- "double"
  storage.mode(U) <- "double"
  object$params <- check_params_design(object$params, X, U, object$expert, arg)
  if (ncol(object$params$gate$W) != object$k) {
    stop_arg(arg, "parameters for its k = ", object$k, " experts")
  }
  cp <- params_to_cpp(object$params, object$expert, object$k)
  lw <- cpp_gate_forward(U, gate_cpp_spec(object$gate), cp$gate, nthreads)$log_weights
  G <- exp(lw)
  enames <- paste0("expert", seq_len(object$k))
  dimnames(G) <- list(rownames(X), enames)
  if (object$expert$family == "gaussian") {
    ev <- cpp_expert_eval(X, matrix(0, 0, 1), expert_cpp_spec(object$expert), cp$expert, nthreads)
    Mu <- ev$mean
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
    eta <- eta - apply(eta, 1, max)
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
#'   (default `x`) and `y`, or a matrix used as `x`.
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
#' @param ... Unused.
#' @return A vector, matrix or array with one row per row of `newdata`; rows
#'   of `newdata` with missing values give `NA`.
#' @examples
#' set.seed(2)
#' d <- data.frame(x = runif(300, -1, 1))
#' d$y <- ifelse(runif(300) < plogis(3 * d$x), 2 * d$x, -1) + rnorm(300, sd = 0.2)
#' fit <- moe(y ~ x, data = d, k = 2)
#' predict(fit, newdata = data.frame(x = c(-0.5, 0, 0.5)))
#' predict(fit, newdata = data.frame(x = c(-0.5, 0, 0.5)), type = "gate")
#' @export
predict.moe <- function(object, newdata,
                        type = c("response", "prob", "class", "gate", "expert", "posterior"),
                        ...) {
  type <- match_arg(type)
  multinomial <- object$expert$family == "multinomial"
  if (type %in% c("prob", "class") && !multinomial) {
    stop_arg("type", '"response", "gate", "expert" or "posterior" for Gaussian experts', got = type)
  }
  if (type == "posterior" && object$method != "ml") {
    stop_arg("type", "not \"posterior\" for a least-squares fit, which has no expert densities")
  }
  nd <- if (missing(newdata) || is.null(newdata)) {
    list(X = object$x, Z = object$z, y = object$y, keep = rep(TRUE, nrow(object$x)))
  } else {
    new_design(object, newdata, need_y = type == "posterior")
  }
  n <- length(nd$keep)
  core <- moe_predict_core(object, nd$X, nd$Z)
  out <- switch(type,
    response = core$response,
    prob = core$prob,
    class = factor(object$levels[max.col(core$prob, ties.method = "first")], levels = object$levels),
    gate = core$gate,
    expert = core$expert,
    posterior = posterior_probs(object, nd, core)
  )
  expand_rows(out, nd$keep)
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
  m <- apply(a, 1, max)
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
  keep <- stats::complete.cases(mf)
  mf <- mf[keep, , drop = FALSE]
  X <- stats::model.matrix(stats::delete.response(object$terms$expert), mf,
                           contrasts.arg = object$contrasts$expert, xlev = object$xlevels)
  Z <- stats::model.matrix(stats::delete.response(object$terms$gate), mf,
                           contrasts.arg = object$contrasts$gate, xlev = object$xlevels)
  Z <- Z[, colnames(Z) != "(Intercept)", drop = FALSE]
  check_finite_matrix(X, "newdata")
  check_finite_matrix(Z, "newdata")
  y <- if (need_y) stats::model.response(mf)
  list(X = X, Z = Z, y = y, keep = keep)
}

new_design_matrix <- function(object, newdata, need_y) {
  if (!is.list(newdata) || is.data.frame(newdata)) newdata <- list(x = newdata)
  if (is.null(newdata$x)) stop_arg("newdata", "a list with element `x` (and optionally `z`, `y`)")
  x <- as_numeric_matrix(newdata$x, "newdata")
  has_intercept <- colnames(object$x)[1] == "(Intercept)"
  X <- if (has_intercept) cbind(`(Intercept)` = 1, x) else x
  if (ncol(X) != ncol(object$x)) {
    stop_arg("newdata", "an `x` with ", ncol(object$x) - has_intercept, " columns; got ", ncol(x))
  }
  from_x <- attr(object$z, "from_x")
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
  if (ncol(Z) != ncol(object$z)) stop_arg("newdata", "a `z` with ", ncol(object$z), " columns; got ", ncol(Z))
  if (nrow(Z) != nrow(X)) stop_arg("newdata", "`x` and `z` with the same number of rows")
  if (need_y && is.null(newdata$y)) stop_arg("newdata", "the response `y` for posterior probabilities")
  keep <- stats::complete.cases(X, Z)
  list(X = X[keep, , drop = FALSE], Z = Z[keep, , drop = FALSE],
       y = if (need_y) newdata$y[keep], keep = keep)
}
