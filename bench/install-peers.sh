#!/usr/bin/env bash
# The peer packages of bench/bench-peers.R (mixture-of-experts fits in other R
# packages), on Debian 12: mixtools and MoEClust's dependencies from Debian's
# r-cran-* builds where they exist, the rest from CRAN. Idempotent: packages
# that load already are left alone. flexmix comes with tools/install-deps.sh.
#
#   bash bench/install-peers.sh
#
# meteorits (Chamroukhi et al.) is not on CRAN (no current version and no
# archived one) and GitHub is not reachable from this machine, so it is not
# installed; bench-peers.R reports it as unavailable when it is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CRAN_REPO="https://cloud.r-project.org"
missing() {
  Rscript --no-init-file -e '
    pkgs <- commandArgs(trailingOnly = TRUE)
    ok <- vapply(pkgs, requireNamespace, logical(1), quietly = TRUE)
    if (any(!ok)) writeLines(pkgs[!ok])
  ' "$@"
}
need=$(missing mixtools MoEClust)
if [ -z "$need" ]; then
  echo "[peers] mixtools and MoEClust present"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq || true
  apt-get install -y -qq r-cran-mixtools r-cran-mclust r-cran-vcd r-cran-lattice \
    r-cran-nnet > /dev/null || echo "[peers] apt install failed; falling back to CRAN"
fi
# MoEClust needs matrixStats >= 1.0.0 (Debian 12 has 0.63) and mvnfast (not
# packaged): CRAN, from source.
# Installed versions are read without loading namespaces (a loaded old mclust
# would make the new MoEClust fail to load in the same session); the check
# runs in a fresh process.
Rscript --no-init-file -e '
  repo <- commandArgs(trailingOnly = TRUE)[1]
  need <- c("mixtools", "matrixStats", "mvnfast", "mclust", "vcd", "MoEClust")
  min_version <- c(matrixStats = "1.0.0", mclust = "6.1")
  have <- vapply(need, function(p) {
    if (!nzchar(system.file(package = p))) return(FALSE)
    if (p %in% names(min_version)) return(utils::packageVersion(p) >= min_version[[p]])
    TRUE
  }, logical(1))
  if (any(!have)) utils::install.packages(need[!have], repos = repo, Ncpus = 2, quiet = TRUE)
' "$CRAN_REPO"
still=$(missing mixtools MoEClust)
if [ -n "$still" ]; then
  echo "[peers] ERROR: could not install: $still" >&2
  exit 1
fi
Rscript --no-init-file -e 'cat("[peers] mixtools", format(utils::packageVersion("mixtools")),
  "MoEClust", format(utils::packageVersion("MoEClust")), "\n")'
