#!/usr/bin/env bash
# The one command for the demo: install deps, build and install moegate (with
# its vignettes), run inst/scripts/demo.R (fits a demo model, prints its
# summary, writes moegate-demo.png).
#
# The package is installed from a built tarball so that the installed package
# has its vignettes (`vignette("moegate")`). src/Makevars strips the debug
# information Debian's R compiles in (a 37 MB library, 0.6 MB stripped);
# MOEGATE_DEBUG=1 keeps it. MOEGATE_NO_VIGNETTES=1 skips building the
# vignettes (a faster install without them).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"

log() { printf '[moegate-demo] %s\n' "$*"; }

bash tools/install-deps.sh

build_dir="$(mktemp -d "${TMPDIR:-/tmp}/moegate-build.XXXXXX")"
trap 'rm -rf "$build_dir"' EXIT
build_args=()
[ -n "${MOEGATE_NO_VIGNETTES:-}" ] && build_args+=(--no-build-vignettes)
log "R CMD build ${build_args[*]:-} (vignettes take a few minutes; log: $build_dir/build.log)"
if ! (cd "$build_dir" && R CMD build "${build_args[@]}" "$REPO_ROOT" >build.log 2>&1); then
  log "R CMD build failed; last 60 lines:"
  tail -n 60 "$build_dir/build.log"
  exit 1
fi
tarball="$(find "$build_dir" -maxdepth 1 -name 'moegate_*.tar.gz' | head -n 1)"
install_args=(--no-multiarch)
log "R CMD INSTALL ${install_args[*]} $(basename "$tarball")"
if ! R CMD INSTALL "${install_args[@]}" "$tarball" >"$build_dir/install.log" 2>&1; then
  log "R CMD INSTALL failed; last 60 lines:"
  tail -n 60 "$build_dir/install.log"
  exit 1
fi

[ -f inst/scripts/demo.R ] || { log "ERROR: inst/scripts/demo.R not found"; exit 1; }
log "Rscript inst/scripts/demo.R"
rm -f moegate-demo.png
Rscript inst/scripts/demo.R

if [ -f moegate-demo.png ]; then
  log "plot written to $REPO_ROOT/moegate-demo.png"
else
  log "ERROR: demo finished but moegate-demo.png was not written"
  exit 1
fi
