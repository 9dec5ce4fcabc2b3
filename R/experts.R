# Expert specifications.

#' Experts
#'
#' `expert_gaussian()` gives each expert a normal density with its own mean
#' \eqn{\mathrm{act}(a_i^\top x + b_i)} and variance \eqn{\nu_i}; with the
#' identity activation this is the Gaussian (linear) mixture of experts and the
#' M-step is closed-form weighted least squares, otherwise weighted non-linear
#' least squares by L-BFGS. The same spec defines the regression function
#' \eqn{h_i(x) = \mathrm{act}(a_i^\top x + b_i)} of the least-squares estimator
#' (`method = "lsq"`), where one common noise variance is reported.
#'
#' `expert_multinomial()` gives each expert a multinomial logistic model
#' \eqn{P(y = c) \propto \exp(\eta_{ic}^\top x + t_{ic})}. The reference class is
#' the **last** level of the response factor (its coefficients are zero);
#' relevel the factor to choose another.
#'
#' @param activation Mean activation of a Gaussian expert: `"identity"`,
#'   `"tanh"`, `"sigmoid"`, `"relu"` or `"gelu"`. Non-linear activations are
#'   the "strongly identifiable" experts of the cosine-router paper.
#' @param var_floor Variance floor relative to the variance of the response:
#'   no expert variance goes below `var_floor * var(y)`, so a collapsing expert
#'   cannot drive the likelihood to infinity. Fits report when the floor binds.
#' @return An object of class `moe_expert`.
#' @examples
#' expert_gaussian()
#' expert_gaussian(activation = "tanh")
#' expert_multinomial()
#' @export
expert_gaussian <- function(activation = "identity", var_floor = 1e-6) {
  activation <- check_choice(activation, c("identity", "tanh", "sigmoid", "relu", "gelu"),
                             "activation")
  check_number(var_floor, "var_floor", lower = 0)
  structure(list(family = "gaussian", activation = activation, var_floor = var_floor),
            class = "moe_expert")
}

#' @rdname expert_gaussian
#' @export
expert_multinomial <- function() {
  structure(list(family = "multinomial", activation = "identity", var_floor = 0),
            class = "moe_expert")
}

as_expert <- function(x, arg = "expert") {
  if (inherits(x, "moe_expert")) return(x)
  i <- if (is.character(x) && length(x) == 1 && !is.na(x) && nzchar(x)) {
    pmatch(x, c("gaussian", "multinomial"))
  } else NA
  if (!is.na(i)) return(if (i == 1) expert_gaussian() else expert_multinomial())
  stop_arg(arg, 'an expert object (see ?expert_gaussian), "gaussian" or "multinomial"', got = x)
}

expert_cpp_spec <- function(e, var_y = 1, n_classes = 0L) {
  list(family = e$family, activation = e$activation,
       var_floor = e$var_floor * var_y, n_classes = as.integer(n_classes))
}

#' @export
print.moe_expert <- function(x, ...) {
  if (x$family == "gaussian") {
    cat("<moe_expert> Gaussian, mean ", if (x$activation == "identity") "a'x + b" else
      paste0(x$activation, "(a'x + b)"), ", variance floor ", format(x$var_floor),
      " x var(y)\n", sep = "")
  } else {
    cat("<moe_expert> multinomial logistic (reference class: last level)\n")
  }
  invisible(x)
}
