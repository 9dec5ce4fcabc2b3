#include "numerics.h"
#include <algorithm>
#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace moegate {

namespace {

// Set in the child of every fork() after the library was loaded (the
// pthread_atfork handler is registered by a static initialiser at load).
// data.table guards its OpenMP regions the same way.
bool forked_child = false;

#if !defined(_WIN32)
void mark_forked_child() { forked_child = true; }
struct ForkHandler {
  ForkHandler() { pthread_atfork(nullptr, nullptr, mark_forked_child); }
};
const ForkHandler fork_handler;
#endif

}  // namespace

int thread_count(int requested, Index n) {
  if (requested < 1 || forked_child) return 1;
  const Index by_work = std::max<Index>(1, n / std::max<Index>(kMinRowsPerThread, 1));
  return static_cast<int>(std::min<Index>(requested, by_work));
}

namespace {

// Objective, gradient (p x (K-1)) and negative Hessian (upper blocks) in one
// pass over the data. Per row one exp per category and one log: the
// probabilities reuse the exponentials of the log-sum-exp.
struct MultinomEval {
  double objective;
  MatrixXd grad;
  MatrixXd neg_hess;
};

enum class MultinomPass { kObjective, kGradient, kHessian };

// Up to this many coefficients per category (gates with an intercept and up
// to three covariates), the gradient and the Hessian blocks are accumulated
// in one pass over a data block's rows, in registers; beyond it, as matrix
// products (Z' resid, Z' diag(w) Z per block of categories).
const Index kFusedMaxCoef = 4;

// Adds the gradient (a's columns 1..km1) and the upper blocks of the negative
// Hessian (from column 1 + km1; blocks filled whole) of a block of rows,
// given its probabilities, row totals and residuals, for P coefficients per
// category: row r's coefficient vector is z = [1, Z_r] with an implicit
// intercept, else Z_r. One pass over the rows per category (gradient) and per
// pair of categories (Hessian block), with the sums in registers.
template <int P, bool I, class ZBlock>
void fused_grad_hess(const ZBlock& Zb, const ArrayXXd& prob, const ArrayXd& tot,
                     const MatrixXd& resid, MatrixXd& a) {
  constexpr int tri = P * (P + 1) / 2;  // distinct entries of z z'
  constexpr int off = I ? 1 : 0;
  const Index len = prob.rows(), km1 = prob.cols();
  const double* zc[P];
  for (int j = off; j < P; ++j) zc[j] = &Zb.coeffRef(0, j - off);
  auto z_at = [&](Index r, int j) { return j < off ? 1.0 : zc[j][r]; };
  for (Index c = 0; c < km1; ++c) {
    double g[P] = {};
    for (Index r = 0; r < len; ++r) {
      const double e = resid(r, c);
      for (int u = 0; u < P; ++u) g[u] += e * z_at(r, u);
    }
    for (int u = 0; u < P; ++u) a(u, 1 + c) += g[u];
  }
  for (Index c = 0; c < km1; ++c) {
    for (Index c2 = c; c2 < km1; ++c2) {
      double h[tri] = {};
      const double diag = c == c2 ? 1.0 : 0.0;
      for (Index r = 0; r < len; ++r) {
        const double w = tot(r) * prob(r, c) * (diag - prob(r, c2));
        double z[P];
        for (int u = 0; u < P; ++u) z[u] = z_at(r, u);
        int t = 0;
        for (int u = 0; u < P; ++u)
          for (int v = u; v < P; ++v, ++t) h[t] += w * z[u] * z[v];
      }
      auto blk = a.block(c * P, 1 + km1 + c2 * P, P, P);
      int t = 0;
      for (int u = 0; u < P; ++u) {
        for (int v = u; v < P; ++v, ++t) {
          blk(u, v) += h[t];
          if (v != u) blk(v, u) += h[t];
        }
      }
    }
  }
}

template <class ZBlock>
void fused_grad_hess(const ZBlock& Zb, bool intercept, const ArrayXXd& prob,
                     const ArrayXd& tot, const MatrixXd& resid, MatrixXd& a) {
  const Index p = Zb.cols() + (intercept ? 1 : 0);
  if (intercept) {
    switch (p) {
      case 1: fused_grad_hess<1, true>(Zb, prob, tot, resid, a); break;
      case 2: fused_grad_hess<2, true>(Zb, prob, tot, resid, a); break;
      case 3: fused_grad_hess<3, true>(Zb, prob, tot, resid, a); break;
      default: fused_grad_hess<4, true>(Zb, prob, tot, resid, a); break;
    }
  } else {
    switch (p) {
      case 1: fused_grad_hess<1, false>(Zb, prob, tot, resid, a); break;
      case 2: fused_grad_hess<2, false>(Zb, prob, tot, resid, a); break;
      case 3: fused_grad_hess<3, false>(Zb, prob, tot, resid, a); break;
      default: fused_grad_hess<4, false>(Zb, prob, tot, resid, a); break;
    }
  }
}

// `logp_out` and `prob_out` (optional, only without o.logp0): receive log p
// at B and p of the first K - 1 categories.
MultinomEval multinom_eval(const CMat& Z, const CMat& T, const MatrixXd& B, int nthreads,
                           MultinomPass pass, const MultinomOptions& o, MatrixXd* logp_out,
                           MatrixXd* prob_out = nullptr) {
  const bool hessian = pass == MultinomPass::kHessian;
  const bool gradient = pass != MultinomPass::kObjective;
  const Index n = T.rows(), p = B.rows(), km1 = B.cols();
  const Index m = p * km1;
  // With an implicit intercept, coefficient row 0 multiplies a column of
  // ones and Z's columns go with rows 1..p-1.
  const Index off = o.intercept ? 1 : 0;
  const MatrixXd* logp0 = o.logp0;
  const MatrixXd* prob0 = logp0 ? o.prob0 : nullptr;
  if (logp0) prob_out = nullptr;
  if (logp_out && !logp0) logp_out->resize(n, km1 + 1);
  if (prob_out) prob_out->resize(n, km1);
  // Column 0: objective (row 0); columns 1..km1: gradient; then the Hessian.
  // Beyond kFusedMaxCoef coefficients the Hessian is accumulated as packed
  // weighted Grams (add_weighted_grams(), one column per pair of categories
  // c <= c2, after the Hessian's columns) and unpacked after the sum.
  const bool packed = hessian && p > kFusedMaxCoef;
  const Index n_tri = p * (p + 1) / 2, pairs = km1 * (km1 + 1) / 2;
  const Index hess_cols = hessian ? (packed ? pairs : m) : 0;
  MatrixXd zero = MatrixXd::Zero(std::max<Index>(packed ? n_tri : p, m),
                                 gradient ? 1 + km1 + hess_cols : 1);
  MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
    const auto Tb = T.middleRows(lo, len);
    const auto Zb = Z.middleRows(lo, len);
    MatrixXd resid(len, km1);
    ArrayXXd prob(len, km1);
    ArrayXd tot(len);
    double f = 0.0;
    if (logp0) {
      // Column-wise over the block: the probabilities are copied (or are the
      // exponentials of logp0), and 0 * log 0 counts as 0.
      const auto L = logp0->middleRows(lo, len).array();
      if (prob0) prob = prob0->middleRows(lo, len).array();
      else prob = L.leftCols(km1).unaryExpr([](double v) { return exp_nonpos(v); });
      tot = Tb.array().rowwise().sum();
      f = (Tb.array() != 0).select(Tb.array() * L, 0.0).sum();
      resid = Tb.leftCols(km1) - (prob.colwise() * tot).matrix();
    } else {
      MatrixXd eta(len, km1);
      rows_times(Zb, B.bottomRows(p - off), eta);
      if (o.intercept) eta.rowwise() += B.row(0);
      for (Index r = 0; r < len; ++r) {
        // The largest linear predictor (the reference category's is 0); its
        // exponential is exactly 1 and is not computed.
        double mx = 0.0;
        Index at = km1;
        for (Index c = 0; c < km1; ++c) {
          if (eta(r, c) > mx) { mx = eta(r, c); at = c; }
        }
        double s = at == km1 ? 1.0 : exp_nonpos(-mx);
        for (Index c = 0; c < km1; ++c) {
          prob(r, c) = c == at ? 1.0 : exp_nonpos(eta(r, c) - mx);
          s += prob(r, c);
        }
        const double lse = mx + std::log(s);
        const double inv = 1.0 / s;
        double t_row = Tb(r, km1);
        double fr = -Tb(r, km1) * lse;
        for (Index c = 0; c < km1; ++c) {
          t_row += Tb(r, c);
          if (Tb(r, c) != 0) fr += Tb(r, c) * (eta(r, c) - lse);
        }
        if (logp_out) {
          for (Index c = 0; c < km1; ++c) (*logp_out)(lo + r, c) = eta(r, c) - lse;
          (*logp_out)(lo + r, km1) = -lse;
        }
        f += fr;
        if (!gradient && !prob_out) continue;
        for (Index c = 0; c < km1; ++c) prob(r, c) *= inv;
        if (prob_out) {
          for (Index c = 0; c < km1; ++c) (*prob_out)(lo + r, c) = prob(r, c);
        }
        if (!gradient) continue;
        tot(r) = t_row;
        for (Index c = 0; c < km1; ++c) resid(r, c) = Tb(r, c) - t_row * prob(r, c);
      }
    }
    a(0, 0) += f;
    if (!gradient) return;
    if (hessian && p <= kFusedMaxCoef) {
      fused_grad_hess(Zb, o.intercept, prob, tot, resid, a);
      return;
    }
    if (o.intercept) a.block(0, 1, 1, km1) += resid.colwise().sum();
    a.block(off, 1, p - off, km1).noalias() += Zb.transpose().lazyProduct(resid);
    if (!hessian) return;
    // Block (c, c2) of the negative Hessian: Z1' diag(w) Z1 with Z1 = [1, Z]
    // when the intercept is implicit, w = tot p_c (delta_cc2 - p_c2).
    MatrixXd w(len, pairs);
    Index pr = 0;
    for (Index c = 0; c < km1; ++c)
      for (Index c2 = c; c2 < km1; ++c2, ++pr)
        w.col(pr) = (tot * prob.col(c) * ((c == c2 ? 1.0 : 0.0) - prob.col(c2))).matrix();
    add_weighted_grams(Zb, o.intercept, w, a.block(0, 1 + km1, n_tri, pairs));
  });
  MultinomEval out;
  out.objective = acc(0, 0);
  if (gradient) out.grad = acc.block(0, 1, p, km1);
  if (packed) {
    out.neg_hess.resize(m, m);
    Index pr = 0;
    for (Index c = 0; c < km1; ++c) {
      for (Index c2 = c; c2 < km1; ++c2, ++pr) {
        const MatrixXd blk = unpack_gram(acc.col(1 + km1 + pr).head(n_tri), p);
        out.neg_hess.block(c * p, c2 * p, p, p) = blk;
        out.neg_hess.block(c2 * p, c * p, p, p) = blk;
      }
    }
  } else if (hessian) {
    out.neg_hess = acc.block(0, 1 + km1, m, m);
    out.neg_hess = out.neg_hess.selfadjointView<Eigen::Upper>();
  }
  return out;
}

}  // namespace

double multinom_objective(const CMat& Z, const CMat& T, const MatrixXd& B, int nthreads,
                          MatrixXd* grad) {
  MultinomEval e = multinom_eval(Z, T, B, nthreads, MultinomPass::kGradient, MultinomOptions(), nullptr);
  if (grad) *grad = e.grad;
  return e.objective;
}

bool bfgs_update(MatrixXd& H, const VectorXd& step, const VectorXd& dg) {
  const double sy = step.dot(dg);
  const VectorXd Hs = H * step;
  const double sHs = step.dot(Hs);
  if (!(sy > 1e-12 * step.norm() * dg.norm() && sHs > 0)) return false;
  H.noalias() -= (Hs * Hs.transpose()) / sHs;
  H.noalias() += (dg * dg.transpose()) / sy;
  return true;
}

VectorXd damped_newton_step(const MatrixXd& H, const VectorXd& g, int attempts,
                            double damp0, double growth) {
  const double scale = std::max(H.diagonal().cwiseAbs().maxCoeff(), 1e-300);
  double damp = 0.0;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    MatrixXd Hd = H;
    if (damp > 0) Hd.diagonal().array() += damp;
    Eigen::LDLT<MatrixXd> ldlt(Hd);
    if (ldlt.info() == Eigen::Success && ldlt.isPositive() &&
        ldlt.vectorD().minCoeff() > 1e-12 * scale) {
      VectorXd delta = ldlt.solve(g);
      if (delta.allFinite()) return delta;
    }
    damp = damp == 0 ? damp0 * scale : damp * growth;
  }
  return VectorXd();
}

// Relative gains below this are not resolved by the objective's sum over
// the data (rounding of ~1e6 terms): no step is tried for them.
const double kRoundingGain = 1e-13;

NewtonResult multinom_newton(const CMat& Z, const CMat& T, MatrixXd& B, int max_steps,
                             double tol, int nthreads, const MultinomOptions& opt) {
  const Index p = B.rows(), km1 = B.cols();
  const double ridge = opt.ridge;
  const Index m = p * km1;
  // A full pass (objective, gradient, Hessian) at the current point; trial
  // points get an objective-only pass that also writes their
  // log-probabilities, so the full pass at an accepted point needs no
  // exponentials. When a full step gains what the quadratic model predicted,
  // to within the tolerance, the solve stops there without the full pass: the
  // model's error is third order in the step, the next step's gain fourth
  // order. Near EM convergence a solve is then one full pass (from the
  // E-step's log-weights) and one objective-only pass.
  auto full = [&](const MatrixXd& Bc, const MatrixXd* logp, const MatrixXd* prob) {
    MultinomOptions o = opt;
    o.logp0 = logp;
    o.prob0 = prob;
    MultinomEval e = multinom_eval(Z, T, Bc, nthreads, MultinomPass::kHessian, o, nullptr);
    if (ridge > 0) {
      e.objective -= 0.5 * ridge * Bc.squaredNorm();
      e.grad -= ridge * Bc;
      e.neg_hess.diagonal().array() += ridge;
    }
    return e;
  };
  // Log-probabilities of the accepted point and of the trial point; the
  // caller's buffers when given, so repeated solves do not reallocate them.
  // Their probabilities likewise, so that the full pass at an accepted point
  // needs no exponentials either.
  MatrixXd own_cur, own_trial, own_cur_prob, own_trial_prob;
  MatrixXd& cur_logp = opt.logp_out ? *opt.logp_out : own_cur;
  MatrixXd& trial_logp = opt.logp_scratch ? *opt.logp_scratch : own_trial;
  MatrixXd& cur_prob = opt.prob_out ? *opt.prob_out : own_cur_prob;
  MatrixXd& trial_prob = opt.prob_scratch ? *opt.prob_scratch : own_trial_prob;
  auto light = [&](const MatrixXd& Bc) {
    MultinomOptions o = opt;
    o.logp0 = nullptr;
    double f = multinom_eval(Z, T, Bc, nthreads, MultinomPass::kObjective, o, &trial_logp,
                             &trial_prob).objective;
    if (ridge > 0) f -= 0.5 * ridge * Bc.squaredNorm();
    return f;
  };
  NewtonResult res{0.0, 0, false};
  MultinomEval cur = full(B, opt.logp0, opt.prob0);  // prob0 is read only with logp0
  const double stop = tol * (std::abs(cur.objective) + 1.0);
  for (int step = 0; step < max_steps; ++step) {
    const VectorXd g = Eigen::Map<const VectorXd>(cur.grad.data(), m);
    const MatrixXd& H = cur.neg_hess;
    // Levenberg damping only when the Hessian is not safely positive definite
    // (collinear columns, duplicated experts, separation).
    const VectorXd delta = damped_newton_step(H, g, 12, 1e-10, 100.0);
    if (delta.size() == 0) break;
    // Half the Newton decrement predicts the remaining gain: stop before
    // spending a pass on a step that cannot matter.
    const double predicted = 0.5 * g.dot(delta);
    if (predicted <= stop) {
      if (!(opt.grad_stop > 0) || predicted <= kRoundingGain * (std::abs(cur.objective) + 1.0))
        break;
      double worst = 0.0;
      for (Index j = 0; j < m; ++j)
        worst = std::max(worst, std::abs(g(j)) * std::max(std::abs(B(j)), 1.0));
      if (worst <= opt.grad_stop) break;
    }
    double t = 1.0;
    bool accepted = false, done = false;
    for (int h = 0; h < 30; ++h) {
      MatrixXd Bnew = B + t * Eigen::Map<const MatrixXd>(delta.data(), p, km1);
      const double f = light(Bnew);
      if (std::isfinite(f) && f >= cur.objective) {
        const double gain = f - cur.objective;
        B = Bnew;
        cur_logp.swap(trial_logp);
        cur_prob.swap(trial_prob);
        accepted = true;
        if ((t == 1.0 && std::abs(gain - predicted) <= stop) || step + 1 == max_steps) {
          cur.objective = f;
          done = true;
        } else {
          cur = full(B, &cur_logp, &cur_prob);
        }
        break;
      }
      t *= 0.5;
    }
    if (!accepted) break;
    res.steps = step + 1;
    res.improved = true;
    if (done) break;
  }
  res.objective = cur.objective;
  return res;
}

// ---- Column helpers of the R-side checks and starts -------------------------

// The same arithmetic as the R loop it replaced (R's x^2 is x * x), read in
// place, without that loop's 2 k L full-length temporaries.
std::vector<int> nearest_centre(const CMat& X, const std::vector<int>& x_cols,
                                const CMat& Y, const std::vector<double>& scales,
                                const CMat& centres) {
  const Index n = X.rows(), k = centres.rows();
  const size_t nx = x_cols.size(), L = nx + static_cast<size_t>(Y.cols());
  std::vector<const double*> col(L);
  for (size_t l = 0; l < nx; ++l) col[l] = X.data() + static_cast<Index>(x_cols[l]) * n;
  for (Index j = 0; j < Y.cols(); ++j) col[nx + static_cast<size_t>(j)] = Y.data() + j * n;
  std::vector<int> group(static_cast<size_t>(n));
  std::vector<double> d2(static_cast<size_t>(k));
  for (Index r = 0; r < n; ++r) {
    std::fill(d2.begin(), d2.end(), 0.0);
    for (size_t l = 0; l < L; ++l) {
      const double v = col[l][r] / scales[l];
      for (Index j = 0; j < k; ++j) {
        const double diff = v - centres(j, static_cast<Index>(l));
        d2[static_cast<size_t>(j)] = d2[static_cast<size_t>(j)] + diff * diff;
      }
    }
    Index best = 0;
    for (Index j = 1; j < k; ++j)
      if (d2[static_cast<size_t>(j)] < d2[static_cast<size_t>(best)]) best = j;
    group[static_cast<size_t>(r)] = static_cast<int>(best);
  }
  return group;
}

// Compared in place (the R comparison made three full-length temporaries
// per column).
bool same_columns(const CMat& X, Index offset, const CMat& U) {
  if (X.rows() != U.rows() || offset < 0 || offset + U.cols() > X.cols()) return false;
  for (Index j = 0; j < U.cols(); ++j)
    for (Index r = 0; r < U.rows(); ++r)
      if (!(X(r, offset + j) == U(r, j))) return false;
  return true;
}

// As all(M[, j] == M[1, j]) in R, without copies of the columns.
std::vector<bool> constant_columns(const CMat& M) {
  std::vector<bool> out(static_cast<size_t>(M.cols()));
  for (Index j = 0; j < M.cols(); ++j) {
    bool same = true;
    for (Index r = 1; r < M.rows() && same; ++r) same = M(r, j) == M(0, j);
    out[static_cast<size_t>(j)] = same;
  }
  return out;
}

namespace {
// R's mean() of doubles (summary.c): a long double sum, divided by n, then
// corrected by the mean of the residuals, so the numbers equal mean()'s.
template <class Get>
double r_mean(Index n, Get get) {
  long double s = 0.0;
  for (Index i = 0; i < n; ++i) s += get(i);
  s /= n;
  if (std::isfinite(static_cast<double>(s))) {
    long double t = 0.0;
    for (Index i = 0; i < n; ++i) t += (get(i) - s);
    s += t / n;
  }
  return static_cast<double>(s);
}
}  // namespace

// The same numbers as mean(M[, j]) and mean((M[, j] - centre)^2) in R, in
// place (the R code made two full-length temporaries per column).
void column_moments(const CMat& M, bool centre, VectorXd& centres, VectorXd& msd) {
  const Index n = M.rows(), p = M.cols();
  centres.resize(p);
  msd.resize(p);
  for (Index j = 0; j < p; ++j) {
    const double* v = M.data() + j * n;
    const double cj = centre ? r_mean(n, [v](Index i) { return v[i]; }) : 0.0;
    centres(j) = cj;
    msd(j) = r_mean(n, [v, cj](Index i) {
      const double d = v[i] - cj;
      return d * d;
    });
  }
}

void scale_columns(const CMat& M, const VectorXd& centre, const VectorXd& scale, Index icol,
                   double* out) {
  const Index n = M.rows();
  for (Index j = 0; j < M.cols(); ++j) {
    double* o = out + j * n;
    if (j == icol) {
      std::fill(o, o + n, 1.0);
    } else if (centre(j) != 0.0 || scale(j) != 1.0) {
      const double c = centre(j), s = scale(j);
      for (Index r = 0; r < n; ++r) o[r] = (M(r, j) - c) / s;
    } else {
      for (Index r = 0; r < n; ++r) o[r] = M(r, j);
    }
  }
}

// ---- Smallest enclosing ball ----------------------------------------------------

namespace {

// The current ball of the move-to-front recursion and its support, with the
// orthogonalised support offsets of Gaertner's incremental push (B. Gaertner,
// "Fast and robust smallest enclosing balls", ESA 1999): support point m is
// q0 + Q_m; v_m is Q_m orthogonalised against v_1..v_{m-1}, z_m = 2 ||v_m||^2,
// and c_m, r2_m the smallest ball with support points 0..m on its boundary.
class EnclosingBall {
 public:
  explicit EnclosingBall(Index d) : d_(d) {}
  Index size() const { return m_; }
  // Squared distance of p from the current centre minus the squared radius
  // (positive: outside); every point is outside the empty ball (no push yet).
  // The current ball is the last one pushed: pop() keeps it.
  double excess(const VectorXd& p) const {
    if (c_.empty()) return std::numeric_limits<double>::infinity();
    return (p - c_.back()).squaredNorm() - r2_.back();
  }
  // Push p onto the support; false (nothing changed) when p lies on the
  // support's affine hull to rounding.
  bool push(const VectorXd& p) {
    if (m_ == 0) {
      q0_ = p;
      v_.assign(1, VectorXd::Zero(d_));
      z_.assign(1, 0.0);
      c_.assign(1, p);
      r2_.assign(1, 0.0);
      m_ = 1;
      return true;
    }
    const VectorXd Q = p - q0_;
    VectorXd vm = Q;
    for (Index i = 1; i < m_; ++i) vm -= (2.0 * v_[i].dot(Q) / z_[i]) * v_[i];
    const double z = 2.0 * vm.squaredNorm();
    if (!(z > 2e-24 * Q.squaredNorm())) return false;
    const double e = (p - c_[m_ - 1]).squaredNorm() - r2_[m_ - 1];
    const double f = e / z;
    // The stacks hold levels 0..m_-1 only: after pops, overwrite level m_.
    v_.resize(m_); z_.resize(m_); c_.resize(m_); r2_.resize(m_);
    v_.push_back(vm);
    z_.push_back(z);
    c_.push_back(c_[m_ - 1] + f * vm);
    r2_.push_back(r2_[m_ - 1] + 0.5 * e * f);
    m_++;
    return true;
  }
  // Drop the last support point; the ball stays (it still encloses the
  // points seen, with the remaining support on its boundary).
  void pop() { m_--; }
  const VectorXd& centre() const { return c_.back(); }

 private:
  Index d_;
  Index m_ = 0;
  VectorXd q0_;
  std::vector<VectorXd> v_, c_;
  std::vector<double> z_, r2_;
};

// Gaertner's mtf_mb(): the smallest ball enclosing the points before `end`
// in `order` with the current support on its boundary.
void move_to_front_ball(const MatrixXd& P, std::vector<Index>& order, size_t end,
                        EnclosingBall& ball) {
  if (ball.size() == P.rows() + 1) return;
  for (size_t i = 0; i < end; ++i) {
    const VectorXd p = P.col(order[i]);
    if (ball.excess(p) > 0 && ball.push(p)) {
      move_to_front_ball(P, order, i, ball);
      ball.pop();
      std::rotate(order.begin(), order.begin() + i, order.begin() + i + 1);
    }
  }
}

}  // namespace

double enclosing_radius(const MatrixXd& P) {
  const Index k = P.cols();
  if (k == 0) return 0.0;
  std::vector<Index> order(static_cast<size_t>(k));
  for (Index i = 0; i < k; ++i) order[static_cast<size_t>(i)] = i;
  EnclosingBall ball(P.rows());
  move_to_front_ball(P, order, order.size(), ball);
  double r = 0.0;
  for (Index i = 0; i < k; ++i) r = std::max(r, (P.col(i) - ball.centre()).norm());
  return r;
}

}  // namespace moegate
