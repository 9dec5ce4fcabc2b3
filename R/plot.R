# Base-graphics plots of a fitted mixture of experts.

#' Plot a fitted mixture of experts
#'
#' Four views of a fit, chosen by `what`:
#' * `"gate"`: the fitted gate weights \eqn{G_i(z)} along one gate covariate,
#'   one line per expert. The other gate covariates are held at their means;
#'   0/1 columns (dummy codings of factors) at 0, i.e. at the first level.
#' * `"loglik"`: the log-likelihood after each EM iteration (maximum-likelihood
#'   fits only).
#' * `"fit"`: for Gaussian experts, the data against one expert covariate with
#'   each expert's mean (dashed) and the mixture mean (solid black). Gate
#'   covariates with the same name move with it, the others are held as in
#'   `"gate"`. Meant for a single numeric covariate; with more, the other
#'   expert covariates are held at their means too.
#' * `"posterior"`: the data against one expert covariate, coloured by the
#'   most probable expert given the response (for least-squares fits, which
#'   have no expert densities: by the largest gate weight).
#'
#' @param x A fitted [moe()] model.
#' @param what Which plot: `"gate"`, `"loglik"`, `"fit"` or `"posterior"`.
#' @param covariate Name (or column index) of the covariate on the horizontal
#'   axis: a gate covariate for `"gate"` (default the first), an expert
#'   covariate for `"fit"` and `"posterior"` (default the first one that is
#'   not the intercept).
#' @param ... Graphical parameters passed to [graphics::plot()], such as
#'   `main`, `xlab` or `ylim`.
#' @return `x`, invisibly.
#' @examples
#' set.seed(5)
#' truth <- moe_params(W = matrix(c(5, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' fit <- moe(y ~ x1, data = rmoe(400, truth), k = 2)
#' op <- par(mfrow = c(2, 2))
#' plot(fit, "gate")
#' plot(fit, "loglik")
#' plot(fit, "fit")
#' plot(fit, "posterior")
#' par(op)
#' @export
plot.moe <- function(x, what = c("gate", "loglik", "fit", "posterior"), covariate = NULL, ...) {
  what <- match_arg(what)
  switch(what,
    gate = plot_gate(x, covariate, ...),
    loglik = plot_loglik(x, ...),
    fit = plot_fit(x, covariate, ...),
    posterior = plot_posterior(x, covariate, ...)
  )
  invisible(x)
}

expert_colours <- function(k) grDevices::hcl.colors(max(k, 2), "Dark 3")[seq_len(k)]

# Defaults that the user's graphical parameters override.
plot_with <- function(defaults, ...) {
  do.call(graphics::plot, utils::modifyList(defaults, list(...)))
}

# Column index of `covariate` in matrix M, or the first allowed column.
pick_column <- function(M, covariate, allowed, what) {
  nm <- colnames(M)
  if (is.null(covariate)) {
    if (!any(allowed)) {
      stop_arg("covariate", "a covariate to plot against, but the fit has no ", what)
    }
    return(which(allowed)[1])
  }
  j <- if (is.numeric(covariate) && length(covariate) == 1) {
    as.integer(covariate)
  } else if (is.character(covariate) && length(covariate) == 1) {
    match(covariate, nm)
  } else {
    NA_integer_
  }
  if (is.na(j) || j < 1 || j > ncol(M) || !allowed[j]) {
    stop_arg("covariate", "one of the ", what, ": ",
             paste0('"', nm[allowed], '"', collapse = ", "), got = covariate)
  }
  j
}

# Typical values: means, 0 for 0/1 columns (the first level of a factor under
# treatment contrasts), 1 for an intercept column.
typical_row <- function(M) {
  vapply(seq_len(ncol(M)), function(j) {
    v <- M[, j]
    if (all(v == 1)) 1 else if (all(v %in% c(0, 1))) 0 else mean(v)
  }, 0)
}

# A grid over the range of v (200 points), or its distinct values when few.
covariate_grid <- function(v) {
  u <- sort(unique(v))
  if (length(u) <= 10) u else seq(min(v), max(v), length.out = 200)
}

grid_matrix <- function(M, grid, j_vary) {
  G <- matrix(typical_row(M), length(grid), ncol(M), byrow = TRUE,
              dimnames = list(NULL, colnames(M)))
  for (j in j_vary) G[, j] <- grid
  G
}

plot_gate <- function(x, covariate, ...) {
  Z <- model_design(x, "gate")
  if (ncol(Z) == 0) stop_arg("x", "a fit with gate covariates for what = \"gate\"")
  j <- pick_column(Z, covariate, rep(TRUE, ncol(Z)), "gate covariates")
  grid <- covariate_grid(Z[, j])
  Zg <- grid_matrix(Z, grid, j)
  X <- model_design(x, "expert")
  Xg <- matrix(typical_row(X), length(grid), ncol(X), byrow = TRUE)
  G <- moe_predict_core(x, Xg, Zg)$gate
  col <- expert_colours(x$k)
  few <- length(grid) <= 10
  plot_with(list(x = range(grid), y = c(0, max(1, G)), type = "n", xlab = colnames(Z)[j],
                 ylab = "gate weight", main = paste("Gate:", x$gate$name)), ...)
  graphics::matplot(grid, G, type = if (few) "b" else "l", lty = 1, lwd = 2, pch = 19,
                    col = col, add = TRUE)
  graphics::legend("topright", legend = paste("expert", seq_len(x$k)), col = col, lty = 1,
                   lwd = 2, bty = "n", cex = 0.8)
}

plot_loglik <- function(x, ...) {
  if (x$method != "ml" || length(x$trace) == 0) {
    stop_arg("what", "not \"loglik\" for a least-squares fit, which has no EM trace; ",
             "use \"gate\", \"fit\" or \"posterior\"")
  }
  tr <- x$trace
  plot_with(list(x = seq_along(tr), y = tr, type = if (length(tr) > 50) "l" else "o",
                 pch = 19, cex = 0.5, xlab = "EM iteration", ylab = "log-likelihood",
                 main = "EM trace"), ...)
}

expert_covariates <- function(x) {
  X <- model_design(x, "expert")
  allowed <- apply(X, 2, function(v) any(v != 1))
  list(X = X, allowed = allowed)
}

plot_fit <- function(x, covariate, ...) {
  if (x$expert$family != "gaussian") {
    stop_arg("what", "not \"fit\" for multinomial experts; use \"gate\" or \"posterior\"")
  }
  ec <- expert_covariates(x)
  j <- pick_column(ec$X, covariate, ec$allowed, "expert covariates")
  name <- colnames(ec$X)[j]
  grid <- covariate_grid(ec$X[, j])
  Xg <- grid_matrix(ec$X, grid, j)
  Z <- model_design(x, "gate")
  Zg <- grid_matrix(Z, grid, which(colnames(Z) == name))
  core <- moe_predict_core(x, Xg, Zg)
  col <- expert_colours(x$k)
  # The curves leave the offset out, so the data are shown without it too.
  y <- as.numeric(fit_response(x))
  plot_with(list(x = ec$X[, j], y = y, pch = 19, cex = 0.4,
                 col = grDevices::adjustcolor("grey40", 0.4), xlab = name,
                 ylab = if (is.null(x$offset)) "response" else "response - offset", main = "Experts and mixture mean"), ...)
  graphics::matlines(grid, core$expert, lty = 2, lwd = 2, col = col)
  graphics::lines(grid, core$response, lwd = 2.5, col = "black")
  graphics::legend("topleft", legend = c(paste("expert", seq_len(x$k)), "mixture mean"),
                   col = c(col, "black"), lty = c(rep(2, x$k), 1), lwd = 2, cex = 0.8,
                   bg = grDevices::adjustcolor("white", 0.8), box.col = NA)
}

plot_posterior <- function(x, covariate, ...) {
  if (!is.null(x$posterior)) {
    weights <- x$posterior
    label <- "most probable expert (posterior)"
  } else {
    weights <- moe_predict_core(x, model_design(x, "expert"), model_design(x, "gate"))$gate
    label <- "expert with the largest gate weight"
  }
  group <- max.col(weights, ties.method = "first")
  col <- expert_colours(x$k)
  ec <- expert_covariates(x)
  if (any(ec$allowed)) {
    j <- pick_column(ec$X, covariate, ec$allowed, "expert covariates")
    h <- ec$X[, j]
    xlab <- colnames(ec$X)[j]
  } else {
    h <- seq_len(nrow(ec$X))
    xlab <- "observation"
  }
  y <- x$y
  ylab <- "response"
  if (is.factor(y)) {
    # Class as an integer, spread by a deterministic jitter: plotting must not
    # move the random number generator.
    ylab <- "class"
    y <- as.integer(y) + 0.4 * ((seq_along(y) * 0.6180339887) %% 1 - 0.5)
  }
  plot_with(list(x = h, y = y, pch = 19, cex = 0.5, col = col[group], xlab = xlab,
                 ylab = ylab, main = label, yaxt = if (is.factor(x$y)) "n" else "s"), ...)
  if (is.factor(x$y)) {
    graphics::axis(2, at = seq_along(levels(x$y)), labels = levels(x$y))
  }
  graphics::legend("topleft", legend = paste("expert", seq_len(x$k)), col = col, pch = 19,
                   bty = "n", cex = 0.8)
}
