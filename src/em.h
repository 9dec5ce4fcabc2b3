// The EM driver for likelihood models and the full-likelihood evaluator used
// for standard errors and gradient checks.
#ifndef MOEGATE_EM_H
#define MOEGATE_EM_H

#include "expert.h"
#include <functional>

namespace moegate {

struct EmControl {
  double tol = 1e-8;   // relative log-likelihood change
  int maxit = 1000;
  int nthreads = 1;
  bool squarem = false;  // SQUAREM acceleration with monotone fallback
  // Case weights (n), or nullptr: the E-step returns responsibilities scaled
  // by them, so every M-step maximises the weighted EM objective.
  const VectorXd* weights = nullptr;
  // Stopping rule: false: the relative log-likelihood change falls below
  // tol; true: the relative gradient (relative_gradient()) falls below
  // grad_tol, which a slow crawl along a flat direction cannot fake.
  bool gradient_stop = false;
  double grad_tol = 1e-6;
  // With the gradient rule: once the relative change falls below polish_at,
  // Newton (observed information from the analytic score; kTrust: in a trust
  // region where the information is analytic) or L-BFGS on the
  // full log-likelihood from the EM iterate (at most polish_maxit
  // iterations), kept only if it gains; EM then resumes.
  enum Polish { kNoPolish, kNewton, kLbfgs, kTrust };
  Polish polish = kNoPolish;
  double polish_at = 1e-5;
  int polish_maxit = 100;
};

struct EmResult {
  GateParams gate;
  ExpertParams expert;
  double loglik = kNegInf;
  std::vector<double> trace;  // log-likelihood after each E-step
  int iter = 0;
  int em_steps = 0;           // EM maps evaluated (> iter with SQUAREM)
  MstepStats gate_work;       // gate M-step work summed over the fit
  bool converged = false;
  // Which rule stopped the fit: "gradient", "loglik" (relative change),
  // "maxit" or "numerical_failure".
  std::string stop_rule = "maxit";
  double gradient_criterion = std::numeric_limits<double>::quiet_NaN();  // last evaluated
  int polishes = 0;           // L-BFGS polishes run
  int polish_evals = 0;       // their log-likelihood-and-score evaluations
  double polish_gain = 0.0;   // log-likelihood they gained in all
  bool decreased = false;     // a decrease beyond rounding was seen (never expected)
  std::string status = "ok";  // "ok" | "numerical_failure"
  MatrixXd posterior;         // n x k responsibilities at the returned parameters
};

// Work arrays of an E-step, kept across EM iterations so that the n x k
// matrices are allocated once per fit.
struct EStepWork {
  GateCache cache;
  MatrixXd dH;  // logit gradients of free_score()
};

// Log-likelihood and posterior at given parameters; `work` (optional) keeps
// the gate's forward pass for reuse by the caller. With case weights `w`
// (optional) the log-likelihood is sum_n w_n log p(y_n) and row n of R is the
// posterior times w_n (rows sum to w_n; every M-step reads row totals, none
// assumes they are one).
double e_step(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
              const CMat& U, const GateParams& gp, const ExpertParams& ep, MatrixXd& R,
              int nthreads, EStepWork* work = nullptr, const VectorXd* w = nullptr);

// EM from given parameters; when `R0` has rows, a first M-step is taken from
// those responsibilities instead. `between` is called after every iteration
// with (iteration, log-likelihood), and with (-iteration, log-likelihood)
// after a polish that gained, and may throw to abort (user interrupt).
EmResult em_fit(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                const CMat& U, GateParams gp, ExpertParams ep, const CMat& R0,
                const EmControl& ctl, const std::function<void(int, double)>& between);

// Log-likelihood and its gradient wrt the packed (gate, expert) parameters,
// from one E-step; `posterior` (optional) receives the responsibilities.
double loglik_gradient(const Gate& gate, const Expert& expert, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& gp,
                       const ExpertParams& ep, VectorXd* grad, int nthreads,
                       const VectorXd* w = nullptr, MatrixXd* posterior = nullptr);

// The score wrt the free coordinates (gate.pack(), expert.pack_free()) at
// (gp, ep), given the posterior R at that point; completes the gate's
// forward pass in `work` when it is not.
VectorXd free_score(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                    const CMat& U, const GateParams& gp, const ExpertParams& ep,
                    const MatrixXd& R, EStepWork& work, int nthreads);

// Whether observed_information() has an analytic form for this gate and
// expert: the linear softmax gate (inner score, no activation, fixed
// temperature, last expert the reference) with experts that have linear
// predictors (multinomial).
bool has_observed_information(const Gate& gate, const Expert& expert);

// The observed information, minus the Hessian of the log-likelihood, wrt the
// free coordinates (gate.pack(), expert.pack_free()) at (gp, ep), given the
// posterior R there as e_step() returns it (rows scaled by the case weights).
// `cache` (optional): a forward pass of the gate, used when it was taken at
// gp. False (info untouched) where has_observed_information() is false.
bool observed_information(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                          const CMat& U, const GateParams& gp, const ExpertParams& ep,
                          const MatrixXd& R, const GateCache* cache, int nthreads,
                          MatrixXd& info);

// max_j |g_j| max(|theta_j|, 1) / n: the log-likelihood's change per
// observation for a relative change of any one free coordinate (Dennis and
// Schnabel's relative gradient with the log-likelihood scaled by n).
double relative_gradient(const VectorXd& g, const VectorXd& theta, double n);

}  // namespace moegate

#endif
