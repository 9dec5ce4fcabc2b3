// Numerical building blocks shared by gates, experts and the drivers:
// stable log-space helpers, deterministic blocked parallel loops and the
// weighted multinomial-logistic Newton solver used by both the softmax gate
// and the multinomial expert.
#ifndef MOEGATE_NUMERICS_H
#define MOEGATE_NUMERICS_H

#include <RcppEigen.h>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>
#include <optimization/LBFGS.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace moegate {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using Eigen::ArrayXd;
using Eigen::ArrayXXd;
typedef Eigen::Map<const Eigen::MatrixXd> MapMat;
typedef Eigen::Map<const Eigen::VectorXd> MapVec;
// Products over a block of rows have tiny outer dimensions (p, k): they use
// lazyProduct(), since GEMM's packing costs more than the arithmetic there.
// Read-only views of caller-owned matrices (R memory via Map, no copies).
typedef Eigen::Ref<const Eigen::MatrixXd> CMat;

const double kNegInf = -std::numeric_limits<double>::infinity();

// Rows are processed in blocks of fixed size, independent of the number of
// threads. Every reduction sums per-block partial results in block order, so
// 1 and 2 threads produce bit-identical fits.
const Index kBlockRows = 1024;

inline Index n_blocks(Index n) { return (n + kBlockRows - 1) / kBlockRows; }

// Minimum-work rule: a parallel region over n rows uses at most
// n / kMinRowsPerThread threads, so each thread gets at least this many rows.
// A region over fewer rows runs on the calling thread and opens no parallel
// region at all: its work (tens of microseconds) is less than what waking
// and joining a second thread costs, and on a loaded machine GNU OpenMP's
// spinning threads made small fits 2.4-17x slower with 2 threads than with 1.
// bench/bench-threads.R (bench/results-threads-norule.csv, load 12-14 on 2
// cores, without the rule): 2 threads took 0.05-0.16x the speed of one for
// Gaussian fits at n = 2048-16384, 0.37x at 32768, 0.69x at 65536; a
// multinomial workload 0.05-0.4x at n <= 16384, 0.51x at 32768, 0.78x at
// 65536. On a quiet machine 2 threads gave 1.7-1.9x at n = 1e5-1e6 (issue
// 16). With 16384 rows per thread (a Gaussian EM iteration over 16384 rows,
// several passes, took about 9 ms of CPU on one thread in that run, fixed
// costs included) the region overhead is small where threads can pay at
// all. Build with MOEGATE_CPPFLAGS=-DMOEGATE_MIN_PARALLEL_ROWS=1
// in the environment of R CMD INSTALL to measure without the rule.
#ifndef MOEGATE_MIN_PARALLEL_ROWS
#define MOEGATE_MIN_PARALLEL_ROWS 16384
#endif
const Index kMinRowsPerThread = MOEGATE_MIN_PARALLEL_ROWS;

// The number of threads a parallel region over n rows may use: `requested`,
// capped by the minimum-work rule above, or 1 in a process forked from one
// whose OpenMP thread pool may be alive (GNU OpenMP's pool does not survive
// fork(): a parallel region in the child of parallel::mclapply() or future's
// multicore plan waits forever for threads that do not exist). Results do
// not depend on it (fixed blocks, ordered reductions), so a forked child, or
// a fit just below the threshold, computes the same numbers.
int thread_count(int requested, Index n);

// Run f(lo, len) on every block; f must only write to rows [lo, lo + len).
template <class F>
void parallel_blocks(Index n, int requested, F f) {
  const int nthreads = thread_count(requested, n);
  const Index nb = n_blocks(n);
  auto run = [&](Index b) {
    const Index lo = b * kBlockRows;
    f(lo, std::min(kBlockRows, n - lo));
  };
  if (nthreads <= 1 || nb <= 1) {  // no OpenMP runtime call at all
    for (Index b = 0; b < nb; ++b) run(b);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
  for (Index b = 0; b < nb; ++b) run(b);
}

// Deterministic sum over blocks: f(lo, len, acc) adds the block's contribution
// to acc, which starts as a copy of `zero`.
template <class Acc, class F>
Acc block_sum(Index n, int requested, const Acc& zero, F f) {
  const int nthreads = thread_count(requested, n);
  const Index nb = n_blocks(n);
  std::vector<Acc> part(static_cast<size_t>(nb), zero);
  auto run = [&](Index b) {
    const Index lo = b * kBlockRows;
    f(lo, std::min(kBlockRows, n - lo), part[static_cast<size_t>(b)]);
  };
  // The same blocks and the same order of the final sum on either path.
  if (nthreads <= 1 || nb <= 1) {
    for (Index b = 0; b < nb; ++b) run(b);
  } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
    for (Index b = 0; b < nb; ++b) run(b);
  }
  Acc total = zero;
  for (Index b = 0; b < nb; ++b) total += part[static_cast<size_t>(b)];
  return total;
}

// exp(x) for x <= 0 in log-sum-exp sums and probabilities. Below -700 the
// result is < 1e-304, nothing next to the leading term exp(0) = 1, and glibc's
// underflow path (subnormal results, errno) is many times slower than exp.
inline double exp_nonpos(double x) { return x < -700.0 ? 0.0 : std::exp(x); }

// log(1 + exp(x)) without overflow.
inline double log1pexp(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
// log(sigmoid(x)) = -log1pexp(-x).
inline double log_sigmoid(double x) { return -log1pexp(-x); }
inline double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}

// out = A * B for a block of rows A (len x p) and a small coefficient matrix
// B (p x k). With a few columns (the usual designs), one axpy per coefficient
// runs at memory speed where Eigen's coefficient-wise lazy product pays its
// per-coefficient overhead; otherwise a matrix product.
template <class AType, class Out>
inline void rows_times(const AType& A, const MatrixXd& B, Out&& out) {
  if (A.cols() > 8) {
    out.noalias() = A * B;
    return;
  }
  for (Index c = 0; c < B.cols(); ++c) {
    auto oc = out.col(c);
    if (A.cols() == 0) { oc.setZero(); continue; }
    oc = B(0, c) * A.col(0);
    for (Index j = 1; j < A.cols(); ++j) oc += B(j, c) * A.col(j);
  }
}

// Weighted cross-products of a block of design rows for several weight
// columns at once: column c of `acc` (T x C, T = P (P + 1) / 2) receives the
// upper triangle, packed column by column, of sum_r W(r, c) x_r x_r', with
// x_r = [1, A_r] (`intercept`, P = A.cols() + 1) or A_r (P = A.cols()). The
// products x_rj x_rl are formed once per row and block (T per row), and every
// weight column then costs one matrix product Q'W (2 T per row): about half
// the work of one X' diag(w) X per column, in one blocked product instead of
// C lazy ones. Rows go in sub-blocks of 128 so that Q stays in cache.
template <class AType, class WType, class Out>
void add_weighted_grams(const AType& A, bool intercept, const WType& W, Out&& acc) {
  const Index len = A.rows(), off = intercept ? 1 : 0, P = A.cols() + off;
  const Index T = P * (P + 1) / 2;
  const Index sub = 128;
  MatrixXd Q(std::min(len, sub), T);
  for (Index lo = 0; lo < len; lo += sub) {
    const Index m = std::min(sub, len - lo);
    if (Q.rows() != m) Q.resize(m, T);
    Index t = 0;
    for (Index l = 0; l < P; ++l) {
      for (Index j = 0; j <= l; ++j, ++t) {
        if (l < off) {
          Q.col(t).setOnes();
        } else if (j < off) {
          Q.col(t) = A.col(l - off).segment(lo, m);
        } else {
          Q.col(t) = A.col(j - off).segment(lo, m).cwiseProduct(A.col(l - off).segment(lo, m));
        }
      }
    }
    acc.noalias() += Q.transpose() * W.middleRows(lo, m);
  }
}

// Symmetric P x P matrix from the packed upper triangle of
// add_weighted_grams() (`packed`: T values).
template <class V>
MatrixXd unpack_gram(const V& packed, Index P) {
  MatrixXd G(P, P);
  Index t = 0;
  for (Index l = 0; l < P; ++l)
    for (Index j = 0; j <= l; ++j, ++t) G(j, l) = G(l, j) = packed(t);
  return G;
}

// log(sum_j exp(A(r, j))) of one row, without overflow.
inline double log_sum_exp_row(const MatrixXd& A, Index r) {
  const Index k = A.cols();
  double m = kNegInf;
  for (Index j = 0; j < k; ++j) m = std::max(m, A(r, j));
  if (!std::isfinite(m)) return m;
  double s = 0.0;
  // exp(0) is exactly 1: the largest terms' exponentials are not computed
  // (same sum, in the same order; one exp call in k saved per row).
  for (Index j = 0; j < k; ++j) {
    const double d = A(r, j) - m;
    s += d == 0.0 ? 1.0 : exp_nonpos(d);
  }
  return m + std::log(s);
}

// BFGS update of a positive-definite curvature matrix H (minus the Hessian of
// a maximised function, or the Hessian of a minimised one) from a step and
// the change dg of the gradient that H models along it (H step ~ dg). Kept
// only while positive curvature holds along the step (step' dg > 0), so H
// stays positive definite; returns false, H unchanged, otherwise.
bool bfgs_update(MatrixXd& H, const VectorXd& step, const VectorXd& dg);

// The Newton step H^{-1} g for a negative Hessian H (symmetric), with Levenberg
// damping only when H is not safely positive definite: diagonal damping from
// damp0 times H's largest diagonal entry, multiplied by `growth` per attempt.
// Empty when no attempt gives a finite step.
VectorXd damped_newton_step(const MatrixXd& H, const VectorXd& g, int attempts,
                            double damp0, double growth);

// Result of a weighted multinomial-logistic Newton solve.
struct NewtonResult {
  double objective;  // sum_n sum_c T_nc log p_nc at the returned coefficients
  int steps;
  bool improved;      // B moved; MultinomOptions::logp_out (prob_out) then holds log p (p) at B
};

// Options of multinom_newton().
// `ridge` (>= 0) adds 0.5 * ridge * ||B||^2 as a penalty on all coefficients;
// it is zero unless the caller needs a strictly concave problem.
// `intercept`: the design is [1, Z] without Z holding the column of ones
// (row 0 of B is the intercept), so callers need not build it.
// `logp0` (optional, n x K) holds the log-probabilities at the starting B
// when the caller has them already (the E-step's gate weights); the first
// evaluation then needs no exponentials or logarithms.
// `logp_out` (optional): receives the n x K log-probabilities at the returned
// B when the solve moved B (NewtonResult::improved), from the pass that
// accepted the last step, so the caller's next E-step need not recompute them;
// it may be the same matrix as logp0. `logp_scratch` (optional): a buffer for
// trial points' log-probabilities. `prob0`, `prob_out`, `prob_scratch`: the
// same for the probabilities of the first K - 1 categories (n x (K - 1));
// prob0 is read only together with logp0, and saves the exponentials of the
// first evaluation. Buffers of the right size are reused.
// `grad_stop` (> 0): the solve does not stop on a small predicted gain while
// some coefficient's |gradient| max(|B_j|, 1) exceeds it (the gradient
// stopping rule of EM, which a gain test relative to the objective cannot
// see at large n: EM would stall there), down to gains at the objective's
// rounding level.
struct MultinomOptions {
  double ridge = 0.0;
  double grad_stop = 0.0;
  bool intercept = false;
  const MatrixXd* logp0 = nullptr;
  MatrixXd* logp_out = nullptr;
  MatrixXd* logp_scratch = nullptr;
  const MatrixXd* prob0 = nullptr;
  MatrixXd* prob_out = nullptr;
  MatrixXd* prob_scratch = nullptr;
};

// Maximise sum_n sum_c T(n, c) log p_c(z_n), p = softmax(Z B, 0) with the
// last category as reference (its coefficients are zero). Z: n x p, T: n x K
// soft counts, B: p x (K - 1), updated in place. Newton with the full Hessian
// of the free coefficients and step halving, so the objective never decreases.
NewtonResult multinom_newton(const CMat& Z, const CMat& T, MatrixXd& B,
                             int max_steps, double tol, int nthreads,
                             const MultinomOptions& opt = MultinomOptions());

// Objective of multinom_newton and (optionally) its gradient (p x (K - 1)).
double multinom_objective(const CMat& Z, const CMat& T, const MatrixXd& B,
                          int nthreads, MatrixXd* grad);

// Result of lbfgs_best(): the best point seen and whether L-BFGS stopped on
// its own criteria (rather than on a failed line search or the iteration cap).
struct LbfgsResult {
  VectorXd x;
  double f;
  int evals;
  bool finished;
  std::string message;
  bool guarded = false;  // stopped by the `guard` of lbfgs_best()
};

// Thrown by lbfgs_best()'s evaluation wrapper to leave LBFGSpp's solver when
// the guard refuses a point (not a std::exception: only lbfgs_best() catches it).
struct LbfgsGuardStop {};

// Minimise f(x, grad) (returning the objective and filling its gradient) by
// L-BFGS (LBFGSpp, More-Thuente line search), keeping the best point seen: a
// line search that fails near a flat optimum never loses progress, and
// non-finite evaluations count as +Inf.
// `memory`: correction pairs kept (LBFGSpp's m; its default 6).
// `guard` (optional): asked about every point after the start that would
// become the best seen; when it returns true L-BFGS stops there, the best point stays the
// previous one and `guarded` is set. It only reads the points, so a run it
// never stops is the same run as without it.
template <class F>
LbfgsResult lbfgs_best(F&& f, VectorXd x, int maxit, double delta, double eps,
                       int max_linesearch, int memory = 6,
                       const std::function<bool(const VectorXd&)>& guard = nullptr) {
  LbfgsResult res{x, std::numeric_limits<double>::infinity(), 0, false, ""};
  auto tracked = [&](const VectorXd& xc, VectorXd& grad) {
    ++res.evals;
    const double v = f(xc, grad);
    if (!std::isfinite(v) || !grad.allFinite()) {
      grad.setZero();
      return std::numeric_limits<double>::infinity();
    }
    if (v < res.f) {
      if (guard && res.evals > 1 && guard(xc)) throw LbfgsGuardStop();
      res.f = v;
      res.x = xc;
    }
    return v;
  };
  VectorXd g0(x.size());
  if (!std::isfinite(tracked(x, g0)) || g0.norm() == 0) {
    res.finished = true;
    return res;
  }
  LBFGSpp::LBFGSParam<double> param;
  param.epsilon = eps;
  param.epsilon_rel = eps;
  param.past = 1;
  param.delta = delta;
  param.max_iterations = maxit;
  param.max_linesearch = max_linesearch;
  param.m = memory;
  LBFGSpp::LBFGSSolver<double, LBFGSpp::LineSearchMoreThuente> solver(param);
  double fx = 0.0;
  try {
    const int iters = solver.minimize(tracked, x, fx);
    res.finished = iters < maxit;
    res.message = res.finished ? "converged" : "maximum iterations reached";
  } catch (const LbfgsGuardStop&) {
    res.guarded = true;
    res.message = "stopped by the guard";
  } catch (const std::exception& e) {
    res.message = std::string("line search ended: ") + e.what();
  }
  return res;
}

// ---- Smallest enclosing ball ------------------------------------------------

// The radius of the smallest ball enclosing the columns of P (d x k points):
// Welzl's algorithm in Gaertner's move-to-front form (deterministic: the
// points are taken in column order, no shuffling), exact up to rounding.
// A point is pushed onto the ball's support only when it lies off the
// affine hull of the support (orthogonal part above a relative 1e-12 of its
// offset); coincident and collinear points therefore never make a singular
// support. The radius returned is the largest distance of any column from
// the centre found, so the ball encloses every point whatever the rounding.
// 0 points: 0.
double enclosing_radius(const MatrixXd& P);

// ---- Column helpers of the R-side checks and starts (read in place) --------

// The k-means start's assignment of every row to its nearest centre: the
// columns x_cols (0-based) of X and all columns of Y, each divided by its
// scale (one per variable, in that order), squared distances to the rows of
// `centres` (k x L) summed over the variables in that order; the first
// nearest centre wins ties. Returns 0-based groups.
std::vector<int> nearest_centre(const CMat& X, const std::vector<int>& x_cols,
                                const CMat& Y, const std::vector<double>& scales,
                                const CMat& centres);

// Whether columns offset, ..., offset + U.cols() - 1 of X (0-based) hold
// exactly U's numbers.
bool same_columns(const CMat& X, Index offset, const CMat& U);

// Which columns of M hold one value in every row (== to the first row).
std::vector<bool> constant_columns(const CMat& M);

// Per column j of M: centre[j] (R's mean() of the column when `centre`, else
// 0) and msd[j], the mean of the squared deviations from it, both with the
// arithmetic of R's mean() (a long double sum and one refinement pass).
void column_moments(const CMat& M, bool centre, VectorXd& centres, VectorXd& msd);

// (M[, j] - centre[j]) / scale[j] for every column j into `out` (n x p,
// column-major), column icol (0-based; -1: none) set to 1 and columns with
// centre 0 and scale 1 copied: R's scale_columns() arithmetic, without its
// per-column temporaries.
void scale_columns(const CMat& M, const VectorXd& centre, const VectorXd& scale, Index icol,
                   double* out);

}  // namespace moegate

#endif
