#include "expert.h"
#include <stdexcept>

namespace moegate {

namespace {

const double kLog2Pi = 1.8378770664093453;

// Experts whose total responsibility is this small keep their parameters:
// the M-step has nothing to estimate them from.
const double kMinWeight = 1e-8;

// Solves the weighted normal equations A a = b (A = X'WX) with a test of
// numerical rank that does not depend on the units of the columns: A is
// equilibrated to unit diagonal first (a column scaled by c scales its row
// and column of A by c), so the pivots of its LDLT factorisation are the
// conditional variances of the columns relative to their own size, and a
// pivot below 1e-12 means a column is a linear combination of the others to
// about 12 digits. An absolute test against the largest diagonal entry (as
// before) rejected well-posed designs whose columns differ in scale, e.g.
// [1, x + 1000], and the M-step was silently skipped. False when A is
// numerically singular.
bool solve_normal_equations(const MatrixXd& A, const VectorXd& b, VectorXd& a) {
  const Index p = A.rows();
  if (p == 0) return false;
  VectorXd d = A.diagonal();
  if (!d.allFinite() || (d.array() <= 0).any()) return false;
  d = d.cwiseSqrt().cwiseInverse();
  const MatrixXd As = d.asDiagonal() * A * d.asDiagonal();
  Eigen::LDLT<MatrixXd> ldlt(As);
  if (ldlt.info() != Eigen::Success || !ldlt.isPositive() || ldlt.vectorD().minCoeff() <= 1e-12)
    return false;
  a = d.asDiagonal() * ldlt.solve(d.asDiagonal() * b);
  return a.allFinite();
}

class GaussianExpert : public Expert {
 public:
  GaussianExpert(const ExpertSpec& spec, Index p, Index k)
      : spec_(spec), p_(p), k_(k), act_(make_activation(spec.activation)) {}

  Index n_par() const override { return k_ * (p_ + 1); }

  VectorXd pack(const ExpertParams& e) const override {
    VectorXd theta(n_par());
    for (Index i = 0; i < k_; ++i) theta.segment(i * p_, p_) = e.coef.col(i);
    theta.tail(k_) = e.sigma2;
    return theta;
  }
  ExpertParams unpack(const VectorXd& theta, const ExpertParams& templ) const override {
    ExpertParams e = templ;
    for (Index i = 0; i < k_; ++i) e.coef.col(i) = theta.segment(i * p_, p_);
    e.sigma2 = theta.tail(k_);
    return e;
  }

  void mean(const CMat& X, const ExpertParams& e, MatrixXd& Mu) const override {
    Mu.noalias() = X * e.coef;
    activate(Mu);
  }

  void log_density(const CMat& X, const CMat& Y, const ExpertParams& e,
                   MatrixXd& logF, int nthreads) const override {
    const Index n = X.rows();
    logF.resize(n, k_);
    const ArrayXd lconst = -0.5 * (kLog2Pi + e.sigma2.array().log());
    const ArrayXd half_prec = 0.5 / e.sigma2.array();
    parallel_blocks(n, nthreads, [&](Index lo, Index len) {
      auto Fb = logF.middleRows(lo, len);
      rows_times(X.middleRows(lo, len), e.coef, Fb);
      activate(Fb);
      for (Index i = 0; i < k_; ++i)
        for (Index r = 0; r < len; ++r) {
          const double res = Y(lo + r, 0) - Fb(r, i);
          Fb(r, i) = lconst(i) - half_prec(i) * res * res;
        }
    });
  }

  void mstep(const CMat& X, const CMat& Y, const CMat& R, ExpertParams& e,
             int nthreads) const override {
    const Index n = X.rows();
    const VectorXd wsum = R.colwise().sum().transpose();
    if (act_->is_identity()) {
      // Weighted least squares for all experts: column i of acc holds the
      // packed upper triangle of X'R_i X (rows 0..T-1) and X'R_i y.
      const Index T = p_ * (p_ + 1) / 2;
      MatrixXd zero = MatrixXd::Zero(T + p_, k_);
      MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
        const auto Xb = X.middleRows(lo, len);
        const auto Rb = R.middleRows(lo, len);
        add_weighted_grams(Xb, false, Rb, a.topRows(T));
        const MatrixXd Ry = Rb.array().colwise() * Y.col(0).segment(lo, len).array();
        a.bottomRows(p_).noalias() += Xb.transpose() * Ry;
      });
      for (Index i = 0; i < k_; ++i) {
        if (wsum(i) < kMinWeight) continue;
        VectorXd a;
        if (!solve_normal_equations(unpack_gram(acc.col(i).head(T), p_), acc.col(i).tail(p_), a))
          continue;  // too little spread in this expert's data: keep its coefficients
        e.coef.col(i) = a;
      }
    } else {
      for (Index i = 0; i < k_; ++i) {
        if (wsum(i) < kMinWeight) continue;
        fit_activated(X, Y, R.col(i), wsum(i), e, i, nthreads);
      }
    }
    update_variances(X, Y, R, wsum, e, nthreads);
  }

  VectorXd gradient(const CMat& X, const CMat& Y, const CMat& R,
                    const ExpertParams& e, int nthreads) const override {
    const Index n = X.rows();
    // Columns 0..k-1: coefficient gradients; row p of column i: d/d sigma2_i.
    MatrixXd zero = MatrixXd::Zero(p_ + 1, k_);
    MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
      const auto Xb = X.middleRows(lo, len);
      const MatrixXd eta = Xb * e.coef;
      MatrixXd f(len, k_);
      for (Index i = 0; i < k_; ++i) {
        double ds = 0.0;
        for (Index r = 0; r < len; ++r) {
          const double res = Y(lo + r, 0) - act_->value(eta(r, i));
          const double w = R(lo + r, i);
          f(r, i) = w * res / e.sigma2(i) * act_->deriv(eta(r, i));
          ds += w * (-0.5 / e.sigma2(i) + 0.5 * res * res / (e.sigma2(i) * e.sigma2(i)));
        }
        a(p_, i) += ds;
      }
      a.topRows(p_).noalias() += Xb.transpose() * f;
    });
    ExpertParams g;
    g.coef = acc.topRows(p_);
    g.sigma2 = acc.row(p_).transpose();
    return pack(g);
  }

  // For the analytic observed information (identity activation): the mean
  // mu = x' beta_i is the linear predictor and the free variance coordinate
  // phi = log(sigma2 - floor) the scalar one. With r = y - mu, s = sigma2 and
  // e = s - floor = ds / dphi: d log f / d mu = r / s, d log f / d phi = e l1
  // with l1 = -1 / (2 s) + r^2 / (2 s^2); minus the Hessian: 1 / s (mu, mu),
  // e r / s^2 (mu, phi), -(e l1 + e^2 l2) (phi, phi) with
  // l2 = 1 / (2 s^2) - r^2 / s^3.
  Index n_predictors() const override { return act_->is_identity() ? 1 : 0; }
  Index n_scalar_predictors() const override { return act_->is_identity() ? 1 : 0; }
  void predictor_derivatives(const CMat& X, const CMat& Y, const ExpertParams& e, Index lo,
                             Index len, MatrixXd& grad, MatrixXd& neg_hess) const override {
    grad.resize(len, 2 * k_);
    neg_hess.resize(len, 3 * k_);
    MatrixXd mu(len, k_);
    rows_times(X.middleRows(lo, len), e.coef, mu);
    for (Index i = 0; i < k_; ++i) {
      const double s = e.sigma2(i), ex = s - spec_.var_floor, inv_s = 1.0 / s;
      for (Index r = 0; r < len; ++r) {
        const double res = Y(lo + r, 0) - mu(r, i), res2 = res * res;
        const double l1 = 0.5 * inv_s * (res2 * inv_s - 1.0);
        const double l2 = inv_s * inv_s * (0.5 - res2 * inv_s);
        grad(r, 2 * i) = res * inv_s;
        grad(r, 2 * i + 1) = ex * l1;
        neg_hess(r, 3 * i) = inv_s;
        neg_hess(r, 3 * i + 1) = ex * res * inv_s * inv_s;
        neg_hess(r, 3 * i + 2) = -(ex * l1 + ex * ex * l2);
      }
    }
  }

  bool project(ExpertParams& e) const override {
    if (!e.sigma2.allFinite() || (e.sigma2.array() <= 0).any()) return false;
    e.sigma2 = e.sigma2.cwiseMax(spec_.var_floor);
    return true;
  }

  bool floor_binds(const ExpertParams& e, Index i) const override {
    return e.sigma2(i) <= spec_.var_floor * (1 + 1e-12);
  }

  VectorXd pack_free(const ExpertParams& e) const override {
    VectorXd theta = pack(e);
    theta.tail(k_) = (e.sigma2.array() - spec_.var_floor).log().matrix();
    return theta;
  }
  ExpertParams unpack_free(const VectorXd& theta, const ExpertParams& templ) const override {
    ExpertParams e = unpack(theta, templ);
    e.sigma2 = (theta.tail(k_).array().exp() + spec_.var_floor).matrix();
    return e;
  }
  VectorXd free_gradient(const VectorXd& grad, const ExpertParams& e) const override {
    VectorXd g = grad;
    g.tail(k_).array() *= e.sigma2.array() - spec_.var_floor;
    return g;
  }
  bool free_ok(const ExpertParams& e) const override {
    for (Index i = 0; i < k_; ++i)
      if (!(e.sigma2(i) > spec_.var_floor * (1 + 1e-12))) return false;
    return true;
  }

 private:
  // The expert means from the linear predictors, in place (nothing to do for
  // the identity activation).
  template <typename Derived>
  void activate(Eigen::MatrixBase<Derived>& m) const {
    if (!act_->is_identity()) m = m.unaryExpr([this](double v) { return act_->value(v); });
  }

  void update_variances(const CMat& X, const CMat& Y, const CMat& R,
                        const VectorXd& wsum, ExpertParams& e, int nthreads) const {
    VectorXd zero = VectorXd::Zero(k_);
    VectorXd ss = block_sum<VectorXd>(X.rows(), nthreads, zero, [&](Index lo, Index len, VectorXd& a) {
      MatrixXd eta(len, k_);
      rows_times(X.middleRows(lo, len), e.coef, eta);
      activate(eta);
      for (Index i = 0; i < k_; ++i) {
        double ss_i = 0.0;
        for (Index r = 0; r < len; ++r) {
          const double res = Y(lo + r, 0) - eta(r, i);
          ss_i += R(lo + r, i) * res * res;
        }
        a(i) += ss_i;
      }
    });
    for (Index i = 0; i < k_; ++i) {
      if (wsum(i) < kMinWeight) continue;
      const double v = ss(i) / wsum(i);
      e.sigma2(i) = std::isfinite(v) ? std::max(v, spec_.var_floor) : e.sigma2(i);
    }
  }

  // Weighted non-linear least squares for an activated mean, by L-BFGS from
  // the current coefficients.
  void fit_activated(const CMat& X, const CMat& Y, const VectorXd& w, double wsum,
                     ExpertParams& e, Index i, int nthreads) const {
    const Index p = X.cols();
    auto wss = [&](const VectorXd& a, VectorXd& grad) {
      VectorXd zero = VectorXd::Zero(p + 1);
      VectorXd acc = block_sum<VectorXd>(X.rows(), nthreads, zero,
                                         [&](Index lo, Index len, VectorXd& s) {
        const VectorXd eta = X.middleRows(lo, len) * a;
        VectorXd f(len);
        for (Index r = 0; r < len; ++r) {
          const double res = Y(lo + r, 0) - act_->value(eta(r));
          s(p) += w(lo + r) * res * res;
          f(r) = -2.0 * w(lo + r) * res * act_->deriv(eta(r));
        }
        s.head(p).noalias() += X.middleRows(lo, len).transpose() * f;
      });
      grad = acc.head(p) / wsum;
      return acc(p) / wsum;
    };
    LbfgsResult res = lbfgs_best(wss, e.coef.col(i), spec_.expert_maxit, spec_.expert_tol,
                                 1e-8, 40);
    // The best point seen includes the start: the weighted SSE never increases.
    if (std::isfinite(res.f)) e.coef.col(i) = res.x;
  }

  ExpertSpec spec_;
  Index p_, k_;
  std::unique_ptr<Activation> act_;
};

class MultinomialExpert : public Expert {
 public:
  MultinomialExpert(const ExpertSpec& spec, Index p, Index k)
      : spec_(spec), p_(p), k_(k), km1_(spec.n_classes - 1) {
    if (spec.n_classes < 2) throw std::invalid_argument("multinomial expert needs >= 2 classes");
  }

  Index n_par() const override { return k_ * p_ * km1_; }
  VectorXd pack(const ExpertParams& e) const override {
    return Eigen::Map<const VectorXd>(e.coef.data(), e.coef.size());
  }
  ExpertParams unpack(const VectorXd& theta, const ExpertParams& templ) const override {
    ExpertParams e = templ;
    e.coef = Eigen::Map<const MatrixXd>(theta.data(), p_, k_ * km1_);
    return e;
  }

  void mean(const CMat&, const ExpertParams&, MatrixXd&) const override {
    throw std::invalid_argument("multinomial experts have no regression function");
  }

  void log_density(const CMat& X, const CMat& Y, const ExpertParams& e,
                   MatrixXd& logF, int nthreads) const override {
    const Index n = X.rows();
    logF.resize(n, k_);
    parallel_blocks(n, nthreads, [&](Index lo, Index len) {
      const MatrixXd eta = X.middleRows(lo, len).lazyProduct(e.coef);
      for (Index i = 0; i < k_; ++i) {
        for (Index r = 0; r < len; ++r) {
          double m = 0.0;  // reference class logit
          for (Index c = 0; c < km1_; ++c) m = std::max(m, eta(r, i * km1_ + c));
          double s = exp_nonpos(-m);
          double picked = 0.0;
          for (Index c = 0; c < km1_; ++c) {
            const double v = eta(r, i * km1_ + c);
            s += exp_nonpos(v - m);
            picked += Y(lo + r, c) * v;
          }
          logF(lo + r, i) = picked - m - std::log(s);
        }
      }
    });
  }

  // Newton on Q_i(B) = sum_n R_ni log p(y_n | x_n, B), warm-started at the
  // current coefficients, with the exact Hessian and a step whose ascent is
  // certified by Boehning's bound instead of a trial evaluation: the negative
  // Hessian of a multinomial log-likelihood never exceeds
  // A (x) S, A = (I - 11'/K) / 2, S = sum_n R_ni t_n x_n x_n' (t_n the row's
  // count), so Q(B + d) >= Q(B) + g'd - d'(A (x) S)d / 2 for every d (the
  // minorizer of the MM algorithms for multinomial-logistic experts, e.g.
  // arXiv 2602.07997). A Newton step with g'd >= d'(A (x) S)d / 2 cannot
  // lower Q_i; one pass over the data (exponentials only, no logarithms)
  // gives g, the Hessian and S. Where the bound is loose (fitted probabilities
  // near 0 or 1) the full step is certified by a pass without logarithms
  // (q_change_lower()), else checked by one exact pass, and if that fails too
  // the step with the larger certified gain is taken: the Newton direction
  // scaled to the minorizer's maximum, or the MM step (A (x) S)^{-1} g. Q_i
  // never decreases, so EM stays monotone. Near convergence a Newton step
  // predicted to gain less than sqrt(expert_tol) relative leaves a remainder
  // of second order: the solve stops there, one pass per expert per EM
  // iteration (it was two passes with a logarithm per row each).
  void mstep(const CMat& X, const CMat& Y, const CMat& R, ExpertParams& e,
             int nthreads) const override {
    const VectorXd counts = Y.rowwise().sum();
    for (Index i = 0; i < k_; ++i) {
      const double wsum = R.col(i).sum();
      if (wsum < kMinWeight) continue;
      MatrixXd B = e.coef.middleCols(i * km1_, km1_);
      newton_mm(X, Y, R.col(i), counts, B, nthreads);
      if (B.allFinite()) e.coef.middleCols(i * km1_, km1_) = B;
    }
  }

  // The score of sum_ni R_ni log p_i(y_n | x_n) wrt B_i is
  // X' (R_i (y_c - t_n p_ic))_c with t_n the row's count: one pass over the
  // data for all experts, exponentials only (no logarithms, no objective),
  // where a multinom_objective() call per expert made k passes with a
  // logarithm per row each. The polish and the gradient stopping rule
  // evaluate it once per score.
  VectorXd gradient(const CMat& X, const CMat& Y, const CMat& R,
                    const ExpertParams& e, int nthreads) const override {
    const Index n = X.rows(), m = k_ * km1_;
    MatrixXd zero = MatrixXd::Zero(p_, m);
    MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
      const auto Xb = X.middleRows(lo, len);
      MatrixXd eta(len, m);
      rows_times(Xb, e.coef, eta);
      for (Index r = 0; r < len; ++r) {
        const double t = row_count(Y, lo + r);
        for (Index i = 0; i < k_; ++i) {
          const double s = reference_softmax([&](Index c) -> double& { return eta(r, i * km1_ + c); });
          const double w = R(lo + r, i), scale = w * t / s;
          for (Index c = 0; c < km1_; ++c) {
            double& v = eta(r, i * km1_ + c);
            v = w * Y(lo + r, c) - scale * v;
          }
        }
      }
      a.noalias() += Xb.transpose().lazyProduct(eta);
    });
    return Eigen::Map<const VectorXd>(acc.data(), acc.size());
  }

  // Predictor c of expert i is the log-odds of class c against the last:
  // d log f_i / d eta_c = y_c - t p_c and minus the Hessian t (diag(p) - pp'),
  // t the row's count.
  Index n_predictors() const override { return km1_; }
  void predictor_derivatives(const CMat& X, const CMat& Y, const ExpertParams& e, Index lo,
                             Index len, MatrixXd& grad, MatrixXd& neg_hess) const override {
    const Index L = km1_, tri = L * (L + 1) / 2;
    grad.resize(len, k_ * L);
    neg_hess.resize(len, k_ * tri);
    MatrixXd eta(len, k_ * L);
    rows_times(X.middleRows(lo, len), e.coef, eta);
    VectorXd prob(L);
    for (Index r = 0; r < len; ++r) {
      const double t = row_count(Y, lo + r);
      for (Index i = 0; i < k_; ++i) {
        for (Index c = 0; c < L; ++c) prob(c) = eta(r, i * L + c);
        prob /= reference_softmax([&](Index c) -> double& { return prob(c); });
        Index b = i * tri;
        for (Index c = 0; c < L; ++c) {
          grad(r, i * L + c) = Y(lo + r, c) - t * prob(c);
          for (Index c2 = c; c2 < L; ++c2, ++b)
            neg_hess(r, b) = t * prob(c) * ((c == c2 ? 1.0 : 0.0) - prob(c2));
        }
      }
    }
  }

 private:
  // A row's multinomial count t = y_K + sum_{c<K} y_c, summed in this order
  // (the order the score and the predictor derivatives have always used).
  double row_count(const CMat& Y, Index row) const {
    double t = Y(row, km1_);
    for (Index c = 0; c < km1_; ++c) t += Y(row, c);
    return t;
  }

  // The softmax against the reference class (whose logit is 0) of the K - 1
  // logits that v(c) refers to, in place: v(c) <- exp(v(c) - m) with m the
  // largest logit (0 included); returns the normaliser exp(-m) + sum_c v(c),
  // summed in class order. The score, the predictor derivatives and the
  // expert M-step's gradient/Hessian pass share it, so their probabilities
  // agree to the last bit.
  template <class Ref>
  double reference_softmax(Ref&& v) const {
    double mx = 0.0;
    for (Index c = 0; c < km1_; ++c) mx = std::max(mx, static_cast<double>(v(c)));
    double s = exp_nonpos(-mx);
    for (Index c = 0; c < km1_; ++c) {
      double& x = v(c);
      x = exp_nonpos(x - mx);
      s += x;
    }
    return s;
  }

  // Gradient g (p x (K-1), column c for class c), negative Hessian H (block
  // (c, c2) at rows c p, columns c2 p, i.e. column-major vec(B) order) and
  // S = sum_n w_n t_n x_n x_n' of Q(B) = sum_n w_n log p(y_n | x_n, B), one pass.
  void grad_hess(const CMat& X, const CMat& Y, const VectorXd& w, const VectorXd& counts,
                 const MatrixXd& B, MatrixXd& g, MatrixXd& H, MatrixXd& S,
                 MatrixXd& prob, int nthreads) const {
    const Index n = X.rows(), m = p_ * km1_;
    // Columns: [0, km1) gradient, then km1 (km1 + 1) / 2 Hessian blocks, then S.
    const Index nblk = km1_ * (km1_ + 1) / 2;
    MatrixXd zero = MatrixXd::Zero(p_, km1_ + (nblk + 1) * p_);
    prob.resize(n, km1_);
    MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
      const auto Xb = X.middleRows(lo, len);
      MatrixXd P(len, km1_);
      rows_times(Xb, B, P);
      MatrixXd resid(len, km1_);
      ArrayXd wt(len);
      for (Index r = 0; r < len; ++r) {
        const double s = reference_softmax([&](Index c) -> double& { return P(r, c); });
        const double inv = 1.0 / s, wr = w(lo + r);
        wt(r) = wr * counts(lo + r);
        for (Index c = 0; c < km1_; ++c) {
          P(r, c) *= inv;
          resid(r, c) = wr * Y(lo + r, c) - wt(r) * P(r, c);
        }
      }
      prob.middleRows(lo, len) = P;
      a.leftCols(km1_).noalias() += Xb.transpose().lazyProduct(resid);
      MatrixXd WX(len, p_);
      Index b = 0;
      for (Index c = 0; c < km1_; ++c) {
        for (Index c2 = c; c2 < km1_; ++c2, ++b) {
          const ArrayXd hw = wt * P.col(c).array() * ((c == c2 ? 1.0 : 0.0) - P.col(c2).array());
          WX = Xb.array().colwise() * hw;
          a.middleCols(km1_ + b * p_, p_).noalias() += Xb.transpose().lazyProduct(WX);
        }
      }
      WX = Xb.array().colwise() * wt;
      a.rightCols(p_).noalias() += Xb.transpose().lazyProduct(WX);
    });
    g = acc.leftCols(km1_);
    H.resize(m, m);
    Index b = 0;
    for (Index c = 0; c < km1_; ++c) {
      for (Index c2 = c; c2 < km1_; ++c2, ++b) {
        const auto blk = acc.middleCols(km1_ + b * p_, p_);
        H.block(c * p_, c2 * p_, p_, p_) = blk;
        H.block(c2 * p_, c * p_, p_, p_) = blk.transpose();
      }
    }
    S = acc.rightCols(p_);
  }

  // A lower bound on Q(B + D) - Q(B) without logarithms, from the
  // probabilities at B: with Delta = x'D (0 for the reference class) and j the
  // row's most probable class, lse(B + D) - lse(B) = Delta_j +
  // log sum_c p_c exp(Delta_c - Delta_j) <= Delta_j + sum_c p_c exp(Delta_c -
  // Delta_j) - 1 (log u <= u - 1). Its slack is second order in
  // Delta - Delta_j weighted by the classes other than j, so it stays tight
  // where fitted probabilities are near 0 or 1, where Boehning's bound is loose.
  double q_change_lower(const CMat& X, const CMat& Y, const VectorXd& w, const MatrixXd& D,
                        const MatrixXd& prob, int nthreads) const {
    return block_sum<double>(X.rows(), nthreads, 0.0, [&](Index lo, Index len, double& a) {
      MatrixXd delta(len, km1_);
      rows_times(X.middleRows(lo, len), D, delta);
      double d = 0.0;
      for (Index r = 0; r < len; ++r) {
        const double wr = w(lo + r);
        if (wr == 0) continue;
        double p_ref = 1.0, best = -1.0, dj = 0.0, t = Y(lo + r, km1_), picked = 0.0;
        for (Index c = 0; c < km1_; ++c) {
          const double pc = prob(lo + r, c);
          p_ref -= pc;
          if (pc > best) { best = pc; dj = delta(r, c); }
          picked += Y(lo + r, c) * delta(r, c);
          t += Y(lo + r, c);
        }
        if (p_ref > best) dj = 0.0;
        double u = std::max(p_ref, 0.0) * std::exp(-dj);
        for (Index c = 0; c < km1_; ++c) u += prob(lo + r, c) * std::exp(delta(r, c) - dj);
        d += wr * (picked - t * (dj + u - 1.0));
      }
      a += d;
    });
  }

  // Q(B1) - Q(B0), exactly, in one pass.
  double q_change(const CMat& X, const CMat& Y, const VectorXd& w, const MatrixXd& B0,
                  const MatrixXd& B1, int nthreads) const {
    MatrixXd both(p_, 2 * km1_);
    both << B0, B1;
    return block_sum<double>(X.rows(), nthreads, 0.0, [&](Index lo, Index len, double& a) {
      MatrixXd eta(len, 2 * km1_);
      rows_times(X.middleRows(lo, len), both, eta);
      double d = 0.0;
      for (Index r = 0; r < len; ++r) {
        const double wr = w(lo + r);
        if (wr == 0) continue;
        double q[2];
        for (int j = 0; j < 2; ++j) {
          double mx = 0.0;
          for (Index c = 0; c < km1_; ++c) mx = std::max(mx, eta(r, j * km1_ + c));
          double s = exp_nonpos(-mx), picked = 0.0, t = Y(lo + r, km1_);
          for (Index c = 0; c < km1_; ++c) {
            const double v = eta(r, j * km1_ + c);
            s += exp_nonpos(v - mx);
            picked += Y(lo + r, c) * v;
            t += Y(lo + r, c);
          }
          q[j] = picked - t * (mx + std::log(s));
        }
        d += wr * (q[1] - q[0]);
      }
      a += d;
    });
  }

  void newton_mm(const CMat& X, const CMat& Y, const VectorXd& w, const VectorXd& counts,
                 MatrixXd& B, int nthreads) const {
    const Index m = p_ * km1_;
    const double scale = w.dot(counts) + 1.0;  // |Q| is of this order
    const double stop = spec_.expert_tol * scale;
    const double quadratic_stop = std::sqrt(spec_.expert_tol) * scale;
    // A = (I - 11'/K) / 2 and A^{-1} = 2 (I + 11') (1'1 = K - 1).
    const MatrixXd A = 0.5 * (MatrixXd::Identity(km1_, km1_) -
                              MatrixXd::Constant(km1_, km1_, 1.0 / (km1_ + 1)));
    const MatrixXd Ainv = 2.0 * (MatrixXd::Identity(km1_, km1_) +
                                 MatrixXd::Constant(km1_, km1_, 1.0));
    MatrixXd g, H, S, prob;
    for (int step = 0; step < spec_.expert_maxit; ++step) {
      grad_hess(X, Y, w, counts, B, g, H, S, prob, nthreads);
      const VectorXd gv = Eigen::Map<const VectorXd>(g.data(), m);
      // The minorizer's curvature along D (p x (K-1)): vec(D)'(A (x) S)vec(D)
      // = trace(D' S D A).
      auto bound_curv = [&](const MatrixXd& D) { return (D.transpose() * S * D * A).trace(); };
      const VectorXd dn = damped_newton_step(H, gv, 12, 1e-10, 100.0);
      const double predicted = dn.size() ? 0.5 * gv.dot(dn) : 0.0;
      if (dn.size() && predicted <= stop) break;
      MatrixXd D;  // the step taken
      bool newton_full = false;
      if (dn.size()) {
        const MatrixXd Dn = Eigen::Map<const MatrixXd>(dn.data(), p_, km1_);
        const double a = gv.dot(dn), b = bound_curv(Dn);
        if (std::isfinite(b) && 2.0 * a >= b) {
          D = Dn;
          newton_full = true;
        } else if (q_change_lower(X, Y, w, Dn, prob, nthreads) >= 0 ||
                   q_change(X, Y, w, B, B + Dn, nthreads) >= 0) {
          D = Dn;
          newton_full = true;
        } else {
          // Certified alternatives: the Newton ray at t = a / b (gain
          // a^2 / (2 b)) and the MM step (gain g'(A (x) S)^{-1} g / 2).
          D = (a / b) * Dn;
          double gain = 0.5 * a * a / b;
          MatrixXd Dm;
          if (mm_step(S, g, Ainv, Dm)) {
            const double gm = 0.5 * (g.array() * Dm.array()).sum();
            if (!(gain >= gm)) { D = Dm; gain = gm; }
          }
          if (!(gain > 0) || !D.allFinite()) break;
        }
      } else {
        // No Newton step (the Hessian is numerically singular beyond
        // damping): the MM step alone.
        if (!mm_step(S, g, Ainv, D)) break;
        if (!(0.5 * (g.array() * D.array()).sum() > stop)) break;
      }
      if (!D.allFinite()) break;
      B += D;
      if (newton_full && predicted <= quadratic_stop) break;
    }
  }

  // The MM step (A (x) S)^{-1} g = S^{-1} G A^{-1}; false when S is singular.
  bool mm_step(const MatrixXd& S, const MatrixXd& g, const MatrixXd& Ainv, MatrixXd& D) const {
    D.resize(p_, km1_);
    for (Index c = 0; c < km1_; ++c) {
      VectorXd col;
      if (!solve_normal_equations(S, g.col(c), col)) return false;
      D.col(c) = col;
    }
    D = D * Ainv;
    return D.allFinite();
  }

  ExpertSpec spec_;
  Index p_, k_, km1_;
};

}  // namespace

std::unique_ptr<Expert> make_expert(const ExpertSpec& spec, Index p, Index k) {
  if (spec.family == "gaussian") return std::unique_ptr<Expert>(new GaussianExpert(spec, p, k));
  if (spec.family == "multinomial")
    return std::unique_ptr<Expert>(new MultinomialExpert(spec, p, k));
  throw std::invalid_argument("unknown expert family '" + spec.family +
                              "'; valid: gaussian, multinomial");
}

}  // namespace moegate
