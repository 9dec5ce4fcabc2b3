# CPU seconds of one moe_dendrogram() (a k = 5 fit with 3 starts plus its
# tree) against the moe_select(k = 1:5) sweep with 3 starts per k, on the data
# of bench-select.R, moegate only, fastest of 3 runs each.
#
#   Rscript bench/bench-select-dendrogram.R
#
# bench-select.R times the same pair once, in elapsed seconds beside flexmix;
# on a shared machine those elapsed times are noisy, hence this CPU-time
# measurement. MOEGATE_LIB as in the other scripts.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
future::plan(future::sequential)
truth <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
              coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)), sigma2 = c(0.3, 0.4, 0.35)^2)
for (n in c(2000, 10000)) {
  s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 7000 + n %% 991)
  sw <- time_call(function() moe_select(y ~ x1 + x2, data = s$data, k = 1:5, seed = 1, progress = FALSE,
        control = moe_control(tol = 1e-6, maxit = 1000, n_starts = 3)), reps = 3)
  tr <- time_call(function() moe_dendrogram(moe(y ~ x1 + x2, data = s$data, k = 5,
        control = moe_control(tol = 1e-6, maxit = 1000, n_starts = 3))), reps = 3)
  only <- time_call(function() moe_dendrogram(sw$value$fits[["5"]]), reps = 3)
  cat(sprintf("n = %d: sweep %.2f s CPU (%.2f elapsed); k = 5 fit + tree %.2f s CPU (%.2f elapsed), ratio %.2f; tree alone %.3f s CPU; DIC k = %d; load %s\n",
      n, sw$cpu, sw$seconds, tr$cpu, tr$seconds, tr$cpu / sw$cpu, only$cpu, tr$value$k_selected, load_average()))
}
