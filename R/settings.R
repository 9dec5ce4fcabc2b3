# Shipped study settings: each study's values live here, in one place, so a
# paper's own values can be swapped in without touching the driver.

#' The NeurIPS 2023 reference protocol (softmax Gaussian mixture of experts)
#'
#' The public simulation protocol of Nguyen, Nguyen and Ho (2023),
#' "Demystifying softmax gating function in Gaussian mixture of experts"
#' (code: CRPE-SGaME), as a [moe_study_setting()]:
#' \itemize{
#'   \item \eqn{d = 1}, \eqn{x} on the equispaced grid of \eqn{[0, 1]} with
#'     \eqn{n} points (deterministic);
#'   \item \eqn{k^* = 2} experts with softmax gate \eqn{(b_0, w) = (-8, 25)}
#'     for expert 1 and \eqn{(0, 0)} for the reference expert 2; Gaussian
#'     experts with means \eqn{15 - 20x} and \eqn{-5 + 20x} and standard
#'     deviations 0.3 and 0.4 (variances 0.09 and 0.16);
#'   \item fitted \eqn{k = 2, 3, 4} by EM, relative log-likelihood tolerance
#'     \eqn{10^{-6}}, at most 2000 iterations, 1 start for \eqn{k = 2} and
#'     the best of 5 for \eqn{k \ge 3}, all near the truth
#'     ([init_near_truth()] with \eqn{c = 0.05}, \eqn{\alpha = 0.083} for the
#'     experts and \eqn{0.005} for the gate; extra experts assigned to true ones
#'     at random, a new draw for every start, so that, as in the public runs,
#'     some fits split the reference expert and others the non-reference one);
#'   \item 40 replications at each of 200 sample sizes, spaced linearly as in
#'     the public code: for \eqn{k = 2}, 5 sizes from 100 to 900 then 195 from
#'     1000 to \eqn{10^5}; for \eqn{k = 3, 4}, 200 sizes from \eqn{10^4} to
#'     \eqn{10^5};
#'   \item the Voronoi loss with the `rbar` exponent table (at \eqn{k = 2}
#'     every cell is a singleton, so it equals `D1`), translation-optimised;
#'     the reference-convention loss of the public code is recorded beside it.
#' }
#' The public runs took 877 s (\eqn{k = 2}), 3,554 s (\eqn{k = 3}) and
#' 5,609 s (\eqn{k = 4}) on 8 cores. The script
#' `system.file("studies", "neurips2023.R", package = "moegate")` runs the
#' full protocol.
#'
#' @param k Fitted number of experts: 2, 3 or 4.
#' @param n_grid Sample sizes; `NULL` gives the published grid.
#' @param n_rep Replications per sample size.
#' @param n_starts Starts per fit; `NULL` gives the published 1 (k = 2) or 5.
#' @param loss Exponent table of the Voronoi loss (see [voronoi_loss()]).
#' @param control Further [moe_control()] settings; `NULL` gives the published
#'   EM settings: relative change of the log-likelihood below 1e-6
#'   (`stop = "loglik"`, not the package's default gradient rule, so that the
#'   protocol and its shipped runs stay those of the public code), at most 2000
#'   iterations, no polish.
#' @return A [moe_study_setting()].
#' @references Nguyen, Nguyen, Ho (2023). Demystifying softmax gating function
#'   in Gaussian mixture of experts. NeurIPS. arXiv:2305.03288.
#' @examples
#' study_setting_neurips2023(k = 3)
#' # A reduced version for a quick look
#' small <- study_setting_neurips2023(k = 2, n_grid = c(500, 1000, 2000), n_rep = 2)
#' small
#' @export
study_setting_neurips2023 <- function(k = 2, n_grid = NULL, n_rep = 40, n_starts = NULL,
                                      loss = "rbar", control = NULL) {
  k <- check_count(k, "k")
  if (!k %in% 2:4) stop_arg("k", "2, 3 or 4, the fitted sizes of the protocol", got = k)
  truth <- neurips2023_truth()
  if (is.null(n_grid)) {
    n_grid <- if (k == 2) {
      c(seq(100, 900, length.out = 5), seq(1000, 1e5, length.out = 195))
    } else {
      seq(1e4, 1e5, length.out = 200)
    }
    n_grid <- round(n_grid)
  }
  if (is.null(n_starts)) n_starts <- if (k == 2) 1 else 5
  if (is.null(control)) {
    control <- moe_control(tol = 1e-6, maxit = 2000, n_starts = n_starts, stop = "loglik",
                           polish = "none")
  }
  control <- as_control(control)
  control$n_starts <- check_count(n_starts, "n_starts")
  moe_study_setting(truth, k = k, n_grid = n_grid, n_rep = n_rep, gate = gate_softmax(),
                    expert = expert_gaussian(), method = "ml",
                    init = init_near_truth(truth, k, assign = "random"), loss = loss,
                    x_dist = function(n, d) matrix(seq(0, 1, length.out = n), n, 1),
                    control = control, name = paste0("NeurIPS 2023 protocol, k = ", k))
}

# The protocol's true parameters (variances are the squared standard deviations).
neurips2023_truth <- function() {
  moe_params(W = matrix(c(25, 0), 1), b0 = c(-8, 0),
             coef = cbind(c(15, -20), c(-5, 20)), sigma2 = c(0.3, 0.4)^2)
}
