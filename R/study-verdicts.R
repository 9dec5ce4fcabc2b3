# The table of verdicts: one row per claim of each paper, computed from the
# shipped full studies (inst/extdata), never typed in.

#' What the shipped studies show about each paper's claims
#'
#' Reads the shipped full studies (the `.rds` files that the scripts in
#' `system.file("studies", package = "moegate")` write) and returns one row
#' per claim: the paper, the claim, the fast and the slow setting, the loss,
#' the measured slopes of log mean loss on log \eqn{n} with BCa intervals
#' ([rate_slopes()]), the slope of the upper half of the grid, the two-start
#' gaps where they apply, the theory's rate and a verdict in words. Every
#' number is computed here from the stored fits; only the list of claims, the
#' theory's rates and the decision rules are fixed in code.
#'
#' **Decision rules.** A side is *polynomial* when the upper end of its
#' slope's interval is below \eqn{-0.15}, and *flat* when its slope on the
#' upper half of the grid is above \eqn{-0.15} (a \eqn{1/\log n} rate has
#' local slope \eqn{-1/\log n}, between \eqn{-0.15} and \eqn{-0.09} for
#' \eqn{n} from \eqn{10^3} to \eqn{10^5}). A raw parameter is *not
#' estimated* when its two-start gap is flat by the same rule. A contrast
#' ("slow under A, polynomial under B") is *not decided* when either side has
#' fewer than 5 sample sizes, and otherwise *reproduced* when the fast side is
#' polynomial and the slow side flat (and, where measured, its gap flat too);
#' otherwise the verdict says which side disagrees. A single rate is
#' reproduced when its interval contains the theory's slope and is
#' polynomial by the rule above (an interval that holds the theory's slope
#' and a flat rate as well is *not decided*), and called
#' pre-asymptotic when the whole interval is steeper than the theory's. An
#' over-specified rate whose fits carry the loss of their starts
#' (`loss_start`) cannot be shown when, at the largest \eqn{n}, the fits'
#' median loss exceeds 1.5 times their starts' or their median EM iterations
#' are fewer than 10 (EM stopped by its tolerance near the start, not at the
#' maximum). Fits stopped by the gradient rule are reported as at a maximum
#' only when `neurips2023-maximum.rds` ([study_maxima()] of those fits; its
#' k = 4 checks are named `<run>_k4`) is shipped: the verdict then says how many pass its second-order check, how
#' much of the loss at the largest \eqn{n} is the gate-vector term, and in how
#' many profiled fits the likelihood rises above the fit's along the
#' sharpening of the split; when it rises in more than a fifth of them the
#' fits are not the maximum-likelihood estimator whose rate the theory gives,
#' and the rate cannot be shown with them. The
#' over-specified cosine-router rows (`cosine-router-k3.rds`) use the losses
#' at the points where [study_maxima()] (`cosine-router-k3-maximum.rds`)
#' continued each least-squares fit to its minimum, and say how many fits
#' are at a regular minimum (the continuation converged, smallest scaled
#' eigenvalue of the information beyond the invariances above 1e-7: run-offs
#' pass the local check with eigenvalues near 1e-10); with fewer than 80% of either router's fits at the
#' largest \eqn{n} passing (or without the check) the contrast cannot be
#' shown with those fits. The same rows at the gradient rule with the Newton
#' polish and the run-off guard come from `cosine-router-k3-gradient.rds` and
#' `cosine-router-k3-gradient-maximum.rds` when shipped; there a perturbed
#' router's fit whose best RSS over the closed v-ball is on its boundary (a
#' run-off, column `boundary` of [study_maxima()]) is not at a regular
#' minimum, and the verdict says how many such fits and how many the guard
#' stopped. The
#' population-level rows compare local exponents (see
#' [vanishing_hellinger_profile()]).
#'
#' @param dir Directory of the shipped results.
#' @param B Bootstrap resamples of the slopes' intervals.
#' @param papers Which papers' rows (1 to 5 as numbered in the studies'
#'   issue: temperature, cosine, sigmoid temperature, softmax multinomial,
#'   NeurIPS 2023), default all whose results are present.
#' @return A data frame of class `moe_study_verdicts`.
#' @seealso [run_studies()], [rate_slopes()].
#' @examples
#' \donttest{
#' v <- study_verdicts(B = 199)
#' v[, c("paper", "claim", "verdict")]
#' }
#' @export
study_verdicts <- function(dir = system.file("extdata", package = "moegate"), B = 499,
                           papers = 1:5) {
  if (!is.character(dir) || length(dir) != 1 || is.na(dir) || !dir.exists(dir)) {
    stop_arg("dir", "an existing directory", got = dir)
  }
  B <- check_count(B, "B")
  if (!is.numeric(papers) || !all(papers %in% 1:5)) stop_arg("papers", "numbers among 1:5", got = papers)
  read <- function(f) {
    path <- file.path(dir, f)
    if (file.exists(path)) readRDS(path)
  }
  rows <- list()
  add <- function(...) rows[[length(rows) + 1]] <<- verdict_row(...)
  if (1 %in% papers && !is.null(run <- read("temperature-gaussian.rds"))) {
    p <- "temperature (arXiv 2401.13875)"
    for (a in c("activation_gelu", "activation_tanh")) {
      act <- if (a == "activation_gelu") "GELU" else "tanh"
      add(p, paste0("tau: dense-to-sparse slower than any polynomial, ", act, " activation polynomial"),
          run$studies, a, "temperature", "loss_tau", "polynomial vs slower than any polynomial", B)
      add(p, paste0("raw-parameter D1 (w, tau): dense-to-sparse slow, ", act, " polynomial"),
          run$studies, a, "temperature", "loss_raw", "polynomial vs slower than any polynomial", B)
    }
    add(p, "identified D1 (w / tau): n^(-1/2) under the dense-to-sparse gate",
        run$studies, "temperature", NULL, "loss", "n^(-1/2)", B, theory_slope = -0.5)
  }
  if (2 %in% papers && !is.null(run <- read("cosine-router.rds"))) {
    p <- "cosine router (arXiv 2405.14131)"
    add(p, "raw gate vector ||w_1 - w_1*||: cosine slow, perturbed (eps = 1) polynomial",
        run$studies, "perturbed_cosine", "cosine", "loss", "n^(-1/2)..n^(-1/4) vs 1/log^c n", B)
    add(p, "experts: cosine slow, perturbed (eps = 1) polynomial",
        run$studies, "perturbed_cosine", "cosine", "loss_experts", "n^(-1/2)..n^(-1/4) vs 1/log^c n", B)
    add(p, "eps = 0.01: v_1 after the shift (identified), polynomial",
        run$studies, "perturbed_cosine_eps001", NULL, "loss", "n^(-1/2)..n^(-1/4)", B,
        theory_slope = c(-0.5, -0.25))
  }
  # The over-specified (k = 3) study (cosine-router.R --k=3) and the same
  # study at the gradient rule with the Newton polish and the run-off guard
  # (--stop=gradient), each with its study_maxima() check
  # (cosine-router-maximum.R --file=<study file>) in <study file>-maximum.rds.
  k3_rules <- list("cosine-router-k3.rds" = NULL,
                   "cosine-router-k3-gradient.rds" = paste(
                     "least squares stopped by the relative gradient, with Newton polish",
                     "and run-off guard"))
  for (file in names(k3_rules)) {
    if (!(2 %in% papers) || is.null(run <- read(file))) next
    maximum_file <- sub("\\.rds$", "-maximum.rds", file)
    rows <- c(rows, cosine_overspecified_verdicts(
      run, read(maximum_file)$checks, "cosine router (arXiv 2405.14131)", B,
      rule = k3_rules[[file]], maximum_file = maximum_file))
  }
  if (3 %in% papers && !is.null(run <- read("sigmoid-multinomial.rds"))) {
    p <- "sigmoid multinomial (arXiv 2602.01466)"
    add(p, "tau: inner-product temperature exponential sample complexity, Euclidean polynomial",
        run$studies, "euclidean", "inner", "loss", "polynomial vs exponential", B)
    add(p, "gate parameters sum |w - w*|: inner product slow, Euclidean polynomial",
        run$studies, "euclidean", "inner", "loss_w", "polynomial vs exponential", B)
    # The issue's test of estimation along the ray: the gap between the fits
    # of the same data from two starts, in the replications that ran it.
    gaps <- lapply(run$studies, function(st) if ("gap" %in% names(st)) st[!is.na(st$gap), ])
    if (!is.null(gaps$euclidean) && !is.null(gaps$inner)) {
      add(p, paste0("two-start gap |log tau_1 - log tau_2| (starts 1 apart on the ray): ",
                    "inner product not estimated (flat), Euclidean estimated (shrinks)"),
          gaps, "euclidean", "inner", "gap", "identified vs not identified along the ray", B)
    }
  }
  if (4 %in% papers && !is.null(run <- read("softmax-multinomial.rds"))) {
    p <- "softmax multinomial (arXiv 2310.14188)"
    for (a in c("softmax", "modified")) {
      add(p, paste0("exact fit with a vanishing expert, ", if (a == "softmax") "softmax" else
        "modified softmax", ": n^(-1/2) (the slowness needs an over-specified cell)"),
        run$studies, a, NULL, "loss", "n^(-1/2)", B, theory_slope = -0.5)
    }
    if (!is.null(run$profile)) rows <- c(rows, profile_verdicts(run$profile, p))
  }
  if (5 %in% papers) {
    p <- "NeurIPS 2023 (arXiv 2305.03288)"
    k2 <- read("neurips2023_k2.rds")
    if (!is.null(k2)) {
      add(p, "k = 2: D1 at n^(-1/2)", list(k2 = k2), "k2", NULL, "loss", "n^(-1/2)", B,
          theory_slope = -0.5)
    }
    starts <- list(loglik = read("neurips2023-starts.rds"),
                   gradient = read("neurips2023-starts-gradient.rds"),
                   gradient_public = read("neurips2023-starts-gradient-public.rds"))
    rule <- c(loglik = "EM stopped by the relative log-likelihood change",
              gradient = "EM stopped by the relative gradient, with Newton polish",
              gradient_public = paste("EM stopped by the relative gradient, with Newton polish;",
                                      "the public code's start noise"))
    # study_maxima() of the gradient-rule fits (inst/studies/neurips2023-maximum.R).
    maxima <- read("neurips2023-maximum.rds")$checks
    check_of <- c(gradient = "ours", gradient_public = "public")
    for (k in 3:4) {
      full <- read(sprintf("neurips2023_k%d.rds", k))
      found <- FALSE
      for (r in names(starts)) {
        s <- if (!is.null(starts[[r]])) starts[[r]]$studies[[paste0("k", k)]]
        if (is.null(s)) next
        found <- TRUE
        add(p, sprintf("k = %d: rbar loss at n^(-1/2) (fits beside their starts; %s)", k, rule[[r]]),
            stats::setNames(list(s), paste0("k", k)), paste0("k", k), NULL, "loss", "n^(-1/2)", B,
            theory_slope = -0.5, start_check = TRUE, at_maximum = r != "loglik",
            maxima = if (r != "loglik") maxima[[paste0(check_of[[r]], if (k == 4) "_k4")]])
      }
      if (!found && !is.null(full)) {
        add(p, sprintf("k = %d: rbar loss at n^(-1/2)", k), stats::setNames(list(full), paste0("k", k)),
            paste0("k", k), NULL, "loss", "n^(-1/2)", B, theory_slope = -0.5)
      }
    }
  }
  out <- do.call(rbind, rows)
  if (is.null(out)) stop_arg("dir", "a directory holding shipped study results (none found)")
  rownames(out) <- NULL
  class(out) <- c("moe_study_verdicts", "data.frame")
  out
}

# Fits of a study_maxima() table at a regular minimum: the continuation
# converged, and the scaled information beyond the gate's invariances has
# its smallest eigenvalue above 1e-7. Below that the pilot's fits were
# run-offs (an extra tanh expert with slopes above 1000 turning into a step
# function; eigenvalues near 1e-10), which the local check alone passes.
regular_minimum <- function(checks) {
  checks$at_maximum %in% TRUE & !is.na(checks$info_min) & checks$info_min > 1e-7 &
    !on_boundary(checks)
}

# Perturbed-cosine least-squares fits whose best point over the closed v-ball
# is on its boundary (study_maxima()'s column `boundary`; absent in checks
# made before it: FALSE).
on_boundary <- function(checks) {
  if (is.null(checks$boundary)) return(rep(FALSE, nrow(checks)))
  checks$boundary %in% TRUE
}

# The fits of a study that study_maxima() checked (`checks`), their loss
# columns at the points where it left them, with its verdict per fit
# (column at_maximum).
study_continued <- function(study, checks) {
  i <- checks$row
  for (l in intersect(grep("^loss", names(checks), value = TRUE), names(study))) {
    study[[l]][i] <- checks[[l]]
  }
  study$at_maximum <- NA
  study$at_maximum[i] <- regular_minimum(checks)
  as.data.frame(study)[i, setdiff(names(study), "params"), drop = FALSE]
}

# Rows of the over-specified (k = 3) cosine-router study: the contrast on the
# raw-parameter Voronoi loss and on its experts' term, from the losses at the
# fits' least-squares minima (study_maxima()'s Newton continuation of each
# stored fit) when that check is shipped. Without it, or when fewer than 80%
# of the fits at the largest n pass it, the slopes are not an estimator's.
cosine_overspecified_verdicts <- function(run, checks, paper, B, rule = NULL,
                                          maximum_file = "cosine-router-k3-maximum.rds") {
  routers <- c("perturbed_cosine", "cosine")
  if (!all(routers %in% names(run$studies))) return(list())
  studies <- run$studies
  if (!is.null(checks)) {
    for (r in routers) studies[[r]] <- study_continued(studies[[r]], checks[[r]])
  }
  maximum_note <- function() {
    if (is.null(checks)) {
      return(list(ok = FALSE, text = paste0("no check that the fits reach the least-squares ",
                                            "minimum is shipped (", maximum_file, ")")))
    }
    parts <- vapply(routers, function(r) {
      m <- checks[[r]]
      big <- m[m$n == max(m$n), ]
      guard <- run$studies[[r]]$runoff
      extra <- if (!is.null(m$boundary)) {
        sprintf("; %d on the boundary of the v-ball (no finite minimum)%s", sum(on_boundary(m)),
                if (!is.null(guard)) sprintf(", %d of %d fits stopped by the run-off guard",
                                             sum(guard == 1, na.rm = TRUE), length(guard)) else "")
      } else ""
      sprintf("%s %d of %d (n = %d: %d of %d%s)", r, sum(regular_minimum(m)), nrow(m),
              max(m$n), sum(regular_minimum(big)), nrow(big), extra)
    }, "")
    share <- vapply(routers, function(r) {
      m <- checks[[r]]
      mean(regular_minimum(m[m$n == max(m$n), ]))
    }, 0)
    list(ok = all(share >= 0.8),
         text = paste0("losses at the fits' least-squares minima (Newton continuation of each ",
                       "fit; fits at a regular minimum: ", paste(parts, collapse = ", "), ")"))
  }
  note <- maximum_note()
  theory <- "n^(-1/2) (loss; n^(-1/4) for split cells' parameters) vs 1/log^c n"
  claims <- c(loss = paste0("over-specified (k = 3): raw-parameter Voronoi loss (exponent 2 in ",
                            "split cells): cosine slow, perturbed (eps = 1) polynomial"),
              loss_experts = paste0("over-specified (k = 3): experts' term of the Voronoi loss: ",
                                    "cosine slow, perturbed (eps = 1) polynomial"))
  if (!is.null(rule)) claims[] <- paste0(claims, " (", rule, ")")
  lapply(names(claims), function(l) {
    row <- verdict_row(paper, claims[[l]], studies, "perturbed_cosine", "cosine", l, theory, B)
    row$verdict <- if (note$ok) {
      paste0(row$verdict, "; ", note$text)
    } else {
      paste0("cannot be shown by simulation with these fits (the slopes would be ", row$verdict,
             "): ", if (is.null(checks)) "" else "too few fits reach the least-squares minimum at the largest n; ",
             note$text)
    }
    row
  })
}

# Slopes of one study's loss: the overall slope with its interval, the upper
# half's slope, and the two-start gap's slopes when the study has them.
verdict_slopes <- function(study, loss, B) {
  sl <- rate_slopes(study, loss = loss, B = B)
  out <- list(slope = sl$slope[1], lower = sl$lower[1], upper = sl$upper[1],
              upper_half = sl$slope[4], gap_slope = NA_real_, gap_last = NA_real_)
  if ("gap" %in% names(study) && sum(!is.na(study$gap)) > 0) {
    g <- study[!is.na(study$gap), c("n", "replication", "gap")]
    if (length(unique(g$n)) >= 2) {
      gs <- rate_slopes(g, loss = "gap", B = B)
      out$gap_slope <- gs$slope[1]
      out$gap_upper_half <- gs$slope[4]
    }
    out$gap_last <- mean(g$gap[g$n == max(g$n)])
  }
  out
}

verdict_row <- function(paper, claim, studies, fast, slow, loss, theory, B, theory_slope = NULL,
                        start_check = FALSE, at_maximum = FALSE, maxima = NULL) {
  f <- verdict_slopes(studies[[fast]], loss, B)
  s <- if (!is.null(slow)) verdict_slopes(studies[[slow]], loss, B)
  polynomial <- function(x) is.finite(x$upper) && x$upper < -0.15
  flat <- function(x) is.finite(x$upper_half) && x$upper_half > -0.15
  gap_flat <- function(x) !is.null(x$gap_upper_half) && is.finite(x$gap_upper_half) &&
    x$gap_upper_half > -0.15
  # A contrast rests on the slow side's upper-half slope: with fewer than 5
  # sample sizes that half has 2 or 3 points and "flat" is noise.
  n_sizes <- function(st) length(unique(st$n[is.finite(st[[loss]])]))
  if (!is.null(slow)) {
    gap_ok <- is.na(s$gap_slope) || gap_flat(s)
    few <- min(n_sizes(studies[[fast]]), n_sizes(studies[[slow]]))
    verdict <- if (few < 5) {
      sprintf("not decided: only %d sample sizes (a slope and its upper half need at least 5)",
              few)
    } else if (polynomial(f) && flat(s) && gap_ok) {
      "reproduced"
    } else if (polynomial(f) && flat(s)) {
      "not reproduced: the slow side's loss is flat but its two-start gap shrinks"
    } else if (polynomial(f)) {
      sprintf("not reproduced: the slow side is not flat (upper-half slope %.2f)", s$upper_half)
    } else if (flat(s)) {
      sprintf("not reproduced: the fast side is not clearly polynomial (interval up to %.2f)", f$upper)
    } else {
      "not reproduced: neither side behaves as claimed"
    }
  } else {
    hit <- any(theory_slope >= f$lower & theory_slope <= f$upper) ||
      (length(theory_slope) == 2 && f$slope <= max(theory_slope) && f$slope >= min(theory_slope))
    # An interval that holds the theory's slope and a flat rate as well
    # (upper end above -0.15) tells the two apart no better than no run.
    wide <- hit && !polynomial(f)
    verdict <- if (wide) {
      sprintf("not decided by the slope (interval %.2f to %.2f holds the theory's slope and a flat rate)",
              f$lower, f$upper)
    } else if (hit) {
      "reproduced"
    } else if (is.finite(f$upper) && f$upper < min(theory_slope)) {
      sprintf("polynomial, faster than the theory's rate on this grid (slope %.2f): pre-asymptotic",
              f$slope)
    } else {
      sprintf("not reproduced: slope %.2f", f$slope)
    }
    if (start_check) {
      st <- studies[[fast]]
      last <- st[st$n == max(st$n), ]
      ratio <- stats::median(last$loss, na.rm = TRUE) / stats::median(last$loss_start, na.rm = TRUE)
      slope_start <- rate_slopes(st, loss = "loss_start", B = B)$slope[1]
      iterations <- stats::median(last$iterations, na.rm = TRUE)
      verdict <- if (at_maximum && !is.null(maxima)) {
        # A slope interval from fewer than 5 sizes that happens to contain the
        # theory's slope decides nothing (as for the contrasts).
        sizes <- length(unique(st$n[is.finite(st$loss)]))
        reason <- if (hit && sizes < 5) {
          sprintf("only %d sample sizes; interval %.2f to %.2f", sizes, f$lower, f$upper)
        } else if (wide) {
          sprintf("interval %.2f to %.2f holds the theory's slope and a flat rate", f$lower, f$upper)
        }
        slope_says <- if (!hit) "not reproduced" else if (is.null(reason)) "reproduced" else "not decided"
        maximum_verdict(slope_says, reason, st, maxima, ratio, slope_start, f$slope)
      } else if (at_maximum && all(last$converged, na.rm = TRUE)) {
        sprintf(paste0("%s with fits meeting the gradient rule (every fit at n = %d; not checked ",
                       "for a maximum): their median loss there is %.3g, %.0f times their ",
                       "starts' (start slope %.2f, fit slope %.2f)"),
                if (wide) "not decided by the slope" else if (hit) "reproduced" else "not reproduced",
                max(st$n),
                stats::median(last$loss, na.rm = TRUE), ratio, slope_start, f$slope)
      } else if (ratio > 1.5 || iterations < 10) {
        sprintf(paste0("cannot be shown by simulation with these fits: at n = %d the fits' ",
                       "median loss is %.2f times their starts' after a median of %g EM ",
                       "iterations (start slope %.2f, fit slope %.2f); the estimator must be ",
                       "run to the likelihood's maximum"),
                max(st$n), ratio, iterations, slope_start, f$slope)
      } else {
        sprintf(paste0("%s (reduced run); at n = %d the fits' median loss is %.2f times their ",
                       "starts' (start slope %.2f, fit slope %.2f)"),
                verdict, max(st$n), ratio, slope_start, f$slope)
      }
    }
  }
  data.frame(paper = paper, claim = claim, fast = fast, slow = if (is.null(slow)) NA else slow,
             loss = loss, theory = theory,
             fast_slope = f$slope, fast_lower = f$lower, fast_upper = f$upper,
             slow_slope = if (is.null(s)) NA else s$slope,
             slow_lower = if (is.null(s)) NA else s$lower,
             slow_upper = if (is.null(s)) NA else s$upper,
             slow_upper_half = if (is.null(s)) NA else s$upper_half,
             fast_gap_slope = f$gap_slope,
             slow_gap_slope = if (is.null(s)) NA else s$gap_slope,
             slow_gap_last = if (is.null(s)) NA else s$gap_last,
             verdict = verdict, stringsAsFactors = FALSE)
}

# The verdict of gradient-rule fits checked by study_maxima(): how many are
# at a finite local maximum, what makes their loss at the largest n, and
# whether the likelihood rises along the sharpening of the split.
# `slope_says` is what the slope alone says ("reproduced", "not reproduced"
# or "not decided"), `reason` why it does not decide (or NULL).
maximum_verdict <- function(slope_says, reason, st, maxima, ratio, slope_start, slope) {
  ok <- maxima[is.na(maxima$error), ]
  n_max <- max(st$n)
  at_max <- sum(ok$at_maximum %in% TRUE)
  big <- ok[ok$n == n_max, ]
  w_share <- 100 * sum(big$loss_w) / sum(big$loss)
  profiled <- ok[!is.na(ok$sharpen_gain), ]
  rises <- sum(profiled$sharpen_gain > 0)
  where <- if (at_max == nrow(maxima)) {
    sprintf("fits at finite local maxima (all %d: a Newton continuation converges in at most %d steps and the information is positive definite)",
            nrow(maxima), max(ok$newton_steps))
  } else {
    sprintf("fits of which %d of %d pass the second-order check (Newton continuation converged, information positive definite)",
            at_max, nrow(maxima))
  }
  # The theory's rate is the maximum-likelihood estimator's: when more than
  # a fifth of the profiled fits are shown not to be the global maximum, the
  # slope of these fits is not that estimator's rate, whatever it is.
  not_mle <- nrow(profiled) > 0 && rises > 0.2 * nrow(profiled)
  head <- if (not_mle) {
    sprintf("cannot be shown by simulation with these fits (the slope alone: %s%s)", slope_says,
            if (is.null(reason)) "" else paste(",", reason))
  } else if (is.null(reason)) {
    slope_says
  } else {
    sprintf("not decided by the slope (%s)", reason)
  }
  times <- if (ratio < 10) sprintf("%.1f", ratio) else sprintf("%.0f", ratio)
  sprintf(paste0("%s with %s: at n = %d their median loss is %.3g, %s times their starts' ",
                 "(start slope %.2f, fit slope %.2f), %.0f%% of the summed loss the gate-vector ",
                 "(w) term%s"),
          head, where, n_max, stats::median(big$loss), times, slope_start, slope, w_share,
          if (nrow(profiled)) sprintf("; along the sharpening of the split the likelihood rises above the fit's in %d of %d fits profiled (n up to %s)%s",
                                      rises, nrow(profiled),
                                      format(max(profiled$n), big.mark = ",", scientific = FALSE),
                                      if (not_mle) paste0(": those fits are not global maxima, so these fits are not the ",
                                                          "maximum-likelihood estimator whose rate the theory gives")
                                      else ", so those fits are not global maxima") else "")
}

# Rows of the population-level computation: the local exponent of the
# smallest Hellinger distance at the smallest discrepancies, per gate.
profile_verdicts <- function(profile, paper) {
  gates <- unique(profile$gate)
  last <- vapply(gates, function(g) {
    p <- profile[profile$gate == g, ]
    p <- p[order(p$delta), ]
    # exponent over the two smallest discrepancies
    diff(log(p$hellinger[1:2])) / diff(log(p$delta[1:2]))
  }, 0)
  first <- vapply(gates, function(g) {
    p <- profile[profile$gate == g, ]
    p <- p[order(-p$delta), ]
    diff(log(p$hellinger[1:2])) / diff(log(p$delta[1:2]))
  }, 0)
  dmin <- min(profile$delta)
  dmax <- max(profile$delta)
  soft <- last[["softmax"]]
  others <- last[setdiff(gates, "softmax")]
  growing <- soft - first[["softmax"]] > 1 && soft > max(others) + 1
  verdict <- if (growing) {
    "reproduced at the population level: the softmax exponent grows as the discrepancy shrinks"
  } else {
    sprintf(paste0("cannot be shown by simulation: at the population level the local exponents ",
                   "at discrepancy %g are %s, the same order for all gates (no faster-than-",
                   "polynomial collapse of the softmax within reach); the over-specified ",
                   "cell's intercept blocks are not identified at all"),
            dmin, paste(sprintf("%s %.2f", gates, last), collapse = ", "))
  }
  row <- data.frame(paper = paper,
                    claim = paste0("over-specified vanishing expert: softmax slower than any ",
                                   "polynomial, modified softmax / modified sigmoid polynomial ",
                                   "(population-level Hellinger profile of the slope blocks)"),
                    fast = "modified_softmax, modified_sigmoid", slow = "softmax",
                    loss = sprintf("local exponent of min Hellinger, delta %g..%g", dmin, dmax),
                    theory = "exponent unbounded (softmax) vs bounded",
                    fast_slope = max(others), fast_lower = NA, fast_upper = NA,
                    slow_slope = soft, slow_lower = NA, slow_upper = NA,
                    slow_upper_half = NA, fast_gap_slope = NA, slow_gap_slope = NA,
                    slow_gap_last = NA, verdict = verdict, stringsAsFactors = FALSE)
  list(row)
}

#' @export
print.moe_study_verdicts <- function(x, ...) {
  # A subset of the columns (v[, c("paper", "verdict")]) prints as the data
  # frame it is.
  needed <- c("paper", "claim", "fast", "loss", "fast_slope", "fast_lower", "fast_upper",
              "slow", "slow_slope", "slow_lower", "slow_upper", "slow_upper_half",
              "slow_gap_slope", "fast_gap_slope", "slow_gap_last", "theory", "verdict")
  if (!all(needed %in% names(x))) {
    print(as.data.frame(unclass(x), stringsAsFactors = FALSE), ...)
    return(invisible(x))
  }
  for (i in seq_len(nrow(x))) {
    r <- x[i, ]
    cat(sprintf("[%s] %s\n", r$paper, r$claim))
    slope_txt <- function(s, lo, hi) {
      if (is.na(lo)) sprintf("%.2f", s) else sprintf("%.2f [%.2f, %.2f]", s, lo, hi)
    }
    cat(sprintf("  %s (%s): %s", r$fast, r$loss, slope_txt(r$fast_slope, r$fast_lower, r$fast_upper)))
    if (!is.na(r$slow)) {
      cat(sprintf("; %s: %s", r$slow, slope_txt(r$slow_slope, r$slow_lower, r$slow_upper)))
      if (!is.na(r$slow_upper_half)) cat(sprintf(", upper half %.2f", r$slow_upper_half))
    }
    cat("\n")
    if (!is.na(r$slow) && (!is.na(r$slow_gap_slope) || !is.na(r$fast_gap_slope))) {
      cat(sprintf("  two-start gap slopes: %s %.2f, %s %.2f (slow side's gap at the largest n: %.3f)\n",
                  r$fast, r$fast_gap_slope, r$slow, r$slow_gap_slope, r$slow_gap_last))
    }
    cat(sprintf("  theory: %s -> %s\n", r$theory, r$verdict))
  }
  invisible(x)
}
