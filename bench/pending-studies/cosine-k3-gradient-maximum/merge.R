a <- readRDS("/tmp/runoff-max-cosine/cosine-router-k3-gradient-maximum.rds")
b <- readRDS("/tmp/runoff-max-perturbed_cosine/cosine-router-k3-gradient-maximum.rds")
res <- a
res$checks <- list(cosine = a$checks$cosine, perturbed_cosine = b$checks$perturbed_cosine)
# The two routers were checked by two processes at once (one core each):
# seconds is their sum, as if run one after the other.
res$seconds <- a$seconds + b$seconds
res$date <- b$date
res$parallel_routers <- TRUE
saveRDS(res, "/tmp/runoff-study/cosine-router-k3-gradient-maximum.rds")
cat(a$seconds, b$seconds, "\n")
