# CPU milliseconds of each start's compiled EM in the Gaussian at-defaults
# case of bench-flexmix.R (n = 2e4, d = 2, k = 3, moe_control(n_starts = 3)),
# at the default maxit and at maxit = 1 (the start's fixed cost: first
# M-step and E-step, one SQUAREM iteration, the posterior handed to R),
# optionally against another build's moegate.so in the same process.
#
#   nice -n 10 Rscript bench/bench-defaults-starts.R
#
# Environment: MOEGATE_LIB, BENCH_BASE_SO (the moegate.so of another build;
# loaded under its own name and alternated call by call with the installed
# build, which also checks that both return identical results), BENCH_REPS
# (minimum over this many calls; default 7), BENCH_TAG.
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
load_moegate()
truth <- list(W = cbind(c(4, 1), c(-2, 3.5), c(0, 0)), b0 = c(0, 0, 0),
              coef = cbind(c(1, 2, -1), c(-1, -1.5, 1.5), c(0.5, 0.5, -2)),
              sigma2 = c(0.3, 0.4, 0.35)^2)
n <- 2e4
s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 20240 + n %% 997)
captured <- new.env()
captured$args <- list()
trace(moegate:::cpp_em_fit, print = FALSE, where = asNamespace("moegate"),
      tracer = bquote(assign("args", c(get("args", envir = .(captured)), list(mget(
        c("X", "Y", "Z", "gate_spec", "expert_spec", "gate_params", "expert_params", "R0",
          "control")))), envir = .(captured))))
set.seed(101)
invisible(moe(y ~ x1 + x2, data = s$data, k = 3, control = moe_control(n_starts = 3)))
untrace(moegate:::cpp_em_fit, where = asNamespace("moegate"))
syms <- list(installed = getNativeSymbolInfo("_moegate_cpp_em_fit", "moegate"))
base_so <- Sys.getenv("BENCH_BASE_SO", "")
if (nzchar(base_so)) {
  copy <- file.path(tempdir(), "moegate_baseline.so")
  file.copy(base_so, copy, overwrite = TRUE)
  syms$baseline <- getNativeSymbolInfo("_moegate_cpp_em_fit", dyn.load(copy))
}
run <- function(sym, a, maxit) {
  if (!is.null(maxit)) a$control$maxit <- maxit
  t <- system.time(r <- .Call(sym, a$X, a$Y, a$Z, a$gate_spec, a$expert_spec, a$gate_params,
                              a$expert_params, a$R0, a$control))
  list(cpu = t[["user.self"]] + t[["sys.self"]], value = r)
}
reps <- as.integer(Sys.getenv("BENCH_REPS", "7"))
rows <- list()
for (j in seq_along(captured$args)) for (maxit in list(NULL, 1L)) {
  cpu <- matrix(NA_real_, reps, length(syms), dimnames = list(NULL, names(syms)))
  for (r in seq_len(reps)) for (b in seq_along(syms)) {
    x <- run(syms[[b]], captured$args[[j]], maxit)
    cpu[r, b] <- x$cpu
    if (r == 1 && b == 1) first <- x$value
    if (r == 1 && b > 1 && !identical(first, x$value)) stop("the builds' results differ")
  }
  rows[[length(rows) + 1]] <- data.frame(
    start = j, maxit = if (is.null(maxit)) "default" else "1", iter = first$iter,
    em_steps = first$em_steps, t(setNames(1000 * apply(cpu, 2, min), paste0(names(syms), "_ms"))),
    load_average = load_average())
}
res <- do.call(rbind, rows)
print(res, row.names = FALSE)
out <- bench_output("results-defaults-starts.csv")
utils::write.csv(res, out, row.names = FALSE)
cat("Written:", out, "\n")
