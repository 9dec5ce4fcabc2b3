# Peak memory of one fit: n = 1e6, d = 10, k = 4 softmax Gaussian MoE (the
# bench-large.R data), matrix and formula interface, each in a fresh Rscript
# process.
#
#   Rscript bench/bench-memory.R            # both interfaces, one child each
#   Rscript bench/bench-memory.R matrix     # one interface in this process
#
# Environment: MOEGATE_LIB, BENCH_N (default 1e6), BENCH_MAXIT (default 1000).
#
# The peak is the kernel's high-water mark of the process's resident memory
# (VmHWM in /proc/self/status), reset just before the fit (writing 5 to
# /proc/self/clear_refs), minus the resident memory right before it, when the
# data already exist: the memory the fit needs on top of its data, C++ work
# arrays included. R's own count of the largest vector heap (gc()'s "max
# used") is reported beside it. The fitted object is kept (its size is in
# the table), so the peak includes what the object holds.

local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})

status_mb <- function(field) {
  l <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", l)) / 1024
}

args <- commandArgs(TRUE)
if (length(args) == 0) {
  rscript <- file.path(R.home("bin"), "Rscript")
  me <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
  rows <- lapply(c("matrix", "formula"), function(interface) {
    out <- system2(rscript, c(shQuote(me), interface), stdout = TRUE)
    cat(out, sep = "\n")
    utils::read.csv(text = out[grep("^\"?interface", out):length(out)])
  })
  res <- do.call(rbind, rows)
  out <- bench_output("results-memory.csv")
  utils::write.csv(res, out, row.names = FALSE)
  cat("Written:", out, "\n")
  quit(save = "no")
}

load_moegate()
interface <- args[1]
n <- as.numeric(Sys.getenv("BENCH_N", "1e6"))
maxit <- as.numeric(Sys.getenv("BENCH_MAXIT", "1000"))
d <- 10
k <- 4
truth <- large_truth(d, k)
s <- simulate_moe(n, truth$W, truth$b0, truth$coef, truth$sigma2, seed = 102)
# Keep only what the interface needs: the matrix (and y) or the data frame.
if (interface == "matrix") {
  Z <- s$Z
  y <- s$y
  data_mb <- as.numeric(utils::object.size(Z)) / 2^20
} else {
  dat <- s$data
  data_mb <- as.numeric(utils::object.size(dat)) / 2^20
}
rm(s)
ctl <- moe_control(tol = 1e-8, maxit = maxit)
# Warm up (loads every namespace the fit uses) on a small problem.
invisible(suppressWarnings(moe(matrix(stats::runif(400), 200), stats::rnorm(200), k = 2)))
invisible(gc(reset = TRUE))
base <- status_mb("VmRSS")
base_vcells <- gc()[2, 2]
writeLines("5", "/proc/self/clear_refs")
set.seed(1)
t <- system.time(fit <- suppressWarnings(if (interface == "matrix") {
  moe(Z, y, k = k, control = ctl)
} else {
  moe(y ~ ., data = dat, k = k, control = ctl)
}))
peak <- status_mb("VmHWM") - base
g <- gc()
res <- data.frame(interface = interface, n = n, d = d, k = k, data_mb = round(data_mb, 1),
                  peak_mb = round(peak, 1), peak_ratio = round(peak / data_mb, 2),
                  r_heap_max_mb = round(g[2, 6] - base_vcells, 1),
                  object_mb = round(as.numeric(utils::object.size(fit)) / 2^20, 1),
                  seconds = t[["elapsed"]], iter = fit$iter)
utils::write.csv(res, row.names = FALSE)
