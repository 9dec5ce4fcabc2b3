# One small in-house checker: every error names the argument, what was
# expected and what arrived, with class "moe_error" (and "moe_error_<arg>").

stop_arg <- function(arg, ..., got = NULL) {
  msg <- paste0("`", arg, "` must be ", paste0(..., collapse = ""))
  if (!is.null(got)) msg <- paste0(msg, "; got ", describe(got))
  cond <- structure(class = c(paste0("moe_error_", arg), "moe_error", "error", "condition"),
                    list(message = paste0(msg, "."), call = NULL, arg = arg))
  stop(cond)
}

describe <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.function(x)) return("a function")
  if (is.atomic(x) && length(x) == 1) {
    return(if (is.character(x)) paste0('"', x, '"') else format(x))
  }
  paste0("an object of class ", paste(class(x), collapse = "/"), " and length ", length(x))
}

# One of `choices`, matched as match.arg() matches: exactly, or as the unique
# choice that `x` abbreviates ("resp" for "response"). Returns the full choice.
check_choice <- function(x, choices, arg) {
  i <- if (is.character(x) && length(x) == 1 && !is.na(x) && nzchar(x)) pmatch(x, choices) else NA
  if (is.na(i)) {
    ambiguous <- is.character(x) && length(x) == 1 && !is.na(x) && nzchar(x) &&
      sum(startsWith(choices, x)) > 1
    stop_arg(arg, "one of ", paste0('"', choices, '"', collapse = ", "),
             if (ambiguous) " (an abbreviation must match only one)", got = x)
  }
  choices[[i]]
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) stop_arg(arg, "TRUE or FALSE", got = x)
  invisible(x)
}

check_number <- function(x, arg, lower = -Inf, upper = Inf, lower_open = FALSE,
                         integer = FALSE) {
  ok <- is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    (if (lower_open) x > lower else x >= lower) && x <= upper &&
    (!integer || x == round(x))
  if (!ok) {
    what <- if (integer) "a whole number" else "a finite number"
    range <- c(if (is.finite(lower)) paste(if (lower_open) ">" else ">=", lower),
               if (is.finite(upper)) paste("<=", upper))
    stop_arg(arg, what, if (length(range)) paste0(" ", paste(range, collapse = " and ")),
             got = x)
  }
  invisible(x)
}

# Counts become R integers: anything beyond .Machine$integer.max would turn
# into NA.
check_count <- function(x, arg, lower = 1, upper = .Machine$integer.max) {
  check_number(x, arg, lower = lower, upper = upper, integer = TRUE)
  as.integer(x)
}

# A design whose columns are linearly dependent leaves coefficients
# unidentified; the weighted least-squares and Newton M-steps would then
# return arbitrary values. `extra`: a column the model adds itself (the gate
# intercept), checked together with x.
check_full_rank <- function(x, arg, extra = NULL, hint = "") {
  m <- if (is.null(extra)) x else cbind(extra, x)
  if (ncol(m) == 0 || nrow(m) == 0) return(invisible(x))
  qx <- qr(blocked_r_factor(m), tol = 1e-9)
  if (qx$rank == ncol(m)) return(invisible(x))
  nm <- colnames(x)
  if (is.null(nm)) nm <- paste0("column ", seq_len(ncol(x)))
  if (!is.null(extra)) nm <- c(colnames(extra) %||% "(intercept)", nm)
  aliased <- nm[qx$pivot[seq.int(qx$rank + 1, ncol(m))]]
  stop_arg(arg, "linearly independent columns; ", paste(aliased, collapse = ", "),
           if (length(aliased) == 1) " is a" else " are", " linear combination",
           if (length(aliased) == 1) "" else "s", " of the others", hint)
}

# For many rows, the stacked R factors of unpivoted QRs of row blocks (a
# tall-skinny QR): Q'm for an orthogonal Q, so a pivoted QR of it finds the
# rank and the pivots a QR of m finds (the column norms and every
# orthogonal projection are the same), without qr()'s full-size copies of m
# (three at once). Few rows: m itself.
blocked_r_factor <- function(m, block = 65536L) {
  n <- nrow(m)
  if (n <= block) return(m)
  starts <- seq.int(1L, n, by = block)
  Rs <- lapply(starts, function(s) {
    q <- qr(m[s:min(n, s + block - 1L), , drop = FALSE], tol = 0)
    R <- qr.R(q)
    R[, order(q$pivot), drop = FALSE]
  })
  out <- do.call(rbind, Rs)
  colnames(out) <- colnames(m)
  out
}

# Both designs of a fit: the expert design X, and the gate input U (after the
# gate's transform) together with the gate intercept when the score is an
# inner product (other scores have no intercept to collide with). `args`:
# design_args(), the names and hints the errors use.
check_designs <- function(X, U, gate, args) {
  check_full_rank(X, args$x, hint = args$x_hint)
  # U = NULL: the gate input is X without its intercept, checked with X.
  if (identical(gate$score, "inner") && !is.null(U)) {
    check_full_rank(U, args$z, extra = cbind(`(gate intercept)` = rep(1, nrow(U))),
                    hint = args$z_hint)
  }
  invisible(NULL)
}

# The argument names (and hints) the design-rank errors of one fit give the
# expert design (`x`) and the gate design (`z`).
design_args <- function(x, z, x_hint = "", z_hint = "") {
  list(x = x, z = z, x_hint = x_hint, z_hint = z_hint)
}

# Numeric matrix with no NA/NaN/Inf, named `arg` in errors.
check_finite_matrix <- function(x, arg) {
  if (!is.numeric(x)) stop_arg(arg, "numeric", got = x)
  # Without allocation for the usual finite data: the minimum or the maximum
  # is NA or infinite exactly when some value is (range() would copy x).
  if (length(x) == 0 || is.finite(min(x)) && is.finite(max(x))) return(invisible(x))
  bad <- !is.finite(x)
  if (any(bad)) {
    rows <- which(rowSums(matrix(bad, nrow = NROW(x))) > 0)
    cols <- colnames(x)[colSums(matrix(bad, nrow = NROW(x))) > 0]
    hint <- if (anyNA(x)) {
      " (missing values: use the formula interface, whose na.action drops incomplete rows)"
    } else ""
    stop_arg(arg, "free of NA, NaN and Inf; found non-finite values",
             if (length(cols)) paste0(" in column(s) ", paste(cols, collapse = ", ")),
             " at row(s) ", paste(utils::head(rows, 5), collapse = ", "),
             if (length(rows) > 5) ", ...", hint)
  }
  invisible(x)
}

# match.arg() with a classed error naming the argument: the choices are the
# default of the calling function's formal of the same name; unique
# abbreviations match, as in match.arg().
match_arg <- function(arg) {
  name <- deparse(substitute(arg))
  parent <- sys.parent()
  choices <- eval(formals(sys.function(parent))[[name]], envir = sys.frame(parent))
  if (identical(arg, choices)) return(choices[[1]])
  check_choice(arg, choices, name)
}
