// Experts: Gaussian with a linear or activated mean, and multinomial
// logistic. Each works on whole matrices for all k experts at once.
#ifndef MOEGATE_EXPERT_H
#define MOEGATE_EXPERT_H

#include "gate.h"

namespace moegate {

// coef: p x k (Gaussian) or p x (k (K - 1)) (multinomial: expert i owns the
// columns [i (K-1), (i+1) (K-1)); the last class is the reference).
// sigma2: k variances (Gaussian; unused for multinomial).
struct ExpertParams {
  MatrixXd coef;
  VectorXd sigma2;
};

struct ExpertSpec {
  std::string family = "gaussian";  // "gaussian" | "multinomial"
  std::string activation = "identity";
  double var_floor = 0.0;  // absolute variance floor
  int n_classes = 0;       // K for multinomial
  int expert_maxit = 25;   // inner iterations (Newton / L-BFGS) per M-step
  double expert_tol = 1e-10;
};

class Expert {
 public:
  virtual ~Expert() {}
  // n x k matrix of log f_i(y_n | x_n).
  virtual void log_density(const CMat& X, const CMat& Y, const ExpertParams& p,
                           MatrixXd& logF, int nthreads) const = 0;
  // Improve sum_ni R_ni log f_i over the expert parameters.
  virtual void mstep(const CMat& X, const CMat& Y, const CMat& R,
                     ExpertParams& p, int nthreads) const = 0;
  // Gradient of sum_ni R_ni log f_i wrt the packed parameters.
  virtual VectorXd gradient(const CMat& X, const CMat& Y, const CMat& R,
                            const ExpertParams& p, int nthreads) const = 0;
  // n x k regression function (mean of y for Gaussian experts).
  virtual void mean(const CMat& X, const ExpertParams& p, MatrixXd& Mu) const = 0;
  virtual Index n_par() const = 0;
  virtual VectorXd pack(const ExpertParams& p) const = 0;
  virtual ExpertParams unpack(const VectorXd& theta, const ExpertParams& templ) const = 0;
  // Put extrapolated parameters back into the parameter space (variances at
  // or above the floor); false when they cannot be.
  virtual bool project(ExpertParams&) const { return true; }
  // True when the variance floor binds for expert i.
  virtual bool floor_binds(const ExpertParams&, Index) const { return false; }
  // Unconstrained coordinates for a quasi-Newton polish of the full
  // log-likelihood (Gaussian variances as log(sigma2 - floor)), the inverse
  // map and the chain rule from a gradient wrt pack()'s coordinates at e.
  // free_ok() is false when the free coordinates are undefined at e (a
  // variance on its floor).
  virtual VectorXd pack_free(const ExpertParams& e) const { return pack(e); }
  virtual ExpertParams unpack_free(const VectorXd& theta, const ExpertParams& templ) const {
    return unpack(theta, templ);
  }
  virtual VectorXd free_gradient(const VectorXd& grad, const ExpertParams&) const { return grad; }
  virtual bool free_ok(const ExpertParams&) const { return true; }
  // For an analytic observed information of the full log-likelihood (the
  // Newton polish): the number L of linear predictors per expert, or 0 when
  // the expert has none. Expert i's predictor c is x_n' coef.col(i L + c),
  // so its coefficients are the packed free coordinates [(i L + c) p,
  // (i L + c + 1) p). predictor_derivatives() gives, for rows [lo, lo + len),
  // the gradient of log f_i(y_n | x_n) wrt expert i's predictors (len x k L,
  // column i L + c) and minus its Hessian (len x k L(L + 1) / 2: expert i's
  // upper triangle, row by row, from column i L(L + 1) / 2).
  virtual Index n_predictors() const { return 0; }
  // S scalar predictors per expert beyond the L linear ones (design 1):
  // expert i's scalar predictor c is the free coordinate k L p + i S + c
  // (Gaussian experts: the free variance coordinate, S = 1). With S > 0 the
  // derivatives' columns run over the L + S predictors of each expert (column
  // i (L + S) + c, the scalar ones last; Hessian triangles of size
  // (L + S)(L + S + 1) / 2).
  virtual Index n_scalar_predictors() const { return 0; }
  virtual void predictor_derivatives(const CMat&, const CMat&, const ExpertParams&, Index,
                                     Index, MatrixXd&, MatrixXd&) const {}
};

std::unique_ptr<Expert> make_expert(const ExpertSpec& spec, Index p, Index k);

}  // namespace moegate

#endif
