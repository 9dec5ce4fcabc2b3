# Short-run start selection (moe_control(start_maxit, start_keep), the "small
# EM" of Biernacki, Celeux and Govaert 2003) on fits of the NeurIPS 2023
# protocol with the gradient rule and the Newton polish (the configuration of
# inst/studies/neurips2023-starts.R --stop=gradient: init_near_truth() starts,
# best of 5), against every start run to the rule (the default), fit by fit
# on the same data and starts.
#
#   nice -n 10 Rscript bench/bench-start-selection.R
#
# Environment: MOEGATE_LIB; BENCH_K (comma-separated, default 3,4);
# BENCH_SIZES (indices into the protocol's 200-size grid 1e4..1e5, default
# 1,67,134: n = 10000, 39849, 69698); BENCH_REPS (default 1,2). Each fit's
# data and starts are those of the protocol run with seed 2023 (the stream
# future.seed gives its task). CPU seconds (user + system) per fit, since
# the machine is shared; the load average is stored with each row.
# BENCH_POLISH=TRUE instead runs each start alone with the default and with
# polish_at = 1e-3, 1e-7 and polish_maxit = 25 (k = 4, sizes 1 and 67, rep 1
# unless BENCH_K / BENCH_SIZES / BENCH_REPS say otherwise), written to
# results-start-selection-polish.csv: where a start's time goes.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
ns <- asNamespace("moegate")
polish_mode <- isTRUE(as.logical(Sys.getenv("BENCH_POLISH", "FALSE")))
ks <- env_ints("BENCH_K", if (polish_mode) "4" else "3,4")
size_idx <- env_ints("BENCH_SIZES", if (polish_mode) "1,67" else "1,67,134")
reps <- env_ints("BENCH_REPS", if (polish_mode) "1" else "1,2")
variants <- list(
  "every start to the rule (default)" = list(),
  "start_maxit = 2, start_keep = 1" = list(start_maxit = 2, start_keep = 1),
  "start_maxit = 2, start_keep = 2" = list(start_maxit = 2, start_keep = 2),
  "start_maxit = 10, start_keep = 2" = list(start_maxit = 10, start_keep = 2))
if (polish_mode) {
  variants <- list()
  for (pa in c(1e-3, 1e-5, 1e-7)) for (pm in c(100, 25)) {
    variants[[sprintf("polish_at = %g, polish_maxit = %d", pa, pm)]] <-
      list(polish_at = pa, polish_maxit = pm)
  }
}
RNGkind("L'Ecuyer-CMRG")
rows <- list()
for (k in ks) {
  setting <- study_setting_neurips2023(k = k)
  setting$control$stop <- "gradient"
  setting$control$polish <- "newton"
  setting$control$progress <- FALSE
  streams <- ns$lecuyer_streams(2023, (max(reps) - 1) * length(setting$n_grid) + max(size_idx))
  for (r in reps) for (i in size_idx) {
    task <- protocol_task(setting, streams, r, i)
    n <- task$n
    data <- task$data
    starts <- task$starts
    # One fit of all starts, or (polish mode) one fit per start.
    jobs <- if (polish_mode) {
      expand.grid(variant = names(variants), start = seq_along(starts), stringsAsFactors = FALSE)
    } else data.frame(variant = names(variants), start = NA, stringsAsFactors = FALSE)
    for (job in seq_len(nrow(jobs))) {
      v <- jobs$variant[job]
      ctl <- setting$control
      ctl$init <- if (polish_mode) starts[[jobs$start[job]]] else starts
      if (polish_mode) ctl$n_starts <- 1
      for (a in names(variants[[v]])) ctl[[a]] <- variants[[v]][[a]]
      ctl <- do.call(moe_control, unclass(ctl))
      t <- system.time(f <- suppressWarnings(
        moe_fit(data$y, data$X, data$Z, k, control = ctl)))
      scored <- list(gate = setting$gate, expert = setting$expert, method = "ml",
                     params = f$params, loglik = f$loglik)
      rows[[length(rows) + 1]] <- data.frame(
        k = k, n = n, replication = r, variant = v, start = jobs$start[job],
        cpu_s = t[["user.self"]] + t[["sys.self"]], loglik = f$loglik,
        loss = ns$study_loss(setting, scored)[["loss"]], iter = f$iter, em_steps = f$em_steps,
        polish_evals = f$polish[["evaluations"]], best_start = f$best_start,
        rule = names(f$converged), gradient_criterion = f$gradient_criterion,
        load_average = load_average(), stringsAsFactors = FALSE)
      message(sprintf("k %d n %6d rep %d  %-34s %7.2f s  %.4f  %s", k, n, r, v,
                      rows[[length(rows)]]$cpu_s, f$loglik, names(f$converged)))
    }
  }
}
res <- do.call(rbind, rows)
if (polish_mode) {
  out <- bench_output("results-start-selection-polish.csv")
  utils::write.csv(res, out, row.names = FALSE)
  print(aggregate(cbind(cpu_s, polish_evals) ~ k + n + variant, res, sum))
  cat("\nWritten:", out, "\n")
  quit(save = "no")
}
fit_id <- paste(res$k, res$n, res$replication)
base <- res$variant == names(variants)[1]
res$loglik_vs_default <- res$loglik - res$loglik[base][match(fit_id, fit_id[base])]
res$cpu_vs_default <- res$cpu_s / res$cpu_s[base][match(fit_id, fit_id[base])]
out <- bench_output("results-start-selection.csv")
utils::write.csv(res, out, row.names = FALSE)
summary_rows <- do.call(rbind, lapply(split(res, list(res$variant, res$k), drop = TRUE), function(d) {
  data.frame(k = d$k[1], variant = d$variant[1], fits = nrow(d), cpu_s = sum(d$cpu_s),
             lower = sum(d$loglik_vs_default < -1e-6), higher = sum(d$loglik_vs_default > 1e-6),
             worst = min(d$loglik_vs_default), stringsAsFactors = FALSE)
}))
options(width = 200)
print(summary_rows, row.names = FALSE)
cat("\nWritten:", out, "\n")
