# Study settings of the temperature paper (Gaussian mixture of experts with
# dense-to-sparse gates, maximum likelihood) and of the cosine-router paper
# (regression mixture of experts with non-linear experts, least squares).
# Each setting's values live here, in one place. The slow side of both
# papers' claims is estimation along an exact invariance of the likelihood
# (w / tau for the dense-to-sparse gate, the norms ||w_i|| of a cosine gate),
# so the settings report raw-parameter losses beside identified ones, spread
# their starts along that direction, and check with two starts whether the
# raw parameter is estimated at all.

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
#'       \item `"temperature"`: the dense-to-sparse gate
#'         \eqn{\mathrm{softmax}(w_i^\top x / \tau + b_{0i})}, \eqn{\tau}
#'         estimated ([gate_temperature()]);
#'       \item `"activation_gelu"`, `"activation_tanh"`: the activation
#'         dense-to-sparse gate \eqn{\mathrm{softmax}(\mathrm{act}(w_i^\top x) /
#'         \tau + b_{0i})}, \eqn{\tau} estimated ([gate_activation()]);
#'       \item `"softmax"`: the reference softmax without temperature, with the
#'         same effective logits \eqn{w^{*\top} x / \tau^* = 4x};
#'     }
#'   \item fitted \eqn{k = k^* = 2} (exact specification), maximum likelihood by
#'     EM (tolerance \eqn{10^{-8}}, at most 1000 iterations, SQUAREM), one
#'     start near the truth ([init_near_truth()] with its defaults) **moved
#'     along the ray** \eqn{(c w, c \tau)}, \eqn{c = e^U}, \eqn{U \sim U(-0.3,
#'     0.3)}: for the dense-to-sparse gate that ray is an exact invariance of
#'     the likelihood, so a start on the truth would make any loss along it
#'     measure the start; for the activation gates the estimator has to undo
#'     the move.
#' }
#' **Losses.** `loss`: the identified D1 Voronoi loss (all cells are
#' singletons): for the dense-to-sparse gate on \eqn{w / \tau} (fit and truth
#' rewritten with temperature 1, compared as softmax gate vectors), for the
#' others the plain [voronoi_loss()] (\eqn{w} and \eqn{\tau} are identified).
#' `loss_tau`: \eqn{|\log \hat\tau - \log \tau^*|}. `loss_raw`: the raw-parameter
#' D1, the plain [voronoi_loss()] with \eqn{w} and \eqn{\tau} as separate
#' blocks (the paper's loss). With two-start check (`two_start = TRUE`), the
#' same data are fitted again from \eqn{c = e^{-0.5}} and \eqn{e^{0.5}}, and
#' `gap` is \eqn{|\log \hat\tau_1 - \log \hat\tau_2|}.
#'
#' **Theory** (abstract): parameter rates slower than any polynomial, possibly
#' \eqn{O(1/\log n)}, for the dense-to-sparse gate; polynomial rates for the
#' activation gate with tanh, sigmoid or GELU. [asymptotic_loss()] predicts the
#' identified loss only: the raw losses move along the information's null
#' direction, which it does not perturb.
#'
#' @param setting `"temperature"`, `"activation_gelu"`, `"activation_tanh"`
#'   or `"softmax"`.
#' @param n_grid Sample sizes. The default is the grid of the shipped full
#'   study.
#' @param n_rep Replications per sample size.
#' @param control [moe_control()] settings of the fits.
#' @param spread_range Half-width of \eqn{\log c} of the starts (0: starts
#'   on the near-truth point, as the papers' protocol).
#' @param two_start Run the two-start check? (A number: in that many
#'   replications per size; `TRUE`: all.)
#' @return A [moe_study_setting()]; its `truth` is the truth of that gate.
#' @references Nguyen, Akbarian, Ho (2024). Is temperature sample efficient for
#'   softmax Gaussian mixture of experts? ICML. arXiv:2401.13875.
#' @seealso [study_setting_cosine()], [rate_study()], [study_verdicts()].
#' @examples
#' study_setting_temperature("temperature")
#' small <- study_setting_temperature("activation_tanh", n_grid = c(500, 1000), n_rep = 2)
#' \donttest{
#' rate_slopes(rate_study(small, seed = 1), B = 100)
#' }
#' @export
study_setting_temperature <- function(setting = c("temperature", "activation_gelu",
                                                  "activation_tanh", "softmax"),
                                      n_grid = round(10^seq(3, 5, length.out = 10)),
                                      n_rep = 40,
                                      control = moe_control(tol = 1e-8, maxit = 1000,
                                                            accelerate = "squarem"),
                                      spread_range = 0.3, two_start = 10) {
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
  has_tau <- setting != "softmax"
  reps <- study_two_start_reps(two_start, n_rep, has_tau)
  moe_study_setting(truth, k = 2, n_grid = n_grid, n_rep = n_rep, gate = gate,
                    expert = expert_gaussian(), method = "ml", init = "near_truth",
                    loss = temperature_study_loss(setting), control = control, name = name,
                    spread = if (has_tau) spread_ray, spread_range = spread_range,
                    two_start = if (reps > 0) function(p) log(p$gate$tau),
                    two_start_reps = reps)
}

# Replications of the two-start check: TRUE = all, FALSE = none, a number.
study_two_start_reps <- function(two_start, n_rep, applies = TRUE) {
  if (isTRUE(two_start)) return(if (applies) n_rep else 0L)
  if (isFALSE(two_start) || !applies) return(0L)
  min(check_count(two_start, "two_start", lower = 0), n_rep)
}

# Move parameters along the ray (c w, c tau) (the temperature's invariance).
spread_ray <- function(params, c) {
  params$gate$W <- params$gate$W * c
  params$gate$tau <- params$gate$tau * c
  params
}

# The loss of a temperature-study setting: see ?study_setting_temperature.
temperature_study_loss <- function(setting) {
  force(setting)
  function(fit, truth) {
    raw <- voronoi_loss(fit$params, truth, "D1", gate = fit$gate, expert = fit$expert,
                        method = fit$method)
    main <- if (setting == "temperature") {
      # Only w / tau is identified: compare the effective gate vectors w / tau
      # of fit and truth as softmax gate vectors.
      effective <- function(p) {
        p$gate$W <- p$gate$W / p$gate$tau
        p$gate$tau <- 1
        p
      }
      voronoi_loss(effective(fit$params), effective(truth), "D1", gate = gate_softmax(),
                   expert = fit$expert, method = fit$method)
    } else raw
    c(loss = main, tau = abs(log(fit$params$gate$tau) - log(truth$gate$tau)), raw = raw)
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
#'       \item `"cosine"`: softmax of \eqn{w_i^\top x / (\|w_i\| \|x\|) + b_{0i}}
#'         ([gate_cosine()]): \eqn{\|w_i\|} is not identified at all;
#'       \item `"perturbed_cosine"`: softmax of \eqn{w_i^\top x / ((\|w_i\| +
#'         \epsilon_w)(\|x\| + \epsilon_u)) + b_{0i}} ([gate_perturbed_cosine()])
#'         with \eqn{\epsilon_w = \epsilon_u = } `eps` (default 1; with
#'         \eqn{\epsilon = 0.01} the two routers are numerically almost the
#'         same);
#'       \item `"linear"`: softmax of \eqn{w_i^\top x + b_{0i}} (reference);
#'     }
#'   \item fitted \eqn{k = k^* = 2}, least squares (`method = "lsq"`, L-BFGS,
#'     tolerance \eqn{10^{-10}}, at most 1000 iterations), one start near the
#'     truth ([init_near_truth()] defaults) with **every gate norm scaled** by
#'     \eqn{c = e^U}, \eqn{U \sim U(-0.3, 0.3)}: an exact invariance of the
#'     cosine router, an identified move that the estimator must undo for the
#'     perturbed one.
#' }
#' **Losses.** `loss`: the raw gate loss \eqn{\|\tilde w_1 - w_1^*\|}, with the
#' norm, after matching fitted to true experts (by expert parameters). The
#' perturbed router is linear in \eqn{v_i = w_i / (\|w_i\| + \epsilon_w)}, so
#' a common shift of all \eqn{v_i} is an exact invariance (2 null directions
#' of the information, at every \eqn{\epsilon}): its fitted \eqn{v} are shifted
#' so that \eqn{v_2 = v_2^*} and mapped back, \eqn{\tilde w = \epsilon_w v /
#' (1 - \|v\|)} (a shifted \eqn{\|v_1\| \ge 1} has no preimage: `NA`).
#' With \eqn{\epsilon < 0.1}, \eqn{\|v_1^*\|} is so close to 1 that this
#' map is hopelessly ill-conditioned (often undefined): `loss` is then
#' `loss_v`, \eqn{\|v_1 - v_1^*\|} after the shift, and the raw loss is
#' `loss_raw`. The linear router's \eqn{w} is likewise
#' translated so that \eqn{w_2 = w_2^*}. Also recorded: `loss_direction`
#' (\eqn{\|\tilde w_1/\|\tilde w_1\| - w_1^*/\|w_1^*\|\|}), `loss_experts`
#' (\eqn{\sum_i} distance of \eqn{(a_i, b_i)} to the matched true expert) and
#' `loss_D1` (the D1 [voronoi_loss()] on identified parameters: directions for
#' the cosine router, \eqn{v} up to translation for the perturbed one). With
#' the two-start check, `gap` is the distance between the raw \eqn{\tilde
#' w_1} of fits from \eqn{c = e^{-0.5}} and \eqn{e^{0.5}}.
#'
#' **Over-specified fits** (`k > 2`; the start splits true expert 1 into
#' copies with intercepts \eqn{b_0 - \log m}): `loss` is the D1
#' [voronoi_loss()] table (exponent 1 in cells of one fitted atom, 2 in cells
#' of several: the squared discrepancies behind the \eqn{n^{-1/4}} rates of
#' split cells' parameters) on **raw** parameters: the Voronoi cells, the
#' weight discrepancy and the intercepts' common translation of the
#' identified D1 (`loss_D1`: directions for the cosine router, \eqn{v} up to
#' a common shift for the perturbed one), with the raw gate vectors in the
#' gate term (`loss_w`; for the perturbed router at the common shift of all
#' \eqn{v} that minimises it among those keeping every \eqn{\|v_i\| < 1},
#' so it is defined for every fit; `loss_w_ident` is the identified gate
#' term); `loss_experts` is the experts' term, `loss_weight` the weight
#' discrepancy, `loss_split` 1 when a cell has several atoms, and
#' `loss_start` the loss of the start (so that readers see the estimator
#' moved). The two-start `gap` compares the raw gate vector of the fitted
#' expert nearest (in expert parameters) to true expert 1. Whether the fits
#' reach the least-squares minimum: [study_maxima()].
#'
#' **Theory** (abstract): with the cosine router, expert estimation as slow as
#' \eqn{O(1/\log^c n)}; with the perturbed cosine router, polynomial rates
#' between \eqn{n^{-1/4}} and \eqn{n^{-1/2}} for strongly identifiable experts
#' such as \eqn{\tanh}. [asymptotic_loss()] predicts the identified losses; it
#' leaves the null directions (the cosine norms, the \eqn{v} shift)
#' unperturbed, so it cannot predict the cosine router's raw loss.
#'
#' @param setting `"cosine"`, `"perturbed_cosine"` or `"linear"`.
#' @inheritParams study_setting_temperature
#' @param k Fitted number of experts (the truth has 2).
#' @param eps \eqn{\epsilon_w = \epsilon_u} of the perturbed router.
#' @return A [moe_study_setting()].
#' @references Nguyen, Akbarian, Pham, Nguyen, Zhang, Ho (2025). Statistical
#'   advantages of perturbing cosine router in mixture of experts. ICLR.
#'   arXiv:2405.14131.
#' @seealso [study_setting_temperature()], [rate_study()], [study_verdicts()].
#' @examples
#' study_setting_cosine("perturbed_cosine")
#' small <- study_setting_cosine("cosine", n_grid = c(500, 1000), n_rep = 2)
#' \donttest{
#' rate_slopes(rate_study(small, seed = 1), B = 100)
#' }
#' @export
study_setting_cosine <- function(setting = c("cosine", "perturbed_cosine", "linear"),
                                 n_grid = round(10^seq(3, 5, length.out = 10)),
                                 n_rep = 40,
                                 control = moe_control(tol = 1e-10, maxit = 1000), k = 2,
                                 eps = 1, spread_range = 0.3, two_start = 10) {
  setting <- match_arg(setting)
  k <- check_count(k, "k")
  check_number(eps, "eps", lower = 0, lower_open = TRUE)
  truth <- moe_params(W = cbind(c(2, 1), c(-1, 1)), b0 = c(0.3, 0),
                      coef = cbind(c(0.5, 2, -1), c(-0.5, -1, 2)), sigma2 = c(0.05, 0.05))
  gate <- switch(setting, linear = gate_softmax(), cosine = gate_cosine(),
                 perturbed_cosine = gate_perturbed_cosine(eps_w = eps, eps_u = eps))
  name <- switch(setting, linear = "linear router", cosine = "cosine router",
                 perturbed_cosine = sprintf("perturbed cosine router, eps = %g", eps))
  if (k > 2) name <- paste0(name, ", k = ", k)
  reps <- study_two_start_reps(two_start, n_rep, setting != "linear")
  # eps < 0.1: the raw w is nearly unrecoverable from v (||v_1*|| close to 1),
  # so the main loss and the two-start check use the shifted v.
  small_eps <- setting == "perturbed_cosine" && eps < 0.1
  raw_w1 <- if (k > 2) {
    # The raw gate vector, as the over-specified raw loss fixes the v shift,
    # of the fitted expert nearest (in expert parameters) to true expert 1.
    function(p) {
      parts <- cosine_overspecified_parts(p, truth, gate, expert_gaussian(activation = "tanh"),
                                          "lsq")
      parts$w_raw[cosine_match(p, truth)[1], ]
    }
  } else {
    function(p) cosine_raw_w(p, truth, gate, v_space = small_eps)[, 1]
  }
  loss <- if (k > 2) cosine_overspecified_loss(setting) else cosine_study_loss(setting)
  moe_study_setting(truth, k = k, n_grid = n_grid, n_rep = n_rep, gate = gate,
                    expert = expert_gaussian(activation = "tanh"), method = "lsq",
                    init = "near_truth", loss = loss, control = control,
                    name = name, spread = if (setting != "linear") spread_norms,
                    spread_range = spread_range,
                    two_start = if (reps > 0) raw_w1, two_start_reps = reps,
                    start_loss = k > 2)
}

# Scale every gate vector's norm by c (the cosine router's invariance).
spread_norms <- function(params, c) {
  params$gate$W <- params$gate$W * c
  params
}

# Fitted experts matched to true ones (k = k*: the permutation that minimises
# the distance of expert parameters; k > k*: each true expert's nearest).
cosine_match <- function(params, truth) {
  cf <- params$expert$coef
  ct <- truth$expert$coef
  dist <- outer(seq_len(ncol(ct)), seq_len(ncol(cf)), Vectorize(function(j, i) {
    sqrt(sum((ct[, j] - cf[, i])^2))
  }))
  if (ncol(cf) == ncol(ct) && ncol(ct) == 2) {
    return(if (dist[1, 1] + dist[2, 2] <= dist[1, 2] + dist[2, 1]) 1:2 else 2:1)
  }
  apply(dist, 1, which.min)
}

# Raw gate vectors of the matched fitted experts, in the truth's convention:
# the perturbed cosine router's v shifted so that v_2 = v_2* and mapped back
# to w (NA where the shifted v has norm >= 1; `v_space`: the shifted v); the linear router's w translated so that w_2 = w_2*; the cosine
# router's w as fitted (its norms are not identified).
cosine_raw_w <- function(params, truth, gate, v_space = FALSE) {
  m <- cosine_match(params, truth)
  W <- params$gate$W[, m, drop = FALSE]
  Wt <- truth$gate$W
  if (gate$score == "perturbed_cosine") {
    eps <- gate$eps_w
    to_v <- function(W) sweep(W, 2, sqrt(colSums(W^2)) + eps, "/")
    v <- to_v(W)
    v <- v - v[, 2] + to_v(Wt)[, 2]
    if (v_space) return(v)
    nv <- sqrt(colSums(v^2))
    # A shifted v of norm >= 1 has no preimage w: NA.
    W <- sweep(v, 2, ifelse(nv < 1, eps / (1 - nv), NA_real_), "*")
  } else if (gate$score == "inner") {
    W <- W - W[, 2] + Wt[, 2]
  }
  W
}

# The loss of a cosine-router setting: see ?study_setting_cosine.
cosine_study_loss <- function(setting) {
  force(setting)
  function(fit, truth) {
    W <- cosine_raw_w(fit$params, truth, fit$gate)
    Wt <- truth$gate$W
    raw <- sqrt(sum((W[, 1] - Wt[, 1])^2))
    v_loss <- NULL
    if (setting == "perturbed_cosine") {
      v <- cosine_raw_w(fit$params, truth, fit$gate, v_space = TRUE)
      vt <- truth$gate$W[, 1] / (sqrt(sum(truth$gate$W[, 1]^2)) + fit$gate$eps_w)
      v_loss <- sqrt(sum((v[, 1] - vt)^2))
    }
    unit <- function(w) w / sqrt(sum(w^2))
    direction <- sqrt(sum((unit(W[, 1]) - unit(Wt[, 1]))^2))
    m <- cosine_match(fit$params, truth)
    coef_fit <- fit$params$expert$coef[, m, drop = FALSE]
    experts <- sum(sqrt(colSums((truth$expert$coef - coef_fit)^2)))
    d1 <- if (setting == "perturbed_cosine") {
      to_v <- function(p) {
        p$gate$W <- sweep(p$gate$W, 2, sqrt(colSums(p$gate$W^2)) + fit$gate$eps_w, "/")
        p
      }
      voronoi_loss(to_v(fit$params), to_v(truth), "D1", gate = gate_softmax(),
                   expert = fit$expert, method = fit$method)
    } else {
      voronoi_loss(fit$params, truth, "D1", gate = fit$gate, expert = fit$expert,
                   method = fit$method)
    }
    if (setting == "perturbed_cosine" && fit$gate$eps_w < 0.1) {
      return(c(loss = v_loss, raw = raw, direction = direction, experts = experts, D1 = d1))
    }
    c(loss = raw, v = v_loss, direction = direction, experts = experts, D1 = d1)
  }
}

# The loss of an over-specified (k > 2) cosine-router setting: see
# ?study_setting_cosine.
cosine_overspecified_loss <- function(setting) {
  force(setting)
  function(fit, truth) {
    cosine_overspecified_parts(fit$params, truth, fit$gate, fit$expert, fit$method)$values
  }
}

# The over-specified losses and the raw gate vectors behind them. The
# Voronoi cells, the weight discrepancy and the intercepts' common
# translation are those of the identified D1 loss (on directions for the
# cosine router; on v = w / (||w|| + eps_w), up to a common shift, for the
# perturbed one); the raw loss puts the raw gate vectors into the same cells.
# For the perturbed router the raw w depend on the shift t of all v, an exact
# invariance: the raw loss is minimised over the shifts for which every
# v_i + t has norm below 1 (t = 0, the fit as it is, always does), so it is
# defined for every fit.
cosine_overspecified_parts <- function(params, truth, gate, expert, method) {
  perturbed <- gate$score == "perturbed_cosine"
  eps <- if (perturbed) gate$eps_w else NA_real_
  to_v <- function(p) {
    p$gate$W <- sweep(p$gate$W, 2, sqrt(colSums(p$gate$W^2)) + eps, "/")
    p
  }
  ident_gate <- if (perturbed) gate_softmax() else gate
  fp <- if (perturbed) to_v(params) else params
  tp <- if (perturbed) to_v(truth) else truth
  spec <- list(gate = ident_gate, expert = expert, method = method)
  v <- voronoi_loss(fp, tp, "D1", gate = ident_gate, expert = expert, method = method,
                    detail = TRUE)
  fa <- voronoi_atoms(fp, spec, "fit")
  ta <- voronoi_atoms(tp, spec, "truth")
  tr <- v$translation
  s <- exp(tr[["t_0"]])
  r_fun <- exponent_table("D1")
  cell_r <- function(b) vapply(v$cells, function(j) r_fun(b, v$cell_sizes[j]), 0)
  # Each atom's weight (with the translation) and distance to its true atom.
  part <- function(block_fit, block_true, b) {
    d <- sqrt(rowSums((block_fit - block_true[v$cells, , drop = FALSE])^2))
    sum(s * fa$weight * d^cell_r(b))
  }
  experts <- sum(vapply(intersect(c("a", "b"), names(fa$blocks)), function(b) {
    part(fa$blocks[[b]], ta$blocks[[b]], b)
  }, 0))
  w_ident <- part(fa$blocks$w, ta$blocks$w, "w")
  wt <- t(truth$gate$W)
  if (perturbed) {
    v_fit <- t(fp$gate$W)
    raw_at <- function(shift) {
      vv <- sweep(v_fit, 2, shift, "+")
      nv <- sqrt(rowSums(vv^2))
      if (any(nv >= 1)) return(NULL)
      vv * (eps / (1 - nv))
    }
    w_term <- function(shift) {
      w <- raw_at(shift)
      if (is.null(w)) Inf else part(w, wt, "w")
    }
    # Candidates: no shift, and the identified loss's (in the fit's
    # absolute v coordinates: its reference expert's v and the truth's).
    k <- ncol(params$gate$W)
    t_ident <- tr[grepl("^t_w", names(tr))]
    cands <- list(numeric(ncol(v_fit)))
    if (length(t_ident)) {
      cands[[2]] <- t_ident - v_fit[k, ] + t(tp$gate$W)[ncol(truth$gate$W), ]
    }
    vals <- vapply(cands, w_term, 0)
    best <- cands[[which.min(vals)]]
    opt <- stats::optim(best, w_term, method = "Nelder-Mead",
                        control = list(reltol = 1e-12, maxit = 2000))
    if (opt$value < min(vals)) best <- opt$par
    w_raw_atoms <- raw_at(best)
  } else {
    w_raw_atoms <- t(params$gate$W)
  }
  w_raw <- part(w_raw_atoms, wt, "w")
  raw <- v$weight + w_raw + experts
  split <- as.numeric(any(v$cell_sizes > 1))
  values <- if (perturbed && eps < 0.1) {
    c(loss = v$loss, raw = raw, D1 = v$loss, experts = experts, w = w_ident,
      w_raw = w_raw, weight = v$weight, split = split)
  } else {
    c(loss = raw, D1 = v$loss, experts = experts, w = w_raw, w_ident = w_ident,
      weight = v$weight, split = split)
  }
  list(values = values, w_raw = w_raw_atoms, cells = v$cells)
}
