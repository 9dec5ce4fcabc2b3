#!/bin/bash
# Session 23: NeurIPS k = 3, 4 at the gradient rule, 6 sizes x 4 reps, both start-noise conventions, then the maximum checks.
cd /work/main
export R_LIBS=/work/lib/lead
OUT=/work/runs/neurips10
date -u
nice -n 15 Rscript inst/studies/neurips2023-starts.R --workers=1 --sizes=10 --reps=8 --stop=gradient --noise=ours --out=$OUT > $OUT/ours.log 2>&1
date -u
nice -n 15 Rscript inst/studies/neurips2023-starts.R --workers=1 --sizes=10 --reps=8 --stop=gradient --noise=public --out=$OUT > $OUT/public.log 2>&1
date -u
nice -n 15 Rscript inst/studies/neurips2023-maximum.R --runs=ours,public --k=3,4 --sharpen_nmax=31623 --out=$OUT > $OUT/maximum.log 2>&1
date -u
echo ALLDONE
