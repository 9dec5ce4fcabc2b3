#!/usr/bin/env bash
# Install everything moegate needs to build, test and check, on Debian 12.
# Idempotent and non-interactive: apt is skipped entirely when every R package
# and pandoc are already present, so it also runs without root on a ready machine.
set -euo pipefail

log() { printf '[moegate-setup] %s\n' "$*"; }
die() { printf '[moegate-setup] ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
CRAN_REPO="https://cloud.r-project.org"

# apt package -> R package it provides (pandoc is checked separately).
APT_PKGS=(
  r-cran-rcpp r-cran-rcppeigen r-cran-formula r-cran-future r-cran-future.apply
  r-cran-progressr r-cran-knitr r-cran-rmarkdown r-cran-flexmix r-cran-nnet
  r-cran-mass r-cran-callr r-cran-generics r-cran-testthat pandoc qpdf
)
APT_R_PKGS=(
  Rcpp RcppEigen Formula future future.apply progressr knitr rmarkdown flexmix
  nnet MASS callr generics testthat
)
# What each is for: Rcpp, RcppEigen, Formula, future.apply and generics are
# moegate's own dependencies; future, progressr, flexmix, nnet, MASS, callr and
# testthat are used by the tests (flexmix, nnet: reference fits; callr: the fuzz
# suite's separate processes), knitr, rmarkdown and pandoc build the vignettes,
# qpdf is what R CMD check --as-cran checks PDF sizes with.
# Developers regenerating the documentation also need roxygen2 (not installed here).
# Not packaged for Debian 12: taken from CRAN (its headers provide the L-BFGS solver).
CRAN_PKGS=(RcppNumerical)

# Print the R packages (from the arguments) that cannot be loaded, one per line.
missing_r_pkgs() {
  command -v Rscript >/dev/null 2>&1 || { printf '%s\n' "$@"; return 0; }
  Rscript --no-init-file -e '
    pkgs <- commandArgs(trailingOnly = TRUE)
    ok <- vapply(pkgs, requireNamespace, logical(1), quietly = TRUE)
    if (any(!ok)) writeLines(pkgs[!ok])
  ' "$@"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -E "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# --- 1. Debian packages ------------------------------------------------------
missing_apt_r="$(missing_r_pkgs "${APT_R_PKGS[@]}")"
if [ -z "$missing_apt_r" ] && command -v pandoc >/dev/null 2>&1 \
   && command -v qpdf >/dev/null 2>&1 \
   && command -v Rscript >/dev/null 2>&1; then
  log "system packages already present; skipping apt-get"
else
  if [ -n "$missing_apt_r" ]; then
    log "missing R packages: $(echo "$missing_apt_r" | tr '\n' ' ')"
  fi
  command -v pandoc >/dev/null 2>&1 || log "missing: pandoc"
  command -v qpdf >/dev/null 2>&1 || log "missing: qpdf"
  log "apt-get update"
  as_root apt-get update -q
  log "apt-get install ${APT_PKGS[*]}"
  # r-base-dev brings the compilers and headers R CMD INSTALL needs.
  as_root apt-get install -y -q --no-install-recommends r-base-dev "${APT_PKGS[@]}"
fi

command -v Rscript >/dev/null 2>&1 || die "Rscript not found after apt-get install"

# --- 2. CRAN packages --------------------------------------------------------
missing_cran="$(missing_r_pkgs "${CRAN_PKGS[@]}")"
if [ -z "$missing_cran" ]; then
  log "CRAN packages already present: ${CRAN_PKGS[*]}"
else
  log "installing from CRAN: $(printf '%s' "$missing_cran" | tr '\n' ' ')"
  mapfile -t cran_todo <<<"$missing_cran"
  # install.packages() only warns on failure; the verification below catches it.
  MOEGATE_CRAN="${MOEGATE_CRAN:-$CRAN_REPO}" Rscript --no-init-file -e '
    pkgs <- commandArgs(trailingOnly = TRUE)
    install.packages(pkgs, repos = Sys.getenv("MOEGATE_CRAN"), Ncpus = 2L)
  ' "${cran_todo[@]}"
fi

# --- 3. Verify ---------------------------------------------------------------
still_missing="$(missing_r_pkgs "${APT_R_PKGS[@]}" "${CRAN_PKGS[@]}")"
command -v pandoc >/dev/null 2>&1 || still_missing="${still_missing}"$'\n'"pandoc (system)"
command -v qpdf >/dev/null 2>&1 || still_missing="${still_missing}"$'\n'"qpdf (system)"
still_missing="$(printf '%s' "$still_missing" | sed '/^$/d')"
if [ -n "$still_missing" ]; then
  printf '[moegate-setup] ERROR: still missing after installation:\n' >&2
  printf '%s\n' "$still_missing" | sed 's/^/[moegate-setup]   - /' >&2
  exit 1
fi
log "all dependencies present"
