# S3 methods for fitted mixtures of experts (class "moe") and for parameter
# lists (class "moe_params").

# ---- packing: the free parameters in the order of the compiled code ----------

# The packed order mirrors Gate::pack and Expert::pack (src/gate.cpp,
# src/expert.cpp) and LsqProblem::pack (src/lsq.cpp): gate vectors of the
# free experts, free intercepts, log tau when estimated, then the experts.
# Least-squares fits end with the common noise variance.
free_layout <- function(object) {
  params <- object$params
  k <- object$k
  W <- params$gate$W
  info <- gate_info(object$gate, nrow(W), k)
  kw <- if (info$w_reference) k - 1L else k
  kb <- if (info$b_reference) k - 1L else k
  # recycle0: no names at all (not "gate.expert1.") when a part is empty.
  glue <- function(...) paste0(..., recycle0 = TRUE)
  wn <- rownames(W) %||% glue("u", seq_len(nrow(W)))
  coef <- params$expert$coef
  # The expert design's column names (without a stored design: the
  # coefficients carry them, as the fit named them).
  xn <- if (!is.null(object$x)) colnames(object$x) %||% glue("x", seq_len(ncol(object$x))) else
    dimnames(coef)[[1]] %||% glue("x", seq_len(dim(coef)[1]))
  gate_names <- c(
    unlist(lapply(seq_len(kw), function(i) glue("gate.expert", i, ".", wn))),
    glue("gate.expert", seq_len(kb), ".(Intercept)"),
    if (object$gate$estimate_tau) "gate.log_tau"
  )
  gate_values <- c(as.numeric(W[, seq_len(kw)]), params$gate$b0[seq_len(kb)],
                   if (object$gate$estimate_tau) log(params$gate$tau))
  coef_names <- unlist(lapply(seq_len(k), function(i) glue("expert", i, ".", xn)))
  if (object$expert$family == "multinomial") {
    # Column-major p x (K - 1) x k: covariates within classes within experts.
    cls <- object$levels[-length(object$levels)]
    expert_names <- unlist(lapply(seq_len(k), function(i) {
      unlist(lapply(cls, function(cl) glue("expert", i, ".", cl, ".", xn)))
    }))
    expert_values <- as.numeric(coef)
  } else if (object$method == "lsq") {
    expert_names <- c(coef_names, "sigma2")
    expert_values <- c(as.numeric(coef), object$sigma2)
  } else {
    expert_names <- c(coef_names, glue("expert", seq_len(k), ".sigma2"))
    expert_values <- c(as.numeric(coef), params$expert$sigma2)
  }
  values <- stats::setNames(c(gate_values, expert_values), c(gate_names, expert_names))
  # Variances: no Wald test against zero.
  variance <- seq_along(values) > length(values) -
    (if (object$method == "lsq") 1L else if (object$expert$family == "gaussian") k else 0L)
  # kw, kb: how many gate vectors and intercepts are free (relist_free() reads them).
  list(values = values, n_gate = length(gate_values), variance = variance, kw = kw, kb = kb)
}

# The response the compiled code fitted: y minus the expert offset.
fit_response <- function(object) {
  if (is.null(object$offset)) object$y else as.numeric(object$y) - object$offset
}

# ---- observed information ----------------------------------------------------

# Observed information: minus the Hessian of the log-likelihood, by central
# differences of the analytic gradient of the compiled code. For least-squares
# fits it is the Hessian of RSS / (2 sigma2), the Gaussian information of the
# regression parameters at the noise variance RSS / n.
observed_information <- function(object) {
  cp <- params_to_cpp(object$params, object$expert, object$k)
  X <- model_design(object, "expert")
  U <- gate_input(object$gate, model_design(object, "gate"))
  Y <- response_matrix(fit_response(object), object$expert)$Y
  gs <- gate_cpp_spec(object$gate)
  nt <- object$control$nthreads %||% 1L
  if (object$method == "lsq") {
    gradient <- function(theta) {
      cpp_lsq_objective(X, Y, U, gs, object$expert$activation, cp$gate,
                        cp$expert$coef, theta, nt, object$weights)$gradient
    }
    theta <- cpp_lsq_objective(X, Y, U, gs, object$expert$activation, cp$gate,
                               cp$expert$coef, NULL, nt)$theta
    scale <- 1 / (2 * object$sigma2)
    variance <- rep(FALSE, length(theta))
  } else {
    es <- expert_cpp_spec(object$expert, 1, length(object$levels))
    gradient <- function(theta) {
      -cpp_loglik(X, Y, U, gs, es, cp$gate, cp$expert, theta, TRUE, nt,
                  object$weights)$gradient
    }
    theta <- cpp_loglik(X, Y, U, gs, es, cp$gate, cp$expert, NULL, FALSE, nt)$theta
    scale <- 1
    variance <- seq_along(theta) > length(theta) - object$k &
      object$expert$family == "gaussian"
  }
  H <- difference_jacobian(gradient, theta, variance)
  structure(scale * (H + t(H)) / 2, gradient = scale * gradient(theta))
}

# Central differences of a gradient function at theta: column j is
# (gradient(theta + h_j e_j) - gradient(theta - h_j e_j)) / (2 h_j). The step
# eps^(1/3) relative to the parameter's size balances truncation and rounding
# error; for the variances (logical `variance`) both steps stay above `floor`.
difference_jacobian <- function(gradient, theta, variance, floor = 0) {
  h <- .Machine$double.eps^(1 / 3) * pmax(abs(theta), 1)
  h[variance] <- pmin(h[variance], (theta[variance] - floor) / 4)
  P <- length(theta)
  H <- matrix(0, P, P)
  for (j in seq_len(P)) {
    up <- down <- theta
    up[j] <- up[j] + h[j]
    down[j] <- down[j] - h[j]
    H[, j] <- (gradient(up) - gradient(down)) / (2 * h[j])
  }
  H
}

# Covariance of the free parameters from the observed information. Directions
# the data cannot identify (the norm of a cosine gate vector, a common scaling
# of gate vectors and temperature) show up as a null space of the information;
# parameters loading on it get NA, the others their estimable variance from
# the pseudo-inverse. A clearly negative eigenvalue means the estimate is no
# local maximum, and then no standard error is trustworthy.
moe_covariance <- function(object) {
  layout <- free_layout(object)
  nm <- names(layout$values)
  P <- length(nm)
  V <- matrix(NA_real_, P, P, dimnames = list(nm, nm))
  if (P == 0) return(list(vcov = V, note = NULL))
  n_model <- if (object$method == "lsq") P - 1 else P
  note <- NULL
  if (n_model > 0) {
    # The information is computed in the fit's internal units (R/scaling.R),
    # where it is well conditioned, and mapped back with the Jacobian of the
    # change of units.
    int <- internal_object(object)
    info <- observed_information(int$object)
    J <- internal_jacobian(int, object, n_model)
    res <- information_inverse(info, nm[seq_len(n_model)], singular_causes(object), J)
    V[seq_len(n_model), seq_len(n_model)] <- res$vcov
    note <- res$note
  }
  if (object$method == "lsq") {
    # The noise variance is orthogonal to the regression parameters at the
    # least-squares estimate; its Gaussian variance is 2 sigma2^2 / n.
    V[P, P] <- 2 * object$sigma2^2 / object$nobs
  }
  if (any(object$floor_binds)) {
    note <- c(note, paste0("The variance floor binds for expert(s) ",
                           paste(which(object$floor_binds), collapse = ", "),
                           ": their standard errors ignore the boundary."))
  }
  list(vcov = V, note = note)
}

# Why the observed information of this fit may be singular, most specific
# first: what summary()'s note names instead of a generic list.
singular_causes <- function(object) {
  causes <- character(0)
  if (!isTRUE(object$converged)) {
    causes <- c(causes, paste0("the fit did not converge (", object$iter, " iterations; ",
                               "increase `maxit` in moe_control())"))
  }
  if (any(object$separation)) {
    causes <- c(causes, paste0("separation in expert(s) ",
                               paste(which(object$separation), collapse = ", "),
                               " (fitted class probabilities 0 or 1; the coefficients run off)"))
  }
  g <- object$gate
  if (object$k > 1 && identical(g$score, "cosine")) {
    causes <- c(causes, "the cosine gate's invariance: only the direction of each gate vector acts, not its norm")
  }
  if (object$k > 1 && isTRUE(g$estimate_tau) && identical(g$score, "inner") &&
      identical(g$activation, "identity")) {
    causes <- c(causes, paste("the invariance of this gate under a common scaling of the gate",
                              "vectors and the temperature"))
  }
  if (length(causes) == 0) {
    causes <- paste("parameters the data barely identify (an expert with few observations,",
                    "nearly collinear covariates, or more experts than the data support)")
  }
  causes
}

# Jacobian of the original free parameters in the internal ones (linear but
# for the temperature's share of the gate intercepts), by central
# differences: the covariance in the original units is J V J'.
internal_jacobian <- function(int, object, n_model) {
  theta <- free_layout(int$object)$values
  to_original <- function(values) {
    object$params <- params_from_internal(relist_free(int$object, values), int$scaling,
                                          object$expert)
    free_layout(object)$values[seq_len(n_model)]
  }
  J <- matrix(0, n_model, n_model)
  for (j in seq_len(n_model)) {
    h <- 1e-4 * max(abs(theta[j]), 1)
    up <- down <- theta
    up[j] <- up[j] + h
    down[j] <- down[j] - h
    J[, j] <- (to_original(up) - to_original(down)) / (2 * h)
  }
  J
}

# `J`: Jacobian of the reported parameters in those of `info` (the identity
# when they are the same).
information_inverse <- function(info, nm, causes = NULL, J = diag(nrow(info))) {
  P <- nrow(info)
  V <- matrix(NA_real_, P, P, dimnames = list(nm, nm))
  if (any(!is.finite(info))) {
    return(list(vcov = V, note = "The observed information is not finite: no standard errors."))
  }
  eig <- eigen(info, symmetric = TRUE)
  lmax <- max(abs(eig$values))
  # Curvature below 1e-6 of the largest is far beyond what the data resolve
  # and well above the finite-difference noise. Away from an exact stationary
  # point an invariance along a curved orbit, such as (c w, c tau), no longer
  # gives an exact null direction: its curvature is of the order of the
  # remaining gradient, which the tolerance therefore adds.
  score <- attr(info, "gradient")
  tol <- 1e-6 * lmax + max(abs(score), 0)
  if (lmax == 0 || any(eig$values < -tol)) {
    return(list(vcov = V, note = paste(
      "The observed information is not positive definite (the estimate is not a",
      "local maximum, e.g. not converged): no standard errors.")))
  }
  null <- eig$values <= tol
  if (!any(null)) {
    V[] <- J %*% chol2inv(chol(info)) %*% t(J)
    return(list(vcov = V, note = NULL))
  }
  pos <- !null
  Vp <- eig$vectors[, pos, drop = FALSE] %*% (t(eig$vectors[, pos, drop = FALSE]) / eig$values[pos])
  Vp <- J %*% Vp %*% t(J)
  # A parameter whose gradient (a row of J) has a visible component in the
  # null space is not identified on its own.
  loading <- sqrt(rowSums((J %*% eig$vectors[, null, drop = FALSE])^2)) /
    pmax(sqrt(rowSums(J^2)), 1e-300)
  ok <- loading < 1e-4
  V[ok, ok] <- Vp[ok, ok]
  causes <- causes %||% paste("an invariance of the gate or parameters the data barely",
                              "identify")
  list(vcov = V, note = paste0(
    "The observed information is singular in ", sum(null), " direction(s), because of ",
    paste(causes, collapse = "; or "), ". No standard errors for: ",
    paste(nm[!ok], collapse = ", "), "."))
}

# ---- the methods -------------------------------------------------------------

#' Methods for fitted mixtures of experts
#'
#' Standard accessors for [moe()] fits. `coef()` returns the free parameters
#' in the order of the compiled code, with readable names: `gate.expert1.x`
#' (gate vector of expert 1, covariate `x`), `gate.expert1.(Intercept)` (gate
#' intercept), `gate.log_tau` (log temperature, when estimated),
#' `expert1.(Intercept)`, `expert1.x`, `expert1.sigma2` (Gaussian experts),
#' `expert1.b.x` (multinomial experts: coefficient of `x` for class `b`
#' against the reference class) and, for least-squares fits, the common noise
#' variance `sigma2`. Parameters fixed by the identifiability convention (the
#' reference expert of a softmax-type gate, see [gate()]) are not free and do
#' not appear.
#'
#' `vcov()` inverts the observed information, minus the Hessian of the
#' log-likelihood at the estimate, obtained by central differences of the
#' analytic gradient. Parameters the likelihood does not identify on their own
#' (the norm of cosine gate vectors; gate vectors and temperature of a linear
#' gate with estimated temperature, which only identifies \eqn{w_i / \tau}) get
#' `NA`. So do parameters the data barely identify: a direction counts as
#' unidentified when its curvature is below \eqn{10^{-6}} of the largest one
#' plus the largest remaining gradient entry (EM stops before the gradient is
#' exactly zero). When the information has a clearly negative eigenvalue (no
#' local maximum) every standard error is `NA`.
#' For least-squares fits the regression parameters use the Hessian of
#' \eqn{RSS / (2\sigma^2)} (Gaussian noise) and `sigma2` its Gaussian variance
#' \eqn{2\sigma^4 / n}.
#'
#' `logLik()` carries the attributes `df` (number of free parameters) and
#' `nobs`, so [stats::AIC()] and [stats::BIC()] work directly. `update()` works
#' through [stats::update()], re-evaluating the stored call.
#'
#' @param object,x,formula A fitted [moe()] model.
#' @param type For `coef()`: `"vector"` (named vector of free parameters) or
#'   `"params"` (the [moe_params()] object, usable as `moe_control(init = )`).
#'   For `residuals()`: `"response"` (observed minus fitted; for multinomial
#'   experts the n x K matrix of indicators minus probabilities) or
#'   `"pearson"` (divided by the fitted standard deviation of the mixture).
#' @param digits Significant digits to print.
#' @param ... Unused.
#' @return `coef()`: a named numeric vector or a `moe_params` object.
#'   `vcov()`: a square matrix named like `coef()`. `fitted()`: the mixture
#'   mean (Gaussian) or the n x K matrix of class probabilities (multinomial).
#'   `residuals()`: a vector or matrix like `fitted()`. `logLik()`: a `logLik`
#'   object. `nobs()`: the number of observations. `deviance()`: minus twice
#'   the log-likelihood. `df.residual()`: `nobs()` minus the number of free
#'   parameters (the `df` of `logLik()`). `sigma()`: the expert noise standard
#'   deviations, one per expert (least squares: the common one).
#'   `model.matrix()`: the expert or gate design matrix (the stored one of a
#'   fit with `designs = TRUE`, else rebuilt from the model frame or the
#'   matrices the fit was given, as [moe()] built it). `terms()`: the terms
#'   of the formula part. `weights()`: the case weights (ones for an
#'   unweighted fit). `formula()`: the model
#'   formula. `model.frame()`: the model frame. `print()`: `x`, invisibly.
#' @seealso [summary.moe()], [predict.moe()], [plot.moe()], [simulate.moe()].
#' @examples
#' set.seed(1)
#' d <- rmoe(400, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                           coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
#' fit <- moe(y ~ x1, data = d, k = 2)
#' fit
#' coef(fit)
#' sqrt(diag(vcov(fit)))
#' logLik(fit)
#' c(AIC(fit), BIC(fit))
#' head(residuals(fit, type = "pearson"))
#' fit3 <- update(fit, k = 3)
#' nobs(fit3)
#' @name moe-methods
NULL

#' @rdname moe-methods
#' @export
coef.moe <- function(object, type = c("vector", "params"), ...) {
  type <- match_arg(type)
  if (type == "params") return(object$params)
  free_layout(object)$values
}

#' @rdname moe-methods
#' @export
vcov.moe <- function(object, ...) {
  moe_covariance(object)$vcov
}

#' @rdname moe-methods
#' @export
fitted.moe <- function(object, ...) {
  stats::napredict(object$na.action, object$fitted.values)
}

#' @rdname moe-methods
#' @export
residuals.moe <- function(object, type = c("response", "pearson"), ...) {
  type <- match_arg(type)
  res <- object$residuals
  if (type == "pearson") {
    if (object$expert$family == "multinomial") {
      P <- object$fitted.values
      res <- res / sqrt(pmax(P * (1 - P), .Machine$double.xmin))
    } else if (object$method == "lsq") {
      res <- res / sqrt(object$sigma2)
    } else {
      # Variance of the mixture: E[Var] + Var[E] over the gate weights.
      core <- moe_predict_core(object, model_design(object, "expert"),
                               model_design(object, "gate"), offset = object$offset)
      s2 <- object$params$expert$sigma2
      second <- rowSums(core$gate * (sweep(core$expert^2, 2, s2, "+")))
      res <- res / sqrt(second - core$response^2)
    }
  }
  stats::naresid(object$na.action, res)
}

#' @rdname moe-methods
#' @export
logLik.moe <- function(object, ...) {
  structure(object$loglik, df = object$df, nobs = object$nobs, class = "logLik")
}

#' @rdname moe-methods
#' @export
nobs.moe <- function(object, ...) object$nobs

#' @rdname moe-methods
#' @export
deviance.moe <- function(object, ...) -2 * object$loglik

#' @rdname moe-methods
#' @export
df.residual.moe <- function(object, ...) object$nobs - object$df

#' @rdname moe-methods
#' @export
sigma.moe <- function(object, ...) {
  if (object$expert$family != "gaussian") {
    stop_arg("object", "a fit with Gaussian experts: multinomial experts have no noise scale")
  }
  if (object$method == "lsq") return(c(sigma = sqrt(object$sigma2)))
  sqrt(object$params$expert$sigma2)
}

#' @rdname moe-methods
#' @param part For `model.matrix()` and `terms()`: `"expert"` (the expert
#'   design, intercept column included), `"gate"` (the gate covariates, without
#'   the gate's own intercepts); `terms()` also `"full"` (the terms of the
#'   whole formula, both parts).
#' @export
model.matrix.moe <- function(object, part = c("expert", "gate"), ...) {
  check_dots(...)
  part <- match_arg(part)
  model_design(object, part)
}

#' @rdname moe-methods
#' @export
terms.moe <- function(x, part = c("expert", "gate", "full"), ...) {
  check_dots(...)
  part <- match_arg(part)
  if (is.null(x$terms)) {
    stop_arg("x", "a fit from the formula interface of moe(); this fit came from matrices")
  }
  x$terms[[part]]
}

#' @rdname moe-methods
#' @export
weights.moe <- function(object, ...) {
  w <- object$weights %||% rep(1, NROW(object$y))
  stats::naresid(object$na.action, w)
}

#' @rdname moe-methods
#' @export
formula.moe <- function(x, ...) {
  if (is.null(x$formula)) {
    stop_arg("x", "a fit from the formula interface of moe(); this fit came from matrices")
  }
  x$formula
}

#' @rdname moe-methods
#' @export
model.frame.moe <- function(formula, ...) {
  if (!is.null(formula$model)) return(formula$model)
  if (is.null(formula$formula)) {
    stop_arg("formula", "a fit from the formula interface of moe(); this fit came from matrices")
  }
  # Rebuild from the stored call, as model.frame.lm does for model = FALSE.
  cl <- formula$call
  mf <- cl[c(1L, match(c("formula", "data", "subset", "weights", "na.action", "offset"),
                       names(cl), 0L))]
  mf$formula <- formula$formula
  mf$drop.unused.levels <- TRUE
  mf[[1L]] <- quote(stats::model.frame)
  env <- environment(formula$terms$full) %||% parent.frame()
  eval(mf, env)
}

#' @rdname moe-methods
#' @export
print.moe <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Mixture of experts\n\nCall:\n", paste(deparse(x$call), collapse = "\n"), "\n\n", sep = "")
  cat(describe_model(x), sep = "\n")
  cat("\nGate parameters:\n")
  print(gate_table(x$params), digits = digits)
  if (x$gate$estimate_tau || x$params$gate$tau != 1) {
    cat("Temperature: ", format(x$params$gate$tau, digits = digits),
        if (x$gate$estimate_tau) " (estimated)" else " (fixed)", "\n", sep = "")
  }
  cat("\nExpert parameters:\n")
  print(expert_table(x$params, x$expert, x$levels, x$method), digits = digits)
  if (x$method == "lsq") cat("Noise variance (RSS / n):", format(x$sigma2, digits = digits), "\n")
  cat("\n")
  cat(describe_fit(x, digits), sep = "\n")
  invisible(x)
}

describe_model <- function(x) {
  fam <- if (x$expert$family == "gaussian") {
    paste0("Gaussian", if (x$expert$activation != "identity") {
      paste0(" (mean ", x$expert$activation, "(a'x + b))")
    })
  } else {
    paste0("multinomial logistic (reference class \"", x$levels[length(x$levels)], "\")")
  }
  c(paste0("Gate:    ", x$gate$name, if (x$gate$estimate_tau) " (temperature estimated)"),
    paste0("Experts: ", x$k, " x ", fam),
    paste0("Method:  ", if (x$method == "ml") "maximum likelihood (EM)" else "least squares"))
}

# How the fit ended, for print() and summary(): a fit stopped by the run-off
# guard (moe_control(runoff_ratio =)) is converged by that rule, not at a
# minimum.
convergence_word <- function(converged) {
  if (identical(names(converged), "runoff")) return("Stopped by the run-off guard")
  if (isTRUE(converged)) "Converged" else "Did NOT converge"
}

describe_fit <- function(x, digits) {
  ll <- logLik(x)
  f <- function(v) format(v, digits = max(digits, 5L), nsmall = 2)
  c(paste0("n = ", x$nobs, ", log-likelihood = ", f(as.numeric(ll)), " (df = ", x$df,
           "), AIC = ", f(stats::AIC(ll)), ", BIC = ", f(stats::BIC(ll))),
    paste0(convergence_word(x$converged), " after ", x$iter,
           if (x$method == "ml") " EM" else " L-BFGS", " iteration", if (x$iter != 1) "s",
           if (length(x$start_objective) > 1) paste0(" (best of ", length(x$start_objective),
                                                     " starts)")),
    if (any(x$floor_binds)) paste0("The variance floor binds for expert(s) ",
                                   paste(which(x$floor_binds), collapse = ", ")))
}

# Compact tables: one column per expert.
gate_table <- function(params) {
  W <- params$gate$W
  if (is.null(rownames(W))) rownames(W) <- row_labels(nrow(W))
  tab <- rbind(`(Intercept)` = params$gate$b0, W)
  colnames(tab) <- paste0("expert", seq_len(ncol(W)))
  tab
}

# Unnamed rows print like matrix rows.
row_labels <- function(n) paste0("[", seq_len(n), ",]", recycle0 = TRUE)

expert_table <- function(params, expert, levels = NULL, method = "ml") {
  coef <- params$expert$coef
  k <- dim(coef)[length(dim(coef))]
  en <- paste0("expert", seq_len(k))
  if (length(dim(coef)) == 3) {
    xn <- dimnames(coef)[[1]] %||% row_labels(dim(coef)[1])
    cls <- dimnames(coef)[[2]] %||% levels[-length(levels)] %||%
      as.character(seq_len(dim(coef)[2]))
    tab <- matrix(coef, ncol = k)
    rownames(tab) <- paste0(rep(cls, each = length(xn)), ".", xn, recycle0 = TRUE)
  } else {
    tab <- matrix(coef, ncol = k)
    rownames(tab) <- rownames(coef) %||% row_labels(nrow(coef))
    if (!is.null(params$expert$sigma2) && method == "ml") {
      tab <- rbind(tab, sigma2 = params$expert$sigma2)
    }
  }
  colnames(tab) <- en
  tab
}

#' Summarise a fitted mixture of experts
#'
#' Coefficient tables with standard errors from the observed information (see
#' [vcov.moe()]): one table for the gate (gate vectors, intercepts and the log
#' temperature when it is estimated; the reference expert of a softmax-type
#' gate has fixed zero parameters and no rows) and one table per expert
#' (coefficients and variance). The z tests are Wald tests of a zero
#' parameter; for the log temperature that is \eqn{\tau = 1}. Variances get no
#' test. Standard errors the likelihood does not identify are `NA`, with a
#' note.
#'
#' @param object A fitted [moe()] model.
#' @param x A `summary.moe` object.
#' @param digits Significant digits.
#' @param signif.stars Show significance stars (see [stats::printCoefmat()])?
#' @param ... Passed to [stats::printCoefmat()] by the print method; unused
#'   by `summary()`.
#' @return An object of class `summary.moe`: a list with `call`, `model` (a
#'   description), `coefficients` (a list with the matrix `gate` and a list
#'   `experts` of matrices, columns `Estimate`, `Std. Error`, `z value`,
#'   `Pr(>|z|)`), `vcov`, `notes`, `loglik`, `df`, `nobs`, `aic`, `bic`,
#'   `converged`, `iter` and, for least squares, `sigma2`.
#' @examples
#' set.seed(3)
#' d <- rmoe(400, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                           coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
#' fit <- moe(y ~ x1, data = d, k = 2)
#' s <- summary(fit)
#' s
#' s$coefficients$experts$expert1
#' @export
summary.moe <- function(object, ...) {
  layout <- free_layout(object)
  cov <- moe_covariance(object)
  est <- layout$values
  se <- sqrt(pmax(diag(cov$vcov), 0))
  se[is.na(diag(cov$vcov))] <- NA
  zval <- est / se
  tab <- cbind(Estimate = est, `Std. Error` = se, `z value` = zval,
               `Pr(>|z|)` = 2 * stats::pnorm(-abs(zval)))
  tab[layout$variance, 3:4] <- NA
  nm <- rownames(tab)
  gate_rows <- startsWith(nm, "gate.")
  gate_tab <- tab[gate_rows, , drop = FALSE]
  rownames(gate_tab) <- sub("^gate\\.", "", rownames(gate_tab))
  experts <- lapply(seq_len(object$k), function(i) {
    prefix <- paste0("expert", i, ".")
    t_i <- tab[startsWith(nm, prefix), , drop = FALSE]
    rownames(t_i) <- substring(rownames(t_i), nchar(prefix) + 1L)
    t_i
  })
  names(experts) <- paste0("expert", seq_len(object$k))
  notes <- cov$note
  if (any(object$separation)) {
    notes <- c(notes, paste0(
      "Separation in expert(s) ", paste(which(object$separation), collapse = ", "),
      ": fitted class probabilities numerically 0 or 1 among the observations of ",
      "that expert, so its coefficients run off towards infinity (as glm warns); ",
      "their estimates and standard errors are not meaningful."))
  }
  info <- gate_info(object$gate, nrow(object$params$gate$W), object$k)
  if (object$k > 1 && (info$w_reference || info$b_reference)) {
    notes <- c(paste0("Expert ", object$k, " is the gate's reference (",
                      paste(c(if (info$w_reference) "w = 0", if (info$b_reference) "b0 = 0"),
                            collapse = ", "), ")."), notes)
  }
  ll <- logLik(object)
  out <- list(call = object$call, model = describe_model(object),
              coefficients = list(gate = gate_tab, experts = experts),
              noise = if (object$method == "lsq") tab["sigma2", , drop = FALSE],
              vcov = cov$vcov, notes = notes, loglik = object$loglik, df = object$df,
              nobs = object$nobs, aic = stats::AIC(ll), bic = stats::BIC(ll),
              converged = object$converged, iter = object$iter, method = object$method,
              sigma2 = object$sigma2, floor_binds = object$floor_binds,
              n_starts = length(object$start_objective))
  class(out) <- "summary.moe"
  out
}

#' @rdname summary.moe
#' @export
print.summary.moe <- function(x, digits = max(3L, getOption("digits") - 3L),
                              signif.stars = getOption("show.signif.stars"), ...) {
  cat("Mixture of experts\n\nCall:\n", paste(deparse(x$call), collapse = "\n"), "\n\n", sep = "")
  cat(x$model, sep = "\n")
  print_table <- function(tab) {
    stats::printCoefmat(tab, digits = digits, signif.stars = signif.stars,
                        signif.legend = FALSE, na.print = "", has.Pvalue = TRUE,
                        P.values = TRUE, ...)
  }
  cat("\nGate:\n")
  if (nrow(x$coefficients$gate) == 0) cat("(no free gate parameters)\n") else
    print_table(x$coefficients$gate)
  for (i in seq_along(x$coefficients$experts)) {
    cat("\nExpert ", i, ":\n", sep = "")
    print_table(x$coefficients$experts[[i]])
  }
  if (!is.null(x$noise)) {
    cat("\nNoise variance (RSS / n):\n")
    print_table(x$noise)
  }
  if (isTRUE(signif.stars) && any(!is.na(unlist(lapply(
    c(list(x$coefficients$gate), x$coefficients$experts), function(t) t[, 4]))))) {
    cat("---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n")
  }
  f <- function(v) format(v, digits = max(digits, 5L), nsmall = 2)
  cat("\nn = ", x$nobs, ", log-likelihood = ", f(x$loglik), " (df = ", x$df, "), AIC = ",
      f(x$aic), ", BIC = ", f(x$bic), "\n", sep = "")
  cat(convergence_word(x$converged), " after ", x$iter,
      if (x$method == "ml") " EM" else " L-BFGS", " iteration", if (x$iter != 1) "s",
      if (x$n_starts > 1) paste0(" (best of ", x$n_starts, " starts)"), "\n", sep = "")
  if (length(x$notes)) cat(paste0("Note: ", x$notes), sep = "\n")
  invisible(x)
}

#' @rdname moe_params
#' @param x A `moe_params` object.
#' @param digits Significant digits to print.
#' @param ... Unused.
#' @export
print.moe_params <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  k <- ncol(x$gate$W)
  multinomial <- length(dim(x$expert$coef)) == 3
  cat("<moe_params> ", k, " expert", if (k != 1) "s", ", ",
      if (multinomial) "multinomial logistic" else "Gaussian", "\n", sep = "")
  cat("Gate (intercept, gate vector):\n")
  print(gate_table(x), digits = digits)
  if (x$gate$tau != 1) cat("Temperature:", format(x$gate$tau, digits = digits), "\n")
  cat("Experts", if (multinomial) " (class.covariate; last class is the reference)", ":\n",
      sep = "")
  print(expert_table(x, NULL), digits = digits)
  invisible(x)
}
