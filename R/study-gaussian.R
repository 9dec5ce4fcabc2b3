# Study settings of the temperature paper (Gaussian mixture of experts with
# dense-to-sparse gates, maximum likelihood) and of the cosine-router paper
# (regression mixture of experts with non-linear experts, least squares).
# Each setting's values live here, in one place, with the loss convention the
# gate's identifiability calls for.

#' Study settings of the temperature paper (softmax Gaussian mixture of experts)
#'
#' The simulation study of "Is temperature sample efficient for softmax
#' Gaussian mixture of experts?" (Nguyen, Akbarian, Ho 2024) as
#' [moe_study_setting()]s. The paper's own simulation values are unknown (only
#' its abstract was available), so the truth is ours:
#' \itemize{
#'   \item \eqn{d = 1}, \eqn{x} uniform on \eqn{[-1, 1]}; \eqn{k^* = 2} Gaussian
#'     experts with means \eqn{1 + 2x} and \eqn{-1 - x}, variances 0.1 and 0.1;
#'   \item gate vectors \eqn{w^* = (2, 0)}, intercepts \eqn{b_0^* = (0, 0)},
#'     temperature \eqn{\tau^* = 0.5}; the gate is
#'     \itemize{
#'       \item `"softmax"`: the reference softmax without temperature, with the
#'         same effective logits \eqn{w^{*\top} x / \tau^* = 4x};
#'       \item `"temperature"`: the dense-to-sparse gate
#'         \eqn{\mathrm{softmax}(w_i^\top x / \tau + b_{0i})}, \eqn{\tau}
#'         estimated ([gate_temperature()]);
#'       \item `"activation_tanh"`, `"activation_gelu"`: the activation
#'         dense-to-sparse gate \eqn{\mathrm{softmax}(\mathrm{act}(w_i^\top x) /
#'         \tau + b_{0i})}, \eqn{\tau} estimated ([gate_activation()]);
#'     }
#'   \item fitted \eqn{k = k^* = 2} (exact specification), maximum likelihood by
#'     EM (tolerance \eqn{10^{-8}}, at most 1000 iterations, SQUAREM), one
#'     start near the truth ([init_near_truth()] with its defaults).
#' }
#' **Loss.** Under the dense-to-sparse gate only \eqn{w_i / \tau} is
#' identified (the logits depend on \eqn{(w, \tau)} through \eqn{w / \tau}), so
#' a Voronoi loss that compares \eqn{w} and \eqn{\tau} separately, as
#' [voronoi_loss()] does for an estimated temperature, measures a drift along a
#' direction the data cannot see. The setting's loss therefore puts fit and
#' truth in a common scaling: both gates are rewritten with temperature 1,
#' i.e. the gate vectors become \eqn{\hat w_i / \hat \tau} and
#' \eqn{w^*_i / \tau^*}, and the D1 Voronoi loss of [voronoi_loss()] is computed on
#' (\eqn{w / \tau}-equivalent gate vectors, intercepts, expert slopes,
#' intercepts and variances); this is exactly the loss of the reference softmax
#' setting. The activation gates identify \eqn{w} and \eqn{\tau} separately
#' (the activation is not homogeneous), so their loss is the plain D1
#' [voronoi_loss()] with a \eqn{\tau} block. Every setting also records
#' `loss_raw` (the plain [voronoi_loss()], \eqn{w} and \eqn{\tau} as separate
#' blocks), `loss_tau` (\eqn{|\hat\tau - \tau^*|}) and `loss_hellinger`
#' (expected Hellinger distance of the conditional densities,
#' [density_error()] with 2000 covariate draws), which is convention-free.
#'
#' **Theory** (abstract): parameter rates slower than any polynomial, possibly
#' \eqn{O(1/\log n)}, for the dense-to-sparse gate; polynomial rates for the
#' activation gate with tanh, sigmoid or GELU; the density at
#' \eqn{n^{-1/2}} (up to logarithms). The D1 loss of an exactly specified
#' model with identified parameters is expected at \eqn{n^{-1/2}}.
#'
#' @param setting `"softmax"`, `"temperature"`, `"activation_tanh"` or
#'   `"activation_gelu"`.
#' @param n_grid Sample sizes. The default is the grid of the shipped full
#'   study (smaller than STUDIES.md's 20 sizes up to \eqn{10^5}, for compute).
#' @param n_rep Replications per sample size (shipped study: the default).
#' @param control [moe_control()] settings of the fits.
#' @return A [moe_study_setting()]; its `truth` is the truth of that gate.
#' @references Nguyen, Akbarian, Ho (2024). Is temperature sample efficient for
#'   softmax Gaussian mixture of experts? ICML. arXiv:2401.13875.
#' @seealso [study_setting_cosine()], [rate_study()].
#' @examples
#' study_setting_temperature("temperature")
#' small <- study_setting_temperature("activation_tanh", n_grid = c(500, 1000), n_rep = 2)
#' \donttest{
#' rate_slopes(rate_study(small, seed = 1), B = 100)
#' }
#' @export
study_setting_temperature <- function(setting = c("softmax", "temperature", "activation_tanh",
                                                  "activation_gelu"),
                                      n_grid = round(10^seq(3, log10(2e4), length.out = 8)),
                                      n_rep = 16,
                                      control = moe_control(tol = 1e-8, maxit = 1000,
                                                            accelerate = "squarem")) {
  setting <- match_arg(setting)
  tau_true <- 0.5
  W <- matrix(c(2, 0), 1)
  coef <- cbind(c(1, 2), c(-1, -1))
  sigma2 <- c(0.1, 0.1)
  gate <- switch(setting,
    softmax = gate_softmax(),
    temperature = gate_temperature(temperature = tau_true),
    activation_tanh = gate_activation("tanh", temperature = tau_true),
    activation_gelu = gate_activation("gelu", temperature = tau_true))
  truth <- if (setting == "softmax") {
    moe_params(W = W / tau_true, b0 = c(0, 0), coef = coef, sigma2 = sigma2)
  } else {
    moe_params(W = W, b0 = c(0, 0), tau = tau_true, coef = coef, sigma2 = sigma2)
  }
  name <- switch(setting, softmax = "softmax (no temperature)",
                 temperature = "dense-to-sparse (temperature)",
                 activation_tanh = "activation dense-to-sparse (tanh)",
                 activation_gelu = "activation dense-to-sparse (GELU)")
  moe_study_setting(truth, k = 2, n_grid = n_grid, n_rep = n_rep, gate = gate,
                    expert = expert_gaussian(), method = "ml", init = "near_truth",
                    loss = temperature_study_loss(setting), control = control, name = name)
}

# The loss of a temperature-study setting: see ?study_setting_temperature.
temperature_study_loss <- function(setting) {
  force(setting)
  x_dist <- function(n, d) matrix(stats::runif(n * d, -1, 1), n, d)
  function(fit, truth) {
    raw <- voronoi_loss(fit$params, truth, "D1", gate = fit$gate, expert = fit$expert,
                        method = fit$method)
    main <- if (setting == "temperature") {
      # Common scaling: only w / tau is identified, so compare the effective
      # gate vectors w / tau of fit and truth as softmax gate vectors.
      effective <- function(p) {
        p$gate$W <- p$gate$W / p$gate$tau
        p$gate$tau <- 1
        p
      }
      voronoi_loss(effective(fit$params), effective(truth), "D1", gate = gate_softmax(),
                   expert = fit$expert, method = fit$method)
    } else raw
    hell <- density_error(fit$params, truth, n_mc = 2000, x_dist = x_dist, gate = fit$gate,
                          expert = fit$expert, method = fit$method)[["hellinger"]]
    c(loss = main, raw = raw, tau = abs(fit$params$gate$tau - truth$gate$tau),
      hellinger = hell)
  }
}

#' Study settings of the cosine-router paper (least squares, non-linear experts)
#'
#' The simulation study of "Statistical advantages of perturbing cosine router
#' in mixture of experts" (Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho 2025) as
#' [moe_study_setting()]s. The paper's own simulation values are unknown (only
#' its abstract was available), so the truth is ours:
#' \itemize{
#'   \item \eqn{d = 2}, \eqn{x} uniform on \eqn{[-1, 1]^2}; the regression
#'     function \eqn{m(x) = \sum_i G_i(x) \tanh(a_i^\top x + b_i)} with
#'     \eqn{k^* = 2} strongly identifiable experts, \eqn{(b_1, a_1) = (0.5, 2,
#'     -1)}, \eqn{(b_2, a_2) = (-0.5, -1, 2)}, plus Gaussian noise of variance
#'     0.05;
#'   \item gate vectors \eqn{w_1^* = (2, 1)}, \eqn{w_2^* = (-1, 1)},
#'     intercepts \eqn{b_0^* = (0.3, 0)}, and the router
#'     \itemize{
#'       \item `"linear"`: softmax of \eqn{w_i^\top x + b_{0i}} ([gate_softmax()]);
#'       \item `"cosine"`: softmax of \eqn{w_i^\top x / (\|w_i\| \|x\|) + b_{0i}}
#'         ([gate_cosine()]);
#'       \item `"perturbed_cosine"`: softmax of \eqn{w_i^\top x / ((\|w_i\| +
#'         \epsilon_w)(\|x\| + \epsilon_u)) + b_{0i}} with \eqn{\epsilon_w =
#'         \epsilon_u = 0.01} ([gate_perturbed_cosine()]);
#'     }
#'   \item fitted \eqn{k = k^* = 2} (or `k` > 2: over-specified; extra experts
#'     start near true ones in turn, the D1 loss then uses exponent 2 in cells
#'     of two or more fitted experts), least squares (`method = "lsq"`,
#'     L-BFGS, tolerance \eqn{10^{-10}}, at most 1000 iterations), one start near
#'     the truth ([init_near_truth()] with its defaults).
#' }
#' **Loss**: the D1 Voronoi loss on identified parameters (least squares: no
#' variance block). Linear router: [voronoi_loss()] as it is (its common
#' translation of gate vectors and intercepts optimised away). Cosine router:
#' [voronoi_loss()] compares unit directions \eqn{w_i / \|w_i\|}, the only part
#' of \eqn{w_i} the router sees. Perturbed cosine router: only differences of
#' \eqn{v_i = w_i / (\|w_i\| + \epsilon_w)} are identified, so fit and truth
#' are mapped to \eqn{v} and compared with the translation-optimised loss of the
#' linear softmax gate (which minimises over a common shift of all gate vectors,
#' exactly that invariance). Also recorded: `loss_raw` (plain [voronoi_loss()]
#' on the fitted \eqn{w}, not identified for the cosine routers' norms),
#' `loss_experts` (the expert part alone: \eqn{\sum_i \min_j} distance of
#' \eqn{(a_i, b_i)} to the true experts, convention-free) and `loss_l2`
#' (\eqn{L^2(\mu)} distance of the regression functions, [density_error()]
#' with 2000 covariate draws).
#'
#' **Theory** (abstract): with the cosine router, expert estimation as slow as
#' \eqn{O(1/\log^c n)}; with the perturbed cosine router, polynomial rates
#' between \eqn{n^{-1/4}} and \eqn{n^{-1/2}} for strongly identifiable experts
#' such as \eqn{\tanh}; the linear router is the reference (exactly specified:
#' \eqn{n^{-1/2}}).
#'
#' @param setting `"linear"`, `"cosine"` or `"perturbed_cosine"`.
#' @inheritParams study_setting_temperature
#' @param k Fitted number of experts (the truth has 2).
#' @return A [moe_study_setting()].
#' @references Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho (2025). Statistical
#'   advantages of perturbing cosine router in mixture of experts. ICLR.
#'   arXiv:2405.14131.
#' @seealso [study_setting_temperature()], [rate_study()].
#' @examples
#' study_setting_cosine("perturbed_cosine")
#' small <- study_setting_cosine("cosine", n_grid = c(500, 1000), n_rep = 2)
#' \donttest{
#' rate_slopes(rate_study(small, seed = 1), B = 100)
#' }
#' @export
study_setting_cosine <- function(setting = c("linear", "cosine", "perturbed_cosine"),
                                 n_grid = round(10^seq(3, log10(3e4), length.out = 10)),
                                 n_rep = 20,
                                 control = moe_control(tol = 1e-10, maxit = 1000), k = 2) {
  setting <- match_arg(setting)
  k <- check_count(k, "k")
  truth <- moe_params(W = cbind(c(2, 1), c(-1, 1)), b0 = c(0.3, 0),
                      coef = cbind(c(0.5, 2, -1), c(-0.5, -1, 2)), sigma2 = c(0.05, 0.05))
  gate <- switch(setting, linear = gate_softmax(), cosine = gate_cosine(),
                 perturbed_cosine = gate_perturbed_cosine(eps_w = 0.01, eps_u = 0.01))
  name <- switch(setting, linear = "linear router", cosine = "cosine router",
                 perturbed_cosine = "perturbed cosine router")
  if (k > 2) name <- paste0(name, ", k = ", k)
  moe_study_setting(truth, k = k, n_grid = n_grid, n_rep = n_rep, gate = gate,
                    expert = expert_gaussian(activation = "tanh"), method = "lsq",
                    init = "near_truth", loss = cosine_study_loss(setting), control = control,
                    name = name)
}

# The loss of a cosine-router setting: see ?study_setting_cosine.
cosine_study_loss <- function(setting) {
  force(setting)
  x_dist <- function(n, d) matrix(stats::runif(n * d, -1, 1), n, d)
  function(fit, truth) {
    raw <- voronoi_loss(fit$params, truth, "D1", gate = fit$gate, expert = fit$expert,
                        method = fit$method)
    main <- if (setting == "perturbed_cosine") {
      to_v <- function(p) {
        norms <- sqrt(colSums(p$gate$W^2))
        p$gate$W <- sweep(p$gate$W, 2, norms + fit$gate$eps_w, "/")
        p
      }
      voronoi_loss(to_v(fit$params), to_v(truth), "D1", gate = gate_softmax(),
                   expert = fit$expert, method = fit$method)
    } else raw
    coef_fit <- fit$params$expert$coef
    coef_true <- truth$expert$coef
    experts <- sum(vapply(seq_len(ncol(coef_fit)), function(i) {
      min(sqrt(colSums((coef_true - coef_fit[, i])^2)))
    }, 0))
    l2 <- density_error(fit$params, truth, n_mc = 2000, x_dist = x_dist, gate = fit$gate,
                        expert = fit$expert, method = fit$method)[["l2"]]
    c(loss = main, raw = raw, experts = experts, l2 = l2)
  }
}
