#' Fit a mixture of experts
#'
#' Fits a mixture of experts \eqn{p(y \mid x, z) = \sum_{i=1}^k G_i(z)
#' f_i(y \mid x)} with Gaussian or multinomial logistic experts and any gate of
#' [gate()], by maximum likelihood (EM) or, for regression functions, by least
#' squares.
#'
#' The formula `y ~ x1 + x2 | z1 + z2` puts the expert covariates before the
#' bar and the gate covariates after it; without a bar the gate uses the expert
#' covariates. The gate has its own intercepts, so the gate part's intercept
#' column is dropped. A factor (or character or logical) response gives
#' multinomial logistic experts by default, a numeric one Gaussian experts.
#'
#' **EM** (`method = "ml"`): the E-step works in log space; Gaussian experts
#' are updated by weighted least squares (closed form; weighted non-linear least
#' squares for activated means), multinomial experts by Newton steps with step
#' halving, the linear softmax gate by Newton steps with step halving and every
#' other gate by Fisher scoring (the expected information of the gate's
#' multinomial log-likelihood from the pipeline's analytic derivatives, in a
#' trust region; one step per EM iteration by default, see
#' `gate_maxit` and `gate_optimizer` in [moe_control()]). Each M-step
#' improves its objective, so the log-likelihood never decreases. Iterations
#' stop when the relative change of the log-likelihood falls below
#' `control$tol`, or after `control$maxit` iterations.
#'
#' **Least squares** (`method = "lsq"`): minimises \eqn{\sum_n (y_n -
#' \sum_i G_i(z_n) h_i(x_n))^2} over all parameters jointly by L-BFGS; any gate,
#' including the unnormalised sigmoid, may be used. `logLik()` then reports the
#' Gaussian log-likelihood with the maximum-likelihood noise variance RSS / n.
#'
#' @param x A formula (see Details) or, for the matrix method, the expert
#'   covariate matrix.
#' @param formula Model formula `response ~ expert covariates | gate covariates`.
#' @param data A data frame.
#' @param k Number of experts (a positive whole number).
#' @param expert Expert specification: [expert_gaussian()],
#'   [expert_multinomial()], or `"gaussian"` / `"multinomial"`. `NULL` chooses
#'   from the response type.
#' @param gate Gate specification: any [gate()] object or a shorthand string
#'   such as `"softmax"` or `"cosine"`.
#' @param method `"ml"` (maximum likelihood) or `"lsq"` (least squares).
#' @param control Computational settings from [moe_control()].
#' @param subset,na.action As in [stats::lm()]: rows with missing values are
#'   dropped by the default `na.action` (`getOption("na.action")`).
#' @param weights Case weights, as in [stats::lm()] (evaluated in `data`;
#'   for the matrix method a numeric vector): non-negative, one per
#'   observation. A weight of 2 means the same as the row appearing twice:
#'   the E-step's log-likelihood terms and every M-step (also least squares)
#'   are weighted, `logLik()` is the weighted log-likelihood and `nobs()` the
#'   sum of the weights (as in flexmix). Rows of weight 0 do not enter the
#'   fit. With one expert the coefficients equal `lm(..., weights = )`'s
#'   (and `glm()`'s, `nnet::multinom()`'s). `NULL`: all weights one.
#' @param offset An offset in the expert linear predictor, as in [stats::lm()]:
#'   a known term added to the mean of every expert, evaluated in `data` (the
#'   formula may hold `offset()` terms in its expert part too; all are
#'   summed). With one expert the fit equals `lm(..., offset = )`. Supported
#'   for Gaussian experts with the identity mean (and, for least squares, a
#'   normalised gate); multinomial experts refuse it, since a term common to
#'   all classes cancels in the class probabilities. Gate offsets (after the
#'   bar) are refused for the same reason. `fitted()` and `predict()` include
#'   the offset (`predict()` the one of `newdata`). For the matrix method a
#'   numeric vector, one value per row.
#' @param contrasts `NULL` or a named list of contrasts for factors, as the
#'   `contrasts.arg` of [stats::model.matrix()] (and `contrasts` of
#'   [stats::lm()]); used for the expert and the gate design alike.
#' @param model Logical: keep the model frame in the fit (needed by `update()`
#'   and `model.frame()` without `data`)?
#' @param designs Logical: keep the expert design and the gate covariate
#'   matrices in the fit (components `x` and `z`), as `lm(x = TRUE)` does? By
#'   default they are not stored (at n = 1e6 rows and 10 covariates each is
#'   80 MB): the formula method keeps the model frame (whose columns share
#'   the data frame's memory when no row is dropped) and the matrix method a reference to the
#'   caller's `x` (and `z`), not a copy, and methods that need a design
#'   rebuild it with [model.matrix()][model.matrix.moe], as [stats::lm()]'s
#'   do. Every method gives the same results either way. With `model = FALSE`
#'   and `designs = FALSE` the model frame is rebuilt from the call (its
#'   `data` must still exist), as `model.frame()` does for an `lm` fit.
#' @param y Response for the matrix method.
#' @param z Gate covariate matrix for the matrix method (default: `x` without
#'   its constant columns, since the gate has its own intercepts).
#' @param intercept Logical: add an intercept column to `x` in the matrix
#'   method?
#' @param ... Unused; an error is raised when anything is passed.
#' @return An object of class `c("moe_gaussian", "moe")` or
#'   `c("moe_multinomial", "moe")`: a list with components, in this order,
#'   `call`, `formula`, `terms`, `xlevels`, `contrasts`, `na.action`, `k`,
#'   `expert`, `gate`, `method`, `control`, `params` (a [moe_params()] object),
#'   `loglik`, `df`, `nobs`, `iter`, `converged`, `trace` (log-likelihood after
#'   each EM iteration), `start_objective` (best objective of every start;
#'   with short-run start selection, `moe_control(start_maxit = )`, the
#'   attributes `short_run` and `continued`),
#'   `posterior` (n x k responsibilities), `fitted.values`, `residuals`, `y`,
#'   `x`, `z` (the designs with `designs = TRUE`, else `NULL`: see
#'   [model.matrix.moe()]), `model`, `inputs` (matrix method with
#'   `designs = FALSE`: the `x` and `z` it was given, referenced rather than
#'   copied, from which the designs are rebuilt; else `NULL`), `sigma2`
#'   (least squares), `rss` (least squares),
#'   `floor_binds`, `levels` (multinomial), `gate_work` (maximum likelihood:
#'   the work of the kept start's gate M-steps summed over its EM iterations,
#'   a named vector of accepted `steps`, full Fisher-scoring `passes` and
#'   objective-only `light_passes`; a slow fit with many passes per EM
#'   iteration is worth a look at `gate_maxit`), `offset` (the expert offset,
#'   or `NULL`), `weights` (the case weights, or `NULL`), `separation`
#'   (logical, one per expert: fitted class probabilities numerically 0 or 1
#'   among the expert's observations, signalled by a `moe_separation_warning`),
#'   `gradient_criterion` (the relative gradient of the log-likelihood, or
#'   of the RSS for least squares, at the returned parameters, see `stop` in
#'   [moe_control()]), `polish` (a named vector of the Newton or L-BFGS
#'   polishes `runs`, their `evaluations` and the log-likelihood `gain` they
#'   brought; for least squares the RSS they removed). `converged`
#'   is named by the rule that stopped the fit (see [moe_control()]).
#'
#'   A gate whose weights cannot vary over the data whatever its parameters
#'   (the cosine of one positive covariate is always 1) is signalled by a
#'   `moe_constant_gate_warning` before fitting.
#' @seealso [gate()], [expert_gaussian()], [moe_control()], [predict.moe()],
#'   [rmoe()].
#' @examples
#' set.seed(1)
#' n <- 500
#' d <- data.frame(x = runif(n, -1, 1))
#' first <- runif(n) < plogis(4 * d$x)
#' d$y <- ifelse(first, 1 + 2 * d$x, -1 - d$x) + rnorm(n, sd = 0.3)
#' fit <- moe(y ~ x, data = d, k = 2)
#' fit
#' summary(fit)
#' AIC(fit)
#' @export
moe <- function(x, ...) UseMethod("moe")

#' @rdname moe
#' @export
moe.formula <- function(formula, data, k, expert = NULL, gate = "softmax",
                        method = c("ml", "lsq"), control = moe_control(), subset,
                        na.action, weights, offset, contrasts = NULL, model = TRUE,
                        designs = FALSE, ...) {
  check_dots(...)
  cl <- match.call()
  # Store the call to the generic: the method is not exported, so update()
  # could not evaluate a call to `moe.formula` / `moe.default`.
  cl[[1L]] <- quote(moe)
  if (missing(k)) stop_arg("k", "given: the number of experts")
  method <- match_arg(method)
  gate <- as_gate(gate)
  control <- as_control(control)
  fo <- Formula::as.Formula(formula)
  if (length(fo)[1] != 1) stop_arg("formula", "a formula with one response on the left-hand side")
  if (length(fo)[2] > 2) {
    stop_arg("formula", "of the form `y ~ expert covariates | gate covariates` (at most one bar)")
  }
  mf <- match.call(expand.dots = FALSE)
  mf <- mf[c(1L, match(c("formula", "data", "subset", "weights", "na.action", "offset"),
                       names(mf), 0L))]
  mf$formula <- fo
  mf$drop.unused.levels <- TRUE
  mf[[1L]] <- quote(stats::model.frame)
  env <- parent.frame()
  frame <- function(call) tryCatch(eval(call, env), error = function(e) {
    stop_arg("data", "a data frame holding the model's variables as numeric, logical, ",
             "factor or character columns (", conditionMessage(e), ")")
  })
  # na.omit() and na.exclude() subset the frame even when no row is dropped,
  # which copies every column (88 MB at n = 1e6 and 11 columns; the frame's
  # columns otherwise share the data's memory). Without missing values the
  # frame with na.pass is the same object, so it is used; with some, the
  # call as given.
  na_fun <- if (missing(na.action)) getOption("na.action") else na.action
  if (is.character(na_fun) && length(na_fun) == 1) {
    na_fun <- get0(na_fun, envir = env, mode = "function")
  }
  omits <- identical(na_fun, stats::na.omit) || identical(na_fun, stats::na.exclude)
  if (omits) {
    passed <- mf
    passed$na.action <- quote(stats::na.pass)
    mf_pass <- frame(passed)
    complete <- !any(vapply(mf_pass, anyNA, TRUE))
    mf <- if (complete) mf_pass else frame(mf)
    rm(mf_pass)
  } else {
    mf <- frame(mf)
  }
  check_model_frame(mf)
  y <- Formula::model.part(fo, data = mf, lhs = 1, drop = TRUE)
  if (NCOL(y) != 1) {
    stop_arg("formula", "a formula with a single response column; got ", NCOL(y),
             " (e.g. from cbind() on the left-hand side)")
  }
  if (is.null(expert)) {
    expert <- if (is.factor(y) || is.character(y) || is.logical(y)) "multinomial" else "gaussian"
  }
  expert <- as_expert(expert)
  if (expert$family == "multinomial" && !is.factor(y)) y <- factor(y)
  terms_x <- stats::terms(fo, data = mf, rhs = 1)
  has_gate_part <- length(fo)[2] == 2
  terms_z <- if (has_gate_part) stats::terms(fo, data = mf, rhs = 2) else terms_x
  check_contrasts(contrasts, mf)
  check_flag(designs, "designs")
  # The designs are built by the fit (and again by new_moe()), which drops
  # them while the compiled EM runs: this frame never holds them.
  builders <- formula_designs(fo, mf, part_contrasts(contrasts, terms_x),
                              part_contrasts(contrasts, terms_z), has_gate_part)
  if (has_gate_part && !is.null(attr(terms_z, "offset"))) {
    stop_arg("formula", "free of offset() terms in the gate part (after the bar): a gate ",
             "offset common to all experts cancels in the normalised gate weights; put ",
             "offsets in the expert part")
  }
  offset <- formula_offset(mf, terms_x)
  weights <- stats::model.weights(mf)
  fit <- fit_matrices(y, builders$x, builders$z, k, expert = expert, gate = gate, method = method,
                      control = control,
                      design_args = design_args("formula", "formula",
                        " (the expert part of the formula)",
                        " (the gate part of the formula, beside the gate's own intercept)"),
                      offset = offset, weights = weights)
  new_moe(fit, call = cl, formula = fo,
          terms = list(full = stats::terms(mf), expert = terms_x, gate = terms_z),
          xlevels = stats::.getXlevels(stats::terms(mf), mf),
          contrasts = fit$contrasts,
          na.action = attr(mf, "na.action"), k = k, expert = expert, gate = gate,
          method = method, control = control, y = y, X = builders$x, Z = builders$z,
          model = if (isTRUE(model)) mf, offset = offset, designs = designs)
}

# The two designs of a formula fit as builders: x() the expert design, z(X)
# the gate covariates (from the expert design X when the formula has no
# bar). Rebuilt from the model frame `mf` by the calls of the fit.
formula_designs <- function(fo, mf, contrasts_x, contrasts_z, has_gate_part) {
  x <- function() {
    X <- stats::model.matrix(fo, data = mf, rhs = 1, contrasts.arg = contrasts_x)
    check_finite_matrix(X, "data")
    X
  }
  z <- function(X) {
    Z <- if (has_gate_part) {
      stats::model.matrix(fo, data = mf, rhs = 2, contrasts.arg = contrasts_z)
    } else X
    # The coding survives the intercept's removal: the fit stores it, and
    # predict() and model.matrix() rebuild the gate design with it.
    coding <- attr(Z, "contrasts")
    Z <- Z[, colnames(Z) != "(Intercept)", drop = FALSE]
    if (!is.null(coding)) attr(Z, "contrasts") <- coding
    check_finite_matrix(Z, "data")
    Z
  }
  list(x = x, z = z)
}

# The two designs of a matrix fit as builders, from the matrices the caller
# gave (the caller's memory; z is x itself unless the caller gave z or x has
# no column names): x() is x with the intercept column added when
# `intercept`; z(X) is z (`from_x` NULL: all of x, or FALSE: the caller's z)
# or its columns `from_x` (x without its constant columns).
matrix_designs <- function(x, z, from_x, intercept) {
  list(x = function() if (intercept) cbind(`(Intercept)` = 1, x) else x,
       z = function(X) if (is.null(from_x) || isFALSE(from_x)) z else z[, from_x, drop = FALSE])
}

# The builders of a fitted object's designs (see model_design()).
object_designs <- function(object) {
  list(x = function() model_design(object, "expert"),
       z = function(X) model_design(object, "gate"))
}

# A design of a fitted object: the stored matrix (designs = TRUE, or an
# object whose x and z were set, as internal_object()'s), else rebuilt as
# the fit built it: from the model frame (formula method) or from the
# matrices the matrix method was given.
model_design <- function(object, part = c("expert", "gate")) {
  part <- match.arg(part)
  stored <- object[[if (part == "expert") "x" else "z"]]
  if (!is.null(stored)) return(stored)
  if (!is.null(object$inputs)) {
    inp <- object$inputs
    b <- matrix_designs(inp$x, inp$z, inp$from_x, inp$intercept)
    if (part == "expert") return(b$x())
    Z <- b$z(NULL)
    # The attribute the stored z carries (designs = TRUE).
    if (!is.null(inp$from_x)) attr(Z, "from_x") <- inp$from_x
    return(Z)
  }
  if (is.null(object$terms)) {
    stop_arg("object", "a fit that holds its designs or the data to rebuild them")
  }
  b <- formula_designs(object$formula, stats::model.frame(object),
                       object$contrasts$expert, object$contrasts$gate,
                       length(object$formula)[2] == 2)
  if (part == "expert") b$x() else b$z(b$x())
}

# Which columns of x a matrix fit's gate covariates are (the attribute
# "from_x" of a stored z: NULL all of x, FALSE the caller's own z).
gate_from_x <- function(object) {
  if (!is.null(object$inputs)) object$inputs$from_x else attr(object$z, "from_x")
}

#' @rdname moe
#' @export
moe.default <- function(x, y, k, z = x, expert = NULL, gate = "softmax",
                        method = c("ml", "lsq"), control = moe_control(), intercept = TRUE,
                        weights = NULL, offset = NULL, designs = FALSE, ...) {
  check_dots(...)
  cl <- match.call()
  # Store the call to the generic: the method is not exported, so update()
  # could not evaluate a call to `moe.formula` / `moe.default`.
  cl[[1L]] <- quote(moe)
  if (missing(k)) stop_arg("k", "given: the number of experts")
  method <- match_arg(method)
  gate <- as_gate(gate)
  control <- as_control(control)
  X <- as_numeric_matrix(x, "x")
  Z <- as_numeric_matrix(z, "z")
  if (is.null(colnames(X))) colnames(X) <- paste0("x", seq_len(ncol(X)))
  if (is.null(colnames(Z))) colnames(Z) <- paste0("z", seq_len(ncol(Z)))
  check_finite_matrix(X, "x")
  check_finite_matrix(Z, "z")
  # Which columns of x the gate uses (attribute "from_x" of the stored z, so
  # that predict() builds the same default z from new x); FALSE: its own z.
  from_x <- FALSE
  if (missing(z)) {
    from_x <- seq_len(ncol(Z))
    if (ncol(Z) > 0 && nrow(Z) > 1) {
      # The gate has its own intercepts: a constant column of x (an intercept
      # the user added) is not a gate covariate, as in the formula method.
      # In place: apply() would first copy the whole matrix (twice), a column
      # by column comparison in R makes three temporaries per column.
      constant <- cpp_constant_columns(Z)
      # (Only the fit builds the subset: this frame holds no copy of x.)
      if (any(constant)) from_x <- from_x[!constant]
    }
  }
  # A z that is all of x is recorded as NULL (predict() reads it as "z is
  # x"), a user's z as FALSE.
  if (identical(from_x, seq_len(ncol(X)))) from_x <- NULL
  if (nrow(X) != NROW(y)) stop_arg("x", "a matrix with one row per response (", NROW(y), "); got ", nrow(X), " rows")
  if (nrow(Z) != NROW(y)) stop_arg("z", "a matrix with one row per response (", NROW(y), "); got ", nrow(Z), " rows")
  check_flag(intercept, "intercept")
  check_flag(designs, "designs")
  builders <- matrix_designs(X, Z, from_x, intercept)
  if (is.null(expert)) {
    expert <- if (is.factor(y) || is.character(y) || is.logical(y)) "multinomial" else "gaussian"
  }
  expert <- as_expert(expert)
  if (expert$family == "multinomial" && !is.factor(y)) y <- factor(y)
  fit <- fit_matrices(y, builders$x, builders$z, k, expert = expert, gate = gate, method = method,
                      control = control,
                      design_args = design_args("x", "z",
                        if (intercept) " (moe() adds an intercept column: use intercept = FALSE if x has one)" else "",
                        " (beside the gate's own intercept)"),
                      offset = offset, weights = weights)
  new_moe(fit, call = cl, formula = NULL, terms = NULL, xlevels = NULL, contrasts = NULL,
          na.action = NULL, k = k, expert = expert, gate = gate, method = method,
          control = control, y = y, X = builders$x, Z = builders$z, model = NULL,
          offset = if (!is.null(offset)) as.numeric(offset), designs = designs,
          inputs = list(x = X, z = Z, from_x = from_x, intercept = intercept))
}

# The fitted-object constructor: fixed component order, documented in ?moe.
# X and Z: the designs, or builders (X(), Z(X)) of them; `designs`: store
# them (else `inputs`, the matrix method's data, or the model frame, from
# which model_design() rebuilds them).
new_moe <- function(fit, call, formula, terms, xlevels, contrasts, na.action, k, expert,
                    gate, method, control, y, X, Z, model, offset = NULL, designs = FALSE,
                    inputs = NULL) {
  obj <- list(call = call, formula = formula, terms = terms, xlevels = xlevels,
              contrasts = contrasts, na.action = na.action, k = as.integer(k),
              expert = expert, gate = gate, method = method, control = control,
              params = fit$params, loglik = fit$loglik, df = fit$df, nobs = fit$nobs,
              iter = fit$iter, converged = fit$converged, trace = fit$trace,
              start_objective = fit$start_objective, posterior = NULL,
              fitted.values = NULL, residuals = NULL, y = y, x = NULL, z = NULL, model = model,
              inputs = if (!designs) inputs,
              sigma2 = fit$sigma2, rss = fit$rss, floor_binds = fit$floor_binds,
              levels = fit$dims$levels, gate_work = fit$gate_work, offset = offset,
              weights = fit$weights, separation = fit$separation,
              gradient_criterion = fit$gradient_criterion, polish = fit$polish)
  class(obj) <- c(paste0("moe_", expert$family), "moe")
  if (is.function(X)) X <- X()
  if (is.function(Z)) Z <- Z(X)
  if (designs) {
    obj$x <- X
    from_x <- if (!is.null(inputs)) inputs$from_x else attr(Z, "from_x")
    if (!is.null(from_x)) attr(Z, "from_x") <- from_x
    obj$z <- Z
  }
  pred <- predict_in_blocks(obj, X, Z, offset)
  obj$posterior <- if (method == "ml") fit$posterior else NULL
  if (!is.null(obj$posterior)) dimnames(obj$posterior) <- list(rownames(X), paste0("expert", seq_len(k)))
  if (expert$family == "gaussian") {
    obj$fitted.values <- stats::setNames(as.numeric(pred), rownames(X))
    obj$residuals <- stats::setNames(as.numeric(y) - obj$fitted.values, rownames(X))
  } else {
    obj$fitted.values <- pred
    Y <- response_matrix(y, expert)$Y
    obj$residuals <- Y - pred
    dimnames(obj$residuals) <- dimnames(pred)
  }
  obj
}

# The fitted response (Gaussian) or class probabilities (multinomial) at the
# fit's designs, in blocks of rows: moe_predict_core() makes several n x k
# temporaries (128 MB at n = 1e6, k = 4), and every row is computed on its
# own, so the blocks give the same numbers.
predict_in_blocks <- function(obj, X, Z, offset, block = 65536L) {
  n <- nrow(X)
  one <- function(rows) {
    if (is.null(rows)) return(moe_predict_core(obj, X, Z, offset = offset)$response)
    moe_predict_core(obj, X[rows, , drop = FALSE], Z[rows, , drop = FALSE],
                     offset = offset[rows])$response
  }
  if (n <= block) return(one(NULL))
  parts <- lapply(seq.int(1L, n, by = block), function(s) one(s:min(n, s + block - 1L)))
  if (is.matrix(parts[[1]])) {
    out <- do.call(rbind, parts)
  } else {
    out <- unlist(parts, use.names = FALSE)
  }
  out
}

# The offset of the expert part: the sum of its offset() terms and of the
# `offset` argument (model.frame's "(offset)" column), or NULL.
formula_offset <- function(mf, terms_x) {
  vars <- vapply(as.list(attr(terms_x, "variables"))[-1], function(v) paste(deparse(v), collapse = ""), "")
  nm <- c(vars[attr(terms_x, "offset")], if ("(offset)" %in% names(mf)) "(offset)")
  if (length(nm) == 0) return(NULL)
  off <- rep(0, nrow(mf))
  for (v in nm) {
    o <- mf[[v]]
    if (!is.numeric(o) || NCOL(o) != 1) stop_arg("offset", "a numeric vector", got = o)
    off <- off + as.numeric(o)
  }
  stats::setNames(off, rownames(mf))
}

# `contrasts` as in lm(): NULL or a named list, one element per factor of
# the model (a contrasts function, its name, or a contrast matrix).
check_contrasts <- function(contrasts, mf) {
  if (is.null(contrasts)) return(invisible(NULL))
  if (!is.list(contrasts) || is.null(names(contrasts)) || any(names(contrasts) == "")) {
    stop_arg("contrasts", "NULL or a named list (factor name = contrasts), as in lm()",
             got = contrasts)
  }
  factors <- names(mf)[vapply(mf, function(v) is.factor(v) || is.character(v), TRUE)]
  unknown <- setdiff(names(contrasts), factors)
  if (length(unknown)) {
    stop_arg("contrasts", "a list naming factors of the model (",
             if (length(factors)) paste(factors, collapse = ", ") else "there are none",
             "); unknown: ", paste(unknown, collapse = ", "))
  }
  invisible(contrasts)
}

# The contrasts of the factors that occur in one part of the formula.
part_contrasts <- function(contrasts, tt) {
  if (is.null(contrasts)) return(NULL)
  vars <- vapply(as.list(attr(tt, "variables"))[-1], function(v) paste(deparse(v), collapse = ""), "")
  out <- contrasts[names(contrasts) %in% vars]
  if (length(out)) out else NULL
}

check_dots <- function(...) {
  if (...length() > 0) {
    nm <- names(list(...))
    stop_arg("...", "empty; unused argument(s): ",
             paste(ifelse(is.null(nm) | nm == "", "<unnamed>", nm), collapse = ", "))
  }
}

as_numeric_matrix <- function(x, arg) {
  if (is.data.frame(x)) {
    bad <- !vapply(x, is.numeric, TRUE)
    if (any(bad)) {
      stop_arg(arg, "numeric; column(s) ", paste(names(x)[bad], collapse = ", "),
               " are not (use the formula interface for factors)")
    }
    x <- as.matrix(x)
  }
  if (is.numeric(x) && is.null(dim(x))) x <- matrix(x, ncol = 1)
  if (!is.matrix(x) || !is.numeric(x)) stop_arg(arg, "a numeric matrix", got = x)
  # Integer matrices are valid input; the compiled code maps doubles. (Only
  # then: storage.mode<- on the caller's double matrix would copy it.)
  if (!is.double(x)) storage.mode(x) <- "double"
  x
}

# Covariates must be numeric, logical, factors or characters (turned into
# factors by model.matrix); anything else has no design-matrix meaning.
check_model_frame <- function(mf) {
  ok <- vapply(mf, function(v) {
    is.numeric(v) || is.logical(v) || is.factor(v) || is.character(v)
  }, TRUE)
  if (!all(ok)) {
    stop_arg("data", "numeric, logical, factor or character columns; ",
             paste(names(mf)[!ok], collapse = ", "), " is of class ",
             paste(vapply(mf[!ok], function(v) class(v)[1], ""), collapse = ", "))
  }
  if (nrow(mf) == 0) stop_arg("data", "at least one complete row")
}
