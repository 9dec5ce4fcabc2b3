# Gate specifications: every gate of the four papers is one configuration of
# the pipeline  u = M(z) -> score -> activation -> / tau -> + b0 -> normalizer.

gate_scores <- c("inner", "cosine", "perturbed_cosine", "euclidean_sq", "euclidean")
gate_activations <- c("identity", "tanh", "sigmoid", "logsigmoid", "gelu", "relu")
gate_normalizers <- c("softmax", "normalized_sigmoid", "sigmoid")
gate_transforms <- c("identity", "tanh", "sigmoid")

#' Gating functions
#'
#' A gate maps the gate covariates \eqn{z} to the weights \eqn{G_1(z), \dots,
#' G_k(z)} of the experts. Every gate in moegate is one configuration of a
#' pipeline of small pieces, applied for each expert \eqn{i}:
#' \enumerate{
#'   \item input transform \eqn{u = M(z)} (identity, elementwise `tanh` or
#'     `sigmoid`, or an R function of the gate covariate matrix);
#'   \item score \eqn{s_i}: inner product \eqn{w_i^\top u}; cosine
#'     \eqn{w_i^\top u / (\|w_i\| \|u\|)}; perturbed cosine
#'     \eqn{w_i^\top u / ((\|w_i\| + \epsilon_w)(\|u\| + \epsilon_u))};
#'     squared Euclidean \eqn{-\|u - w_i\|^2}; Euclidean \eqn{-\|u - w_i\|};
#'   \item activation \eqn{s_i \leftarrow \mathrm{act}(s_i)};
#'   \item temperature \eqn{s_i \leftarrow s_i / \tau} (one \eqn{\tau > 0} shared
#'     by all experts, fixed or estimated on the log scale);
#'   \item intercept \eqn{a_i = s_i + b_{0i}} (`intercept = "outside"`), or added
#'     to the score before the activation (`intercept = "inside"`);
#'   \item normalizer: softmax \eqn{e^{a_i} / \sum_j e^{a_j}}; normalized
#'     sigmoid \eqn{\sigma(a_i) / \sum_j \sigma(a_j)}; or the plain sigmoid
#'     \eqn{\sigma(a_i)}, whose weights do not sum to one and which is therefore
#'     only available to the least-squares estimator (`method = "lsq"`).
#' }
#' `gate()` takes the pieces directly; the named constructors below are the
#' configurations studied in the papers.
#'
#' @section Identifiability: Under the softmax the weights are unchanged when
#'   the same constant is added to every logit. moegate therefore fixes the last
#'   expert as the reference: \eqn{b_{0k} = 0} whenever the intercept reaches the
#'   logits unchanged, and also \eqn{w_k = 0} when the score is the inner product
#'   and the activation is the identity. Other invariances are kept, because
#'   they are what the papers study: the cosine score ignores \eqn{\|w_i\|} (only
#'   the direction of \eqn{w_i} is identified); under the softmax the perturbed
#'   cosine score only identifies differences of \eqn{v_i = w_i / (\|w_i\| +
#'   \epsilon_w)}, since a common shift of all \eqn{v_i} (keeping them in the
#'   unit ball) leaves every logit difference unchanged; and a linear gate with
#'   an estimated temperature (softmax or sigmoid) only identifies
#'   \eqn{(w_i / \tau, b_{0i})}. `summary()` reports such directions with `NA`
#'   standard errors.
#'   Experts are unordered in every gate.
#'
#' @param score Score function: one of `"inner"`, `"cosine"`,
#'   `"perturbed_cosine"`, `"euclidean_sq"`, `"euclidean"`.
#' @param activation Activation applied to the score: one of `"identity"`,
#'   `"tanh"`, `"sigmoid"`, `"logsigmoid"`, `"gelu"`, `"relu"`.
#' @param normalizer `"softmax"`, `"normalized_sigmoid"` or `"sigmoid"`.
#' @param transform Input transform \eqn{M}: `"identity"`, `"tanh"`,
#'   `"sigmoid"`, or a function taking the gate covariate matrix and returning a
#'   numeric matrix with the same number of rows. Only the gate sees \eqn{M(z)}.
#' @param temperature Positive temperature \eqn{\tau}: its value when fixed, its
#'   starting value when estimated.
#' @param estimate_temperature Logical: estimate \eqn{\log \tau}?
#' @param intercept `"outside"` (added after the temperature) or `"inside"`
#'   (added to the score before activation and temperature).
#' @param eps_w,eps_u Non-negative constants of the perturbed cosine score.
#' @param name A label used in printed output.
#' @return An object of class `moe_gate`.
#' @references
#' Nguyen, Akbarian, Nguyen, Ho (2024). A general theory for softmax gating
#' multinomial logistic mixture of experts. ICML. arXiv:2310.14188.
#'
#' Pham, Cao, Nguyen, Nguyen, Ho, Rinaldo (2026). Rethinking multinomial
#' logistic mixture of experts with sigmoid gating function. arXiv:2602.01466.
#'
#' Nguyen, Akbarian, Ho (2024). Is temperature sample efficient for softmax
#' Gaussian mixture of experts? ICML. arXiv:2401.13875.
#'
#' Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho (2025). Statistical advantages of
#' perturbing cosine router in mixture of experts. ICLR. arXiv:2405.14131.
#' @examples
#' gate_softmax()
#' gate(score = "cosine", activation = "tanh", temperature = 0.5)
#' @export
gate <- function(score = "inner", activation = "identity", normalizer = "softmax",
                 transform = "identity", temperature = 1, estimate_temperature = FALSE,
                 intercept = c("outside", "inside"), eps_w = 0, eps_u = 0,
                 name = "custom") {
  score <- check_choice(score, gate_scores, "score")
  activation <- check_choice(activation, gate_activations, "activation")
  normalizer <- check_choice(normalizer, gate_normalizers, "normalizer")
  intercept <- match_arg(intercept)
  transform_fun <- NULL
  if (is.function(transform)) {
    transform_fun <- transform
    transform <- "identity"
  } else {
    transform <- check_choice(transform, gate_transforms, "transform")
  }
  check_number(temperature, "temperature", lower = 0, lower_open = TRUE)
  check_flag(estimate_temperature, "estimate_temperature")
  check_number(eps_w, "eps_w", lower = 0)
  check_number(eps_u, "eps_u", lower = 0)
  if (!is.character(name) || length(name) != 1 || is.na(name)) {
    stop_arg("name", "a single string (a label for printed output)", got = name)
  }
  if (score == "perturbed_cosine" && eps_w == 0 && eps_u == 0) {
    stop_arg("eps_w", "positive perturbation constants for the perturbed cosine score ",
             "(`eps_w` or `eps_u` > 0); with both zero use score = \"cosine\"")
  }
  structure(list(name = name, score = score, activation = activation,
                 normalizer = normalizer, transform = transform,
                 transform_fun = transform_fun, temperature = temperature,
                 estimate_tau = estimate_temperature, intercept = intercept,
                 eps_w = eps_w, eps_u = eps_u),
            class = "moe_gate")
}

#' @describeIn gate Softmax gate \eqn{G_i = \mathrm{softmax}(w_i^\top z + b_{0i})},
#'   the baseline of every paper. Fitted by Newton steps in the EM.
#' @export
gate_softmax <- function() gate(name = "softmax")

#' @describeIn gate Modified softmax gate (softmax multinomial logistic paper):
#'   the softmax of \eqn{w_i^\top M(z) + b_{0i}} with a bounded transform \eqn{M}
#'   (`tanh` by default). Removes the interaction between gate and vanishing
#'   expert parameters that makes the plain softmax slow.
#' @export
gate_modified_softmax <- function(transform = "tanh") {
  gate(transform = transform, name = "modified softmax")
}

#' @describeIn gate Dense-to-sparse gate (temperature paper): softmax of
#'   \eqn{(w_i^\top z) / \tau + b_{0i}}, \eqn{\tau} estimated by default. Only
#'   \eqn{w_i / \tau} is identified; the paper shows rates slower than any
#'   polynomial for it.
#' @export
gate_temperature <- function(temperature = 1, estimate_temperature = TRUE) {
  gate(temperature = temperature, estimate_temperature = estimate_temperature,
       name = "dense-to-sparse")
}

#' @describeIn gate Activation dense-to-sparse gate (temperature paper):
#'   softmax of \eqn{\mathrm{act}(w_i^\top z) / \tau + b_{0i}}. With `tanh`,
#'   `sigmoid` or `gelu` it restores polynomial rates.
#' @export
gate_activation <- function(activation = "tanh", temperature = 1,
                            estimate_temperature = TRUE) {
  gate(activation = activation, temperature = temperature,
       estimate_temperature = estimate_temperature,
       name = paste0("activation dense-to-sparse (", activation, ")"))
}

#' @describeIn gate Sigmoid gate (sigmoid paper): \eqn{\sigma(w_i^\top z / \tau +
#'   b_{0i})}, normalized over experts for likelihood models
#'   (`normalize = TRUE`) or left unnormalized for least squares.
#' @param normalize Logical: normalize the sigmoid weights to sum to one?
#' @export
gate_sigmoid <- function(temperature = 1, estimate_temperature = FALSE, normalize = TRUE) {
  check_flag(normalize, "normalize")
  check_flag(estimate_temperature, "estimate_temperature")
  check_number(temperature, "temperature", lower = 0, lower_open = TRUE)
  gate(normalizer = if (isTRUE(normalize)) "normalized_sigmoid" else "sigmoid",
       temperature = temperature, estimate_temperature = estimate_temperature,
       name = if (estimate_temperature || temperature != 1) "sigmoid with temperature" else "sigmoid")
}

#' @describeIn gate Modified sigmoid gate (sigmoid paper). The paper's exact
#'   form is unconfirmed, so two readings are offered: `form = "logsigmoid"`
#'   gives \eqn{G_i \propto e^{b_{0i}} \sigma(w_i^\top z)} (a softmax of the
#'   log-sigmoid score plus intercept); `form = "normalized"` gives
#'   \eqn{G_i \propto \sigma(w_i^\top z + b_{0i})}.
#' @param form Which reading of the modified sigmoid gate.
#' @export
gate_modified_sigmoid <- function(form = c("logsigmoid", "normalized"), temperature = 1,
                                  estimate_temperature = FALSE) {
  form <- match_arg(form)
  if (form == "logsigmoid") {
    gate(activation = "logsigmoid", normalizer = "softmax", temperature = temperature,
         estimate_temperature = estimate_temperature, name = "modified sigmoid")
  } else {
    gate(normalizer = "normalized_sigmoid", temperature = temperature,
         estimate_temperature = estimate_temperature, name = "modified sigmoid (normalized)")
  }
}

#' @describeIn gate Euclidean-score sigmoid gate (sigmoid paper):
#'   \eqn{\sigma(-\|z - w_i\|^2 / \tau + b_{0i})}, normalized by default. The
#'   Euclidean score removes the temperature interaction. `squared = FALSE`
#'   uses \eqn{-\|z - w_i\|}.
#' @param squared Logical: squared Euclidean distance?
#' @export
gate_euclidean <- function(temperature = 1, estimate_temperature = TRUE, squared = TRUE,
                           normalize = TRUE) {
  check_flag(squared, "squared")
  check_flag(normalize, "normalize")
  gate(score = if (isTRUE(squared)) "euclidean_sq" else "euclidean",
       normalizer = if (isTRUE(normalize)) "normalized_sigmoid" else "sigmoid",
       temperature = temperature, estimate_temperature = estimate_temperature,
       name = "Euclidean sigmoid")
}

#' @describeIn gate Cosine router (cosine-router paper): softmax of
#'   \eqn{w_i^\top z / (\|w_i\| \|z\|) / \tau + b_{0i}}. Only the direction of
#'   \eqn{w_i} is identified.
#' @export
gate_cosine <- function(temperature = 1, estimate_temperature = FALSE) {
  gate(score = "cosine", temperature = temperature,
       estimate_temperature = estimate_temperature, name = "cosine")
}

#' @describeIn gate Perturbed cosine router (cosine-router paper): the cosine
#'   router with \eqn{\epsilon_w, \epsilon_u > 0} added to the two norms (defaults
#'   0.01 each), which gives polynomial rates for strongly identifiable experts.
#' @export
gate_perturbed_cosine <- function(eps_w = 0.01, eps_u = 0.01, temperature = 1,
                                  estimate_temperature = FALSE) {
  gate(score = "perturbed_cosine", eps_w = eps_w, eps_u = eps_u, temperature = temperature,
       estimate_temperature = estimate_temperature, name = "perturbed cosine")
}

# A gate from a string shorthand ("softmax", "cosine", ...) or a moe_gate.
as_gate <- function(x, arg = "gate") {
  if (inherits(x, "moe_gate")) return(x)
  constructors <- list(softmax = gate_softmax, modified_softmax = gate_modified_softmax,
                       temperature = gate_temperature, activation = gate_activation,
                       sigmoid = gate_sigmoid, modified_sigmoid = gate_modified_sigmoid,
                       euclidean = gate_euclidean, cosine = gate_cosine,
                       perturbed_cosine = gate_perturbed_cosine)
  i <- if (is.character(x) && length(x) == 1 && !is.na(x) && nzchar(x)) pmatch(x, names(constructors)) else NA
  if (!is.na(i)) return(constructors[[i]]())
  stop_arg(arg, "a gate object (see ?gate) or one of ",
           paste0('"', names(constructors), '"', collapse = ", "), got = x)
}

# The list the C++ side reads.
gate_cpp_spec <- function(g) {
  list(score = g$score, activation = g$activation, normalizer = g$normalizer,
       transform = g$transform, eps_w = g$eps_w, eps_u = g$eps_u,
       intercept = g$intercept, estimate_tau = g$estimate_tau)
}

# Gate input before the C++ transform: a user function is applied in R.
gate_input <- function(g, Z) {
  if (!is.double(Z)) storage.mode(Z) <- "double"  # storage.mode<- copies even a double matrix
  if (is.null(g$transform_fun)) return(Z)
  U <- g$transform_fun(Z)
  if (!is.matrix(U) || !is.numeric(U) || nrow(U) != nrow(Z) || any(!is.finite(U))) {
    stop_arg("transform", "a function returning a finite numeric matrix with ",
             nrow(Z), " rows")
  }
  if (!is.double(U)) storage.mode(U) <- "double"
  U
}

# Free-parameter layout of a gate with q inputs and k experts.
gate_info <- function(g, q, k) cpp_gate_info(gate_cpp_spec(g), q, k)

#' @export
print.moe_gate <- function(x, ...) {
  cat("<moe_gate> ", x$name, "\n", sep = "")
  tf <- if (!is.null(x$transform_fun)) "user function" else x$transform
  score <- x$score
  if (score == "perturbed_cosine") score <- sprintf("%s (eps_w = %g, eps_u = %g)", score, x$eps_w, x$eps_u)
  cat("  transform:  ", tf, "\n", "  score:      ", score, "\n",
      "  activation: ", x$activation, "\n",
      "  temperature:", format(x$temperature), if (x$estimate_tau) "(estimated)" else "(fixed)", "\n",
      "  intercept:  ", x$intercept, "\n", "  normalizer: ", x$normalizer, "\n", sep = " ")
  invisible(x)
}

#' Evaluate gate weights
#'
#' Computes \eqn{G_1(z), \dots, G_k(z)} for a gate configuration and given gate
#' parameters, with the same compiled code the fits use.
#'
#' @param gate A gate specification ([gate()] or a shorthand string).
#' @param params A [moe_params()] object, or a list with elements `W` (q x k),
#'   `b0` (length k) and optionally `tau`.
#' @param z Gate covariates: a numeric matrix with q columns (a vector is taken
#'   as one column).
#' @param log Logical: return log-weights?
#' @return An n x k matrix of (log-)weights.
#' @examples
#' z <- seq(-2, 2, length.out = 5)
#' gate_weights(gate_softmax(), list(W = matrix(c(3, 0), 1), b0 = c(0, 0)), z)
#' gate_weights(gate_sigmoid(normalize = FALSE), list(W = matrix(c(3, -1), 1), b0 = c(0, 0)), z)
#' @export
gate_weights <- function(gate, params, z, log = FALSE) {
  gate <- as_gate(gate)
  check_flag(log, "log")
  gp <- if (inherits(params, "moe_params")) params$gate else params
  if (!is.list(gp) || is.null(gp$W) || is.null(gp$b0)) {
    stop_arg("params", "a moe_params object or a list with `W` and `b0`", got = params)
  }
  W <- gp$W
  if (is.numeric(W) && is.null(dim(W))) W <- matrix(W, nrow = 1)
  if (!is.numeric(W) || length(dim(W)) != 2 || length(W) == 0) {
    stop_arg("params", "a numeric matrix `W` of gate vectors (q x k)", got = gp$W)
  }
  if (any(!is.finite(W))) stop_arg("params", "finite gate vectors `W` (no NA, NaN or Inf)")
  storage.mode(W) <- "double"
  b0 <- gp$b0
  if (!is.numeric(b0) || length(b0) != ncol(W)) {
    stop_arg("params", "numeric `b0` of length ncol(W) = ", ncol(W), got = b0)
  }
  if (any(!is.finite(b0))) stop_arg("params", "finite gate intercepts `b0` (no NA, NaN or Inf)")
  tau <- gp$tau %||% gate$temperature
  check_number(tau, "tau", lower = 0, lower_open = TRUE)
  Z <- as_numeric_matrix(z, "z")
  check_finite_matrix(Z, "z")
  U <- gate_input(gate, Z)
  if (ncol(U) != nrow(W)) {
    stop_arg("z", "a matrix with ", nrow(W), " column(s) (rows of W); got ", ncol(U))
  }
  fw <- cpp_gate_forward(U, gate_cpp_spec(gate), list(W = W, b0 = as.numeric(b0), tau = tau), 1L)
  if (any(!is.finite(fw$logits)) || anyNA(fw$log_weights)) {
    # Finite inputs whose scores overflow (e.g. W and z near 1e300, or tau
    # near 1e-300): the weights would come back as NaN.
    stop_arg("params", "parameters, temperature and covariates whose gate scores are finite; ",
             "they overflow double precision here: rescale `z` or the parameters")
  }
  lw <- fw$log_weights
  colnames(lw) <- colnames(W) %||% paste0("expert", seq_len(ncol(W)))
  if (isTRUE(log)) lw else exp(lw)
}
