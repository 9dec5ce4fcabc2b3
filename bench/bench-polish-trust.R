# The trust-region Newton polish (moe_control(polish = "trust")) against the
# damped Newton polish (the default, "newton") on fits of the NeurIPS 2023
# protocol with the gradient rule (init_near_truth() starts, best of 5; the
# configuration of inst/studies/neurips2023-starts.R --stop=gradient), fit by
# fit on the same data and starts, side by side in one process.
#
#   nice -n 10 Rscript bench/bench-polish-trust.R
#
# Environment: MOEGATE_LIB; BENCH_K (default 3,4); BENCH_SIZES (indices into
# the protocol's 200-size grid, default 1,67,134: n = 10000, 39849, 70151);
# BENCH_REPS (default 1,2). Each fit's data and starts are those of the
# protocol run with seed 2023. CPU seconds (user + system) per fit; the load
# average is stored with each row.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
ns <- asNamespace("moegate")
ks <- env_ints("BENCH_K", "3,4")
size_idx <- env_ints("BENCH_SIZES", "1,67,134")
reps <- env_ints("BENCH_REPS", "1,2")
variants <- c("newton", "trust")
RNGkind("L'Ecuyer-CMRG")
rows <- list()
for (k in ks) {
  setting <- study_setting_neurips2023(k = k)
  setting$control$stop <- "gradient"
  setting$control$progress <- FALSE
  streams <- ns$lecuyer_streams(2023, (max(reps) - 1) * length(setting$n_grid) + max(size_idx))
  for (r in reps) for (i in size_idx) {
    task <- protocol_task(setting, streams, r, i)
    n <- task$n
    data <- task$data
    starts <- task$starts
    for (v in variants) {
      ctl <- setting$control
      ctl$init <- starts
      ctl$polish <- v
      ctl <- do.call(moe_control, unclass(ctl))
      t <- system.time(f <- suppressWarnings(moe_fit(data$y, data$X, data$Z, k, control = ctl)))
      rows[[length(rows) + 1]] <- data.frame(
        k = k, n = n, replication = r, polish = v, cpu_s = t[["user.self"]] + t[["sys.self"]],
        loglik = f$loglik, polish_evals = f$polish[["evaluations"]],
        rule = names(f$converged), gradient_criterion = f$gradient_criterion,
        load_average = load_average(), stringsAsFactors = FALSE)
      message(sprintf("k %d n %6d rep %d  %-7s %7.2f s  %.4f  %4d evaluations  %s", k, n, r, v,
                      rows[[length(rows)]]$cpu_s, f$loglik, f$polish[["evaluations"]],
                      names(f$converged)))
    }
  }
}
res <- do.call(rbind, rows)
fit_id <- paste(res$k, res$n, res$replication)
base <- res$polish == "newton"
res$loglik_vs_newton <- res$loglik - res$loglik[base][match(fit_id, fit_id[base])]
out <- bench_output("results-polish-trust.csv")
utils::write.csv(res, out, row.names = FALSE)
summary_rows <- do.call(rbind, lapply(split(res, list(res$polish, res$k), drop = TRUE), function(d) {
  data.frame(k = d$k[1], polish = d$polish[1], fits = nrow(d), cpu_s = sum(d$cpu_s),
             evaluations = sum(d$polish_evals), lower = sum(d$loglik_vs_newton < -1e-6),
             higher = sum(d$loglik_vs_newton > 1e-6), worst = min(d$loglik_vs_newton),
             best = max(d$loglik_vs_newton), stringsAsFactors = FALSE)
}))
options(width = 200)
print(summary_rows, row.names = FALSE)
cat("\nWritten:", out, "\n")
