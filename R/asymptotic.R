# The loss an exactly specified study would show if the estimator were already
# in its asymptotic (normal) regime: a reference line with the theory's slope
# and the model's own constant, to tell "not yet asymptotic" from "wrong rate".

#' Asymptotic prediction of a study's loss
#'
#' For an exactly specified [moe_study_setting()] (`k` equal to the number of
#' true experts), the maximum-likelihood (or least-squares) estimate is
#' asymptotically normal, \eqn{\sqrt n(\hat\theta - \theta^*) \to N(0,
#' I(\theta^*)^{-1})}. `asymptotic_loss()` draws parameters from that normal
#' law at each sample size and scores them with the setting's own loss, so its
#' curve is what the study's mean loss would be if every fit were already in
#' the asymptotic regime: a line of the theory's slope (\eqn{n^{-1/2}} for the
#' D1 loss of an exact fit) **with the model's own constant**. Where the
#' study's mean loss lies far above that curve, the sample sizes are not yet
#' asymptotic and a fitted slope measures the approach, not the rate; where the
#' two agree, the slope should agree too.
#'
#' The per-observation information \eqn{I(\theta^*)} is the expected (Fisher)
#' information at the true parameters, \eqn{E[s s^\top]} with \eqn{s} the
#' score of one observation: exact over the response given \eqn{x} (a sum
#' over classes for multinomial experts, Gauss-Hermite quadrature over each
#' true component for Gaussian experts) and averaged over `n_info` covariate
#' draws from the setting's `x_dist`; scores are central differences of the
#' log-density in the free parameters of [coef.moe()]. Unlike an observed
#' information at the truth it is positive semi-definite whatever `n_info`,
#' which matters for poorly conditioned models, whose smallest eigenvalues the
#' sampling noise of an observed Hessian swamps. Least-squares settings use
#' \eqn{E[\nabla m \nabla m^\top] / \sigma^2} (\eqn{m} the regression
#' function, \eqn{\sigma^2} the true noise variance), the inverse covariance
#' of least squares under Gaussian noise.
#' Directions the likelihood cannot see at all (an exact invariance, such as a
#' common scaling of gate vectors and temperature, or the norm of a cosine gate
#' vector) have (numerically) zero information; they get no perturbation,
#' which is correct for losses that are invariant along them (the studies'
#' identified losses) and meaningless for losses that are not.
#'
#' @param setting A [moe_study_setting()] with `k` equal to the true number of
#'   experts. Over-specified MLEs are not asymptotically normal (their Voronoi
#'   cells merge fitted experts), so no prediction is made for them.
#' @param n Sample sizes at which to predict (default: the setting's grid).
#' @param n_info Number of covariate draws over which the information is
#'   averaged.
#' @param nsim Parameter draws per sample size.
#' @param loss Which loss to predict when the setting's loss function returns
#'   several (the names of [rate_study()]'s columns, e.g. `"loss"`,
#'   `"loss_raw"`).
#' @param seed Seed of the simulated sample and the draws (the caller's random
#'   stream is left untouched).
#' @return A data frame with one row per `n`: `n`, `mean`, `median`, `q25`,
#'   `q75` of the predicted loss, with attributes `information` (the
#'   per-observation information matrix, named like [coef.moe()]),
#'   `null_directions` (how many directions had no information) and
#'   `condition` (largest over smallest non-null eigenvalue).
#' @seealso [rate_study()], [plot.moe_rate_study()], [vcov.moe()].
#' @examples
#' truth <- moe_params(W = matrix(c(4, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(1, 2), c(-1, -1)), sigma2 = c(0.1, 0.1))
#' setting <- moe_study_setting(truth, k = 2, n_grid = c(1e3, 1e4, 1e5), loss = "D1")
#' # Few draws keep the example short; a study would use the defaults. Each
#' # draw's loss minimises over a common translation, which dominates the cost.
#' pred <- asymptotic_loss(setting, n_info = 5000, nsim = 60)
#' pred
#' # Slopes near -1/2 on log-log axes (exactly -1/2 in the limit, up to the
#' # Monte Carlo error of 60 draws):
#' diff(log(pred$mean)) / diff(log(pred$n))
#' @export
asymptotic_loss <- function(setting, n = setting$n_grid, n_info = 1e5, nsim = 1000,
                            loss = "loss", seed = 1) {
  if (!inherits(setting, "moe_study_setting")) {
    stop_arg("setting", "a moe_study_setting object", got = setting)
  }
  k_true <- ncol(setting$truth$gate$W)
  if (setting$k != k_true) {
    stop_arg("setting", paste0("an exactly specified setting (k = ", k_true, " true experts, not k = ",
                               setting$k, "): over-specified estimators are not asymptotically normal"))
  }
  if (!is.numeric(n) || length(n) < 1 || any(!is.finite(n)) || any(n < 1)) {
    stop_arg("n", "a vector of positive sample sizes", got = n)
  }
  n_info <- check_count(n_info, "n_info")
  nsim <- check_count(nsim, "nsim")
  if (!is.character(loss) || length(loss) != 1 || is.na(loss)) stop_arg("loss", "a string", got = loss)
  if (!is.numeric(seed) || length(seed) != 1 || !is.finite(seed)) stop_arg("seed", "a number", got = seed)

  with_local_seed(seed, {
    object <- truth_object(setting, study_data(setting, n_info))
    info <- expected_information(object)
    layout <- free_layout(object)
    P <- nrow(info)
    eig <- eigen(info, symmetric = TRUE)
    if (!all(is.finite(eig$values)) || max(eig$values) <= 0) {
      stop("the information at the truth is not finite and positive; no prediction", call. = FALSE)
    }
    # Numerically zero information (the central-difference scores leave
    # about 1e-10 relative noise): an invariance of the likelihood, perturbed
    # by nothing.
    keep <- eig$values > 1e-8 * max(eig$values)
    root <- eig$vectors[, keep, drop = FALSE] %*% diag(1 / sqrt(eig$values[keep]), sum(keep))
    theta <- layout$values[seq_len(P)]
    spec <- list(gate = setting$gate, expert = setting$expert, method = setting$method)
    rows <- lapply(sort(unique(n)), function(m) {
      draws <- vapply(seq_len(nsim), function(s) {
        perturbed <- theta + drop(root %*% stats::rnorm(ncol(root))) / sqrt(m)
        params <- relist_free(object, perturbed)
        value <- study_loss(setting, c(spec, list(params = params, loglik = NA_real_)),
                            strict = FALSE)
        if (!loss %in% names(value)) {
          stop_arg("loss", paste0("one of the setting's losses (", paste(names(value), collapse = ", "), ")"),
                   got = loss)
        }
        value[[loss]]
      }, numeric(1))
      q <- stats::quantile(draws, c(0.25, 0.5, 0.75), names = FALSE)
      data.frame(n = m, mean = mean(draws), median = q[2], q25 = q[1], q75 = q[3])
    })
  })
  out <- do.call(rbind, rows)
  nm <- names(layout$values)[seq_len(P)]
  attr(out, "information") <- matrix(info, P, P, dimnames = list(nm, nm))
  attr(out, "null_directions") <- sum(!keep)
  attr(out, "condition") <- max(eig$values) / min(eig$values[keep])
  out
}

# A fitted-model-like object holding the true parameters and one simulated
# sample: what expected_information() and free_layout() read.
truth_object <- function(setting, data) {
  truth <- setting$truth
  object <- list(params = truth, k = setting$k, gate = setting$gate, expert = setting$expert,
                 method = setting$method, x = data$X, z = data$Z, y = data$y,
                 control = moe_control(nthreads = 1))
  if (setting$expert$family == "multinomial") {
    object$y <- factor(data$y)
    object$levels <- levels(object$y)
  }
  if (setting$method == "lsq") object$sigma2 <- truth$expert$sigma2[1] %||% 1
  object
}

# Expected information per observation at object$params, averaged over the
# covariates of object: see ?asymptotic_loss.
expected_information <- function(object, n_nodes = 20) {
  layout <- free_layout(object)
  P <- length(layout$values) - (object$method == "lsq")
  theta <- layout$values[seq_len(P)]
  spec <- list(gate = object$gate, expert = object$expert)
  X <- model_design(object, "expert")
  Z <- model_design(object, "gate")
  parts_at <- function(values) model_parts(relist_free(object, values), spec, X, Z)
  h <- .Machine$double.eps^(1 / 3) * pmax(abs(theta), 1)
  if (object$expert$family == "gaussian" && object$method == "ml") {
    variance <- seq_len(P) > P - object$k
    h[variance] <- pmin(h[variance], theta[variance] / 4)
  }
  shifted <- lapply(seq_len(P), function(j) {
    up <- down <- theta
    up[j] <- up[j] + h[j]
    down[j] <- down[j] - h[j]
    list(up = parts_at(up), down = parts_at(down), up_values = up, down_values = down)
  })
  n <- nrow(X)
  info <- matrix(0, P, P)
  # Add sum_i weight_i s_i s_i' for scores s (n x P).
  accumulate <- function(score, weight) info <<- info + crossprod(score * sqrt(weight))
  if (object$method == "lsq") {
    score <- vapply(seq_len(P), function(j) {
      (shifted[[j]]$up$response - shifted[[j]]$down$response) / (2 * h[j])
    }, numeric(n))
    accumulate(matrix(score, n), rep(1 / object$sigma2, n))
  } else if (object$expert$family == "multinomial") {
    # parts$prob: the mixture's class probabilities (n x K).
    prob <- parts_at(theta)$prob
    log_up <- lapply(shifted, function(s) log(s$up$prob))
    log_down <- lapply(shifted, function(s) log(s$down$prob))
    for (c in seq_len(ncol(prob))) {
      score <- vapply(seq_len(P), function(j) (log_up[[j]][, c] - log_down[[j]][, c]) / (2 * h[j]),
                      numeric(n))
      accumulate(matrix(score, n), prob[, c])
    }
  } else {
    gh <- gauss_hermite(n_nodes)
    sd_at <- function(values) sqrt(relist_free(object, values)$expert$sigma2)
    log_density <- function(y, parts, sds) {
      out <- 0
      for (i in seq_along(sds)) out <- out + parts$gate[, i] * stats::dnorm(y, parts$expert[, i], sds[i])
      log(out)
    }
    parts <- parts_at(theta)
    sds <- sd_at(theta)
    # Standard deviations of each shifted parameter vector, once (not per node).
    sd_up <- lapply(shifted, function(s) sd_at(s$up_values))
    sd_down <- lapply(shifted, function(s) sd_at(s$down_values))
    for (c in seq_along(sds)) {
      for (l in seq_along(gh$nodes)) {
        y <- parts$expert[, c] + sds[c] * gh$nodes[l]
        score <- vapply(seq_len(P), function(j) {
          (log_density(y, shifted[[j]]$up, sd_up[[j]]) - log_density(y, shifted[[j]]$down, sd_down[[j]])) /
            (2 * h[j])
        }, numeric(n))
        accumulate(matrix(score, n), parts$gate[, c] * gh$weights[l])
      }
    }
  }
  info <- info / n
  (info + t(info)) / 2
}

# The inverse of free_layout(): parameters whose free values are `values`
# (the fixed parts, such as a reference expert's gate vector, from object).
relist_free <- function(object, values) {
  values <- unname(values)
  layout <- free_layout(object)
  kw <- layout$kw
  kb <- layout$kb
  params <- object$params
  W <- params$gate$W
  at <- 0L
  take <- function(m) {
    v <- values[at + seq_len(m)]
    at <<- at + m
    v
  }
  W[, seq_len(kw)] <- take(nrow(W) * kw)
  params$gate$W <- W
  params$gate$b0[seq_len(kb)] <- take(kb)
  if (object$gate$estimate_tau) params$gate$tau <- exp(take(1L))
  coef <- params$expert$coef
  coef[] <- take(length(coef))
  params$expert$coef <- coef
  if (object$expert$family == "gaussian" && object$method == "ml") {
    # A draw at tiny n can cross zero; the variance floor of the fits.
    params$expert$sigma2 <- pmax(take(object$k), .Machine$double.eps)
  }
  params
}
