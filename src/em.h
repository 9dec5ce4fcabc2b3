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
  bool decreased = false;     // a decrease beyond rounding was seen (never expected)
  std::string status = "ok";  // "ok" | "numerical_failure"
  MatrixXd posterior;         // n x k responsibilities at the returned parameters
};

// Work arrays of an E-step, kept across EM iterations so that the n x k
// matrices are allocated once per fit.
struct EStepWork {
  GateCache cache;
  MatrixXd logF;
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
// with (iteration, log-likelihood) and may throw to abort (user interrupt).
EmResult em_fit(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                const CMat& U, GateParams gp, ExpertParams ep, const CMat& R0,
                const EmControl& ctl, const std::function<void(int, double)>& between);

// Log-likelihood and its gradient wrt the packed (gate, expert) parameters.
double loglik_gradient(const Gate& gate, const Expert& expert, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& gp,
                       const ExpertParams& ep, VectorXd* grad, int nthreads,
                       const VectorXd* w = nullptr);

}  // namespace moegate

#endif
