# Multinomial logistic experts at each package's defaults: moegate's
# moe(y ~ x1 + x2, k = 3, expert = "multinomial") against flexmix's
# flexmix(y ~ x1 + x2, k = 3, model = FLXMRmultinom(),
# concomitant = FLXPmultinom(~ x1 + x2)), side by side in one process, on
# softmax-gated truths with K = 3 classes, k = 3 experts and d = 2 covariates
# uniform on [-1, 1]^2:
#   "regular":   coefficients of moderate size; the fits end at a stationary
#                point with finite coefficients (the ratio claim is made here);
#   "separated": the same truth with expert coefficients times 10: classes are
#                (quasi-)separated within experts, the likelihood has no finite
#                maximum, reported separately.
#
#   nice -n 10 Rscript bench/bench-multinom.R
#
# Environment: MOEGATE_LIB, BENCH_N (comma-separated, default 1e4,5e4),
# BENCH_CASES (default regular,separated), BENCH_SEEDS (default 1),
# BENCH_FLEXMIX (FALSE skips flexmix), BENCH_FLEXMIX_MAXN (flexmix only up to
# this n; its n = 5e4 fit took 337 s CPU and 32 minutes elapsed under load),
# BENCH_STARTS (comma-separated n_starts of the moegate fits, default 1,3),
# BENCH_REPS (repetitions of every fit on the same data, default 1),
# MOEGATE_LIB_BEFORE (a second library holding another build of moegate, e.g.
# main before a change: its fits run in the same process right before those
# of MOEGATE_LIB, the namespace and its DLL unloaded and loaded in turn; rows
# say which in `version`). CPU
# seconds (user + system) of each fit
# are reported because the machine is shared; the load average is stored with
# each row. flexmix's EM is started by its own default (random partition from
# R's RNG; the seed is set before each package's fit).
local({
  file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else "bench"
  source(file.path(here, "helpers.R"), local = globalenv())
})
suppressPackageStartupMessages(library(flexmix))
versions <- c(before = Sys.getenv("MOEGATE_LIB_BEFORE", ""), after = Sys.getenv("MOEGATE_LIB", ""))
if (!nzchar(versions[["before"]])) versions <- versions["after"]
# Load moegate from `lib` ("" the default library), unloading a build loaded
# from elsewhere with its DLL (fits keep no pointers into it).
use_moegate <- function(lib) {
  if ("moegate" %in% loadedNamespaces()) {
    path <- getNamespaceInfo("moegate", "path")
    if (identical(lib, attr(versions, "loaded"))) return(invisible(NULL))
    if ("package:moegate" %in% search()) detach("package:moegate")
    unloadNamespace("moegate")
    library.dynam.unload("moegate", path)
  }
  if (nzchar(lib)) library(moegate, lib.loc = lib) else library(moegate)
  attr(versions, "loaded") <<- lib
  invisible(NULL)
}
use_moegate(versions[[length(versions)]])

multinom_truth <- function(scale = 1) {
  coef <- array(0, c(3, 2, 3))
  coef[, , 1] <- rbind(c(2, 0), c(1, -1), c(0, 1))
  coef[, , 2] <- rbind(c(0, 2), c(-1, 1), c(1, 0))
  coef[, , 3] <- rbind(c(-1, -1), c(0, 1), c(-1, 0))
  moe_params(W = rbind(c(5, -5, 0), c(5, 5, 0)), b0 = c(0, 0, 0), coef = scale * coef)
}
cases <- list(regular = 1, separated = 10)

ns <- as.numeric(strsplit(Sys.getenv("BENCH_N", "1e4,5e4"), ",")[[1]])
case_names <- strsplit(Sys.getenv("BENCH_CASES", "regular,separated"), ",")[[1]]
seeds <- as.integer(strsplit(Sys.getenv("BENCH_SEEDS", "1"), ",")[[1]])
run_flexmix <- isTRUE(as.logical(Sys.getenv("BENCH_FLEXMIX", "TRUE")))
flexmix_maxn <- as.numeric(Sys.getenv("BENCH_FLEXMIX_MAXN", "Inf"))
starts <- as.integer(strsplit(Sys.getenv("BENCH_STARTS", "1,3"), ",")[[1]])
reps <- as.integer(Sys.getenv("BENCH_REPS", "1"))

cpu_of <- function(fun) {
  warnings <- character()
  gc()
  t <- system.time(value <- withCallingHandlers(fun(), warning = function(w) {
    warnings <<- c(warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  }))
  list(value = value, cpu = t[["user.self"]] + t[["sys.self"]], elapsed = t[["elapsed"]],
       warnings = paste(unique(substr(warnings, 1, 60)), collapse = " | "))
}

rows <- list()
for (case in case_names) for (n in ns) for (seed in seeds) for (rep in seq_len(reps)) {
  use_moegate(versions[[length(versions)]])
  set.seed(seed)
  d <- rmoe(n, multinom_truth(cases[[case]]), expert = "multinomial")
  moegate_cpu <- NA_real_
  for (version in names(versions)) for (n_st in starts) {
    use_moegate(versions[[version]])
    set.seed(1000 + seed)
    m <- cpu_of(function() moe(y ~ x1 + x2, data = d, k = 3, expert = "multinomial",
                               control = moe_control(n_starts = n_st)))
    fit <- m$value
    if (n_st == 1 && version == "after") moegate_cpu <- m$cpu
    rows[[length(rows) + 1]] <- data.frame(
      case = case, n = n, seed = seed, rep = rep, package = "moegate", version = version,
      n_starts = n_st, cpu_s = m$cpu,
      elapsed_s = m$elapsed, loglik = fit$loglik, iter = fit$iter, k = 3L,
      converged = names(fit$converged)[1], gradient_criterion = fit$gradient_criterion,
      polish_evals = fit$polish[["evaluations"]],
      max_abs_coef = max(abs(fit$params$expert$coef)), separation = any(fit$separation),
      warnings = m$warnings, load = load_average())
    cat(sprintf("%-9s n=%g seed %d rep %d moegate %s (%d start(s)): %.2f s CPU, loglik %.3f, %d iterations, %s, %g polish evaluations\n",
                case, n, seed, rep, version, n_st, m$cpu, fit$loglik, fit$iter,
                names(fit$converged)[1], fit$polish[["evaluations"]]))
  }
  if (!run_flexmix || n > flexmix_maxn) next
  set.seed(1000 + seed)
  f <- cpu_of(function() flexmix(y ~ x1 + x2, data = d, k = 3, model = FLXMRmultinom(),
                                 concomitant = FLXPmultinom(~ x1 + x2)))
  fx <- f$value
  rows[[length(rows) + 1]] <- data.frame(
    case = case, n = n, seed = seed, rep = rep, package = "flexmix", version = NA,
    n_starts = 1L, cpu_s = f$cpu,
    elapsed_s = f$elapsed, loglik = as.numeric(logLik(fx)), iter = fx@iter, k = fx@k,
    converged = as.character(fx@converged), gradient_criterion = NA_real_,
    polish_evals = NA_real_,
    max_abs_coef = max(abs(unlist(lapply(fx@components, function(cm) cm[[1]]@parameters$coef)))),
    separation = NA, warnings = f$warnings, load = load_average())
  cat(sprintf("%-9s n=%g seed %d rep %d flexmix: %.2f s CPU, loglik %.3f, %d iterations, k = %d, converged %s; ratio %.1fx\n",
              case, n, seed, rep, f$cpu, as.numeric(logLik(fx)), fx@iter, fx@k, fx@converged,
              f$cpu / moegate_cpu))
  out <- do.call(rbind, rows)
  utils::write.csv(out, bench_output("results-multinom.csv"), row.names = FALSE)
}
out <- do.call(rbind, rows)
out$machine <- machine_info()
utils::write.csv(out, bench_output("results-multinom.csv"), row.names = FALSE)
print(out[, c("case", "n", "seed", "rep", "package", "version", "n_starts", "cpu_s", "loglik",
              "iter", "k", "converged")])
