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

  void mstep(const CMat& X, const CMat& Y, const CMat& R, ExpertParams& e,
             int nthreads) const override {
    for (Index i = 0; i < k_; ++i) {
      if (R.col(i).sum() < kMinWeight) continue;
      const MatrixXd T = Y.array().colwise() * R.col(i).array();
      MatrixXd B = e.coef.middleCols(i * km1_, km1_);
      multinom_newton(X, T, B, spec_.expert_maxit, spec_.expert_tol, nthreads);
      if (B.allFinite()) e.coef.middleCols(i * km1_, km1_) = B;
    }
  }

  VectorXd gradient(const CMat& X, const CMat& Y, const CMat& R,
                    const ExpertParams& e, int nthreads) const override {
    ExpertParams g = e;
    for (Index i = 0; i < k_; ++i) {
      const MatrixXd T = Y.array().colwise() * R.col(i).array();
      MatrixXd gi;
      multinom_objective(X, T, e.coef.middleCols(i * km1_, km1_), nthreads, &gi);
      g.coef.middleCols(i * km1_, km1_) = gi;
    }
    return pack(g);
  }

 private:
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
