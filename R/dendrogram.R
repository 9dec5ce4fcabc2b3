# Dendrograms of mixing measures: merge the atoms of one over-specified fit two
# at a time, bottom-up, and choose the level by the dendrogram information
# criterion (DIC). Merging is pure R on k x (parameters) matrices: k is small
# and every level costs one log-likelihood evaluation in C++.

#' Dendrogram of the mixing measure of a mixture of experts
#'
#' Builds the merge tree of a fitted, typically over-specified, mixture of
#' experts (Do, Do, McKinley, Terhorst and Nguyen 2024; for the softmax-gated
#' Gaussian MoE Hai, Mai, Nguyen, Ho, Nguyen and Drovandi 2025; for the
#' softmax-gated multinomial logistic MoE arXiv:2602.07997): starting from the
#' fit's \eqn{K} atoms, the two closest atoms are merged into one, again and
#' again, down to one atom. Each level \eqn{k = K, \dots, 1} is a mixture of
#' experts with \eqn{k} experts whose log-likelihood on the fit's data is
#' computed, and the level is chosen by the dendrogram information criterion.
#'
#' @section Atoms and merges: Atom \eqn{i} has mixing weight \eqn{\pi_i}, gate
#'   vector \eqn{w_i} and intercept \eqn{b_{0i}}, expert intercept \eqn{b_i}
#'   (Gaussian; for multinomial experts the \eqn{K - 1} class intercepts),
#'   expert slopes \eqn{A_i} (multinomial: all class slopes) and, for Gaussian
#'   experts, variance \eqn{\sigma^2_i}. The weights (`weights`):
#'   \itemize{
#'     \item `"mass"` (default for a fitted model): \eqn{\pi_i = n^{-1}
#'       \sum_t G_i(z_t)}, the average gate weight of expert \eqn{i} over the
#'       fit's data, recomputed after every merge;
#'     \item `"intercept"`: \eqn{\pi_i = e^{b_{0i}} / \sum_j e^{b_{0j}}}, the
#'       gate weights at \eqn{z = 0} (default for a [moe_params()] object);
#'     \item `"reference"`: \eqn{\pi_i = e^{b_{0i}}} in the gate's reference
#'       convention (last expert \eqn{b_{0k} = 0}), as the public code of Hai
#'       et al. does.
#'   }
#'   Two atoms merge into one with the weight-averaged
#'   \eqn{(w, b, A, \sigma^2)}, \eqn{\bar\theta = (\pi_i \theta_i + \pi_j
#'   \theta_j) / (\pi_i + \pi_j)}, and the intercept \eqn{\bar b_0} for which
#'   the merged gate term equals the sum of the two at a point \eqn{z_0}:
#'   \eqn{e^{s(\bar w; z_0) + \bar b_0} = e^{s(w_i; z_0) + b_{0i}} +
#'   e^{s(w_j; z_0) + b_{0j}}} (\eqn{s} the score after activation and
#'   temperature), with \eqn{z_0} the mean of the gate covariates for
#'   `"mass"` and \eqn{z_0 = 0} otherwise, where it is the papers'
#'   \eqn{\bar b_0 = \log(e^{b_{0i}} + e^{b_{0j}})} for the linear softmax
#'   gate. For every softmax-normalised gate whose intercept is added after the
#'   score (`intercept = "outside"`), atoms with equal gate vectors have equal
#'   scores everywhere, so merging two atoms with equal parameters gives back
#'   the model with one expert fewer exactly, whatever the score, activation,
#'   transform and temperature: these gates are supported. For the plain
#'   cosine score, which ignores \eqn{\|w_i\|}, the unit vectors are averaged.
#'   The (normalised) sigmoid normalizers and `intercept = "inside"` have no
#'   such identity (\eqn{\sigma(a) + \sigma(b)} is not \eqn{\sigma} of
#'   anything for every score), and least-squares fits have no likelihood to
#'   score a level by: both are refused.
#'
#' @section Merge height: The dissimilarity of atoms \eqn{i} and \eqn{j} is
#'   \deqn{d_{ij} = (\pi_i^{-1} + \pi_j^{-1})^{-1} \big(\|b_i - b_j\|^2 +
#'   (\|A_i - A_j\|^2 + (\sigma^2_i - \sigma^2_j)^2)^{1/2}\big),}
#'   the form of the public code of Hai et al. for Gaussian experts (expert
#'   intercepts squared, slopes and variances to the first order, gate vectors
#'   not included). For multinomial experts the class intercepts play the part
#'   of \eqn{b} and the class slopes that of \eqn{A} (no variance). With
#'   `include_gate = TRUE` the term \eqn{\|w_i - w_j\|^2} joins the square
#'   root. The height of a merge is the dissimilarity of the two atoms it
#'   merged; heights need not increase from one merge to the next.
#'
#' @section Dendrogram information criterion: Level \eqn{k} (\eqn{k \ge 2})
#'   has \eqn{DIC_k = -(h_k + \omega_n \bar\ell_k)}, where \eqn{h_k} is the
#'   height of the merge that leaves level \eqn{k} (from \eqn{k} atoms to
#'   \eqn{k - 1}), \eqn{\bar\ell_k} the average log-likelihood of the merged
#'   model with \eqn{k} atoms and \eqn{\omega_n = \log n} by default; the
#'   selected number of experts minimises it. Level 1 has no merge above it,
#'   so it has no DIC and cannot be selected (as in the paper's criterion):
#'   a dendrogram cannot tell a one-expert truth from a two-expert one.
#'
#' @section Departures from the papers and the public code: (1) The default
#'   weights are the masses \eqn{n^{-1} \sum_t G_i(z_t)}, not \eqn{e^{b_{0i}}}:
#'   with a covariate-dependent gate, \eqn{e^{b_{0i}}} is the weight at
#'   \eqn{z = 0}, which depends on the origin of the covariates (shifting
#'   \eqn{z} by \eqn{c} changes \eqn{b_{0i}} by \eqn{w_i^\top c}) and on which
#'   expert is the reference (all \eqn{e^{b_{0i}}} scale with
#'   \eqn{e^{-b_{0k}}}), and both change the DIC's balance between height and
#'   likelihood. On uncentred data (e.g. `MASS::mcycle`, times 2 to 58 ms) the
#'   weights at 0 are of order \eqn{10^{-10}} and every height is close to
#'   zero. For the same reason merged intercepts are matched at the mean of
#'   the gate covariates. (The expert intercepts \eqn{b_i} in the
#'   dissimilarity still depend on the origin of the expert covariates, as in
#'   the papers.) The papers' simulations draw centred covariates,
#'   where the two agree more closely; `weights = "intercept"` or
#'   `"reference"` give their definitions. (2) Gates other than the linear
#'   softmax are merged by the same rule (see Atoms and merges); the papers
#'   treat the linear softmax gate only. (3) The multinomial dissimilarity is
#'   the Gaussian one without the variance term; the exact form used in
#'   arXiv:2602.07997 was not available to us. (4) The public code evaluates
#'   the log-likelihood with \eqn{10^{-9}} added to every density; here it is
#'   the exact log-likelihood of [moe()].
#'
#' @param fit A fitted [moe()] model (maximum likelihood), or a [moe_params()]
#'   object (then give `gate` and `expert`; the tree has merges and heights
#'   but no log-likelihoods, DIC or selected k).
#' @param weights `"mass"`, `"intercept"` or `"reference"`; see Atoms and
#'   merges. `NULL`: `"mass"` for a fitted model, `"intercept"` for
#'   parameters.
#' @param include_gate Logical: include the gate vectors in the dissimilarity?
#' @param omega Weight \eqn{\omega_n} of the average log-likelihood in the DIC;
#'   `NULL` gives \eqn{\log n}.
#' @param gate,expert Gate and expert specifications when `fit` is a
#'   [moe_params()] object.
#' @return An object of class `moe_dendrogram`: a list with `table` (one row
#'   per level, \eqn{k = K, \dots, 1}: `k`, `height` (of the merge leaving the
#'   level; `NA` at \eqn{k = 1}), `loglik`, `df`, `DIC`), `k_selected`,
#'   `merge` and `height` (the \eqn{K - 1} merges in the order performed, in
#'   [stats::hclust()]'s convention), `order`, `labels`, `levels` (the merged
#'   [moe_params()] of every level, named by k; `attr(, "members")` gives the
#'   original experts in each atom), `params` (those of the selected level),
#'   `gate`, `expert`, `method`, `weights`, `include_gate`, `omega`, `at`
#'   (the point \eqn{z_0} of the merged intercepts) and `fit`
#'   (the model the tree was built from). [voronoi_loss()] and
#'   [density_error()] accept the object and score the selected level.
#' @references Do, Do, McKinley, Terhorst, Nguyen (2024). Dendrogram of mixing
#'   measures: hierarchical clustering and model selection for finite mixture
#'   models. arXiv:2403.01684.
#'
#'   Hai, Mai, Nguyen, Ho, Nguyen, Drovandi (2025). Dendrograms of mixing
#'   measures for softmax-gated Gaussian mixture of experts: consistency
#'   without model sweeps. arXiv:2510.12744.
#'
#'   Fast model selection and stable optimization for softmax-gated
#'   multinomial-logistic mixture of experts models (2026). arXiv:2602.07997.
#' @seealso [moe_select()] for the sweep over k; [as_moe()], [coef.moe_dendrogram()],
#'   [plot.moe_dendrogram()].
#' @examples
#' truth <- moe_params(W = matrix(c(6, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(2, 3), c(-2, -1)), sigma2 = c(0.1, 0.1))
#' set.seed(1)
#' d <- rmoe(1000, truth)
#' # Over-specified fits converge slowly; 300 EM iterations are enough here.
#' fit <- suppressWarnings(moe(y ~ x1, data = d, k = 4, control = moe_control(maxit = 300)))
#' tree <- moe_dendrogram(fit)
#' tree
#' plot(tree)
#' coef(tree, k = 2)
#' merged <- as_moe(tree, k = 2, refine = TRUE)
#' voronoi_loss(tree, truth)
#'
#' # In a rate study, the loss of the merged estimator with k* atoms (the
#' # study's fits carry no data, so the weights are the intercept ones):
#' merged_loss <- function(fit, truth) {
#'   tree <- moe_dendrogram(fit$params, gate = fit$gate, expert = fit$expert)
#'   voronoi_loss(coef(tree, k = ncol(truth$gate$W)), truth, "D1",
#'                gate = fit$gate, expert = fit$expert)
#' }
#' setting <- moe_study_setting(truth, k = 4, n_grid = c(500, 1000), n_rep = 2,
#'                              loss = merged_loss)
#' @export
moe_dendrogram <- function(fit, weights = NULL, include_gate = FALSE, omega = NULL,
                           gate = NULL, expert = NULL) {
  check_flag(include_gate, "include_gate")
  if (inherits(fit, "moe")) {
    spec <- list(params = fit$params, gate = fit$gate, expert = fit$expert, method = fit$method)
  } else if (inherits(fit, "moe_params")) {
    spec <- loss_spec(fit, gate, expert, "ml")
  } else {
    stop_arg("fit", "a fitted moe model or a moe_params object", got = fit)
  }
  check_mergeable(spec)
  has_data <- inherits(fit, "moe")
  if (has_data && (!is.null(fit$offset) || !is.null(fit$weights))) {
    stop_arg("fit", "a fit without offset and case weights: the merged levels' ",
             "log-likelihoods do not take them into account yet")
  }
  weights <- weights %||% if (has_data) "mass" else "intercept"
  weights <- check_choice(weights, c("mass", "intercept", "reference"), "weights")
  if (weights == "mass" && !has_data) {
    stop_arg("weights", "\"intercept\" or \"reference\" for a moe_params object: the masses ",
             "are averages of the gate over the fit's data")
  }
  n <- if (has_data) fit$nobs else NA_integer_
  if (is.null(omega)) {
    omega <- if (has_data) log(n) else NA_real_
  } else {
    check_number(omega, "omega", lower = 0)
  }
  Z <- if (has_data) model_design(fit, "gate")
  q_z <- if (has_data) ncol(Z) else nrow(spec$params$gate$W)
  at <- if (weights == "mass") colMeans(Z) else rep(0, q_z)
  ctx <- list(gate = spec$gate, weights = weights, tau = spec$params$gate$tau, at = at,
              U_at = gate_input(spec$gate, matrix(at, 1)),
              U = if (has_data) gate_input(spec$gate, Z))
  if (ncol(ctx$U_at) != nrow(spec$params$gate$W)) {
    stop_arg("fit", "gate vectors of length ", ncol(ctx$U_at), " (the gate input)")
  }
  atoms <- dendrogram_atoms(spec, ctx)
  K <- length(atoms$lw)
  tree <- merge_tree(atoms, spec, include_gate, ctx)
  levels <- tree$levels
  names(levels) <- as.character(K:1)
  loglik <- if (has_data) vapply(levels, merged_loglik, 0, fit = fit) else rep(NA_real_, K)
  q <- nrow(spec$params$gate$W)
  df <- vapply(K:1, function(k) moe_df(spec, q, k), 0)
  height_at <- c(tree$height[seq_len(K - 1)], NA)   # level K, K - 1, ..., 1
  DIC <- -(height_at + omega * loglik / n)
  table <- data.frame(k = K:1, height = height_at, loglik = loglik, df = df, DIC = DIC)
  k_selected <- if (K == 1) 1L else if (has_data) table$k[which.min(DIC)] else NA_integer_
  labels <- colnames(spec$params$gate$W) %||% paste0("expert", seq_len(K))
  structure(list(table = table, k_selected = as.integer(k_selected), merge = tree$merge,
                 height = tree$height, order = tree_order(tree$merge, K), labels = labels,
                 levels = levels,
                 params = if (!is.na(k_selected)) levels[[as.character(k_selected)]],
                 gate = spec$gate, expert = spec$expert, method = "ml", weights = weights,
                 include_gate = include_gate, omega = omega, at = at,
                 fit = if (has_data) fit),
            class = "moe_dendrogram")
}

# Which fits have a documented merge rule (see ?moe_dendrogram).
check_mergeable <- function(spec) {
  g <- spec$gate
  if (spec$method != "ml") {
    stop_arg("fit", "a maximum-likelihood fit: a least-squares fit has no likelihood to ",
             "score the levels of a dendrogram by")
  }
  if (g$normalizer != "softmax" || g$intercept != "outside") {
    stop_arg("fit", "a fit with a softmax-normalised gate whose intercept is added outside the ",
             "score (softmax, modified softmax, temperature, activation, cosine, perturbed ",
             "cosine, modified sigmoid \"logsigmoid\"): merging atoms of the \"", g$name,
             "\" gate (normalizer \"", g$normalizer, "\", intercept \"", g$intercept,
             "\") does not give a gate of the same family, so its dendrogram is not defined")
  }
  invisible(spec)
}

# Atoms of a parameter set: raw gate intercepts b0, log-weights lw (the
# weights of the heights and averages), gate vectors, expert intercepts and
# slopes, variances, each a k-row matrix. `ctx` holds the gate, the point `at`
# at which merged intercepts are matched, and (for "mass") the gate input.
dendrogram_atoms <- function(spec, ctx) {
  p <- spec$params
  W <- p$gate$W
  k <- ncol(W)
  w <- t(W)
  if (spec$gate$score == "cosine") {
    norms <- sqrt(rowSums(w^2))
    w <- w / ifelse(norms > 0, norms, 1)
  }
  coef <- p$expert$coef
  ir <- intercept_row(coef)
  if (spec$expert$family == "gaussian") {
    cm <- t(matrix(coef, nrow(coef)))
    b <- if (is.na(ir)) matrix(0, k, 0) else cm[, ir, drop = FALSE]
    A <- if (is.na(ir)) cm else cm[, -ir, drop = FALSE]
    s2 <- matrix(p$expert$sigma2, k, 1)
  } else {
    d <- dim(coef)
    b <- if (is.na(ir)) matrix(0, k, 0) else t(matrix(coef[ir, , , drop = FALSE], ncol = k))
    rows <- setdiff(seq_len(d[1]), ir)
    A <- t(matrix(coef[rows, , , drop = FALSE], ncol = k))
    s2 <- matrix(0, k, 0)
  }
  a <- list(b0 = as.numeric(p$gate$b0), w = unname(matrix(w, k)), b = unname(b),
            A = unname(A), s2 = unname(s2),
            coef = lapply(seq_len(k), function(i) {
              if (length(dim(coef)) == 3) coef[, , i] else coef[, i]
            }))
  a$lw <- atom_log_weights(a, ctx)
  a
}

# Log mixing weights of the atoms (see ?moe_dendrogram, Atoms and merges).
atom_log_weights <- function(a, ctx) {
  k <- length(a$b0)
  switch(ctx$weights,
    mass = {
      lg <- cpp_gate_forward(ctx$U, gate_cpp_spec(ctx$gate),
                             list(W = t(a$w), b0 = a$b0, tau = ctx$tau), 1L)$log_weights
      log(colMeans(exp(lg)))
    },
    intercept = a$b0 - log_sum_exp(a$b0),
    reference = a$b0 - a$b0[k])
}

# Scores s_i(at) / tau of gate vectors (rows of w), up to a constant common
# to the call.
scores_at <- function(w, ctx) {
  lg <- cpp_gate_forward(ctx$U_at, gate_cpp_spec(ctx$gate),
                         list(W = t(w), b0 = rep(0, nrow(w)), tau = ctx$tau), 1L)$log_weights
  out <- as.numeric(lg)
  if (any(!is.finite(out))) stop("non-finite gate scores while merging atoms", call. = FALSE)
  out
}

log_sum_exp <- function(v) {
  m <- max(v)
  m + log(sum(exp(v - m)))
}

# Dissimilarity of atoms i and j (see ?moe_dendrogram, Merge height).
atom_distance <- function(a, i, j, include_gate) {
  sq <- function(m) sum((m[i, ] - m[j, ])^2)
  inner <- sq(a$A) + sq(a$s2) + if (include_gate) sq(a$w) else 0
  part <- sq(a$b) + sqrt(inner)
  if (part == 0) return(0)
  # (1 / pi_i + 1 / pi_j)^(-1) = pi_i pi_j / (pi_i + pi_j), in logs: the
  # reference weights e^{b0} can overflow.
  exp(a$lw[i] + a$lw[j] - log_sum_exp(a$lw[c(i, j)]) + log(part))
}

# Bottom-up merging: heights, hclust merge matrix and the atoms of every level.
merge_tree <- function(atoms, spec, include_gate, ctx) {
  K <- length(atoms$lw)
  a <- atoms
  ids <- -seq_len(K)                  # hclust ids of the current atoms
  members <- as.list(seq_len(K))
  levels <- list(level_params(a, members, spec))
  merge <- matrix(0L, max(K - 1, 0), 2)
  height <- numeric(max(K - 1, 0))
  for (s in seq_len(K - 1)) {
    m <- length(a$lw)
    pairs <- which(upper.tri(diag(m)), arr.ind = TRUE)
    pairs <- pairs[order(pairs[, 1], pairs[, 2]), , drop = FALSE]
    dist <- vapply(seq_len(nrow(pairs)), function(r) {
      atom_distance(a, pairs[r, 1], pairs[r, 2], include_gate)
    }, 0)
    # Ties go to the first pair in (i, j) order: deterministic.
    best <- which.min(dist)
    i <- pairs[best, 1]
    j <- pairs[best, 2]
    height[s] <- dist[best]
    pair <- ids[c(i, j)]
    merge[s, ] <- if (all(pair < 0)) pair[order(-pair)] else if (any(pair < 0)) {
      pair[order(pair >= 0)]
    } else sort(pair)
    a <- merge_atoms(a, i, j, ctx)
    members[[i]] <- sort(c(members[[i]], members[[j]]))
    members <- members[-j]
    ids[i] <- s
    ids <- ids[-j]
    levels[[s + 1]] <- level_params(a, members, spec)
  }
  list(merge = merge, height = height, levels = levels)
}

# Atom j merged into atom i (weighted averages), j removed. The merged
# intercept makes the merged atom's gate term equal the sum of the two at
# ctx$at: exp(s(w) + b0) = exp(s(w_i) + b0_i) + exp(s(w_j) + b0_j).
merge_atoms <- function(a, i, j, ctx) {
  lw <- log_sum_exp(a$lw[c(i, j)])
  pi_i <- exp(a$lw[i] - lw)
  pi_j <- exp(a$lw[j] - lw)
  w_new <- pi_i * a$w[i, ] + pi_j * a$w[j, ]
  sc <- scores_at(rbind(a$w[i, ], a$w[j, ], w_new), ctx)
  b0_new <- log_sum_exp(c(a$b0[i] + sc[1], a$b0[j] + sc[2])) - sc[3]
  avg <- function(m) {
    m[i, ] <- pi_i * m[i, ] + pi_j * m[j, ]
    m[-j, , drop = FALSE]
  }
  a$coef[[i]] <- pi_i * a$coef[[i]] + pi_j * a$coef[[j]]
  a$coef <- a$coef[-j]
  for (nm in c("w", "b", "A", "s2")) a[[nm]] <- avg(a[[nm]])
  a$b0[i] <- b0_new
  a$b0 <- a$b0[-j]
  if (ctx$weights == "mass") {
    # The gate renormalises: every atom's mass changes a little.
    a$lw <- atom_log_weights(a, ctx)
  } else {
    a$lw[i] <- lw
    a$lw <- a$lw[-j]
  }
  a
}

# The moe_params of one level, in the gate's reference convention.
level_params <- function(a, members, spec) {
  p <- spec$params
  k <- length(a$lw)
  info <- gate_info(spec$gate, nrow(p$gate$W), k)
  W <- t(a$w)
  b0 <- a$b0
  if (isTRUE(info$b_reference)) b0 <- b0 - b0[k]
  if (isTRUE(info$w_reference)) W <- W - W[, k]
  enames <- paste0("expert", seq_len(k))
  dimnames(W) <- list(rownames(p$gate$W), enames)
  coef <- p$expert$coef
  if (length(dim(coef)) == 3) {
    dn <- dimnames(coef) %||% list(NULL, NULL, NULL)
    coef <- array(unlist(a$coef), c(dim(coef)[1:2], k), dimnames = c(dn[1:2], list(enames)))
  } else {
    coef <- matrix(unlist(a$coef), nrow(coef), k, dimnames = list(rownames(coef), enames))
  }
  sigma2 <- if (spec$expert$family == "gaussian") stats::setNames(as.numeric(a$s2), enames)
  out <- moe_params(W = W, b0 = stats::setNames(b0, enames), tau = p$gate$tau, coef = coef,
                    sigma2 = sigma2)
  out$gate$b0 <- stats::setNames(b0, enames)
  attr(out, "members") <- stats::setNames(members, enames)
  out
}

# Leaf order of an hclust merge matrix: left subtree first.
tree_order <- function(merge, K) {
  if (K == 1) return(1L)
  walk <- function(id) if (id < 0) -id else c(walk(merge[id, 1]), walk(merge[id, 2]))
  as.integer(walk(nrow(merge)))
}

# Log-likelihood of parameters on the fit's data, as moe() computes it.
merged_loglik <- function(params, fit) {
  merged_eval(params, fit)$loglik
}

merged_eval <- function(params, fit) {
  k <- ncol(params$gate$W)
  resp <- response_matrix(fit$y, fit$expert)
  cp <- params_to_cpp(params, fit$expert, k)
  U <- gate_input(fit$gate, model_design(fit, "gate"))
  cpp_loglik(model_design(fit, "expert"), resp$Y, U, gate_cpp_spec(fit$gate),
             expert_cpp_spec(fit$expert, resp$var_y, resp$n_classes), cp$gate, cp$expert,
             NULL, FALSE, fit$control$nthreads %||% 1L)
}

# Free parameters of a maximum-likelihood fit with k experts (as moe_fit()).
moe_df <- function(spec, q, k) {
  coef <- spec$params$expert$coef
  gaussian <- spec$expert$family == "gaussian"
  n_expert_par <- if (gaussian) dim(coef)[1] else dim(coef)[1] * dim(coef)[2]
  (if (k > 1) gate_info(spec$gate, q, k)$n_par else 0) + k * (n_expert_par + gaussian)
}

#' @export
print.moe_dendrogram <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  K <- nrow(x$table)
  atoms <- if (K == 1) "1 atom, nothing to merge" else paste(K, "atoms merged to 1")
  cat("<moe_dendrogram> ", atoms, " (weights ", x$weights,
      if (x$include_gate) ", gate vectors in the distance", ")\n", sep = "")
  if (!is.na(x$k_selected)) {
    cat("Selected by DIC (omega = ", format(x$omega, digits = digits), "): k = ",
        x$k_selected, "\n", sep = "")
  }
  print(x$table, digits = digits, row.names = FALSE)
  invisible(x)
}

#' Methods for dendrograms of mixing measures
#'
#' `coef()` gives the merged parameters with `k` atoms, `as_moe()` the merged
#' model as a fitted `moe` object (optionally refined by EM from the merged
#' start), `as.hclust()` and `as.dendrogram()` the tree for R's own tools
#' (e.g. [stats::cutree()], [stats::cophenetic()]), `plot()` the tree or the
#' DIC against k, and `best()` the merged model at the selected level.
#'
#' @param x,object A [moe_dendrogram()].
#' @param k Number of atoms (experts) of the level; default the selected one.
#' @param refine `FALSE` (default): the merged parameters as they are (the
#'   model reports the log-likelihood of the merged parameters, `iter = 0` and
#'   `converged = FALSE`, since a merged model is not an EM fixed point);
#'   `TRUE`: EM from the merged parameters with the original fit's control
#'   until convergence; a whole number: at most that many EM iterations
#'   (convergence warnings are then not raised: the cap is deliberate).
#' @param what `"tree"` (the dendrogram, with the selected level's cut) or
#'   `"DIC"` (the criterion against k).
#' @param ... Unused by `coef()` and `as_moe()`; graphical parameters for
#'   `plot()`.
#' @return `coef()`: a [moe_params()] object whose `attr(, "members")` lists
#'   the original experts in each atom. `as_moe()`: a fitted `moe` model.
#'   `as.hclust()`: an `hclust` object; `as.dendrogram()`: a `dendrogram`.
#' @examples
#' truth <- moe_params(W = matrix(c(6, 0), 1), b0 = c(0, 0),
#'                     coef = cbind(c(2, 3), c(-2, -1)), sigma2 = c(0.1, 0.1))
#' set.seed(1)
#' d <- rmoe(800, truth)
#' tree <- moe_dendrogram(moe(y ~ x1, data = d, k = 3))
#' coef(tree, k = 2)
#' stats::cutree(stats::as.hclust(tree), k = 2)
#' plot(tree, what = "DIC")
#' logLik(as_moe(tree, k = 2, refine = 5))
#' @name moe_dendrogram-methods
NULL

#' @rdname moe_dendrogram-methods
#' @export
coef.moe_dendrogram <- function(object, k = object$k_selected, ...) {
  check_dots(...)
  object$levels[[level_name(object, k)]]
}

level_name <- function(x, k) {
  K <- nrow(x$table)
  if (is.null(k) || (length(k) == 1 && is.na(k))) {
    stop_arg("k", "given: this dendrogram has no selected level (it was built without data)")
  }
  k <- check_count(k, "k")
  if (k > K) stop_arg("k", "at most the fit's number of experts (", K, ")", got = k)
  as.character(k)
}

#' @rdname moe_dendrogram-methods
#' @export
as_moe.moe_dendrogram <- function(x, k = x$k_selected, refine = FALSE, ...) {
  check_dots(...)
  params <- coef(x, k = k)
  fit <- x$fit
  if (is.null(fit)) stop_arg("x", "a dendrogram built from a fitted model (it holds the data)")
  if (!(isTRUE(refine) || isFALSE(refine))) refine <- check_count(refine, "refine")
  k <- ncol(params$gate$W)
  members <- attr(params, "members")
  attr(params, "members") <- NULL
  cl <- fit$call
  if (!is.null(cl)) cl$k <- k
  designs <- object_designs(fit)  # builders: nothing is computed until called
  if (!isFALSE(refine)) {
    control <- fit$control
    control$init <- params
    control$n_starts <- 1L
    if (!isTRUE(refine)) control$maxit <- refine
    run <- function() {
      fit_matrices(fit$y, designs$x, designs$z, k, expert = fit$expert, gate = fit$gate, method = "ml",
                   control = control, design_args = design_args("x", "z"))
    }
    res <- if (isTRUE(refine)) run() else {
      withCallingHandlers(run(), moe_convergence_warning = function(w) {
        invokeRestart("muffleWarning")
      })
    }
  } else {
    ev <- merged_eval(params, fit)
    spec <- list(params = params, gate = fit$gate, expert = fit$expert)
    res <- list(params = params, loglik = ev$loglik, df = moe_df(spec, nrow(params$gate$W), k),
                nobs = fit$nobs, iter = 0L, converged = FALSE, trace = NULL,
                start_objective = ev$loglik, posterior = ev$posterior,
                floor_binds = rep(FALSE, k), sigma2 = NULL, rss = NULL, gate_work = NULL,
                dims = list(levels = fit$levels))
  }
  out <- new_moe(res, call = cl, formula = fit$formula, terms = fit$terms, xlevels = fit$xlevels,
                 contrasts = fit$contrasts, na.action = fit$na.action, k = k,
                 expert = fit$expert, gate = fit$gate, method = "ml", control = fit$control,
                 y = fit$y, X = designs$x, Z = designs$z,
                 model = fit$model, designs = !is.null(fit$x), inputs = fit$inputs)
  attr(out, "merged") <- list(from = nrow(x$table), members = members,
                              refined = !isFALSE(refine))
  out
}

#' @rdname moe_dendrogram-methods
#' @export
best.moe_dendrogram <- function(x, ...) as_moe(x, ...)

#' @rdname moe_dendrogram-methods
#' @importFrom stats as.hclust
#' @export
as.hclust.moe_dendrogram <- function(x, ...) {
  K <- nrow(x$table)
  if (K < 2) stop_arg("x", "a dendrogram of at least two atoms: a one-expert fit has no merges")
  structure(list(merge = x$merge, height = x$height, order = x$order, labels = x$labels,
                 method = "mixing measure", call = NULL,
                 dist.method = if (x$include_gate) "atom dissimilarity with gates" else
                   "atom dissimilarity"),
            class = "hclust")
}

#' @rdname moe_dendrogram-methods
#' @importFrom stats as.dendrogram
#' @export
as.dendrogram.moe_dendrogram <- function(object, ...) {
  stats::as.dendrogram(as.hclust.moe_dendrogram(object))
}

#' @rdname moe_dendrogram-methods
#' @export
plot.moe_dendrogram <- function(x, what = c("tree", "DIC"), ...) {
  what <- match_arg(what)
  K <- nrow(x$table)
  if (what == "DIC") {
    tab <- x$table[!is.na(x$table$DIC), ]
    if (nrow(tab) == 0) {
      stop_arg("x", "a dendrogram with DIC values (two or more atoms, built from a fit)")
    }
    plot_with(list(x = tab$k, y = tab$DIC, type = "b", pch = 19, xlab = "number of atoms k",
                   ylab = "DIC (smaller is better)", main = "DIC by level",
                   xaxt = "n"), ...)
    graphics::axis(1, at = tab$k)
    i <- match(x$k_selected, tab$k)
    if (!is.na(i)) graphics::points(tab$k[i], tab$DIC[i], pch = 1, cex = 2.2, lwd = 2)
    return(invisible(x))
  }
  if (K < 2) stop_arg("x", "a dendrogram of at least two atoms: a one-expert fit has no merges")
  dend <- as.dendrogram.moe_dendrogram(x)
  do.call(graphics::plot, utils::modifyList(list(x = dend, ylab = "merge height",
                                                 main = "Mixing-measure dendrogram"),
                                            list(...)))
  ks <- x$k_selected
  if (!is.na(ks) && ks >= 2) {
    # Cut between the last merge kept and the first one undone.
    kept <- x$height[seq_len(K - ks)]
    above <- x$height[K - ks + 1]
    cut <- if (length(kept)) (max(kept) + above) / 2 else above / 2
    graphics::abline(h = cut, lty = 2, col = "grey40")
    graphics::mtext(paste0("DIC: k = ", ks), side = 3, line = 0.2, adj = 1, cex = 0.8)
  }
  invisible(x)
}
