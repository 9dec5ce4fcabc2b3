# The matrix-level workhorse (like glm.fit): validated inputs in, a list of
# estimates out. moe() wraps it with formulas, data frames and the S3 class.

#' Fit a mixture of experts on matrices
#'
#' The workhorse behind [moe()]. Most users call [moe()].
#'
#' @param y Response: numeric vector (Gaussian experts) or factor (multinomial
#'   experts).
#' @param X Expert design matrix, including an intercept column if wanted.
#' @param Z Gate covariate matrix, without intercept (the gate has its own).
#' @param k Number of experts.
#' @param expert,gate Expert and gate specifications ([expert_gaussian()],
#'   [gate()]).
#' @param method `"ml"` (maximum likelihood by EM) or `"lsq"` (least squares on
#'   the regression function; Gaussian experts only).
#' @param control [moe_control()] settings.
#' @return A list with the estimates (`params`, a [moe_params()] object), the
#'   objective, the iteration history and diagnostics.
#' @keywords internal
#' @export
moe_fit <- function(y, X, Z, k, expert = expert_gaussian(), gate = gate_softmax(),
                    method = c("ml", "lsq"), control = moe_control()) {
  method <- match_arg(method)
  fit_matrices(y, X, Z, k, expert = expert, gate = gate, method = method, control = control,
               design_args = design_args("X", "Z", " (the expert design)",
                                         " (the gate design, beside the gate's own intercept)"))
}

# moe_fit() with the names its design-rank errors give X and Z: moe() passes
# the user's own (`x`, `z` or `formula`), so the check runs once per fit.
# `method` is already matched ("ml" or "lsq").
# X and Z may also be builders (functions X() and Z(X)) of designs that the
# caller does not hold (moe()): the fit then drops them, with the original
# gate input, once the scaled copies and the starts are made, so that the
# compiled EM runs beside the scaled copies only (at n = 1e6, d = 10 the
# design is 84 MB).
fit_matrices <- function(y, X, Z, k, expert, gate, method, control, design_args,
                         offset = NULL, weights = NULL) {
  build_x <- if (is.function(X)) X else local({
    X0 <- X
    function() X0
  })
  drop_designs <- is.function(X) || is.function(Z)
  control <- as_control(control)
  gate <- as_gate(gate)
  expert <- as_expert(expert)
  k <- check_count(k, "k")
  if (is.function(X)) X <- X()
  if (is.function(Z)) Z <- Z(X)
  if (!is.null(offset)) {
    offset <- check_offset(offset, NROW(y), expert, gate, method)
    # An offset enters the linear predictor of every (identity-mean) expert
    # with coefficient one: the model for y is the model for y - offset.
    if (is.numeric(y)) y <- y - offset
  }
  if (!is.matrix(X)) stop_arg("X", "a numeric matrix", got = X)
  if (!is.matrix(Z)) stop_arg("Z", "a numeric matrix", got = Z)
  check_finite_matrix(X, "X")
  check_finite_matrix(Z, "Z")
  if (!is.double(X)) storage.mode(X) <- "double"  # storage.mode<- copies a double matrix too
  if (!is.double(Z)) storage.mode(Z) <- "double"
  n <- NROW(y)
  if (nrow(X) != n) stop_arg("X", "a matrix with one row per response (", n, "); got ", nrow(X), " rows")
  if (nrow(Z) != n) stop_arg("Z", "a matrix with one row per response (", n, "); got ", nrow(Z), " rows")
  if (ncol(X) == 0) {
    # An expert with no coefficients at all (zero mean, or uniform class
    # probabilities) is not a regression; the compiled M-steps need at least
    # one column.
    stop_arg(design_args$x, "an expert design with at least one column; got none",
             " (for experts with a constant mean or constant class probabilities keep the ",
             "intercept: `y ~ 1 | z`)")
  }
  if (!is.null(weights)) weights <- check_weights(weights, n)
  resp <- response_matrix(y, expert)
  if (!is.null(weights) && expert$family == "gaussian") {
    # The variance floor is relative to var(y) of the data the weights stand
    # for (the replicated rows, for integer weights).
    yw <- resp$Y[, 1]
    mw <- sum(weights * yw) / sum(weights)
    resp$var_y <- sum(weights * (yw - mw)^2) / max(sum(weights) - 1, .Machine$double.eps)
    if (!is.finite(resp$var_y) || resp$var_y <= 0) {
      stop_arg("y", "a response that varies among the rows with positive weight")
    }
  }
  if (method == "lsq" && expert$family != "gaussian") {
    stop_arg("method", '"ml" for multinomial experts: least squares needs a regression function')
  }
  U <- gate_input(gate, Z)
  check_finite_matrix(U, "Z")
  info <- gate_info(gate, ncol(U), k)
  if (method == "ml" && !info$normalized) {
    stop_arg("gate", "a normalized gate for maximum likelihood: the plain sigmoid's weights ",
             "do not sum to one, so it defines no density. Use method = \"lsq\" or ",
             "gate_sigmoid(normalize = TRUE)")
  }
  # The fit runs in internal units (R/scaling.R): invariant to the origin and
  # units of the covariates and the response wherever the model is.
  scaling <- design_scaling(X, U, resp$Y[, 1], expert, gate, method, weights)
  Xs <- scale_columns(X, scaling$x)
  # The gate input is often the expert design without its intercept (moe()'s
  # default z, a formula without a bar): the C++ fit then reads it from the
  # scaled expert design in place instead of from a second copy.
  shared <- method == "ml" && shares_gate_columns(X, U, gate, scaling)
  Us <- if (shared) NULL else scale_columns(U, scaling$u)
  resp_s <- resp
  if (expert$family == "gaussian") {
    resp_s$Y <- (resp$Y - scaling$y_centre) / scaling$y_scale
    resp_s$var_y <- resp$var_y / scaling$y_scale^2
  }
  # Shared: cbind(1, Us) is Xs, whose rank check covers the gate's.
  check_designs(Xs, if (shared) NULL else Us, gate, design_args)
  if (k > 1) {
    check_gate_varies(gate, U, k)
    check_gate_origin(gate, U, scaling)
  }
  p <- ncol(X)
  K <- resp$n_classes
  n_expert_par <- if (expert$family == "gaussian") p else p * (K - 1)
  n_used <- if (is.null(weights)) n else sum(weights > 0)
  if (k * n_expert_par > n_used) {
    stop_arg("k", "small enough for the data: ", k, " experts with ", n_expert_par,
             " coefficients each need at least ", k * n_expert_par, " observations, got ",
             n_used, if (!is.null(weights)) " with positive weight")
  }
  dims <- list(n = n, p = p, q = ncol(U), k = k, K = K, x_names = colnames(X),
               z_names = colnames(Z), levels = resp$levels, weights = weights,
               gate_columns = if (shared) c(1L, ncol(U)))
  # What the k-means starts share (column scales, and below the subsample
  # size the scaled data and its number of distinct rows) is prepared once
  # per fit, when a start first needs it, not once per start.
  kmeans_prep <- local({
    prep <- NULL
    function() {
      if (is.null(prep)) prep <<- kmeans_data(X, kmeans_response(resp, expert))
      prep
    }
  })
  starts <- lapply(seq_len(control$n_starts), function(s) {
    make_start(control$init, s, y, resp, X, U, Z, k, expert, gate, dims, scaling, resp_s,
               kmeans_prep)
  })
  rm(kmeans_prep)
  contrasts <- list(expert = attr(X, "contrasts"), gate = attr(Z, "contrasts"))
  if (drop_designs) {
    # Garbage is collected only when R allocates: without gc() the dropped
    # designs (and the scaling's column temporaries) would stay resident
    # while the compiled EM allocates its work arrays.
    large <- as.numeric(n) * (ncol(X) + ncol(Z)) >= 2^20
    X <- Z <- U <- NULL
    if (large) invisible(gc(verbose = FALSE))
  }
  runner <- if (method == "ml") run_em else run_lsq
  # Jacobian of the response's change of units, once per (weighted) row.
  log_jacobian <- (if (is.null(weights)) n else sum(weights)) * log(scaling$y_scale)
  dims$trace_shift <- -log_jacobian
  dims$trace_factor <- scaling$y_scale^2
  n_starts <- length(starts)
  # Short-run start selection (moe_control(start_maxit = )): see run_all().
  short_runs <- method == "ml" && n_starts > 1 && !is.null(control$start_maxit)
  run_all <- function() {
    # progressr conditions, one per start: a bar when the caller (or
    # moe_control(progress = TRUE)) shows them.
    steps <- n_starts + if (short_runs) min(control$start_keep, n_starts) else 0
    tick <- if (n_starts > 1 && has_progressr()) progressr::progressor(steps = steps) else
      function(...) NULL
    run_start <- function(s, start, ctl, what = "") {
      label <- if (n_starts > 1) sprintf("start %d/%d%s: ", s, n_starts, what) else ""
      if (control$trace > 0 && n_starts > 1) cat(sprintf("Start %d of %d%s\n", s, n_starts, what))
      runner(start, resp = resp_s, X = Xs, U = Us, expert = expert, gate = gate,
             control = ctl, dims = dims, label = label)
    }
    if (!short_runs) {
      return(lapply(seq_len(n_starts), function(s) {
        r <- run_start(s, start_responsibilities(starts[[s]], k), control)
        tick(message = sprintf("start %d/%d", s, n_starts))
        run_to_original_units(r, scaling, expert, method, log_jacobian)
      }))
    }
    # Short-run start selection (the "small EM" of Biernacki, Celeux and
    # Govaert, 2003): every start runs a few EM iterations, and only the
    # best `start_keep` of them go on to the full stopping rule and polish,
    # each from where its short run ended. EM's next iterate depends on the
    # parameters alone, so a continued start follows its full run's path,
    # except that the polish may first fire at another iteration (its rule
    # needs the rate of the last two EM gains, measured afresh).
    short_ctl <- short_run_control(control)
    runs <- lapply(seq_len(n_starts), function(s) {
      r <- run_start(s, start_responsibilities(starts[[s]], k), short_ctl, " (short run)")
      tick(message = sprintf("start %d/%d (short run)", s, n_starts))
      r
    })
    short <- vapply(runs, function(r) r$objective, 0)
    ok <- vapply(runs, function(r) r$ok, TRUE)
    order_ok <- which(ok)[order(-short[ok])]
    keep <- utils::head(order_ok, control$start_keep)
    for (s in keep) {
      r <- run_start(s, list(params = runs[[s]]$params, R0 = NULL), control)
      runs[[s]] <- join_runs(runs[[s]], r)
      tick(message = sprintf("start %d/%d", s, n_starts))
    }
    runs <- lapply(runs, run_to_original_units, scaling = scaling, expert = expert,
                   method = method, log_jacobian = log_jacobian)
    attr(runs, "short_run") <- short - log_jacobian
    attr(runs, "continued") <- seq_len(n_starts) %in% keep
    runs
  }
  runs <- if (n_starts > 1 && isTRUE(control$progress) && has_progressr()) {
    # Shown only once the starts have run for 2 seconds (longer if the user
    # set progressr.enable_after so); enable = TRUE also outside interactive
    # sessions, as requested.
    old <- options(progressr.enable_after = max(2, getOption("progressr.enable_after", 0)))
    on.exit(options(old), add = TRUE)
    progressr::with_progress(run_all(), enable = TRUE)
  } else {
    run_all()
  }
  objective <- vapply(runs, function(r) r$objective, 0)
  ok <- vapply(runs, function(r) r$ok, TRUE)
  if (short_runs) {
    # Only continued starts compete for the fit: the others stopped short
    # of the stopping rule.
    continued <- attr(runs, "continued")
    ok <- ok & continued
    attr(objective, "short_run") <- attr(runs, "short_run")
    attr(objective, "continued") <- continued
  }
  if (!any(ok)) {
    stop("All ", length(runs), " start(s) failed numerically (",
         paste(unique(vapply(runs, function(r) r$status, "")), collapse = ", "),
         "). Try other starting values (control = moe_control(init = ...)) or fewer experts.",
         call. = FALSE)
  }
  best <- which(ok)[which.max(objective[ok])]
  out <- runs[[best]]
  out$start_objective <- objective
  out$best_start <- best
  # With one expert the gate is constant: none of its parameters counts.
  out$df <- (if (k > 1) info$n_par else 0) + if (method == "ml") {
    k * (n_expert_par + (expert$family == "gaussian"))
  } else {
    k * p + 1
  }
  out$separation <- if (expert$family == "multinomial" && !is.null(out$params)) {
    if (is.null(X)) X <- build_x()
    detect_separation(out$params$expert$coef, X, out$posterior, weights)
  } else rep(FALSE, k)
  # Case weights count as replicated rows (as in flexmix): nobs() is their sum.
  out$nobs <- if (is.null(weights)) n else sum(weights)
  out$weights <- weights
  out$dims <- dims
  out$contrasts <- contrasts
  signal_fit_problems(out, method)
  out
}

# Whether the scaled gate input equals the scaled expert design's columns
# 2..p, the first being the intercept: the same numbers with the same centres
# and scales, and no compiled input transform.
shares_gate_columns <- function(X, U, gate, scaling) {
  q <- ncol(U)
  if (q == 0 || ncol(X) != q + 1 || scaling$x$icol != 1 || !identical(gate$transform, "identity") ||
      isTRUE(scaling$u$euclidean)) {
    return(FALSE)
  }
  cols <- seq_len(q) + 1L
  if (!identical(scaling$u$centre, scaling$x$centre[cols]) ||
      !identical(scaling$u$scale, scaling$x$scale[cols])) {
    return(FALSE)
  }
  cpp_same_columns(X, 1L, U)
}

# An offset in the expert linear predictor: a known term added to every
# expert's mean. With identity means and a normalised gate it shifts the
# mixture mean by the same amount, so the fit is the fit of y - offset.
check_offset <- function(offset, n, expert, gate, method) {
  if (!is.numeric(offset) || length(offset) != n || any(!is.finite(offset))) {
    stop_arg("offset", "a finite numeric vector with one value per observation (", n, ")",
             got = offset)
  }
  if (expert$family != "gaussian") {
    stop_arg("offset", "NULL for multinomial experts: a term common to all classes cancels ",
             "in the class probabilities; put class-specific terms in the formula")
  }
  if (expert$activation != "identity") {
    stop_arg("offset", "NULL for experts with a non-linear mean (activation \"",
             expert$activation, "\"): offsets are supported for identity means")
  }
  if (method == "lsq" && !gate_info(gate, 1L, 2L)$normalized) {
    stop_arg("offset", "NULL for least squares with an unnormalised gate, whose weights ",
             "do not sum to one")
  }
  as.numeric(offset)
}

# A gate whose weights are the same for every observation whatever its gate
# vectors (the cosine of a single positive covariate is always 1) leaves
# those vectors unidentified: warn before fitting. Two fixed parameter sets
# (no RNG draws) stand in for "any parameters".
check_gate_varies <- function(gate, U, k) {
  q <- ncol(U)
  if (q == 0 || nrow(U) < 2) return(invisible(TRUE))
  spec <- gate_cpp_spec(gate)
  varies_on <- function(rows) vapply(list(sin, cos), function(f) {
    W <- matrix(3 * f(seq_len(q * k)), q, k)
    lw <- cpp_gate_forward(U[rows, , drop = FALSE], spec,
                           list(W = W, b0 = rep(0, k), tau = gate$temperature), 1L)$log_weights
    any(apply(lw, 2, function(v) diff(range(v))) > 1e-8)
  }, TRUE)
  # Weights that vary over some rows vary over all: the first rows usually
  # settle it, without two forward passes over large data.
  head_rows <- seq_len(min(nrow(U), 2000L))
  varies <- varies_on(head_rows)
  if (!any(varies) && length(head_rows) < nrow(U)) varies <- varies_on(seq_len(nrow(U)))
  if (!any(varies)) {
    warning(structure(class = c("moe_constant_gate_warning", "warning", "condition"),
                      list(message = paste0(
                        "The ", gate$name, " gate cannot vary over these data: its weights ",
                        "are the same for every observation whatever its gate vectors ",
                        "(e.g. the cosine of a single positive covariate is always 1), so ",
                        "only the gate intercepts act and the gate vectors are not ",
                        "identified; use another gate or more gate covariates"),
                        call = NULL)))
  }
  invisible(any(varies))
}

# Gates whose model depends on the origin of their inputs (cosine scores,
# an activation outside the intercept, tanh/sigmoid input transforms) are
# not centred internally (R/scaling.R). Inputs far from the origin compared
# with their spread then leave such a gate little to work with (the cosine
# of nearly parallel vectors, a saturated tanh): the fit is the fit of that
# model, but rarely the one meant, so say so.
check_gate_origin <- function(gate, U, scaling) {
  if (ncol(U) == 0 || nrow(U) < 2) return(invisible(TRUE))
  centred <- any(scaling$u$centre != 0)
  shift_free <- gate$score %in% c("inner", "euclidean", "euclidean_sq") &&
    identical(gate$transform, "identity") && is.null(gate$transform_fun) &&
    (gate$score != "inner" || gate$activation == "identity" || gate$intercept == "inside")
  if (centred || shift_free) return(invisible(TRUE))
  ratio <- vapply(seq_len(ncol(U)), function(j) {
    s <- stats::sd(U[, j])
    if (!is.finite(s) || s == 0) 0 else abs(mean(U[, j])) / s
  }, 0)
  far <- ratio > 100
  if (any(far)) {
    nm <- colnames(U) %||% paste0("column ", seq_len(ncol(U)))
    warning(structure(class = c("moe_gate_origin_warning", "warning", "condition"),
                      list(message = paste0(
                        "Gate input(s) ", paste(nm[far], collapse = ", "), " lie far from the ",
                        "origin (|mean| / sd up to ", signif(max(ratio), 3), "): the ",
                        gate$name, " gate depends on the origin of its inputs and can barely ",
                        "vary over these data; consider centring the gate covariates"),
                        call = NULL)))
  }
  invisible(!any(far))
}

# Complete or quasi-complete separation in a multinomial expert, detected as
# glm() does: fitted class probabilities numerically 0 or 1 among the
# observations the expert explains (posterior times case weight above 1/2).
# The EM log-likelihood then converges while the coefficients run off.
detect_separation <- function(coef, X, posterior, weights) {
  k <- dim(coef)[3]
  P <- expert_class_probs(coef, X, NULL)
  eps <- 10 * .Machine$double.eps
  vapply(seq_len(k), function(i) {
    own <- posterior[, i] * (weights %||% 1) > 0.5
    if (!any(own)) return(FALSE)
    p <- P[own, , i, drop = FALSE]
    any(p < eps | p > 1 - eps)
  }, TRUE)
}

# Case weights: a weight of 2 means the same as the row appearing twice.
check_weights <- function(weights, n) {
  if (!is.numeric(weights) || length(weights) != n || any(!is.finite(weights)) ||
      any(weights < 0)) {
    stop_arg("weights", "non-negative finite numbers, one per observation (", n, ")",
             got = weights)
  }
  if (!any(weights > 0)) stop_arg("weights", "positive for at least one observation")
  as.numeric(weights)
}

# Response as the matrix the C++ side reads: n x 1 for Gaussian experts,
# one-hot n x K for multinomial experts.
response_matrix <- function(y, expert) {
  if (NCOL(y) != 1 || is.list(y) && !is.factor(y)) {
    stop_arg("y", "a single response (a vector or factor); got ", NCOL(y), " columns")
  }
  if (is.matrix(y)) y <- y[, 1]
  if (expert$family == "gaussian") {
    if (is.factor(y) || !is.numeric(y)) {
      stop_arg("y", "numeric for Gaussian experts", got = y)
    }
    y <- as.numeric(y)
    if (any(!is.finite(y))) stop_arg("y", "free of NA, NaN and Inf")
    v <- stats::var(y)
    if (!is.finite(v) || v <= 0) stop_arg("y", "a response that varies")
    return(list(Y = matrix(y, ncol = 1), n_classes = 0L, levels = NULL, var_y = v))
  }
  if (!is.factor(y)) {
    if (is.character(y) || is.logical(y) || is.numeric(y)) y <- factor(y) else
      stop_arg("y", "a factor for multinomial experts", got = y)
  }
  if (anyNA(y)) stop_arg("y", "free of NA")
  y <- droplevels(y)
  K <- nlevels(y)
  if (K < 2) {
    stop_arg("y", "a response with at least two classes for multinomial experts; ",
             "only class \"", levels(y)[1], "\" occurs")
  }
  Y <- matrix(0, length(y), K)
  Y[cbind(seq_along(y), as.integer(y))] <- 1
  list(Y = Y, n_classes = K, levels = levels(y), var_y = 1)
}

# ---- starting values --------------------------------------------------------

# One start: either parameters (moe_params) or responsibilities R0 from which
# the C++ driver takes a first M-step.
# `scaling`: the fit's internal units (R/scaling.R); the start is returned in
# them. `resp_s`: the response in internal units.
make_start <- function(init, s, y, resp, X, U, Z, k, expert, gate, dims, scaling, resp_s,
                       kmeans_prep = function() kmeans_data(X, kmeans_response(resp, expert))) {
  init <- start_rule(init, s)
  if (is.function(init)) {
    init <- init(k = k, y = y, X = X, Z = Z, expert = expert, gate = gate)
    if (!inherits(init, "moe_params")) {
      stop_arg("init", "a function returning a moe_params object", got = init)
    }
  }
  if (inherits(init, "moe_params")) {
    params <- check_params(init, dims, expert, gate)
    params <- params_to_internal(direct_zero_gate_vectors(params, gate), scaling, expert)
    return(list(params = params, R0 = NULL))
  }
  groups <- if (init == "kmeans") {
    kmeans_groups(X, kmeans_response(resp, expert), k, kmeans_prep())
  } else {
    sample.int(k, dims$n, replace = TRUE)
  }
  # The n x k responsibilities are built from the groups when the start runs
  # (start_responsibilities()), so that the starts of a fit do not all hold
  # theirs at once.
  list(params = template_params(dims, expert, gate, resp_s), groups = groups)
}

# A start's responsibilities R0: a soft partition of its groups (a hard one
# would let the gate M-step separate the groups perfectly and start from an
# extreme gate).
start_responsibilities <- function(start, k) {
  if (is.null(start$groups)) return(start)
  n <- length(start$groups)
  R0 <- matrix(0.3 / k, n, k)
  at <- seq_len(n) + (start$groups - 1) * as.numeric(n)
  R0[at] <- R0[at] + 0.7
  start$R0 <- R0
  start$groups <- NULL
  start
}

# The response columns the k-means start clusters with the covariates.
# Multinomial experts: none (the covariates only). With the one-hot response
# among the clustered columns (earlier versions) the clusters follow the
# classes, each expert starts as a one-class predictor, and EM ends in poor
# optima (bench-multinom.R: K = 3, k = 3, n = 5e4, 90-120 log-likelihood units
# below the covariate clusters' fits).
kmeans_response <- function(resp, expert) {
  if (expert$family == "multinomial") resp$Y[, 0, drop = FALSE] else resp$Y
}

# What every k-means start of a fit shares: the columns kept and their
# scales, and when no subsample is drawn (n <= 20000) the scaled data and
# whether it has k distinct rows. No random numbers are drawn here, so the
# starts' random streams are those of a fit that prepares it per start.
kmeans_data <- function(X, Y) {
  # Column by column, never a scaled (or transposed) copy of the whole data:
  # at n = 1e6 those copies cost more than the clustering.
  cols <- c(lapply(seq_len(ncol(X)), function(j) function() X[, j]),
            lapply(seq_len(ncol(Y)), function(j) function() Y[, j]))
  spread <- vapply(cols, function(col) stats::sd(col()), 0)
  is_x <- seq_along(cols) <= ncol(X)
  keep <- !is_x | spread > 0
  scales <- spread[keep]
  scales[!(scales > 0)] <- 1
  prep <- list(keep_x = keep[is_x], scales = scales, data = NULL, distinct = NULL)
  if (nrow(X) <= 20000) {
    prep$data <- kmeans_scaled(X, Y, seq_len(nrow(X)), prep)
    prep$distinct <- n_distinct_rows(prep$data)
  }
  prep
}

kmeans_scaled <- function(X, Y, rows, prep) {
  data <- cbind(X[rows, prep$keep_x, drop = FALSE], Y[rows, , drop = FALSE])
  # Column by column in place: the quotients of sweep(data, 2, scales, "/")
  # without its two data-sized temporaries (array() and aperm()).
  for (j in seq_len(ncol(data))) data[, j] <- data[, j] / prep$scales[j]
  data
}

kmeans_groups <- function(X, Y, k, prep = kmeans_data(X, Y)) {
  n <- nrow(X)
  # Cluster a subsample for large n, then assign every row to its nearest centre.
  if (is.null(prep$data)) {
    data <- kmeans_scaled(X, Y, sample.int(n, 20000), prep)
    distinct <- n_distinct_rows(data)
  } else {
    data <- prep$data
    distinct <- prep$distinct
  }
  if (distinct < k) return(sample.int(k, n, replace = TRUE))
  # Only a start: Hartigan-Wong's warnings (its quick-transfer stage stopping
  # at 1e6 steps, as for 12 of 40 samples of 2e4 standard Gaussian rows, or
  # 30 iterations without convergence) say nothing about the fit, whose EM
  # starts from the partition returned either way.
  km <- tryCatch(withCallingHandlers(stats::kmeans(data, centers = k, iter.max = 30),
                                     warning = function(w) invokeRestart("muffleWarning")),
                 error = function(e) NULL)
  if (is.null(km)) return(sample.int(k, n, replace = TRUE))
  # Squared distances to each centre, accumulated over the columns; the
  # first nearest centre wins ties (in C++: the R loop over columns and
  # centres made 2 k per column full-length temporaries, 0.4 s at n = 1e6).
  cpp_nearest_centre(X, which(prep$keep_x), Y, as.numeric(prep$scales), unname(km$centers))
}

# nrow(unique(m)) without unique.matrix()'s per-row R work (it pastes every
# row through asplit()): sort the rows by all columns (radix order, exact on
# doubles) and count the rows that differ from their predecessor. Adding 0
# turns -0 into 0, which unique() also treats as equal. m is finite.
n_distinct_rows <- function(m) {
  n <- nrow(m)
  if (n <= 1 || ncol(m) == 0) return(min(n, 1L))
  m <- m + 0
  cols <- lapply(seq_len(ncol(m)), function(j) m[, j])
  sorted <- m[do.call(order, c(unname(cols), list(method = "radix"))), , drop = FALSE]
  differs <- sorted[-1, , drop = FALSE] != sorted[-n, , drop = FALSE]
  1L + sum(rowSums(differs) > 0)
}

# The cosine score of a zero gate vector has no direction (and no gradient):
# such vectors, e.g. a softmax reference expert's w = 0 used as a start, are
# replaced by small random ones (R's RNG, so set.seed() still reproduces).
direct_zero_gate_vectors <- function(params, gate) {
  if (gate$score != "cosine") return(params)
  W <- params$gate$W
  zero <- which(colSums(W^2) == 0)
  for (j in zero) W[, j] <- stats::rnorm(nrow(W), sd = 0.1)
  params$gate$W <- W
  params
}

# Parameters with the right shapes, used as the template the first M-step
# overwrites. Gate vectors are small random numbers: the cosine score is
# undefined at w = 0.
template_params <- function(dims, expert, gate, resp) {
  k <- dims$k
  W <- matrix(stats::rnorm(dims$q * k, sd = 0.1), dims$q, k)
  coef <- if (expert$family == "gaussian") {
    matrix(0, dims$p, k)
  } else {
    array(0, c(dims$p, dims$K - 1, k))
  }
  sigma2 <- if (expert$family == "gaussian") rep(resp$var_y, k) else NULL
  moe_params(W = W, b0 = rep(0, k), tau = gate$temperature, coef = coef, sigma2 = sigma2)
}

#' Parameters of a mixture of experts
#'
#' Builds the parameter list used for user-supplied starting values
#' (`moe_control(init = )`), for simulation ([rmoe()]) and as the `truth` of
#' losses. It is also what `coef(fit, type = "params")` returns.
#'
#' @param W Gate vectors: a q x k matrix (one column per expert).
#' @param b0 Gate intercepts: length k.
#' @param tau Temperature (positive).
#' @param coef Expert coefficients: for Gaussian experts a p x k matrix (one
#'   column per expert, rows matching the expert design matrix, intercept
#'   first); for multinomial experts a p x (K - 1) x k array (the last class is
#'   the reference).
#' @param sigma2 Expert variances (Gaussian experts), length k.
#' @return An object of class `moe_params`.
#' @examples
#' moe_params(W = matrix(c(2, 0), 1), b0 = c(0.5, 0),
#'            coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.2))
#' @export
moe_params <- function(W, b0, tau = 1, coef, sigma2 = NULL) {
  W <- as.matrix(W)
  if (!is.numeric(W) || any(!is.finite(W))) stop_arg("W", "a finite numeric matrix", got = W)
  k <- ncol(W)
  if (!is.numeric(b0) || length(b0) != k || any(!is.finite(b0))) {
    stop_arg("b0", "a finite numeric vector of length ncol(W) = ", k, got = b0)
  }
  check_number(tau, "tau", lower = 0, lower_open = TRUE)
  if (!is.numeric(coef) || any(!is.finite(coef))) stop_arg("coef", "finite numeric values", got = coef)
  ck <- if (length(dim(coef)) == 3) dim(coef)[3] else NCOL(coef)
  if (length(dim(coef)) < 2) coef <- matrix(coef, ncol = 1)
  if (ck != k) stop_arg("coef", "coefficients for ", k, " experts (last dimension), got ", ck)
  if (!is.null(sigma2)) {
    if (!is.numeric(sigma2) || length(sigma2) != k || any(!is.finite(sigma2)) || any(sigma2 <= 0)) {
      stop_arg("sigma2", "positive variances, one per expert (", k, ")", got = sigma2)
    }
  }
  structure(list(gate = list(W = W, b0 = as.numeric(b0), tau = tau),
                 expert = list(coef = coef, sigma2 = if (!is.null(sigma2)) as.numeric(sigma2))),
            class = "moe_params")
}

# Starting values (or any parameter list headed for the compiled code) must
# have exactly the shapes of the fit: a user may edit the list that coef(fit,
# type = "params") returns, so moe_params()'s own checks cannot be relied on.
# Nothing of the wrong shape, type or sign reaches C++. Returns the
# parameters with double storage.
check_params <- function(params, dims, expert, gate, arg = "init", need_sigma2 = TRUE) {
  params <- check_params_types(params, arg)
  W <- params$gate$W
  coef <- params$expert$coef
  k <- dims$k
  if (ncol(W) != k) {
    stop_arg(arg, "parameters for k = ", k, " experts (a gate matrix `W` with ", k,
             " columns); got ", ncol(W), " column(s)")
  }
  if (nrow(W) != dims$q) {
    stop_arg(arg, "gate vectors of length ", dims$q, " (the gate covariates: `W` with ",
             dims$q, " row(s)); got ", nrow(W))
  }
  if (length(params$gate$b0) != k) {
    stop_arg(arg, "gate intercepts `b0` of length k = ", k, "; got length ", length(params$gate$b0))
  }
  if (expert$family == "gaussian") {
    if (length(dim(coef)) != 2 || !identical(dim(coef), as.integer(c(dims$p, k)))) {
      stop_arg(arg, "a ", dims$p, " x ", k, " matrix of expert coefficients `coef` (one row per ",
               "expert design column, one column per expert); got ", dim_string(coef))
    }
    s2 <- params$expert$sigma2
    if (is.null(s2) && need_sigma2) stop_arg(arg, "expert variances `sigma2` (Gaussian experts)")
    if (!is.null(s2) && (length(s2) != k || any(s2 <= 0))) {
      stop_arg(arg, k, " positive expert variances `sigma2`; got ", describe_values(s2))
    }
  } else if (!identical(dim(coef), as.integer(c(dims$p, dims$K - 1, k)))) {
    stop_arg(arg, "a ", dims$p, " x ", dims$K - 1, " x ", k,
             " array of multinomial expert coefficients `coef`; got ", dim_string(coef))
  }
  params
}

# Types, finiteness and signs of a parameter list, before any shape check.
check_params_types <- function(params, arg) {
  if (!is.list(params) || !is.list(params$gate) || !is.list(params$expert)) {
    stop_arg(arg, "a moe_params object (a list with elements `gate` and `expert`)", got = params)
  }
  # empty_ok: a 0 x k matrix of gate vectors is a gate without covariates (y ~ x | 1).
  num <- function(x, what, empty_ok = FALSE) {
    if (is.null(x) || !(is.numeric(x) || is.logical(x) && all(is.na(x))) ||
        (length(x) == 0 && !empty_ok)) {
      stop_arg(arg, "numeric ", what, got = x)
    }
    if (any(!is.finite(x))) stop_arg(arg, "finite ", what, " (no NA, NaN or Inf)")
    storage.mode(x) <- "double"
    x
  }
  W <- params$gate$W
  if (!is.null(W) && is.null(dim(W)) && is.numeric(W)) W <- matrix(W, nrow = 1)
  W <- num(W, "gate vectors `W`", empty_ok = is.matrix(W) && ncol(W) > 0)
  if (length(dim(W)) != 2) stop_arg(arg, "a matrix of gate vectors `W`; got ", dim_string(W))
  params$gate$W <- W
  params$gate$b0 <- as.numeric(num(params$gate$b0, "gate intercepts `b0`"))
  tau <- params$gate$tau %||% 1
  if (!is.numeric(tau) || length(tau) != 1 || !is.finite(tau) || tau <= 0) {
    stop_arg(arg, "a single positive temperature `tau`; got ", describe_values(tau))
  }
  params$gate$tau <- as.numeric(tau)
  coef <- num(params$expert$coef, "expert coefficients `coef`")
  if (is.null(dim(coef))) coef <- matrix(coef, ncol = 1)
  params$expert$coef <- coef
  if (!is.null(params$expert$sigma2)) {
    params$expert$sigma2 <- as.numeric(num(params$expert$sigma2, "expert variances `sigma2`"))
  }
  params
}

dim_string <- function(x) {
  d <- dim(x)
  if (is.null(d)) paste0("a vector of length ", length(x)) else paste0("dimensions ", paste(d, collapse = " x "))
}

describe_values <- function(x) {
  if (length(x) == 0) return("nothing")
  s <- paste(format(utils::head(x, 5)), collapse = ", ")
  paste0(length(x), " value(s): ", s, if (length(x) > 5) ", ...")
}

# Parameters used to evaluate a model at design matrices X (expert) and U
# (gate input): shapes must match before any compiled call.
check_params_design <- function(params, X, U, expert, arg) {
  params <- check_params_types(params, arg)
  coef <- params$expert$coef
  k <- ncol(params$gate$W)
  K <- if (expert$family == "multinomial") {
    if (length(dim(coef)) != 3) {
      stop_arg(arg, "multinomial expert coefficients: a p x (K - 1) x k array; got ", dim_string(coef))
    }
    dim(coef)[2] + 1L
  } else 0L
  dims <- list(k = k, q = ncol(U), p = ncol(X), K = K)
  check_params(params, dims, expert, NULL, arg, need_sigma2 = FALSE)
}

# ---- conversions to and from the C++ layout ---------------------------------

params_to_cpp <- function(params, expert, k) {
  coef <- params$expert$coef
  if (expert$family == "multinomial") coef <- matrix(coef, nrow = dim(coef)[1])
  sigma2 <- params$expert$sigma2
  if (is.null(sigma2)) sigma2 <- rep(1, k)
  list(gate = list(W = params$gate$W, b0 = params$gate$b0, tau = params$gate$tau),
       expert = list(coef = coef, sigma2 = sigma2))
}

params_from_cpp <- function(gate_par, expert_par, expert, dims) {
  k <- dims$k
  enames <- paste0("expert", seq_len(k))
  W <- gate_par$W
  # A user transform may change the number of gate inputs: name them u1, u2, ...
  wn <- if (length(dims$z_names) == nrow(W)) dims$z_names else paste0("u", seq_len(nrow(W)))
  dimnames(W) <- list(wn, enames)
  b0 <- stats::setNames(gate_par$b0, enames)
  xn <- dims$x_names %||% paste0("x", seq_len(dims$p))
  if (expert$family == "gaussian") {
    coef <- expert_par$coef
    dimnames(coef) <- list(xn, enames)
    sigma2 <- stats::setNames(expert_par$sigma2, enames)
  } else {
    coef <- array(expert_par$coef, c(dims$p, dims$K - 1, k),
                  dimnames = list(xn, dims$levels[-dims$K], enames))
    sigma2 <- NULL
  }
  out <- moe_params(W = W, b0 = b0, tau = gate_par$tau, coef = coef, sigma2 = sigma2)
  out$gate$b0 <- b0
  out
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# The largest entry of each row of a numeric matrix, by column-wise pmax()
# (apply(x, 1, max) makes one R call per row: most of the time at large n).
row_max <- function(x) {
  m <- x[, 1]
  for (j in seq_len(ncol(x))[-1]) m <- pmax(m, x[, j])
  m
}

control_cpp <- function(control) {
  control[c("tol", "maxit", "nthreads", "trace", "gate_maxit", "gate_tol",
            "expert_maxit", "expert_tol", "accelerate", "gate_optimizer", "stop", "grad_tol",
            "polish", "polish_at", "polish_maxit", "runoff_ratio")]
}

# ---- the two estimators ------------------------------------------------------

has_progressr <- function() requireNamespace("progressr", quietly = TRUE)

run_em <- function(start, resp, X, U, expert, gate, control, dims, label = "") {
  cp <- params_to_cpp(start$params, expert, dims$k)
  if (identical(control$accelerate, "auto")) control$accelerate <- "squarem"

  R0 <- if (is.null(start$R0)) matrix(0, 0, dims$k) else start$R0
  # The first M-step from a start's responsibilities is weighted like all others.
  if (!is.null(dims$weights) && nrow(R0) > 0) R0 <- R0 * dims$weights
  # U = NULL: the gate input is the columns dims$gate_columns of X.
  res <- cpp_em_fit(X, resp$Y, if (is.null(U)) matrix(0, 0, 0) else U, gate_cpp_spec(gate),
                    expert_cpp_spec(expert, resp$var_y, resp$n_classes),
                    cp$gate, cp$expert, R0,
                    c(control_cpp(control), list(weights = dims$weights, trace_label = label,
                                                 trace_shift = dims$trace_shift,
                                                 gate_columns = dims$gate_columns)))
  ok <- res$status == "ok" && is.finite(res$loglik) &&
    all(is.finite(unlist(res$gate))) && all(is.finite(unlist(res$expert)))
  list(params = if (ok) params_from_cpp(res$gate, res$expert, expert, dims),
       objective = if (ok) res$loglik else -Inf, loglik = res$loglik,
       trace = res$trace, iter = res$iter, em_steps = res$em_steps, gate_work = res$gate_work,
       converged = stats::setNames(res$converged, res$stop_rule),
       gradient_criterion = res$gradient_criterion, polish = res$polish,
       decreased = res$decreased, status = res$status, ok = ok,
       posterior = res$posterior, floor_binds = res$floor_binds, rss = NULL)
}

run_lsq <- function(start, resp, X, U, expert, gate, control, dims, label = "") {
  params <- start$params
  if (!is.null(start$R0)) {
    # Least-squares start: weighted linear fits of each soft group.
    params$expert$coef <- vapply(seq_len(dims$k), function(i) {
      fit <- stats::lm.wfit(X, resp$Y[, 1], start$R0[, i] * (dims$weights %||% 1))
      cf <- fit$coefficients
      cf[is.na(cf)] <- 0
      cf
    }, numeric(dims$p))
    params$expert$coef <- matrix(params$expert$coef, dims$p, dims$k)
  }
  cp <- params_to_cpp(params, expert, dims$k)
  # The least-squares rule: the relative change of the RSS unless `stop` was
  # given as "gradient" (moe_control()'s lsq_stop).
  control$stop <- control$lsq_stop %||% "loglik"
  res <- cpp_lsq_fit(X, resp$Y, U, gate_cpp_spec(gate), expert$activation, cp$gate,
                     cp$expert$coef, c(control_cpp(control),
                                       list(weights = dims$weights, trace_label = label,
                                            trace_factor = dims$trace_factor)))
  # The number of observations the (weighted) RSS sums over.
  n <- if (is.null(dims$weights)) dims$n else sum(dims$weights)
  ok <- is.finite(res$rss) && all(is.finite(unlist(res$gate))) && all(is.finite(res$coef))
  sigma2 <- res$rss / n
  # Gaussian log-likelihood of the regression model at the least-squares fit
  # with its maximum-likelihood noise variance.
  loglik <- -0.5 * n * (log(2 * pi * sigma2) + 1)
  params <- if (ok) params_from_cpp(res$gate, list(coef = res$coef, sigma2 = rep(sigma2, dims$k)),
                                    expert, dims)
  list(params = params, objective = if (ok) -res$rss else -Inf, loglik = loglik,
       trace = NULL, iter = res$iter, converged = stats::setNames(res$converged, res$stop_rule),
       gradient_criterion = res$gradient_criterion, polish = res$polish, decreased = FALSE,
       status = if (ok) "ok" else "numerical_failure", ok = ok, posterior = NULL,
       floor_binds = rep(FALSE, dims$k), rss = res$rss, sigma2 = sigma2, message = res$message,
       runoff = res$runoff)
}

# The control of a start's short run (moe_control(start_maxit, start_tol)):
# EM only, stopped after start_maxit iterations or at a relative change of
# the log-likelihood below start_tol, whichever comes first. A relative-change
# rule, not the gradient: it needs no score passes, and a short run only has
# to rank the starts.
short_run_control <- function(control) {
  control$maxit <- control$start_maxit
  control$stop <- "loglik"
  control$tol <- control$start_tol %||% 0
  control$polish <- "none"
  control
}

# A start's short run followed by its continuation (both in internal units)
# as one run: the continuation's estimates, diagnostics and polish, with the
# iterations, EM maps, gate work and trace of both. The continuation's trace
# starts at the log-likelihood where the short run ended, recorded once.
join_runs <- function(short, rest) {
  rest$iter <- short$iter + rest$iter
  rest$em_steps <- short$em_steps + rest$em_steps
  rest$gate_work <- short$gate_work + rest$gate_work
  rest$trace <- c(short$trace, rest$trace[-1])
  rest$decreased <- isTRUE(short$decreased) || isTRUE(rest$decreased)
  rest
}

# A run of the estimator (in internal units) in the original units.
run_to_original_units <- function(run, scaling, expert, method, log_jacobian) {
  # Identical experts are judged in internal units, where every coefficient
  # is on the scale of the standardised data.
  run$identical_experts <- identical_experts(run$params, expert)
  if (!is.null(run$params)) run$params <- params_from_internal(run$params, scaling, expert)
  run$loglik <- run$loglik - log_jacobian
  if (!is.null(run$trace)) run$trace <- run$trace - log_jacobian
  if (method == "ml") {
    run$objective <- run$objective - log_jacobian
  } else {
    run$objective <- run$objective * scaling$y_scale^2
    run$rss <- run$rss * scaling$y_scale^2
    run$sigma2 <- run$sigma2 * scaling$y_scale^2
  }
  run
}

# Pairs of experts with the same parameters (to 1e-6 in internal units): EM
# cannot separate experts that start identical (a saddle point of the
# likelihood), and stops at the fit of fewer experts, marked converged.
identical_experts <- function(params, expert) {
  if (is.null(params)) return(NULL)
  coef <- params$expert$coef
  k <- if (length(dim(coef)) == 3) dim(coef)[3] else ncol(coef)
  if (k < 2) return(NULL)
  M <- matrix(coef, ncol = k)
  if (!is.null(params$expert$sigma2)) M <- rbind(M, log(params$expert$sigma2))
  pairs <- NULL
  for (i in seq_len(k - 1)) for (j in (i + 1):k) {
    if (max(abs(M[, i] - M[, j])) <= 1e-6) pairs <- rbind(pairs, c(i, j))
  }
  pairs
}

# Classed warnings for problems a fit can survive.
signal_fit_problems <- function(fit, method) {
  if (!is.null(fit$identical_experts)) {
    pairs <- fit$identical_experts
    warning(structure(class = c("moe_identical_experts_warning", "moe_degenerate_warning",
                                "warning", "condition"),
                      list(message = paste0(
                        "Expert(s) ", paste(pairs[, 1], pairs[, 2], sep = " and ", collapse = ", "),
                        " have identical parameters: EM cannot separate experts that start ",
                        "identical (a saddle point), so this is the fit of fewer experts. ",
                        "Use other starting values or more starts (moe_control(n_starts = ))"),
                        call = NULL)))
  }
  # A separated expert has no finite maximum: its warning below says so, and
  # a convergence warning would only ask for more iterations that cannot help.
  if (!isTRUE(fit$converged) && !any(fit$separation)) {
    warning(structure(class = c("moe_convergence_warning", "warning", "condition"),
                      list(message = paste0("The ", if (method == "ml") "EM" else "least-squares",
                                            " iterations did not converge (", fit$iter,
                                            " iterations); increase `maxit` in moe_control()",
                                            if (!is.null(fit$message)) paste0(" [", fit$message, "]")),
                           call = NULL)))
  }
  if (identical(names(fit$converged), "runoff")) {
    ro <- fit$runoff
    warning(structure(class = c("moe_runoff_warning", "warning", "condition"),
                      list(message = sprintf(paste0(
                        "The least-squares fit of the perturbed cosine gate was stopped by the ",
                        "run-off guard during its %s (%d L-BFGS evaluations): the next accepted ",
                        "iterate had boundary ratio %.4g, above the bound %.4g (runoff_ratio = ",
                        "%g times the start's ratio %.3g, or at least 1); its gate vectors were ",
                        "running off towards infinite norm, where the RSS has no finite ",
                        "minimum. The fit is the last iterate within the bound (ratio %.4g), ",
                        "not a minimum. Usually too many experts: try fewer; or other starts; ",
                        "moe_control(runoff_ratio = Inf) lets the fit run on"),
                        if (identical(ro$phase, "polish")) "Newton polish" else "L-BFGS",
                        fit$iter, ro$refused, ro$bound, ro$runoff_ratio,
                        ro$start, ro$ratio),
                        call = NULL)))
  }
  if (any(fit$floor_binds)) {
    warning(structure(class = c("moe_variance_floor_warning", "warning", "condition"),
                      list(message = paste0("The variance floor binds for expert(s) ",
                                            paste(which(fit$floor_binds), collapse = ", "),
                                            ": an expert is collapsing onto few observations; ",
                                            "consider fewer experts"), call = NULL)))
  }
  if (!is.null(fit$posterior)) {
    size <- colSums(fit$posterior * (fit$weights %||% 1))
    if (any(size < 1)) {
      warning(structure(class = c("moe_degenerate_warning", "warning", "condition"),
                        list(message = paste0("Expert(s) ", paste(which(size < 1), collapse = ", "),
                                              " received less than one observation's worth of ",
                                              "posterior weight; their parameters are not estimable"),
                             call = NULL)))
    }
  }
  if (any(fit$separation)) {
    warning(structure(class = c("moe_separation_warning", "warning", "condition"),
                      list(message = paste0(
                        "Separation in expert(s) ", paste(which(fit$separation), collapse = ", "),
                        ": fitted class probabilities numerically 0 or 1 occurred; the ",
                        "log-likelihood has no finite maximum, the coefficients run off towards ",
                        "infinity and are not meaningful (as in glm)",
                        if (!isTRUE(fit$converged)) paste0("; EM stopped after ", fit$iter,
                                                           " iterations"),
                        ". Remove the separating covariate, merge classes or use fewer experts"),
                        call = NULL)))
  }
  if (isTRUE(fit$decreased)) {
    warning(structure(class = c("moe_monotonicity_warning", "warning", "condition"),
                      list(message = "The log-likelihood decreased during EM; please report this",
                           call = NULL)))
  }
  invisible(NULL)
}
