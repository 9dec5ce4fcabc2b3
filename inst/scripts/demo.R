# moegate demo: simulate a three-expert softmax-gated Gaussian mixture of
# experts, fit it back, summarise the fit and draw a 2 x 2 diagnostic plot.
# Run with:  Rscript demo.R   (writes moegate-demo.png to the working directory)
library(moegate)

set.seed(2024)

# The truth: one covariate, three linear experts, a softmax gate that hands
# the left, middle and right of [-1, 1] to experts 1, 2 and 3 in turn. Expert
# 3 is the gate's reference (w = 0, b0 = 0), the convention of every fit.
truth <- moe_params(
  W = matrix(c(-8, -3, 0), nrow = 1, dimnames = list("x1", NULL)),
  b0 = c(-2, 1, 0),
  coef = cbind(c(`(Intercept)` = -1, x1 = -2),
               c(0.5, 3),
               c(2, -1)),
  sigma2 = c(0.05, 0.1, 0.08)
)
print(truth)

sim <- rmoe(5000, truth)
cat("\nObservations per latent expert:\n")
print(table(sim$expert))

fit <- moe(y ~ x1, data = sim, k = 3, control = moe_control(n_starts = 3))
print(summary(fit))

# Fitted experts are unordered: compare with the truth by eye, or with the
# Voronoi losses of the package.
cat("\nAgreement of the most probable expert with the latent one:\n")
print(table(latent = sim$expert, fitted = max.col(fit$posterior)))

path <- file.path(getwd(), "moegate-demo.png")
grDevices::png(path, width = 1200, height = 1000, res = 120)
op <- graphics::par(mfrow = c(2, 2), mar = c(4.2, 4.2, 2.5, 1))
plot(fit, "gate")
plot(fit, "fit")
plot(fit, "loglik")
plot(fit, "posterior")
graphics::par(op)
grDevices::dev.off()
cat("\nPlot written to", normalizePath(path), "\n")
