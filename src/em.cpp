#include "em.h"

namespace moegate {

double e_step(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
              const CMat& U, const GateParams& gp, const ExpertParams& ep, MatrixXd& R,
              int nthreads, GateCache* cache_out) {
  GateCache local;
  GateCache& c = cache_out ? *cache_out : local;
  gate.forward(U, gp, c, nthreads);
  MatrixXd logF;
  expert.log_density(X, Y, ep, logF, nthreads);
  const Index n = X.rows(), k = gate.k();
  R.resize(n, k);
  return block_sum<double>(n, nthreads, 0.0, [&](Index lo, Index len, double& acc) {
    for (Index r = lo; r < lo + len; ++r) {
      double m = kNegInf;
      for (Index i = 0; i < k; ++i) {
        R(r, i) = c.logG(r, i) + logF(r, i);
        m = std::max(m, R(r, i));
      }
      if (!std::isfinite(m)) {  // no component explains y_n (or NaN): reported upstream
        acc += m == kNegInf ? kNegInf : std::numeric_limits<double>::quiet_NaN();
        R.row(r).setConstant(1.0 / k);
        continue;
      }
      double s = 0.0;
      for (Index i = 0; i < k; ++i) s += std::exp(R(r, i) - m);
      const double lse = m + std::log(s);
      for (Index i = 0; i < k; ++i) R(r, i) = std::exp(R(r, i) - lse);
      acc += lse;
    }
  });
}

EmResult em_fit(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                const CMat& U, GateParams gp, ExpertParams ep, const CMat& R0,
                const EmControl& ctl, const std::function<void(int, double)>& between) {
  EmResult res;
  const int nt = ctl.nthreads;
  if (R0.rows() > 0) {
    expert.mstep(X, Y, R0, ep, nt);
    gate.mstep(U, R0, gp, nt);
  }
  gate.normalise_reference(gp);
  MatrixXd R;
  double ll = e_step(gate, expert, X, Y, U, gp, ep, R, nt);
  res.trace.push_back(ll);
  if (!std::isfinite(ll)) {
    res.status = "numerical_failure";
    res.gate = gp;
    res.expert = ep;
    res.loglik = ll;
    res.posterior = R;
    return res;
  }
  for (int it = 1; it <= ctl.maxit; ++it) {
    GateParams gp_old = gp;
    ExpertParams ep_old = ep;
    expert.mstep(X, Y, R, ep, nt);
    gate.mstep(U, R, gp, nt);
    MatrixXd Rnew;
    const double ll_new = e_step(gate, expert, X, Y, U, gp, ep, Rnew, nt);
    if (!std::isfinite(ll_new)) {
      // Keep the last finite fit and say why the iterations stopped.
      gp = gp_old;
      ep = ep_old;
      res.status = "numerical_failure";
      break;
    }
    // Rounding in sums over n can move the log-likelihood by ~1e-12 relative.
    if (ll_new < ll - 1e-9 * (std::abs(ll) + 1.0)) res.decreased = true;
    R.swap(Rnew);
    res.trace.push_back(ll_new);
    res.iter = it;
    const double change = std::abs(ll_new - ll) / (std::abs(ll) + 1e-10);
    ll = ll_new;
    between(it, ll);
    if (change < ctl.tol) {
      res.converged = true;
      break;
    }
  }
  if (res.status != "ok") ll = e_step(gate, expert, X, Y, U, gp, ep, R, nt);
  res.gate = gp;
  res.expert = ep;
  res.loglik = ll;
  res.posterior = R;
  return res;
}

double loglik_gradient(const Gate& gate, const Expert& expert, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& gp,
                       const ExpertParams& ep, VectorXd* grad, int nthreads) {
  MatrixXd R;
  GateCache c;
  const double ll = e_step(gate, expert, X, Y, U, gp, ep, R, nthreads, &c);
  if (grad) {
    // Fisher's identity: the score is the EM objective's gradient at R.
    MatrixXd dH;
    gate.em_dlogits(c, R, dH, nthreads);
    const VectorXd gg = gate.backward(U, gp, c, dH, nthreads);
    const VectorXd ge = expert.gradient(X, Y, R, ep, nthreads);
    grad->resize(gg.size() + ge.size());
    *grad << gg, ge;
  }
  return ll;
}

}  // namespace moegate
