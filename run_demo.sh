#!/usr/bin/env bash
# The one command for the demo: install deps, install moegate, run
# inst/scripts/demo.R (fits a demo model, prints its summary, writes moegate-demo.png).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"

log() { printf '[moegate-demo] %s\n' "$*"; }

bash tools/install-deps.sh

install_log="$(mktemp "${TMPDIR:-/tmp}/moegate-install.XXXXXX.log")"
log "R CMD INSTALL (log: $install_log)"
if ! R CMD INSTALL --preclean --no-multiarch . >"$install_log" 2>&1; then
  log "R CMD INSTALL failed; last 60 lines of $install_log:"
  tail -n 60 "$install_log"
  exit 1
fi
rm -f src/*.o src/*.so src/*.dll "$install_log"

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
