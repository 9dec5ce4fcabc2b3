#' moegate: fast mixture-of-experts models with every gate of the recent theory
#'
#' Fits Gaussian and multinomial logistic mixture-of-experts (MoE) models by
#' maximum likelihood (EM) and regression MoE by least squares, with the softmax,
#' modified softmax, dense-to-sparse (temperature), activation, sigmoid,
#' Euclidean, cosine and perturbed cosine gates. Start with [moe()]; the gates
#' are listed in [gate()], the experts in [expert_gaussian()].
#'
#' @keywords internal
#' @useDynLib moegate, .registration = TRUE
#' @importFrom Rcpp sourceCpp
#' @importFrom stats coef fitted residuals predict simulate logLik nobs vcov formula
#'   model.frame update AIC BIC
#' @importFrom stats deviance df.residual sigma model.matrix terms weights
"_PACKAGE"
