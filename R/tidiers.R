# broom-style tidiers: tidy(), glance() and augment() methods for the generics
# of the generics package (which broom re-exports). generics is only
# suggested: the methods are registered when generics is loaded (delayed S3
# registration via `S3method(generics::tidy, moe)` in NAMESPACE), so
# `broom::tidy(fit)` and `generics::tidy(fit)` both work without moegate
# importing anything.

#' Tidy a fitted mixture of experts
#'
#' Methods for the [generics::tidy()], [generics::glance()] and
#' [generics::augment()] generics (re-exported by broom), so that fits drop
#' into tidyverse workflows. They return plain data frames.
#'
#' * `tidy()`: one row per free parameter, from the tables of
#'   [summary.moe()]: `component` (`"gate"` or `"expert"`), `expert` (the
#'   expert the parameter belongs to), `y.level` (the class of a multinomial
#'   expert's coefficient, `NA` otherwise), `term`, `estimate`, `std.error`,
#'   `statistic` (Wald z), `p.value` and, with `conf.int = TRUE`, Wald
#'   intervals `conf.low`, `conf.high`. Standard errors the likelihood does not
#'   identify are `NA` (see [summary.moe()]).
#' * `glance()`: one row: `k`, `gate`, `expert` (family), `method`,
#'   `logLik`, `AIC`, `BIC`, `deviance`, `df`, `df.residual`, `nobs`,
#'   `converged`, `iter`.
#' * `augment()`: `data` (default: the model frame of a formula fit, or the
#'   response and covariates of a matrix fit) with `.fitted` (the mixture
#'   mean, or for multinomial experts the most probable class, plus
#'   `.prob.<class>` columns), `.resid` (Gaussian experts: response minus
#'   `.fitted`), `.std.resid` (Pearson residuals) and `.expert` (the most
#'   probable expert: by the posterior for likelihood fits, by the gate
#'   weights for least squares and for `newdata` without the response). With
#'   `newdata`, predictions for it (and `.resid` when it holds the response).
#'
#' @param x A fitted [moe()] model.
#' @param conf.int Logical: add Wald confidence intervals?
#' @param conf.level Their level.
#' @param data For `augment()`: the data the model was fitted to, one row
#'   per observation of the fit (or per row of the original data when
#'   `na.action = na.exclude` dropped some; those rows get `NA`).
#' @param newdata For `augment()`: new data to predict (as in
#'   [predict.moe()]); overrides `data`.
#' @param ... Unused.
#' @return A data frame.
#' @examples
#' set.seed(1)
#' d <- rmoe(300, moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                           coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1)))
#' fit <- moe(y ~ x1, data = d, k = 2)
#' if (requireNamespace("generics", quietly = TRUE)) {
#'   print(generics::tidy(fit, conf.int = TRUE))
#'   print(generics::glance(fit))
#'   print(head(generics::augment(fit)))
#' }
#' @name moe-tidiers
NULL

#' @rdname moe-tidiers
#' @exportS3Method generics::tidy
tidy.moe <- function(x, conf.int = FALSE, conf.level = 0.95, ...) {
  check_dots(...)
  check_flag(conf.int, "conf.int")
  check_number(conf.level, "conf.level", lower = 0, upper = 1, lower_open = TRUE)
  s <- summary(x)
  one <- function(tab, component, expert) {
    term <- rownames(tab)
    y_level <- rep(NA_character_, length(term))
    if (component == "gate") {
      # "expert1.x1" -> expert 1, term "x1"; log_tau belongs to no expert.
      expert <- suppressWarnings(as.integer(sub("^expert([0-9]+)\\..*$", "\\1", term)))
      term <- sub("^expert[0-9]+\\.", "", term)
    } else if (x$expert$family == "multinomial") {
      # "setosa.(Intercept)": the class, then the covariate.
      cls <- x$levels[-length(x$levels)]
      for (cl in cls) {
        hit <- startsWith(term, paste0(cl, ".")) & is.na(y_level)
        y_level[hit] <- cl
        term[hit] <- substring(term[hit], nchar(cl) + 2L)
      }
    }
    data.frame(component = rep(component, length(term)),
               expert = rep_len(as.integer(expert), length(term)), y.level = y_level,
               term = term, estimate = unname(tab[, 1]), std.error = unname(tab[, 2]),
               statistic = unname(tab[, 3]), p.value = unname(tab[, 4]),
               stringsAsFactors = FALSE)
  }
  parts <- c(list(one(s$coefficients$gate, "gate", NA)),
             lapply(seq_along(s$coefficients$experts), function(i) {
               one(s$coefficients$experts[[i]], "expert", i)
             }))
  if (!is.null(s$noise)) {
    noise <- one(s$noise, "expert", NA)
    noise$component <- "noise"
    parts <- c(parts, list(noise))
  }
  out <- do.call(rbind, parts)
  if (conf.int) {
    z <- stats::qnorm(1 - (1 - conf.level) / 2)
    out$conf.low <- out$estimate - z * out$std.error
    out$conf.high <- out$estimate + z * out$std.error
  }
  rownames(out) <- NULL
  out
}

#' @rdname moe-tidiers
#' @exportS3Method generics::glance
glance.moe <- function(x, ...) {
  check_dots(...)
  ll <- logLik(x)
  data.frame(k = x$k, gate = x$gate$name, expert = x$expert$family, method = x$method,
             logLik = as.numeric(ll), AIC = stats::AIC(ll), BIC = stats::BIC(ll),
             deviance = deviance(x), df = x$df, df.residual = df.residual(x), nobs = x$nobs,
             converged = isTRUE(x$converged), iter = x$iter, stringsAsFactors = FALSE)
}

#' @rdname moe-tidiers
#' @exportS3Method generics::augment
augment.moe <- function(x, data = NULL, newdata = NULL, ...) {
  check_dots(...)
  if (!is.null(newdata)) {
    out <- if (is.data.frame(newdata)) newdata else as.data.frame(newdata)
    has_y <- !is.null(x$terms) && all(all.vars(stats::formula(x$terms$full)[[2]]) %in% names(out))
    pred <- predict(x, newdata, type = "response")
    gate_or_post <- if (has_y && x$method == "ml") {
      predict(x, newdata, type = "posterior")
    } else {
      predict(x, newdata, type = "gate")
    }
    out <- add_augment_columns(out, x, pred, gate_or_post,
                               y = if (has_y) stats::model.response(stats::model.frame(
                                 x$terms$full, newdata, na.action = stats::na.pass,
                                 xlev = x$xlevels)),
                               pearson = NULL)
    return(out)
  }
  if (is.null(data)) {
    data <- if (!is.null(x$model)) {
      x$model
    } else if (!is.null(x$terms)) {
      model.frame(x)
    } else {
      X <- model_design(x, "expert")
      xs <- X[, colnames(X) != "(Intercept)", drop = FALSE]
      data.frame(y = x$y, xs, check.names = FALSE)
    }
  }
  if (!is.data.frame(data)) data <- as.data.frame(data)
  n_used <- NROW(x$y)
  weights <- if (!is.null(x$posterior)) x$posterior else
    moe_predict_core(x, model_design(x, "expert"), model_design(x, "gate"))$gate
  pearson <- residuals_unpadded(x)
  pred <- x$fitted.values
  pad <- function(v) v
  if (nrow(data) != n_used) {
    na_rows <- x$na.action
    if (is.null(na_rows) || nrow(data) != n_used + length(na_rows)) {
      stop_arg("data", "the data of the fit: ", n_used, " rows",
               if (!is.null(na_rows)) paste0(" (or ", n_used + length(na_rows),
                                            " with the rows na.action dropped)"),
               "; got ", nrow(data))
    }
    keep <- rep(TRUE, nrow(data))
    keep[na_rows] <- FALSE
    pad <- function(v) expand_rows(v, keep)
  }
  add_augment_columns(data, x, pad(pred), pad(weights), y = pad_response(x$y, pad),
                      pearson = pad(pearson))
}

# The Pearson residuals at the fitted rows (without na.exclude padding).
residuals_unpadded <- function(x) {
  x$na.action <- NULL
  residuals(x, type = "pearson")
}

pad_response <- function(y, pad) {
  if (is.factor(y)) return(pad(y))
  pad(as.numeric(y))
}

add_augment_columns <- function(out, x, pred, weights, y, pearson) {
  if (x$expert$family == "multinomial") {
    cls <- max.col(ifelse(is.na(pred), -Inf, pred), ties.method = "first")
    cls[rowSums(is.na(pred)) > 0] <- NA
    out$.fitted <- factor(x$levels[cls], levels = x$levels)
    for (j in seq_along(x$levels)) out[[paste0(".prob.", x$levels[j])]] <- pred[, j]
  } else {
    out$.fitted <- as.numeric(pred)
    if (!is.null(y)) out$.resid <- as.numeric(y) - out$.fitted
    if (!is.null(pearson)) out$.std.resid <- as.numeric(pearson)
  }
  best <- max.col(ifelse(is.na(weights), -Inf, weights), ties.method = "first")
  best[rowSums(is.na(weights)) > 0] <- NA
  out$.expert <- as.integer(best)
  out
}
