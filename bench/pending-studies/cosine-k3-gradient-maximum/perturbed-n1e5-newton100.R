# Longer Newton continuation (100 steps) of the perturbed router's n = 1e5 fits
# of cosine-router-k3-gradient.rds: do they reach a minimum given more steps?
suppressPackageStartupMessages(library(moegate))
run <- readRDS("inst/extdata/cosine-router-k3-gradient.rds")
st <- run$studies$perturbed_cosine
future::plan(future::multisession, workers = 2)
t0 <- proc.time()[["elapsed"]]
rows <- which(st$n == max(st$n))
m <- study_maxima(st, rows = rows, newton_maxit = 100)
sec <- proc.time()[["elapsed"]] - t0
saveRDS(list(check = m, seconds = sec, newton_maxit = 100, rows = rows,
             date = format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")), "perturbed-n1e5-newton100.rds")
print(m[, c("n", "replication", "criterion_after", "newton_steps", "newton_stop", "at_maximum", "info_min", "boundary", "ball_gain", "loss")])
cat(sec, "s\n")
