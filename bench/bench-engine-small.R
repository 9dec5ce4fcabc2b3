# Seconds per EM iteration and fixed cost per start of the compiled EM at
# small d: the NeurIPS 2023 protocol's case (softmax gate, Gaussian experts,
# d = 1, k = 3 and 4, near-truth starts), one thread, plain EM and SQUAREM.
#
#   nice -n 10 Rscript bench/bench-engine-small.R
#
# Environment: MOEGATE_LIB (library holding moegate), BENCH_BASE_SO (optional:
# the moegate.so of another build, e.g. a copy of main's; it is loaded under
# its own name and timed in the same process, alternating call by call with
# the installed build, so both see the same load), BENCH_N (default
# "1e4,5e4,1e5"), BENCH_K ("3,4"), BENCH_REPS (9), BENCH_TAG.
#
# One start's arguments to cpp_em_fit() are captured from moe_fit() (study
# data and starts of study_setting_neurips2023()), then the compiled EM runs
# with maxit = 1 and maxit = 1 + m (tol 1e-14, so every iteration runs);
# CPU seconds per iteration are (t[1 + m] - t[1]) / m, minimum over
# BENCH_REPS repetitions (the minimum is the least disturbed by other jobs),
# and per EM map (`em_steps`: SQUAREM evaluates about 2.5 per iteration) and
# (row, expert);
# `fixed_ms` is the maxit = 1 call: the first E-step, one EM iteration, the
# final score pass and the posterior handed back to R.

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
nums <- function(name, default) as.numeric(strsplit(Sys.getenv(name, default), ",")[[1]])
ns <- nums("BENCH_N", "1e4,5e4,1e5")
ks <- as.integer(nums("BENCH_K", "3,4"))
reps <- as.integer(Sys.getenv("BENCH_REPS", "9"))
base_so <- Sys.getenv("BENCH_BASE_SO", "")
syms <- list(installed = getNativeSymbolInfo("_moegate_cpp_em_fit", "moegate"))
if (nzchar(base_so)) {
  # A copy under another file name, so that R keeps it apart from the package's DLL.
  copy <- file.path(tempdir(), "moegate_baseline.so")
  file.copy(base_so, copy, overwrite = TRUE)
  syms$baseline <- getNativeSymbolInfo("_moegate_cpp_em_fit", dyn.load(copy))
}

capture_args <- function(k, n, accelerate) {
  st <- study_setting_neurips2023(k = k, n_grid = n, n_rep = 4)
  set.seed(5)
  data <- moegate:::study_data(st, n)
  starts <- moegate:::study_starts(st, data)
  ctrl <- st$control
  ctrl$init <- starts[1]
  ctrl$n_starts <- 1
  ctrl$accelerate <- accelerate
  ctrl$tol <- 1e-14
  ctrl$maxit <- 1
  ctrl$nthreads <- 1
  env <- new.env()
  trace(moegate:::cpp_em_fit, print = FALSE, where = asNamespace("moegate"),
        tracer = bquote(assign("args", mget(c("X", "Y", "Z", "gate_spec", "expert_spec",
                                              "gate_params", "expert_params", "R0", "control")),
                               envir = .(env))))
  on.exit(untrace(moegate:::cpp_em_fit, where = asNamespace("moegate")))
  invisible(suppressWarnings(moegate:::moe_fit(data$y, data$X, data$Z, k, expert = st$expert,
                                               gate = st$gate, method = st$method,
                                               control = ctrl)))
  env$args
}

run <- function(sym, a, maxit) {
  a$control$maxit <- maxit
  t <- system.time(r <- .Call(sym, a$X, a$Y, a$Z, a$gate_spec, a$expert_spec, a$gate_params,
                              a$expert_params, a$R0, a$control))
  list(cpu = t[["user.self"]] + t[["sys.self"]], loglik = r$loglik, em_steps = r$em_steps)
}

rows <- list()
for (accelerate in c("none", "squarem")) for (k in ks) for (n in ns) {
  a <- capture_args(k, n, accelerate)
  m <- if (n <= 2e4) 100 else 20
  if (accelerate == "squarem") m <- m / 2
  cpu <- array(NA_real_, c(reps, 2, length(syms)))
  info <- list()
  for (r in seq_len(reps)) for (j in 1:2) for (s in seq_along(syms)) {
    out <- run(syms[[s]], a, if (j == 1) 1 else 1 + m)
    cpu[r, j, s] <- out$cpu
    if (r == 1 && j == 1) steps1 <- out$em_steps
    if (r == 1 && j == 2) info[[s]] <- c(out, steps = out$em_steps - steps1)
  }
  for (s in seq_along(syms)) {
    mn <- apply(cpu[, , s, drop = FALSE], 2, min)
    rows[[length(rows) + 1]] <- data.frame(
      build = names(syms)[s], accelerate = accelerate, n = n, d = 1, k = k,
      iterations = m, em_steps = info[[s]]$steps,
      ms_per_iter = (mn[2] - mn[1]) / m * 1e3,
      ns_per_row_expert_step = (mn[2] - mn[1]) / info[[s]]$steps / (n * k) * 1e9,
      fixed_ms = mn[1] * 1e3, loglik = info[[s]]$loglik, load_average = load_average())
  }
  print(do.call(rbind, utils::tail(rows, length(syms))), row.names = FALSE)
}
res <- do.call(rbind, rows)
res$version <- as.character(utils::packageVersion("moegate"))
out <- bench_output("results-engine-small.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("Written:", out, "\n")
