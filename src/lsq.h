// Least-squares estimation of regression-function MoE:
//   minimise sum_n w_n (y_n - sum_i G_i(z_n) h_i(x_n))^2,  h_i(x) = act(a_i'x),
// (w_n: case weights, 1 by default)
// over gate and expert parameters jointly by L-BFGS with analytic gradients.
#ifndef MOEGATE_LSQ_H
#define MOEGATE_LSQ_H

#include "expert.h"
#include <functional>

namespace moegate {

struct LsqControl {
  double tol = 1e-10;  // relative change of the objective
  int maxit = 1000;
  // Stopping rule: false: L-BFGS's own tests (relative change `tol` of the
  // RSS, or its gradient test); true: the relative gradient of the RSS
  // (relative_gradient() over the weight total) at most grad_tol, reached
  // after L-BFGS by a damped Newton polish when `polish_newton` (at most
  // polish_maxit Newton iterations).
  bool gradient_stop = false;
  double grad_tol = 1e-6;
  bool polish_newton = false;
  int polish_maxit = 100;
  // The run-off guard of the perturbed cosine router (Gate::boundary_ratio()):
  // the fit stops, keeping the last iterate within the bound, when an
  // accepted iterate's boundary ratio exceeds runoff_ratio times
  // max(1, the start's ratio) (infinite: off).
  double runoff_ratio = std::numeric_limits<double>::infinity();
  int nthreads = 1;
  const VectorXd* weights = nullptr;  // case weights (n), or nullptr
  // Called after every objective evaluation with (evaluation, RSS) when set
  // (trace output and user interrupts; from the calling thread only).
  std::function<void(int, double)> between;
};

struct LsqResult {
  GateParams gate;
  MatrixXd coef;       // p x k
  double rss = 0.0;
  int iter = 0;        // objective evaluations of L-BFGS
  bool converged = false;
  // Which rule stopped the fit: "gradient", "rss" (L-BFGS's relative change
  // or gradient test), "maxit", "stalled" (no step lowered the RSS before
  // the rule held) or "runoff" (the run-off guard; converged is then true:
  // the fit ended by a rule, at the last iterate within the bound).
  std::string stop_rule = "maxit";
  // Gate::boundary_ratio() at the result (NaN where it does not apply), and
  // with stop_rule "runoff" that of the iterate the guard refused (in L-BFGS
  // or in the polish, `runoff_in`).
  double boundary_ratio = std::numeric_limits<double>::quiet_NaN();
  double runoff_refused = std::numeric_limits<double>::quiet_NaN();
  // The ratio at the start and the guard's bound (runoff_ratio times the
  // start's ratio when above 1; infinite when the guard is off).
  double runoff_start = std::numeric_limits<double>::quiet_NaN();
  double runoff_bound = std::numeric_limits<double>::infinity();
  std::string runoff_in;
  double gradient_criterion = std::numeric_limits<double>::quiet_NaN();  // at the result
  int polishes = 0;          // Newton polishes run (0 or 1)
  int polish_evals = 0;      // their RSS-and-gradient evaluations
  double polish_gain = 0.0;  // RSS they removed
  std::string message;
};

class LsqProblem {
 public:
  // `templ` supplies the fixed parts of the gate (reference entries and a
  // fixed temperature); only the free parameters are optimised.
  // `weights` (optional): case weights, making the objective
  // sum_n w_n (y_n - m_n)^2.
  LsqProblem(const Gate& gate, const std::string& activation, const CMat& X,
             const CMat& Y, const CMat& U, const GateParams& templ, int nthreads,
             const VectorXd* weights = nullptr);
  Index n_par() const;
  VectorXd pack(const GateParams& gp, const MatrixXd& coef) const;
  void unpack(const VectorXd& theta, GateParams& gp, MatrixXd& coef) const;
  // Residual sum of squares and its gradient wrt the packed parameters.
  double rss(const VectorXd& theta, VectorXd* grad) const;

 private:
  const Gate& gate_;
  std::unique_ptr<Activation> act_;
  CMat X_;
  CMat Y_;
  CMat U_;
  int nthreads_;
  GateParams templ_;
  const VectorXd* w_;
};

LsqResult lsq_fit(const Gate& gate, const std::string& activation, const CMat& X,
                  const CMat& Y, const CMat& U, const GateParams& gp0,
                  const MatrixXd& coef0, const LsqControl& ctl);

}  // namespace moegate

#endif
