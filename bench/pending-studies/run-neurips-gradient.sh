#!/bin/bash
# NeurIPS 2023 k = 3, 4 at the gradient rule (both start-noise conventions),
# then study_maxima() of the fits (sharpening profiles up to n = 31,623):
#
#   bash bench/pending-studies/run-neurips-gradient.sh SIZES REPS OUT [NICE]
#
# Run from the package source with R_LIBS pointing at the build to measure.
# Session 23 (2026-12-03, package at 0bad043): SIZES=6 REPS=4 into
# neurips-gradient-6x4 (nice 10) and SIZES=10 REPS=8 into
# neurips-gradient-10x8 (nice 15); each directory keeps its logs and commit. The
# 10 x 8 results ship as inst/extdata/neurips2023-starts-gradient.rds,
# neurips2023-starts-gradient-public.rds and neurips2023-maximum.rds.
set -e
sizes=$1; reps=$2; out=$3; niceness=${4:-10}
mkdir -p "$out"
date -u
for noise in ours public; do
  nice -n "$niceness" Rscript inst/studies/neurips2023-starts.R --workers=1 --sizes="$sizes" \
    --reps="$reps" --stop=gradient --noise="$noise" --out="$out" > "$out/$noise.log" 2>&1
  date -u
done
nice -n "$niceness" Rscript inst/studies/neurips2023-maximum.R --runs=ours,public --k=3,4 \
  --sharpen_nmax=31623 --out="$out" > "$out/maximum.log" 2>&1
date -u
echo ALLDONE
