// The gate as a pipeline of small pieces, each with an analytic derivative:
//   u = M(z) -> s_i = score(u; w_i) -> [+ b0_i if intercept inside] -> act(s_i)
//   -> / tau -> [+ b0_i if intercept outside] -> normaliser -> G_i(z).
// Every named gate of the papers is one configuration of this pipeline.
#ifndef MOEGATE_GATE_H
#define MOEGATE_GATE_H

#include "numerics.h"
#include <memory>
#include <string>

namespace moegate {

// ---- pieces ---------------------------------------------------------------

// Score s_ni = score(u_n; w_i) on whole matrices (U: n x q, W: q x k).
class Score {
 public:
  virtual ~Score() {}
  virtual void compute(const CMat& U, const MatrixXd& W, Index lo, Index len,
                       MatrixXd& S) const = 0;
  // Gradient wrt W of sum_ni dS_ni * s_ni, given the score values S of the
  // same rows; adds into dW (q x k).
  virtual void backward(const CMat& U, const MatrixXd& W, const MatrixXd& S,
                        const MatrixXd& dS, Index lo, Index len, MatrixXd& dW) const = 0;
  // Jacobian of expert i's scores wrt w_i on rows [lo, lo+len): J (len x q)
  // with J(r, .) = d s_{lo+r, i} / d w_i', given the scores S of those rows.
  virtual void jacobian(const CMat& U, const MatrixXd& W, const MatrixXd& S, Index lo,
                        Index len, Index i, MatrixXd& J) const = 0;
  // True when adding one vector to every w_i leaves the softmax unchanged.
  virtual bool translation_invariant() const { return false; }
};
std::unique_ptr<Score> make_score(const std::string& id, double eps_w, double eps_u);

// Elementwise activation with its derivative.
class Activation {
 public:
  virtual ~Activation() {}
  virtual double value(double x) const = 0;
  virtual double deriv(double x) const = 0;
  // The derivative at x given v = value(x), cheaper for some activations.
  virtual double deriv_at(double x, double) const { return deriv(x); }
  virtual bool is_identity() const { return false; }
};
std::unique_ptr<Activation> make_activation(const std::string& id);

// Normaliser from logits H to log-weights log G.
class Normaliser {
 public:
  virtual ~Normaliser() {}
  virtual void log_weights(const MatrixXd& H, Index lo, Index len, MatrixXd& logG) const = 0;
  // d log G_i / d h_m = c_m (delta_im - G_m) for the normalised gates; this
  // returns c for rows [lo, lo+len) (1 for softmax, sigmoid(-h) for the
  // normalised sigmoid). The unnormalised sigmoid has d log G_i / d h_i = c_i.
  virtual double dfactor(double h) const = 0;
  virtual bool normalised() const { return true; }
  virtual bool translation_invariant() const { return false; }
};
std::unique_ptr<Normaliser> make_normaliser(const std::string& id);

// Input transform u = M(z), applied once to the gate covariates.
MatrixXd apply_transform(const std::string& id, const CMat& Z);

// ---- parameters -------------------------------------------------------------

struct GateParams {
  MatrixXd W;      // q x k gate vectors
  VectorXd b0;     // k intercepts
  double log_tau;  // log temperature (shared)
};

struct GateSpec {
  std::string score = "inner";
  std::string activation = "identity";
  std::string normaliser = "softmax";
  std::string transform = "identity";
  double eps_w = 0.0, eps_u = 0.0;
  bool intercept_inside = false;
  bool estimate_tau = false;
  // Inner iterations of the gate M-step; 0: the optimiser's default (50
  // Newton or L-BFGS iterations; one Fisher-scoring step per EM iteration).
  int gate_maxit = 0;
  double gate_tol = 1e-10;
  // The tolerance of EM's gradient stopping rule, or 0 (the relative-change
  // rule): the linear softmax's Newton M-step then also runs until its
  // gradient meets a tenth of it (see MultinomOptions::grad_stop).
  double grad_tol = 0.0;
  // Gate M-step of the non-linear gates: "fisher" (Fisher scoring with step
  // halving) or "lbfgs".
  std::string gate_optimizer = "fisher";
};

// Work arrays of one forward pass, reused by the backward pass.
struct GateCache {
  GateParams at;  // the parameters of this forward pass
  MatrixXd S;     // pre-activation score (intercept added when inside)
  MatrixXd H;     // logits
  MatrixXd logG;  // log-weights
  // Set by a gate M-step that left the log-weights at its result in logG
  // (S and H are then stale): enough for an E-step, not for backward().
  bool weights_only = false;
  // The weights of the first k - 1 experts at `at` when `has_G` (left by the
  // linear softmax's Newton M-step for its next start; a forward pass
  // clears the flag).
  MatrixXd G;
  bool has_G = false;
};

// Whether two gate parameter sets are identical.
inline bool same_params(const GateParams& a, const GateParams& b) {
  return a.log_tau == b.log_tau && a.W.rows() == b.W.rows() && a.W.cols() == b.W.cols() &&
         a.b0.size() == b.b0.size() && a.W == b.W && a.b0 == b.b0;
}

// Whether cache c holds the log-weights of n rows at p (and, with
// `complete`, the scores and logits too).
inline bool cache_at(const GateCache& c, const GateParams& p, Index n, bool complete = false) {
  return c.logG.rows() == n && (!complete || (!c.weights_only && c.S.rows() == n)) &&
         same_params(c.at, p);
}

// Work done by the last gate M-step (Fisher scoring): accepted steps, full
// passes (objective, gradient and information) and objective-only passes.
struct MstepStats {
  int steps = 0, passes = 0, light_passes = 0;
};

class Gate {
 public:
  Gate(const GateSpec& spec, Index q, Index k);

  Index q() const { return q_; }
  Index k() const { return k_; }
  const GateSpec& spec() const { return spec_; }
  bool normalised() const { return norm_->normalised(); }
  // Which parameters are free: under a translation-invariant configuration
  // the last expert is the reference (w_k = 0 and/or b0_k = 0).
  bool w_reference() const { return w_ref_; }
  bool b_reference() const { return b_ref_; }

  Index n_par() const;
  VectorXd pack(const GateParams& p) const;
  GateParams unpack(const VectorXd& theta, const GateParams& templ) const;
  // Put fixed (reference) entries into the documented convention.
  void normalise_reference(GateParams& p) const;

  void forward(const CMat& U, const GateParams& p, GateCache& cache, int nthreads) const;
  // Gradient wrt the packed parameters of sum_ni dH_ni * h_ni.
  VectorXd backward(const CMat& U, const GateParams& p, const GateCache& cache,
                    const MatrixXd& dH, int nthreads) const;
  // dH for the EM objective sum_ni R_ni log G_ni.
  void em_dlogits(const GateCache& cache, const CMat& R, MatrixXd& dH, int nthreads) const;
  // The same from a complete forward pass in `cache`; for the linear softmax
  // it also keeps the weights it exponentiates (those of the first k - 1
  // experts, as its Newton M-step would compute them from the log-weights)
  // in cache.G, so that the next M-step's first pass needs no exponentials.
  void em_dlogits_keep(GateCache& cache, const CMat& R, MatrixXd& dH, int nthreads) const;
  // dH for m_n = sum_i G_ni Mu_ni: dm_n / dh_ni.
  void mean_dlogits(const GateCache& cache, const CMat& Mu, MatrixXd& dH, int nthreads) const;

  // sum_ni R_ni log G_ni, its gradient and its expected (Fisher) information
  // -E[Hessian] wrt the packed parameters, from one pass over the data.
  // Normalised gates only. The information treats R_n as multinomial counts
  // with total sum_i R_ni: J_n' diag(c) r (diag(G) - GG') diag(c) J_n with
  // J_n = dh_n / dtheta and c the normaliser's d log-odds / dh factor.
  // `reuse` (optional): a complete forward pass, read instead of recomputed
  // when it was taken at p.
  double em_fisher(const CMat& U, const CMat& R, const GateParams& p, VectorXd& grad,
                   MatrixXd& info, int nthreads, const GateCache* reuse = nullptr) const;
  // sum_ni R_ni log G_ni and its gradient wrt the packed parameters.
  double em_objective(const CMat& U, const CMat& R, const GateParams& p,
                      VectorXd* grad, int nthreads) const;
  // Gate M-step: improve sum R log G from the current parameters. Newton for
  // the linear softmax configuration, Fisher scoring (or L-BFGS, on request
  // and for unnormalised gates) otherwise. Returns the objective.
  // `cache` (optional): a forward pass, reused when it was taken at p; on
  // return it holds the log-weights at the result whenever the M-step's last
  // pass was taken there (the linear softmax's Newton leaves weights_only,
  // the other optimisers a complete forward pass), and the next E-step uses
  // them instead of a forward pass.
  double mstep(const CMat& U, const CMat& R, GateParams& p, int nthreads,
               GateCache* cache = nullptr) const;
  const MstepStats& last_mstep_stats() const { return stats_; }

  // How far along a run-off towards the unit sphere the perturbed cosine
  // router is: rho / (1 - rho), rho the radius of the smallest ball
  // enclosing v_i = w_i / (||w_i|| + eps_w), i = 1..k (see gate.cpp for why).
  // NaN for every other configuration (other scores, eps_w = 0, an
  // activation or a normaliser that breaks the shift invariance of the v_i).
  double boundary_ratio(const GateParams& p) const;

 private:
  bool linear_softmax() const;
  int maxit_or(int dflt) const { return spec_.gate_maxit > 0 ? spec_.gate_maxit : dflt; }
  void forward_rows(const CMat& U, const GateParams& p, Index lo, Index len,
                    GateCache& c) const;
  // Size c for n rows of a forward pass at p.
  void size_cache(GateCache& c, const GateParams& p, Index n) const;
  double mstep_fisher(const CMat& U, const CMat& R, GateParams& p, int nthreads,
                      const GateCache* cache) const;
  double mstep_lbfgs(const CMat& U, const CMat& R, GateParams& p, int nthreads) const;
  GateSpec spec_;
  Index q_, k_;
  std::unique_ptr<Score> score_;
  std::unique_ptr<Activation> act_;
  std::unique_ptr<Normaliser> norm_;
  bool w_ref_, b_ref_;
  mutable MstepStats stats_;
  // Work arrays of em_objective() / em_fisher(), kept across the M-steps of
  // one fit (a Gate is built per fit and its methods are called from one
  // thread).
  mutable GateCache scratch_;
  // Trial log-weights and weights of the linear softmax's Newton M-step.
  mutable MatrixXd newton_scratch_, newton_prob_scratch_;
};

}  // namespace moegate

#endif
