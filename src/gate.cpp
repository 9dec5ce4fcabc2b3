#include "gate.h"
#include <stdexcept>

namespace moegate {

// ---- scores -------------------------------------------------------------------

namespace {

class InnerScore : public Score {
 public:
  void compute(const CMat& U, const MatrixXd& W, Index lo, Index len,
               MatrixXd& S) const override {
    rows_times(U.middleRows(lo, len), W, S.middleRows(lo, len));
  }
  void backward(const CMat& U, const MatrixXd&, const MatrixXd&, const MatrixXd& dS,
                Index lo, Index len, MatrixXd& dW) const override {
    dW.noalias() += U.middleRows(lo, len).transpose() * dS.middleRows(lo, len);
  }
  void jacobian(const CMat& U, const MatrixXd&, const MatrixXd&, Index lo, Index len,
                Index, MatrixXd& J) const override {
    J = U.middleRows(lo, len);
  }
  bool translation_invariant() const override { return true; }
};

// Cosine and perturbed cosine: s = w'u / ((||w|| + eps_w)(||u|| + eps_u)).
// With eps = 0 a zero input gets score 0.
class CosineScore : public Score {
 public:
  CosineScore(double eps_w, double eps_u) : eps_w_(eps_w), eps_u_(eps_u) {}
  void compute(const CMat& U, const MatrixXd& W, Index lo, Index len,
               MatrixXd& S) const override {
    const ArrayXd dw = W.colwise().norm().transpose().array() + eps_w_;
    const ArrayXd du = U.middleRows(lo, len).rowwise().norm().array() + eps_u_;
    auto Sb = S.middleRows(lo, len);
    rows_times(U.middleRows(lo, len), W, Sb);
    for (Index i = 0; i < W.cols(); ++i) {
      for (Index r = 0; r < len; ++r) {
        const double den = du(r) * safe(dw(i));
        Sb(r, i) = du(r) > 0 ? Sb(r, i) / den : 0.0;
      }
    }
  }
  void backward(const CMat& U, const MatrixXd& W, const MatrixXd& S, const MatrixXd& dS,
                Index lo, Index len, MatrixXd& dW) const override {
    const VectorXd nw = W.colwise().norm().transpose();
    const ArrayXd du = U.middleRows(lo, len).rowwise().norm().array() + eps_u_;
    const auto Ub = U.middleRows(lo, len);
    for (Index i = 0; i < W.cols(); ++i) {
      const double dw = safe(nw(i) + eps_w_);
      ArrayXd f(len);
      double radial = 0.0;
      for (Index r = 0; r < len; ++r) {
        f(r) = du(r) > 0 ? dS(lo + r, i) / (du(r) * dw) : 0.0;
        radial += dS(lo + r, i) * S(lo + r, i);
      }
      dW.col(i).noalias() += Ub.transpose() * f.matrix();
      dW.col(i) -= (radial / (safe(nw(i)) * dw)) * W.col(i);
    }
  }
  // d s / d w = u / (du dw) - s w / (||w|| dw).
  void jacobian(const CMat& U, const MatrixXd& W, const MatrixXd& S, Index lo, Index len,
                Index i, MatrixXd& J) const override {
    const double nw = W.col(i).norm();
    const double dw = safe(nw + eps_w_);
    const VectorXd wdir = W.col(i) / (safe(nw) * dw);
    J.resize(len, U.cols());
    for (Index r = 0; r < len; ++r) {
      const double du = U.row(lo + r).norm() + eps_u_;
      if (du > 0) {
        J.row(r) = U.row(lo + r) / (du * dw) - S(lo + r, i) * wdir.transpose();
      } else {
        J.row(r).setZero();
      }
    }
  }

 private:
  static double safe(double x) { return x > 1e-150 ? x : 1e-150; }
  double eps_w_, eps_u_;
};

// Euclidean scores: -||u - w||^2 (squared) or -||u - w||.
class EuclideanScore : public Score {
 public:
  explicit EuclideanScore(bool squared) : squared_(squared) {}
  void compute(const CMat& U, const MatrixXd& W, Index lo, Index len,
               MatrixXd& S) const override {
    // ||u - w||^2 summed directly: expanding it as ||u||^2 + ||w||^2 - 2 u'w
    // cancels catastrophically when u is close to w or both are large.
    const Index q = U.cols();
    for (Index i = 0; i < W.cols(); ++i) {
      for (Index r = 0; r < len; ++r) {
        double d2 = 0.0;
        for (Index j = 0; j < q; ++j) {
          const double diff = U(lo + r, j) - W(j, i);
          d2 += diff * diff;
        }
        S(lo + r, i) = squared_ ? -d2 : -std::sqrt(d2);
      }
    }
  }
  void backward(const CMat& U, const MatrixXd& W, const MatrixXd& S, const MatrixXd& dS,
                Index lo, Index len, MatrixXd& dW) const override {
    const auto Ub = U.middleRows(lo, len);
    for (Index i = 0; i < W.cols(); ++i) {
      ArrayXd f(len);
      for (Index r = 0; r < len; ++r) {
        if (squared_) {
          f(r) = 2.0 * dS(lo + r, i);
        } else {
          const double d = -S(lo + r, i);
          f(r) = d > 1e-150 ? dS(lo + r, i) / d : 0.0;
        }
      }
      dW.col(i).noalias() += Ub.transpose() * f.matrix();
      dW.col(i) -= f.sum() * W.col(i);
    }
  }
  // d s / d w = 2 (u - w) (squared) or (u - w) / ||u - w||.
  void jacobian(const CMat& U, const MatrixXd& W, const MatrixXd& S, Index lo, Index len,
                Index i, MatrixXd& J) const override {
    J = U.middleRows(lo, len);
    J.rowwise() -= W.col(i).transpose();
    for (Index r = 0; r < len; ++r) {
      if (squared_) {
        J.row(r) *= 2.0;
      } else {
        const double d = -S(lo + r, i);
        J.row(r) *= d > 1e-150 ? 1.0 / d : 0.0;
      }
    }
  }

 private:
  bool squared_;
};

// ---- activations ------------------------------------------------------------

class IdentityAct : public Activation {
 public:
  double value(double x) const override { return x; }
  double deriv(double) const override { return 1.0; }
  bool is_identity() const override { return true; }
};
class TanhAct : public Activation {
 public:
  double value(double x) const override { return std::tanh(x); }
  double deriv(double x) const override { const double t = std::tanh(x); return 1.0 - t * t; }
  double deriv_at(double, double v) const override { return 1.0 - v * v; }
};
class SigmoidAct : public Activation {
 public:
  double value(double x) const override { return sigmoid(x); }
  double deriv(double x) const override { return sigmoid(x) * sigmoid(-x); }
  double deriv_at(double x, double v) const override {
    // sigmoid(-x) = 1 - v loses digits when v is close to 1.
    return v < 0.5 ? v * (1.0 - v) : v * sigmoid(-x);
  }
};
class LogSigmoidAct : public Activation {
 public:
  double value(double x) const override { return log_sigmoid(x); }
  double deriv(double x) const override { return sigmoid(-x); }
};
class GeluAct : public Activation {
 public:
  double value(double x) const override { return x * Phi(x); }
  double deriv(double x) const override {
    return Phi(x) + x * std::exp(-0.5 * x * x) * 0.3989422804014327;
  }
 private:
  static double Phi(double x) { return 0.5 * std::erfc(-x * 0.7071067811865476); }
};
class ReluAct : public Activation {
 public:
  double value(double x) const override { return x > 0 ? x : 0.0; }
  double deriv(double x) const override { return x > 0 ? 1.0 : 0.0; }
};

// ---- normalisers ------------------------------------------------------------

class SoftmaxNorm : public Normaliser {
 public:
  void log_weights(const MatrixXd& H, Index lo, Index len, MatrixXd& logG) const override {
    for (Index r = lo; r < lo + len; ++r) {
      const double lse = log_sum_exp_row(H, r);
      for (Index j = 0; j < H.cols(); ++j) logG(r, j) = H(r, j) - lse;
    }
  }
  double dfactor(double) const override { return 1.0; }
  bool translation_invariant() const override { return true; }
};

// G_i = sigmoid(h_i) / sum_j sigmoid(h_j), i.e. a softmax of log-sigmoids.
class NormSigmoidNorm : public Normaliser {
 public:
  void log_weights(const MatrixXd& H, Index lo, Index len, MatrixXd& logG) const override {
    for (Index r = lo; r < lo + len; ++r)
      for (Index j = 0; j < H.cols(); ++j) logG(r, j) = log_sigmoid(H(r, j));
    for (Index r = lo; r < lo + len; ++r) {
      const double lse = log_sum_exp_row(logG, r);
      for (Index j = 0; j < H.cols(); ++j) logG(r, j) -= lse;
    }
  }
  double dfactor(double h) const override { return sigmoid(-h); }
};

class SigmoidNorm : public Normaliser {
 public:
  void log_weights(const MatrixXd& H, Index lo, Index len, MatrixXd& logG) const override {
    for (Index r = lo; r < lo + len; ++r)
      for (Index j = 0; j < H.cols(); ++j) logG(r, j) = log_sigmoid(H(r, j));
  }
  double dfactor(double h) const override { return sigmoid(-h); }
  bool normalised() const override { return false; }
};

std::string join_ids(const char* const* ids, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) { if (i) out += ", "; out += ids[i]; }
  return out;
}

}  // namespace

std::unique_ptr<Score> make_score(const std::string& id, double eps_w, double eps_u) {
  if (id == "inner") return std::unique_ptr<Score>(new InnerScore());
  if (id == "cosine") return std::unique_ptr<Score>(new CosineScore(0.0, 0.0));
  if (id == "perturbed_cosine") return std::unique_ptr<Score>(new CosineScore(eps_w, eps_u));
  if (id == "euclidean_sq") return std::unique_ptr<Score>(new EuclideanScore(true));
  if (id == "euclidean") return std::unique_ptr<Score>(new EuclideanScore(false));
  static const char* ids[] = {"inner", "cosine", "perturbed_cosine", "euclidean_sq", "euclidean"};
  throw std::invalid_argument("unknown gate score '" + id + "'; valid: " + join_ids(ids, 5));
}

std::unique_ptr<Activation> make_activation(const std::string& id) {
  if (id == "identity") return std::unique_ptr<Activation>(new IdentityAct());
  if (id == "tanh") return std::unique_ptr<Activation>(new TanhAct());
  if (id == "sigmoid") return std::unique_ptr<Activation>(new SigmoidAct());
  if (id == "logsigmoid") return std::unique_ptr<Activation>(new LogSigmoidAct());
  if (id == "gelu") return std::unique_ptr<Activation>(new GeluAct());
  if (id == "relu") return std::unique_ptr<Activation>(new ReluAct());
  static const char* ids[] = {"identity", "tanh", "sigmoid", "logsigmoid", "gelu", "relu"};
  throw std::invalid_argument("unknown activation '" + id + "'; valid: " + join_ids(ids, 6));
}

std::unique_ptr<Normaliser> make_normaliser(const std::string& id) {
  if (id == "softmax") return std::unique_ptr<Normaliser>(new SoftmaxNorm());
  if (id == "normalized_sigmoid") return std::unique_ptr<Normaliser>(new NormSigmoidNorm());
  if (id == "sigmoid") return std::unique_ptr<Normaliser>(new SigmoidNorm());
  static const char* ids[] = {"softmax", "normalized_sigmoid", "sigmoid"};
  throw std::invalid_argument("unknown normaliser '" + id + "'; valid: " + join_ids(ids, 3));
}

MatrixXd apply_transform(const std::string& id, const CMat& Z) {
  if (id == "identity") return Z;
  if (id == "tanh") return Z.array().tanh().matrix();
  if (id == "sigmoid") return Z.unaryExpr([](double x) { return sigmoid(x); });
  throw std::invalid_argument("unknown input transform '" + id +
                              "'; valid: identity, tanh, sigmoid");
}

// ---- the gate -------------------------------------------------------------------

Gate::Gate(const GateSpec& spec, Index q, Index k)
    : spec_(spec), q_(q), k_(k),
      score_(make_score(spec.score, spec.eps_w, spec.eps_u)),
      act_(make_activation(spec.activation)),
      norm_(make_normaliser(spec.normaliser)) {
  // Adding c to every logit leaves the softmax unchanged: the intercepts
  // carry this shift when it reaches the logits unchanged, the gate vectors
  // too when the score is linear in w and no activation intervenes.
  const bool inv = norm_->translation_invariant();
  b_ref_ = inv && (!spec_.intercept_inside || act_->is_identity());
  w_ref_ = inv && score_->translation_invariant() && act_->is_identity();
}

// The perturbed cosine score is linear in v_i = w_i / (||w_i|| + eps_w):
// s_ni = v_i'u_n / (||u_n|| + eps_u), with ||v_i|| < 1. Under the softmax
// (identity activation) adding one vector c to every v_i adds the same
// c'u_n / (||u_n|| + eps_u) to every logit of row n: an exact invariance,
// so only the differences of the v_i matter, and a measure of how far the
// gate has run off towards the sphere ||v|| = 1 must be shift invariant.
// The smallest enclosing ball's radius rho = min_c max_i ||v_i - c|| is the
// shift-invariant spread of the v_i, and rho < 1 (the ball of radius
// max_i ||v_i|| about 0 encloses them): the v_i can only spread that far.
// Moreover ||w|| = eps_w ||v|| / (1 - ||v||) increases with ||v||, so
// rho / (1 - rho) is the smallest largest gate norm max_i ||w_i|| / eps_w
// over all parameters giving this gate (shift the v_i so that the ball's
// centre is 0): a fit whose ratio grows without bound is one whose gate
// norms cannot be kept finite by any choice of the invariance, the run-off
// of an RSS with no finite minimum, not a large but finite optimum in one
// representation. At the cosine-router study's truth (eps_w = 1) it is 1.08.
double Gate::boundary_ratio(const GateParams& p) const {
  if (spec_.score != "perturbed_cosine" || !(spec_.eps_w > 0) || !act_->is_identity() ||
      !norm_->translation_invariant() || p.W.cols() == 0)
    return std::numeric_limits<double>::quiet_NaN();
  MatrixXd V = p.W;
  for (Index i = 0; i < V.cols(); ++i) V.col(i) /= V.col(i).norm() + spec_.eps_w;
  const double rho = enclosing_radius(V);
  return rho < 1.0 ? rho / (1.0 - rho) : std::numeric_limits<double>::infinity();
}

bool Gate::linear_softmax() const {
  return spec_.score == "inner" && act_->is_identity() && spec_.normaliser == "softmax" &&
         !spec_.estimate_tau;
}

Index Gate::n_par() const {
  const Index kw = w_ref_ ? k_ - 1 : k_;
  const Index kb = b_ref_ ? k_ - 1 : k_;
  return q_ * kw + kb + (spec_.estimate_tau ? 1 : 0);
}

VectorXd Gate::pack(const GateParams& p) const {
  VectorXd theta(n_par());
  const Index kw = w_ref_ ? k_ - 1 : k_;
  const Index kb = b_ref_ ? k_ - 1 : k_;
  Index pos = 0;
  for (Index i = 0; i < kw; ++i) { theta.segment(pos, q_) = p.W.col(i); pos += q_; }
  theta.segment(pos, kb) = p.b0.head(kb);
  pos += kb;
  if (spec_.estimate_tau) theta(pos) = p.log_tau;
  return theta;
}

GateParams Gate::unpack(const VectorXd& theta, const GateParams& templ) const {
  GateParams p = templ;
  const Index kw = w_ref_ ? k_ - 1 : k_;
  const Index kb = b_ref_ ? k_ - 1 : k_;
  Index pos = 0;
  for (Index i = 0; i < kw; ++i) { p.W.col(i) = theta.segment(pos, q_); pos += q_; }
  p.b0.head(kb) = theta.segment(pos, kb);
  pos += kb;
  if (spec_.estimate_tau) p.log_tau = theta(pos);
  return p;
}

void Gate::normalise_reference(GateParams& p) const {
  if (w_ref_ && k_ > 0) {
    const VectorXd ref = p.W.col(k_ - 1);
    // Shifting all w by the same vector shifts all logits by u'c / tau.
    p.W.colwise() -= ref;
  }
  if (b_ref_ && k_ > 0) p.b0.array() -= p.b0(k_ - 1);
}

void Gate::forward_rows(const CMat& U, const GateParams& p, Index lo, Index len,
                        GateCache& c) const {
  const double inv_tau = std::exp(-p.log_tau);
  const bool inside = spec_.intercept_inside;
  score_->compute(U, p.W, lo, len, c.S);
  auto Sb = c.S.middleRows(lo, len);
  auto Hb = c.H.middleRows(lo, len);
  if (inside) Sb.rowwise() += p.b0.transpose();
  if (act_->is_identity()) {
    Hb = Sb * inv_tau;
  } else {
    for (Index i = 0; i < k_; ++i)
      for (Index r = 0; r < len; ++r) Hb(r, i) = act_->value(Sb(r, i)) * inv_tau;
  }
  if (!inside) Hb.rowwise() += p.b0.transpose();
  norm_->log_weights(c.H, lo, len, c.logG);
}

void Gate::size_cache(GateCache& c, const GateParams& p, Index n) const {
  c.at = p;
  c.weights_only = false;
  c.has_G = false;
  c.S.resize(n, k_);
  c.H.resize(n, k_);
  c.logG.resize(n, k_);
}

void Gate::forward(const CMat& U, const GateParams& p, GateCache& c, int nthreads) const {
  const Index n = U.rows();
  size_cache(c, p, n);
  parallel_blocks(n, nthreads, [&](Index lo, Index len) { forward_rows(U, p, lo, len, c); });
}

VectorXd Gate::backward(const CMat& U, const GateParams& p, const GateCache& c,
                        const MatrixXd& dH, int nthreads) const {
  const Index n = U.rows();
  const double inv_tau = std::exp(-p.log_tau);
  const bool inside = spec_.intercept_inside;
  const bool identity = act_->is_identity();  // derivative 1: no virtual call per element
  // Rows 0..q-1: dW; row q: db0; row q+1, column 0: d log tau.
  MatrixXd zero = MatrixXd::Zero(q_ + 2, k_);
  MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
    MatrixXd dS(len, k_);
    MatrixXd raw(len, k_);
    double dlt = 0.0;
    for (Index i = 0; i < k_; ++i) {
      for (Index r = 0; r < len; ++r) {
        const double s = c.S(lo + r, i);
        const double g = dH(lo + r, i);
        // act(s)/tau = h - b0 (outside) or h (inside).
        dlt -= g * (inside ? c.H(lo + r, i) : c.H(lo + r, i) - p.b0(i));
        dS(r, i) = g * inv_tau * (identity ? 1.0 : act_->deriv(s));
        raw(r, i) = inside ? s - p.b0(i) : s;
      }
    }
    a(q_ + 1, 0) += dlt;
    if (inside) a.row(q_) += dS.colwise().sum();
    else a.row(q_) += dH.middleRows(lo, len).colwise().sum();
    // The score backward works on full-height matrices indexed by [lo, lo+len).
    MatrixXd dW = MatrixXd::Zero(q_, k_);
    score_->backward(U.middleRows(lo, len), p.W, raw, dS, 0, len, dW);
    a.topRows(q_) += dW;
  });
  GateParams g;
  g.W = acc.topRows(q_);
  g.b0 = acc.row(q_).transpose();
  g.log_tau = acc(q_ + 1, 0);
  return pack(g);
}

void Gate::em_dlogits(const GateCache& c, const CMat& R, MatrixXd& dH, int nthreads) const {
  const Index n = R.rows();
  dH.resize(n, k_);
  const bool normed = norm_->normalised();
  // The softmax's factor is 1 (exact): no virtual call per element.
  const bool unit = spec_.normaliser == "softmax";
  parallel_blocks(n, nthreads, [&](Index lo, Index len) {
    for (Index r = lo; r < lo + len; ++r) {
      const double rs = normed ? R.row(r).sum() : 0.0;
      for (Index i = 0; i < k_; ++i) {
        const double f = unit ? 1.0 : norm_->dfactor(c.H(r, i));
        dH(r, i) = normed ? f * (R(r, i) - rs * std::exp(c.logG(r, i))) : f * R(r, i);
      }
    }
  });
}

void Gate::em_dlogits_keep(GateCache& c, const CMat& R, MatrixXd& dH, int nthreads) const {
  if (!linear_softmax() || c.weights_only || c.has_G) {
    em_dlogits(c, R, dH, nthreads);
    return;
  }
  // The softmax branch of em_dlogits() with the same arithmetic; G gets
  // exp_nonpos() of the log-weights, the value the Newton pass computes.
  const Index n = R.rows(), km1 = k_ - 1;
  dH.resize(n, k_);
  c.G.resize(n, km1);
  parallel_blocks(n, nthreads, [&](Index lo, Index len) {
    for (Index r = lo; r < lo + len; ++r) {
      const double rs = R.row(r).sum();
      for (Index i = 0; i < k_; ++i) {
        const double lg = c.logG(r, i);
        const double e = std::exp(lg);
        dH(r, i) = R(r, i) - rs * e;
        if (i < km1) c.G(r, i) = lg < -700.0 ? 0.0 : e;
      }
    }
  });
  c.has_G = true;
}

void Gate::mean_dlogits(const GateCache& c, const CMat& Mu, MatrixXd& dH, int nthreads) const {
  const Index n = Mu.rows();
  dH.resize(n, k_);
  const bool normed = norm_->normalised();
  parallel_blocks(n, nthreads, [&](Index lo, Index len) {
    for (Index r = lo; r < lo + len; ++r) {
      double m = 0.0;
      if (normed)
        for (Index i = 0; i < k_; ++i) m += std::exp(c.logG(r, i)) * Mu(r, i);
      for (Index i = 0; i < k_; ++i) {
        const double G = std::exp(c.logG(r, i));
        dH(r, i) = norm_->dfactor(c.H(r, i)) * G * (Mu(r, i) - m);
      }
    }
  });
}

double Gate::em_objective(const CMat& U, const CMat& R, const GateParams& p,
                          VectorXd* grad, int nthreads) const {
  // Forward pass and sum fused, in the gate's scratch arrays (allocated once
  // per fit: fresh n x k arrays at every call cost page faults).
  GateCache& c = scratch_;
  const Index n = U.rows();
  size_cache(c, p, n);
  const double f = block_sum<double>(n, nthreads, 0.0, [&](Index lo, Index len, double& a) {
    forward_rows(U, p, lo, len, c);
    for (Index r = lo; r < lo + len; ++r)
      for (Index i = 0; i < k_; ++i)
        if (R(r, i) != 0) a += R(r, i) * c.logG(r, i);
  });
  if (grad) {
    MatrixXd dH;
    em_dlogits(c, R, dH, nthreads);
    *grad = backward(U, p, c, dH, nthreads);
  }
  return f;
}

double Gate::mstep(const CMat& U, const CMat& R, GateParams& p, int nthreads,
                   GateCache* cache) const {
  stats_ = MstepStats();
  if (k_ == 1) return 0.0;
  normalise_reference(p);
  if (linear_softmax()) {
    // Newton on B = [b0; W] / tau scaled so the logits are [1, U] B.
    const double tau = std::exp(p.log_tau);
    MatrixXd B(q_ + 1, k_ - 1);
    for (Index i = 0; i < k_ - 1; ++i) {
      B(0, i) = spec_.intercept_inside ? p.b0(i) / tau : p.b0(i);
      B.col(i).tail(q_) = p.W.col(i) / tau;
    }
    MultinomOptions opt;
    opt.intercept = true;
    // The rule's criterion divides the gradient by the number of (weighted)
    // observations, the responsibilities' total.
    if (spec_.grad_tol > 0) opt.grad_stop = 0.1 * spec_.grad_tol * R.sum();
    // The E-step's log-weights are the Newton start's log-probabilities, and
    // the pass that accepts the last step leaves the new log-weights in the
    // cache for the next E-step.
    if (cache && cache_at(*cache, p, U.rows())) {
      opt.logp0 = &cache->logG;
      if (cache->has_G) opt.prob0 = &cache->G;
    }
    if (cache) {
      opt.logp_out = &cache->logG;
      opt.logp_scratch = &newton_scratch_;
      opt.prob_out = &cache->G;
      opt.prob_scratch = &newton_prob_scratch_;
    }
    // One Newton step per EM iteration by default (an EM gradient algorithm,
    // monotone like every other gate's one Fisher step): at n = 2e4, d = 2,
    // k = 3 the fit to the gradient rule took 0.47 s instead of 0.65 s under
    // SQUAREM, at n = 2e5, d = 10, k = 4 3.4 s instead of 5.5 s, to the same
    // log-likelihood (the solve to gate_tol spent 2-3 steps per M-step far
    // from the fixed point, where an exact M-step buys nothing).
    NewtonResult nr = multinom_newton(U, R, B, maxit_or(1), spec_.gate_tol, nthreads, opt);
    stats_.steps = nr.steps;
    for (Index i = 0; i < k_ - 1; ++i) {
      p.b0(i) = spec_.intercept_inside ? B(0, i) * tau : B(0, i);
      p.W.col(i) = B.col(i).tail(q_) * tau;
    }
    if (cache && nr.improved) {
      cache->at = p;
      cache->weights_only = true;
      cache->has_G = true;
    }
    return nr.objective;
  }
  const double f = norm_->normalised() && spec_.gate_optimizer == "fisher"
                       ? mstep_fisher(U, R, p, nthreads, cache)
                       : mstep_lbfgs(U, R, p, nthreads);
  // When the last pass was taken at the result (an accepted last step), it
  // is a complete forward pass there: hand it to the next E-step.
  if (cache && cache_at(scratch_, p, U.rows())) {
    std::swap(*cache, scratch_);
  }
  return f;
}

double Gate::em_fisher(const CMat& U, const CMat& R, const GateParams& p, VectorXd& grad,
                       MatrixXd& info, int nthreads, const GateCache* reuse) const {
  const Index n = U.rows(), q = q_, k = k_;
  // Full layout: the k gate vectors, the k intercepts, log tau. The packed
  // (free) parameters are a subset of it, picked at the end.
  const Index P = k * q + k + 1, tau_pos = k * q + k;
  const double tau = std::exp(p.log_tau), inv_tau = 1.0 / tau;
  const bool inside = spec_.intercept_inside;
  // A complete forward pass at p (the E-step's) is read instead of redone.
  const bool fresh = !(reuse && cache_at(*reuse, p, n, true));
  if (fresh) size_cache(scratch_, p, n);
  const GateCache& c = fresh ? scratch_ : *reuse;
  // Columns 0..P-1: information; column P: gradient; (0, P + 1): objective.
  const MatrixXd zero = MatrixXd::Zero(P, P + 2);
  MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
    if (fresh) forward_rows(U, p, lo, len, scratch_);
    ArrayXd tot(len);
    ArrayXXd G(len, k), cf(len, k), dh(len, k);
    double f = 0.0;
    for (Index r = 0; r < len; ++r) {
      double t = 0.0;
      for (Index i = 0; i < k; ++i) t += R(lo + r, i);
      tot(r) = t;
      for (Index i = 0; i < k; ++i) {
        const double lg = c.logG(lo + r, i), rr = R(lo + r, i);
        G(r, i) = exp_nonpos(lg);
        cf(r, i) = norm_->dfactor(c.H(lo + r, i));
        if (rr != 0) f += rr * lg;
        dh(r, i) = cf(r, i) * (rr - t * G(r, i));
      }
    }
    a(0, P + 1) += f;
    // The score Jacobian needs the scores without an inside intercept.
    MatrixXd raw = c.S.middleRows(lo, len);
    if (inside) raw.rowwise() -= p.b0.transpose();
    const auto Ub = U.middleRows(lo, len);
    const ArrayXd sqtot = tot.max(0.0).sqrt();
    MatrixXd V = MatrixXd::Zero(len, P);
    MatrixXd J, M(len, q + 2);
    std::vector<Index> idx(static_cast<size_t>(q + 2));
    for (Index i = 0; i < k; ++i) {
      // M: dh_{., i} / d(w_i, b0_i, log tau).
      score_->jacobian(Ub, p.W, raw, 0, len, i, J);
      for (Index r = 0; r < len; ++r) {
        // act(s) / tau, from the forward pass.
        const double scaled = inside ? c.H(lo + r, i) : c.H(lo + r, i) - p.b0(i);
        const double ad = act_->deriv_at(c.S(lo + r, i), scaled * tau) * inv_tau;
        M.row(r).head(q) = J.row(r) * ad;
        M(r, q) = inside ? ad : 1.0;
        M(r, q + 1) = -scaled;
      }
      for (Index j = 0; j < q; ++j) idx[static_cast<size_t>(j)] = i * q + j;
      idx[static_cast<size_t>(q)] = k * q + i;
      idx[static_cast<size_t>(q + 1)] = tau_pos;
      const VectorXd gi = M.transpose().lazyProduct(dh.col(i).matrix());
      // Information, diagonal part: M' diag(tot c^2 G) M.
      const ArrayXd d = tot * cf.col(i).square() * G.col(i);
      const MatrixXd DM = (M.array().colwise() * d).matrix();
      const MatrixXd Hi = M.transpose().lazyProduct(DM);
      for (Index a1 = 0; a1 < q + 2; ++a1) {
        a(idx[static_cast<size_t>(a1)], P) += gi(a1);
        for (Index a2 = 0; a2 < q + 2; ++a2)
          a(idx[static_cast<size_t>(a1)], idx[static_cast<size_t>(a2)]) += Hi(a1, a2);
      }
      // Rank-one part, -tot (J'cG)(J'cG)', through the rows of V.
      const ArrayXd e = cf.col(i) * G.col(i) * sqtot;
      V.middleCols(i * q, q) = (M.leftCols(q).array().colwise() * e).matrix();
      V.col(k * q + i) = (M.col(q).array() * e).matrix();
      V.col(tau_pos) += (M.col(q + 1).array() * e).matrix();
    }
    // Lower triangle only (symmetrised below): a rank-len update.
    MatrixXd VtV = MatrixXd::Zero(P, P);
    VtV.selfadjointView<Eigen::Lower>().rankUpdate(V.transpose(), 1.0);
    a.leftCols(P).triangularView<Eigen::Lower>() -= VtV;
  });
  const MatrixXd full = acc.leftCols(P).selfadjointView<Eigen::Lower>();
  acc.leftCols(P) = full;
  const Index kw = w_ref_ ? k - 1 : k;
  const Index kb = b_ref_ ? k - 1 : k;
  std::vector<Index> idx;
  for (Index j = 0; j < q * kw; ++j) idx.push_back(j);
  for (Index i = 0; i < kb; ++i) idx.push_back(k * q + i);
  if (spec_.estimate_tau) idx.push_back(tau_pos);
  const Index m = static_cast<Index>(idx.size());
  grad.resize(m);
  info.resize(m, m);
  for (Index a1 = 0; a1 < m; ++a1) {
    grad(a1) = acc(idx[static_cast<size_t>(a1)], P);
    for (Index a2 = 0; a2 < m; ++a2)
      info(a1, a2) = acc(idx[static_cast<size_t>(a1)], idx[static_cast<size_t>(a2)]);
  }
  return acc(0, P + 1);
}

// Fisher scoring in a trust region: the step solves (I + mu top) delta = g,
// with I the expected information and top its largest eigenvalue, and mu >= 0
// the smallest damping that keeps ||delta|| within the radius Delta (Delta
// starts at max(1, ||theta||)). Only increases are
// accepted, so the objective never decreases. The radius follows the gain
// ratio rho = actual / predicted increase (More's rule: rho < 0.25 shrinks it
// to a quarter of the step, rho > 0.75 with the step on the boundary doubles
// it). The information is singular along the gate's non-identified
// directions (cosine: ||w_i||; linear temperature gates: the (w, tau)
// scaling): the step uses only the eigenvectors whose eigenvalues exceed
// 1e-10 top, so those directions stay where they are. A trial after a
// failure is judged from the objective alone (a light pass); the information
// is computed where a step is accepted, in the same pass when the step is the
// first trial.
double Gate::mstep_fisher(const CMat& U, const CMat& R, GateParams& p, int nthreads,
                          const GateCache* cache) const {
  const GateParams templ = p;
  VectorXd theta = pack(p), g;
  MatrixXd info;
  double f = em_fisher(U, R, p, g, info, nthreads, cache);
  stats_.passes++;
  if (!std::isfinite(f) || !g.allFinite() || !info.allFinite()) return f;
  const double stop = spec_.gate_tol * (std::abs(f) + 1.0);
  // A fresh radius at every M-step: carrying the last one over (tried) let
  // one bad step slow many later EM iterations (perturbed cosine: 550 EM
  // iterations instead of 30).
  double radius = std::max(1.0, theta.norm());
  bool light = false;
  int fails = 0;
  const int maxit = maxit_or(1);
  // At most kMaxFails rejected trials per M-step: each shrinks the radius to
  // a quarter, so 8 reach 1/65536 of the first step; past that a trial that
  // still fails sits on a kink or a run-off direction (Euclidean-abs gate,
  // no maximum in reach) and more light passes only cost time (a campaign
  // fit at n = 1791 spent 8559 light passes in 200 EM iterations with 30
  // allowed, 3000 with 8, to the same log-likelihood within 0.002).
  const int kMaxFails = 8;
  for (int step = 0; step < maxit && fails < kMaxFails;) {
    // The last step needs no information where it lands.
    const bool last = step + 1 == maxit;
    Eigen::SelfAdjointEigenSolver<MatrixXd> eig(info);
    if (eig.info() != Eigen::Success) break;
    const VectorXd& lam = eig.eigenvalues();
    const double top = std::max(lam.cwiseAbs().maxCoeff(), 1e-300);
    const VectorXd proj = eig.eigenvectors().transpose() * g;
    // Coefficients of the damped step in the eigenbasis, and its length.
    auto coefs = [&](double mu) {
      VectorXd c = VectorXd::Zero(lam.size());
      for (Index j = 0; j < lam.size(); ++j)
        if (lam(j) > 1e-10 * top) c(j) = proj(j) / (lam(j) + mu * top);
      return c;
    };
    VectorXd c = coefs(0.0);
    if (!c.allFinite()) break;
    // Half the undamped predicted increase below the tolerance: done.
    if (0.5 * proj.dot(c) <= stop) break;
    if (c.norm() > radius) {
      // ||delta(mu)|| decreases in mu: bisection on log mu.
      double lo = -12.0, hi = 12.0;
      for (int b = 0; b < 60; ++b) {
        const double mid = 0.5 * (lo + hi);
        if (coefs(std::pow(10.0, mid)).norm() > radius) lo = mid; else hi = mid;
      }
      c = coefs(std::pow(10.0, hi));
    }
    double predicted = 0.0;  // g'delta - delta' I delta / 2
    for (Index j = 0; j < lam.size(); ++j)
      predicted += proj(j) * c(j) - 0.5 * std::max(lam(j), 0.0) * c(j) * c(j);
    const VectorXd delta = eig.eigenvectors() * c;
    const double len = delta.norm();
    const VectorXd trial = theta + delta;
    bool accepted = false;
    double rho = -1.0;
    if (trial.allFinite() && (!spec_.estimate_tau || std::abs(trial(trial.size() - 1)) <= 700)) {
      const GateParams pt = unpack(trial, templ);
      VectorXd gt;
      MatrixXd it;
      double ft;
      if (light || last) {
        ft = em_objective(U, R, pt, nullptr, nthreads);
        stats_.light_passes++;
        if (std::isfinite(ft) && ft >= f && last) {
          theta = trial;
          f = ft;
          stats_.steps++;
          break;
        }
        if (std::isfinite(ft) && ft >= f) {
          // The light pass left its forward pass at pt in scratch_.
          ft = em_fisher(U, R, pt, gt, it, nthreads, &scratch_);
          stats_.passes++;
        }
      } else {
        ft = em_fisher(U, R, pt, gt, it, nthreads);
        stats_.passes++;
      }
      if (std::isfinite(ft)) rho = (ft - f) / std::max(predicted, 1e-300);
      if (std::isfinite(ft) && ft >= f && gt.size() == g.size() && gt.allFinite() &&
          it.allFinite()) {
        theta = trial;
        f = ft;
        g = std::move(gt);
        info = std::move(it);
        accepted = true;
      }
    }
    if (rho < 0.25) {
      radius = 0.25 * len;
    } else if (rho > 0.75 && len >= 0.99 * radius) {
      radius *= 2.0;
    }
    if (accepted) {
      ++step;
      stats_.steps++;
      fails = 0;
      light = false;
    } else {
      ++fails;
      light = true;
    }
  }
  p = unpack(theta, templ);
  return f;
}

// L-BFGS on -sum R log G / sum R, warm-started.
double Gate::mstep_lbfgs(const CMat& U, const CMat& R, GateParams& p, int nthreads) const {
  const double scale = std::max(R.sum(), 1.0);
  const GateParams templ = p;
  LbfgsResult res = lbfgs_best(
      [&](const VectorXd& x, VectorXd& grad) {
        VectorXd g;
        const double obj = em_objective(U, R, unpack(x, templ), &g, nthreads);
        grad = -g / scale;
        return -obj / scale;
      },
      pack(p), maxit_or(50), spec_.gate_tol, 1e-8, 40);
  // The best point seen includes the start, so the objective never decreases.
  if (std::isfinite(res.f)) p = unpack(res.x, templ);
  return -res.f * scale;
}

}  // namespace moegate
