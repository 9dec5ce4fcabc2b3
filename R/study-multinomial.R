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
#'   \item{`"vanishing_exact"`, `"vanishing_exact_modified"`}{an **exact fit**
#'     (\eqn{k = k^* = 2}) with a vanishing expert on a well-conditioned truth
#'     (information condition numbers about 600-1000): \eqn{x \sim U(-3, 3)},
#'     \eqn{w^* = (4, 0)}, \eqn{t^*_1 = (2, -1)}, \eqn{\eta^*_1 = 0},
#'     \eqn{t^*_2 = (-1, 2)}, \eqn{\eta^*_2 = (-2, 2)}; softmax or modified
#'     softmax (tanh) gate; D1. Expected \eqn{n^{-1/2}} under both: the
#'     slowness the paper proves lives in an over-specified cell, where
#'     zero-slope experts are closed under mixing (see
#'     [vanishing_hellinger_profile()]).}
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
                                                          "vanishing_modified", "vanishing_exact",
                                                          "vanishing_exact_modified"),
                                              n_grid = NULL, n_rep = 5, maxit = 300) {
  setting <- match_arg(setting)
  if (is.null(n_grid)) n_grid <- multinomial_default_grid()
  maxit <- check_count(maxit, "maxit")
  if (setting %in% c("vanishing_exact", "vanishing_exact_modified")) {
    return(vanishing_exact_setting(setting == "vanishing_exact_modified", n_grid, n_rep, maxit))
  }
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
#'   \item{`"sigmoid_temperature"`, `"euclidean_temperature"`}{The
#'     temperature claims, exactly specified (\eqn{k = 2}) on one truth:
#'     \eqn{x \sim U(-2, 2)}, gate centres (Euclidean) or gate vectors (inner
#'     product) \eqn{w^* = (-1, 1)}, \eqn{\tau^* = 1}, \eqn{b_0^* = (0, 0)};
#'     experts \eqn{t^*_1 = (1, -1)}, \eqn{\eta^*_1 = (1, 1)} and \eqn{t^*_2 =
#'     (-1, 1)}, \eqn{\eta^*_2 = (-1, -1)}, whose class probabilities all stay
#'     in \eqn{[0.035, 0.85]} over the \eqn{x} range (so no class is separable
#'     inside an expert's region; the experts of earlier versions were, and
#'     their likelihood had no finite maximum at the study's sizes). Under
#'     the Euclidean score one observation's sd of \eqn{\log\hat\tau} is
#'     about 77 and the largest over all parameters about 226 (condition number
#'     of the information about \eqn{4 \times 10^4}); see the vignette. `"sigmoid_temperature"`: normalised
#'     sigmoid of the inner-product score, \eqn{G_i \propto \sigma(w_i x /
#'     \tau + b_{0i})} ([gate_sigmoid()], \eqn{\tau} estimated): \eqn{(w,
#'     \tau)} and \eqn{(c w, c \tau)} give the same gate, the exact form of
#'     the paper's interaction. `"euclidean_temperature"`: the plain
#'     (unsquared) Euclidean score, \eqn{G_i \propto \sigma(-|x - w_i| / \tau
#'     + b_{0i})} ([gate_euclidean()] with `squared = FALSE`; the squared
#'     score's \eqn{-x^2/\tau} term is shared by every expert, which leaves
#'     \eqn{\tau} about 30 times worse conditioned). Starts near the truth
#'     with \eqn{(w, \tau)} scaled by \eqn{c = e^U}, \eqn{U \sim U(-0.3,
#'     0.3)}; two-start check (\eqn{c = e^{\pm 0.5}}) on \eqn{\log\tau}.
#'     Losses: `loss` \eqn{= |\log\hat\tau - \log\tau^*|}, `loss_w` \eqn{=
#'     \sum_i |\hat w_i - w_i^*|} (experts matched), `loss_D1` (the D1
#'     [voronoi_loss()] on \eqn{(w, \tau)}). Expected: inner product flat
#'     (not estimated); Euclidean polynomial, \eqn{n^{-1/2}}.}
#' }
#' `attr(setting, "theory")` holds the rate as text and `attr(setting,
#' "theory_slope")` the expected slope.
#'
#' @inheritParams study_setting_softmax_multinomial
#' @param spread_range Half-width of \eqn{\log c} of the starts, which the
#'   temperature settings spread along the \eqn{(w, \tau)} ray (0: starts on
#'   the near-truth point, as the papers' protocol).
#' @param grad_tol Tolerance of the gradient stopping rule ([moe_control()]).
#'   The plain Euclidean score \eqn{|x - w_i|} has a kink at every
#'   observation, so at its maximum the relative gradient is of order
#'   \eqn{1/n}, not zero: the shipped run uses `1e-5`.
#' @param two_start Run the two-start check (starts at \eqn{c = e^{\mp 0.5}}
#'   along the ray, gap in \eqn{\log \tau})? A number: in that many
#'   replications per size; `TRUE`: all.
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
                                              n_grid = NULL, n_rep = 5, maxit = 300,
                                              spread_range = 0.3, two_start = 4,
                                              grad_tol = 1e-6) {
  setting <- match_arg(setting)
  if (is.null(n_grid)) n_grid <- multinomial_default_grid()
  maxit <- check_count(maxit, "maxit")
  control <- moe_control(tol = 1e-8, maxit = maxit, accelerate = "squarem", grad_tol = grad_tol)
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
  coef <- array(0, c(2, 2, 2))
  # Chosen by conditioning (see the vignette): every class probability of
  # both experts at least 0.035 over x in [-2, 2], so no class is separable.
  coef[, , 1] <- rbind(c(1, -1), c(1, 1))
  coef[, , 2] <- rbind(c(-1, 1), c(-1, -1))
  truth <- moe_params(W = matrix(c(-1, 1), 1), b0 = c(0, 0), tau = 1, coef = coef)
  gate <- if (euclid) {
    gate_euclidean(temperature = 1, estimate_temperature = TRUE, squared = FALSE)
  } else {
    gate_sigmoid(temperature = 1, estimate_temperature = TRUE)
  }
  reps <- study_two_start_reps(two_start, n_rep)
  out <- moe_study_setting(truth, k = 2, n_grid = n_grid, n_rep = n_rep, gate = gate,
                           expert = expert, method = "ml",
                           init = init_near_truth(truth, 2, assign = c(1L, 2L)),
                           loss = sigmoid_temperature_loss, control = control,
                           x_dist = function(n, d) matrix(stats::runif(n * d, -2, 2), n, d),
                           name = if (euclid) "sigmoid with temperature (plain Euclidean), k = 2" else
                             "sigmoid with temperature (inner product), k = 2",
                           spread = spread_ray, spread_range = spread_range,
                           two_start = if (reps > 0) function(p) log(p$gate$tau),
                           two_start_reps = reps)
  attr(out, "theory") <- if (euclid) "polynomial (n^(-1/2) for an exact fit)" else
    "exponential sample complexity (slower than any polynomial)"
  attr(out, "theory_slope") <- if (euclid) -0.5 else 0
  out
}

# Losses of the sigmoid temperature settings: |log tau_hat - log tau*| first,
# then sum_i |w_hat_i - w_i*| with fitted experts matched to true ones by
# their expert parameters, then the D1 Voronoi loss on (w, tau).
sigmoid_temperature_loss <- function(fit, truth) {
  cf <- fit$params$expert$coef
  ct <- truth$expert$coef
  d <- function(i, j) sqrt(sum((cf[, , i] - ct[, , j])^2))
  m <- if (d(1, 1) + d(2, 2) <= d(1, 2) + d(2, 1)) 1:2 else 2:1
  c(loss = abs(log(fit$params$gate$tau) - log(truth$gate$tau)),
    w = sum(abs(fit$params$gate$W[, m] - truth$gate$W)),
    D1 = voronoi_loss(fit, truth, "D1"))
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

# The exact-fit vanishing-expert settings (k = k* = 2) on a well-conditioned
# truth: x ~ U(-3, 3), w* = (4, 0), expert 1 with t1* = (2, -1) and vanishing
# slopes, expert 2 with t2* = (-1, 2), eta2* = (-2, 2).
vanishing_exact_setting <- function(modified, n_grid, n_rep, maxit) {
  out <- moe_study_setting(vanishing_exact_truth(), k = 2, n_grid = n_grid, n_rep = n_rep,
                           gate = if (modified) gate_modified_softmax("tanh") else gate_softmax(),
                           expert = expert_multinomial(), method = "ml",
                           init = init_near_truth(vanishing_exact_truth(), 2, assign = 1:2),
                           loss = "D1",
                           control = moe_control(tol = 1e-8, maxit = maxit, accelerate = "squarem"),
                           x_dist = function(n, d) matrix(stats::runif(n * d, -3, 3), n, d),
                           name = paste0(if (modified) "modified softmax (tanh)" else "softmax",
                                         ", vanishing expert, k = k* = 2"))
  attr(out, "theory") <- "n^(-1/2) (exact fit: the slowness needs an over-specified cell)"
  attr(out, "theory_slope") <- -0.5
  out
}

vanishing_exact_truth <- function() {
  coef <- array(0, c(2, 2, 2))
  coef[, , 1] <- rbind(c(2, -1), c(0, 0))
  coef[, , 2] <- rbind(c(-1, 2), c(-2, 2))
  moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0), coef = coef)
}
