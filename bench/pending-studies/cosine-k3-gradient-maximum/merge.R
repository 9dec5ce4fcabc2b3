`%||%` <- function(a, b) if (is.null(a)) b else a
# Join the two routers' study_maxima() checks of cosine-router-k3-gradient.rds,
# run by two invocations of inst/studies/cosine-router-maximum.R (cosine: 1
# worker, 2026-12-03; perturbed_cosine: 2 workers, 2026-12-04), into
# inst/extdata/cosine-router-k3-gradient-maximum.rds. Paths: argument 1 the
# cosine check, 2 the perturbed router's, 3 the output.
args <- commandArgs(trailingOnly = TRUE)
a <- readRDS(args[1])
b <- readRDS(args[2])
res <- b
res$checks <- list(cosine = a$checks$cosine, perturbed_cosine = b$checks$perturbed_cosine)
# Each router's own wall time and workers; seconds is their sum (run one
# after the other, on different days).
res$seconds_by_router <- c(cosine = a$seconds, perturbed_cosine = b$seconds)
res$workers_by_router <- c(cosine = a$workers %||% 1, perturbed_cosine = b$workers %||% 1)
res$date_by_router <- c(cosine = a$date, perturbed_cosine = b$date)
res$seconds <- a$seconds + b$seconds
saveRDS(res, args[3])
print(res[c("seconds_by_router", "workers_by_router", "date_by_router")])
