#!/usr/bin/env Rscript
# The table of verdicts as Markdown, from the shipped results (for README.md):
#
#   Rscript inst/studies/verdicts.R [--B=499]
suppressPackageStartupMessages(library(moegate))
opt <- study_options(list(B = 499))
v <- study_verdicts(B = opt$B)
slope <- function(s, lo, hi) {
  ifelse(is.na(s), "", ifelse(is.na(lo), sprintf("%.2f", s), sprintf("%.2f [%.2f, %.2f]", s, lo, hi)))
}
tab <- data.frame(paper = v$paper, claim = v$claim, loss = v$loss,
                  fast = paste0(v$fast, ": ", slope(v$fast_slope, v$fast_lower, v$fast_upper)),
                  slow = ifelse(is.na(v$slow), "",
                                paste0(v$slow, ": ", slope(v$slow_slope, v$slow_lower, v$slow_upper),
                                       ifelse(is.na(v$slow_upper_half), "",
                                              sprintf(" (upper half %.2f)", v$slow_upper_half)))),
                  `slow gap slope` = ifelse(is.na(v$slow_gap_slope), "", sprintf("%.2f", v$slow_gap_slope)),
                  theory = v$theory, verdict = v$verdict, check.names = FALSE)
cat(knitr::kable(tab, format = "pipe"), sep = "\n")
