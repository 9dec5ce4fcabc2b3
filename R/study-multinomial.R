# Shipped study settings of the two multinomial logistic papers (STUDIES.md,
# papers 1 and 2). The truths are ours: the papers' own values were not
# available, so each truth is chosen to exhibit the phenomenon the paper
# proves. Every value lives here, so a paper's values can be swapped in.

#' Study settings: softmax-gated multinomial logistic mixture of experts
#'
#' The simulation study of Nguyen, Akbarian, Nguyen and Ho (2024), "A general
#' theory for softmax gating multinomial logistic mixture of experts", as
#' [moe_study_setting()] objects. The truths are moegate's own (the paper's
#' values were not available); all settings share:
#' \itemize{
#'   \item \eqn{d = 1}, \eqn{x \sim U[-1, 1]}, \eqn{K = 3} classes (class 3 is
#'     the reference of the multinomial experts), \eqn{k^* = 2} experts;
#'   \item gate parameters \eqn{w^* = (2, 0)}, \eqn{b_0^* = (0, 0)} (expert 2
#'     is the gate's reference);
#'   \item expert 2: class intercepts \eqn{t^*_2 = (-1, 0.5)}, slopes
#'     \eqn{\eta^*_2 = (-2, 2)};
#'   \item expert 1: class intercepts \eqn{t^*_1 = (1, -0.5)} and slopes
#'     \eqn{\eta^*_1 = (3, -2)} (`"exact"`, `"overspecified"`), or
#'     \eqn{\eta^*_1 = (0, 0)} (`"vanishing"`, `"vanishing_modified"`): its
#'     class probabilities do not depend on \eqn{x};
#'   \item starts near the truth ([init_near_truth()], defaults \eqn{c =
#'     0.05}, \eqn{\alpha = 0.083} experts, \eqn{0.005} gate); with \eqn{k = 3}
#'     the extra expert starts as a second copy of true expert 1 (`assign =
#'     c(1, 1, 2)`), so the over-specified cell is the one whose slopes vanish
#'     in the vanishing settings;
#'   \item EM with SQUAREM acceleration, tolerance \eqn{10^{-8}} (relative
#'     log-likelihood), at most `maxit` (300) iterations, one start;
#'   \item the Voronoi loss `D1` (translation-optimised): exponent 1 in
#'     singleton cells and 2 in cells of two atoms.
#' }
#' The four settings and the paper's rates (from its abstract; D1 squares the
#' parameter errors of a cell of size two, so the \eqn{n^{-1/4}} parameter rate
#' of over-specified experts shows as \eqn{n^{-1/2}} on D1):
#' \describe{
#'   \item{`"exact"`}{softmax gate, \eqn{k = k^* = 2}: D1 at \eqn{n^{-1/2}}.}
#'   \item{`"overspecified"`}{softmax gate, \eqn{k = 3}: D1 at \eqn{n^{-1/2}}.}
#'   \item{`"vanishing"`}{softmax gate, \eqn{k = 3}, \eqn{\eta^*_1 = 0}:
#'     slower than any polynomial (the gate and the vanishing expert interact
#'     through a PDE); the slope of log D1 on log n tends to 0.}
#'   \item{`"vanishing_modified"`}{the same truth with the modified softmax
#'     gate, \eqn{M = \tanh} ([gate_modified_softmax()]; data are simulated
#'     from, and fitted with, that gate): polynomial again, D1 at
#'     \eqn{n^{-1/2}}.}
#' }
#' `attr(setting, "theory")` holds the rate as text and `attr(setting,
#' "theory_slope")` the expected slope (`0` for "slower than any polynomial").
#'
#' @param setting Which setting.
#' @param n_grid Sample sizes; `NULL` gives 5 sizes log-spaced from
#'   \eqn{10^3} to \eqn{10^4} (the shipped full study's grid, smaller than
#'   STUDIES.md's default because of compute).
#' @param n_rep Replications per sample size.
#' @param maxit Maximum EM iterations per fit.
#' @return A [moe_study_setting()], with attributes `theory` and
#'   `theory_slope`.
#' @references Nguyen, Akbarian, Nguyen, Ho (2024). A general theory for
#'   softmax gating multinomial logistic mixture of experts. ICML.
#'   arXiv:2310.14188.
#' @seealso [study_setting_sigmoid_multinomial()], [rate_study()].
#' @examples
#' study_setting_softmax_multinomial("vanishing")
#' small <- study_setting_softmax_multinomial("exact", n_grid = c(500, 1000), n_rep = 2)
#' small$truth
#' @export
study_setting_softmax_multinomial <- function(setting = c("exact", "overspecified", "vanishing",
                                                          "vanishing_modified"),
                                              n_grid = NULL, n_rep = 5, maxit = 300) {
  setting <- match_arg(setting)
  if (is.null(n_grid)) n_grid <- multinomial_default_grid()
  maxit <- check_count(maxit, "maxit")
  vanishing <- setting %in% c("vanishing", "vanishing_modified")
  truth <- multinomial_truth(W = c(2, 0), vanishing = vanishing)
  k <- if (setting == "exact") 2L else 3L
  gate <- if (setting == "vanishing_modified") gate_modified_softmax("tanh") else gate_softmax()
  assign <- if (k == 2) c(1L, 2L) else c(1L, 1L, 2L)
  theory <- switch(setting,
    exact = "n^(-1/2)", overspecified = "n^(-1/2) (parameters n^(-1/4))",
    vanishing = "slower than any polynomial", vanishing_modified = "n^(-1/2)")
  name <- switch(setting,
    exact = "softmax, k = k* = 2",
    overspecified = "softmax, k = 3",
    vanishing = "softmax, vanishing expert, k = 3",
    vanishing_modified = "modified softmax (tanh), vanishing expert, k = 3")
  out <- moe_study_setting(truth, k = k, n_grid = n_grid, n_rep = n_rep, gate = gate,
                           expert = expert_multinomial(), method = "ml",
                           init = init_near_truth(truth, k, assign = assign), loss = "D1",
                           control = moe_control(tol = 1e-8, maxit = maxit, accelerate = "squarem"),
                           name = name)
  attr(out, "theory") <- theory
  attr(out, "theory_slope") <- if (setting == "vanishing") 0 else -0.5
  out
}

#' Study settings: sigmoid-gated multinomial logistic mixture of experts
#'
#' The simulation study of Pham, Cao, Nguyen, Nguyen, Ho and Rinaldo (2026),
#' "Rethinking multinomial logistic mixture of experts with sigmoid gating
#' function", as [moe_study_setting()] objects. The truths are moegate's own
#' (the paper's values were not available). All settings: \eqn{d = 1},
#' \eqn{x \sim U[-1, 1]}, \eqn{K = 3} classes, \eqn{k^* = 2}, starts near the
#' truth ([init_near_truth()] defaults), EM with SQUAREM, tolerance
#' \eqn{10^{-8}}, one start, Voronoi loss `D1` (for the sigmoid-type gates the
#' weight term uses \eqn{\sigma(b_{0i})}; see [voronoi_loss()]).
#'
#' \describe{
#'   \item{`"softmax"`, `"modified_sigmoid"`}{The same over-specified truth
#'     fitted with \eqn{k = 3} (extra expert started on true expert 1): gate
#'     \eqn{w^* = (2, -1)}, \eqn{b_0^* = (0, 0)}; expert 1 with vanishing slopes
#'     (\eqn{t^*_1 = (1, -0.5)}, \eqn{\eta^*_1 = 0}), expert 2 with \eqn{t^*_2 =
#'     (-1, 0.5)}, \eqn{\eta^*_2 = (-2, 2)}. Under the modified sigmoid gate
#'     ([gate_modified_sigmoid()], \eqn{G_i \propto e^{b_{0i}}
#'     \sigma(w_i x)}) these are the parameters; under the softmax only
#'     differences of gate vectors are identified, so the same truth is
#'     written in the reference convention, \eqn{w^* = (3, 0)}. Under the
#'     softmax this is the slow "vanishing expert" case of the softmax paper
#'     (see [study_setting_softmax_multinomial()]), where the sigmoid paper's
#'     claim "sigmoid needs fewer samples than softmax" should be visible.
#'     Expected: softmax flat (slower than any polynomial); modified sigmoid
#'     polynomial, D1 at \eqn{n^{-1/2}} (our reading: the abstract states
#'     lower sample complexity, not the exponent).}
#'   \item{`"sigmoid_temperature"`}{Normalised sigmoid gate with inner-product
#'     score and an estimated temperature, \eqn{G_i \propto \sigma(w_i x / \tau
#'     + b_{0i})}, exactly specified (\eqn{k = 2}): \eqn{w^* = (-0.5, 0.5)},
#'     \eqn{\tau^* = 0.25}, \eqn{b_0^* = (0, 0)}, experts with non-zero slopes
#'     (\eqn{t^*_1 = (1, -0.5)}, \eqn{\eta^*_1 = (3, -2)}, expert 2 as above).
#'     Expected: exponential sample complexity, a flat D1. Here the
#'     interaction is exact: \eqn{(w, \tau)} and \eqn{(c w, c \tau)} give the
#'     same gate, so D1 on \eqn{(w, \tau)} cannot vanish; the study also
#'     records `loss_identified`, D1 on the identified \eqn{w / \tau}.}
#'   \item{`"euclidean_temperature"`}{The same, with the squared Euclidean
#'     score, \eqn{G_i \propto \sigma(-(x - w_i)^2 / \tau + b_{0i})}
#'     ([gate_euclidean()]), the same \eqn{w^*} (now centres) and experts
#'     but \eqn{\tau^* = 1} and \eqn{b_0^* = (1, 1)}: with
#'     \eqn{\tau^* = 0.25} and \eqn{b_0^* = 0} the sigmoids sit in their
#'     exponential tail, where the normalised sigmoid of a quadratic score is
#'     almost a softmax of a linear one and the centres are nearly
#'     unidentified. Expected: polynomial, D1 at \eqn{n^{-1/2}} (exact fit).}
#' }
#' `attr(setting, "theory")` holds the rate as text and `attr(setting,
#' "theory_slope")` the expected slope.
#'
#' @inheritParams study_setting_softmax_multinomial
#' @return A [moe_study_setting()], with attributes `theory` and
#'   `theory_slope`.
#' @references Pham, Cao, Nguyen, Nguyen, Ho, Rinaldo (2026). Rethinking
#'   multinomial logistic mixture of experts with sigmoid gating function.
#'   arXiv:2602.01466.
#' @seealso [study_setting_softmax_multinomial()], [rate_study()].
#' @examples
#' study_setting_sigmoid_multinomial("euclidean_temperature")
#' @export
study_setting_sigmoid_multinomial <- function(setting = c("softmax", "modified_sigmoid",
                                                          "sigmoid_temperature",
                                                          "euclidean_temperature"),
                                              n_grid = NULL, n_rep = 5, maxit = 300) {
  setting <- match_arg(setting)
  if (is.null(n_grid)) n_grid <- multinomial_default_grid()
  maxit <- check_count(maxit, "maxit")
  control <- moe_control(tol = 1e-8, maxit = maxit, accelerate = "squarem")
  expert <- expert_multinomial()
  if (setting %in% c("softmax", "modified_sigmoid")) {
    W <- if (setting == "softmax") c(3, 0) else c(2, -1)
    truth <- multinomial_truth(W = W, vanishing = TRUE)
    gate <- if (setting == "softmax") gate_softmax() else gate_modified_sigmoid("logsigmoid")
    k <- 3L
    out <- moe_study_setting(truth, k = k, n_grid = n_grid, n_rep = n_rep, gate = gate,
                             expert = expert, method = "ml",
                             init = init_near_truth(truth, k, assign = c(1L, 1L, 2L)),
                             loss = "D1", control = control,
                             name = paste0(if (setting == "softmax") "softmax" else "modified sigmoid",
                                           ", vanishing expert, k = 3"))
    attr(out, "theory") <- if (setting == "softmax") "slower than any polynomial" else
      "polynomial, faster than softmax (D1 n^(-1/2) expected)"
    attr(out, "theory_slope") <- if (setting == "softmax") 0 else -0.5
    return(out)
  }
  euclid <- setting == "euclidean_temperature"
  truth <- multinomial_truth(W = c(-0.5, 0.5), vanishing = FALSE, tau = if (euclid) 1 else 0.25,
                             b0 = if (euclid) c(1, 1) else c(0, 0))
  gate <- if (euclid) {
    gate_euclidean(temperature = 1, estimate_temperature = TRUE)
  } else {
    gate_sigmoid(temperature = 0.25, estimate_temperature = TRUE)
  }
  loss <- if (setting == "sigmoid_temperature") temperature_identified_loss else "D1"
  out <- moe_study_setting(truth, k = 2, n_grid = n_grid, n_rep = n_rep, gate = gate,
                           expert = expert, method = "ml",
                           init = init_near_truth(truth, 2, assign = c(1L, 2L)), loss = loss,
                           control = control,
                           name = if (setting == "sigmoid_temperature") {
                             "sigmoid with temperature (inner product), k = 2"
                           } else "sigmoid with temperature (Euclidean), k = 2")
  attr(out, "theory") <- if (setting == "sigmoid_temperature") {
    "exponential sample complexity (slower than any polynomial)"
  } else "polynomial (D1 n^(-1/2) for an exact fit)"
  attr(out, "theory_slope") <- if (setting == "sigmoid_temperature") 0 else -0.5
  out
}

# 5 sizes log-spaced from 1e3 to 1e4: the grid the shipped full studies ran.
multinomial_default_grid <- function() round(10^seq(3, 4, length.out = 5))

# The shared truth: K = 3 classes, d = 1, k* = 2; coef is p x (K - 1) x k with
# the intercept row first.
multinomial_truth <- function(W, vanishing = FALSE, tau = 1, b0 = c(0, 0)) {
  coef <- array(0, c(2, 2, 2))
  coef[, , 1] <- rbind(c(1, -0.5), if (vanishing) c(0, 0) else c(3, -2))
  coef[, , 2] <- rbind(c(-1, 0.5), c(-2, 2))
  moe_params(W = matrix(W, 1), b0 = b0, tau = tau, coef = coef)
}

# D1 on (w, tau) as loss, and D1 on the identified w / tau (temperature fixed
# at 1) as loss_identified: the linear temperature gate only identifies w / tau.
temperature_identified_loss <- function(fit, truth) {
  d1 <- voronoi_loss(fit, truth, "D1")
  rescale <- function(p) {
    moe_params(W = p$gate$W / p$gate$tau, b0 = p$gate$b0, tau = 1, coef = p$expert$coef)
  }
  g <- fit$gate
  fixed <- gate(score = g$score, activation = g$activation, normalizer = g$normalizer,
                transform = g$transform, temperature = 1, estimate_temperature = FALSE,
                intercept = g$intercept, name = "identified")
  identified <- voronoi_loss(rescale(fit$params), rescale(truth), "D1", gate = fixed,
                             expert = fit$expert, method = fit$method)
  c(D1 = d1, identified = identified)
}
