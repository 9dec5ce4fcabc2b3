#include "em.h"

namespace moegate {

double e_step(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
              const CMat& U, const GateParams& gp, const ExpertParams& ep, MatrixXd& R,
              int nthreads, EStepWork* work, const VectorXd* w) {
  EStepWork local;
  EStepWork& ws = work ? *work : local;
  GateCache& c = ws.cache;
  MatrixXd& logF = ws.logF;
  // A gate M-step may have left the log-weights at gp in the cache already
  // (the cache belongs to one fit, so U is the same).
  if (!cache_at(c, gp, X.rows())) {
    gate.forward(U, gp, c, nthreads);
  }
  expert.log_density(X, Y, ep, logF, nthreads);
  const Index n = X.rows(), k = gate.k();
  R.resize(n, k);
  return block_sum<double>(n, nthreads, 0.0, [&](Index lo, Index len, double& acc) {
    // The rows' log(s) terms are summed as the log of their product (each s
    // lies in [1, k]), taken whenever the product grows large: one log per
    // many rows instead of one per row.
    double prod = 1.0;
    for (Index r = lo; r < lo + len; ++r) {
      if (w && (*w)(r) == 0.0) {  // a zero case weight: the row is not in the model
        R.row(r).setZero();
        continue;
      }
      double m = kNegInf;
      Index at = 0;
      for (Index i = 0; i < k; ++i) {
        R(r, i) = c.logG(r, i) + logF(r, i);
        if (R(r, i) > m) { m = R(r, i); at = i; }
      }
      if (!std::isfinite(m)) {  // no component explains y_n (or NaN): reported upstream
        acc += m == kNegInf ? kNegInf : std::numeric_limits<double>::quiet_NaN();
        R.row(r).setConstant(w ? (*w)(r) / k : 1.0 / k);
        continue;
      }
      // One exp per component but the largest (exactly 1): the posterior
      // reuses the log-sum-exp terms.
      double s = 0.0;
      for (Index i = 0; i < k; ++i) {
        R(r, i) = i == at ? 1.0 : exp_nonpos(R(r, i) - m);
        s += R(r, i);
      }
      if (w) {
        const double wr = (*w)(r);
        const double scale = wr / s;
        for (Index i = 0; i < k; ++i) R(r, i) *= scale;
        acc += wr * (m + std::log(s));
        continue;
      }
      const double inv = 1.0 / s;
      for (Index i = 0; i < k; ++i) R(r, i) *= inv;
      acc += m;
      prod *= s;
      if (prod > 1e250) {
        acc += std::log(prod);
        prod = 1.0;
      }
    }
    acc += std::log(prod);
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
  EStepWork work;
  const VectorXd* cw = ctl.weights;
  double ll = e_step(gate, expert, X, Y, U, gp, ep, R, nt, &work, cw);
  res.trace.push_back(ll);
  if (!std::isfinite(ll)) {
    res.status = "numerical_failure";
    res.gate = gp;
    res.expert = ep;
    res.loglik = ll;
    res.posterior = R;
    return res;
  }
  // One EM map: M-step from responsibilities Rin, then the E-step.
  auto em_map = [&](GateParams& g, ExpertParams& e, const MatrixXd& Rin, MatrixXd& Rout) {
    expert.mstep(X, Y, Rin, e, nt);
    gate.mstep(U, Rin, g, nt, &work.cache);
    const MstepStats& st = gate.last_mstep_stats();
    res.gate_work.steps += st.steps;
    res.gate_work.passes += st.passes;
    res.gate_work.light_passes += st.light_passes;
    return e_step(gate, expert, X, Y, U, g, e, Rout, nt, &work, cw);
  };
  auto pack = [&](const GateParams& g, const ExpertParams& e) {
    VectorXd th(gate.n_par() + expert.n_par());
    th << gate.pack(g), expert.pack(e);
    return th;
  };
  // Posterior buffers swap roles instead of being reallocated each iteration.
  MatrixXd R1, R2, Rx, R3;
  for (int it = 1; it <= ctl.maxit; ++it) {
    GateParams g1 = gp;
    ExpertParams e1 = ep;
    double ll_new = em_map(g1, e1, R, R1);
    res.em_steps++;
    if (!std::isfinite(ll_new)) {
      // Keep the last finite fit and say why the iterations stopped.
      res.status = "numerical_failure";
      break;
    }
    if (ctl.squarem) {
      // SQUAREM (Varadhan & Roland 2008, scheme S3): extrapolate along two EM
      // steps and keep the extrapolation only if it beats the second step, so
      // the log-likelihood stays monotone.
      GateParams g2 = g1;
      ExpertParams e2 = e1;
      const double ll2 = em_map(g2, e2, R1, R2);
      res.em_steps++;
      if (std::isfinite(ll2) && ll2 >= ll_new) {
        const VectorXd t0 = pack(gp, ep), t1 = pack(g1, e1), t2 = pack(g2, e2);
        const VectorXd r = t1 - t0, v = t2 - t1 - r;
        g1 = g2; e1 = e2; R1.swap(R2); ll_new = ll2;
        const double vn = v.norm();
        if (vn > 0) {
          const double alpha = std::min(-r.norm() / vn, -1.0);
          const VectorXd tx = t0 - 2.0 * alpha * r + alpha * alpha * v;
          GateParams gx = gate.unpack(tx.head(gate.n_par()), gp);
          ExpertParams ex = expert.unpack(tx.tail(expert.n_par()), ep);
          if (tx.allFinite() && expert.project(ex)) {
            const double llx = e_step(gate, expert, X, Y, U, gx, ex, Rx, nt, &work, cw);
            if (std::isfinite(llx) && llx >= ll_new) {
              // Stabilise with one EM step from the extrapolated point.
              const double ll3 = em_map(gx, ex, Rx, R3);
              res.em_steps++;
              if (std::isfinite(ll3) && ll3 >= llx) {
                g1 = gx; e1 = ex; R1.swap(R3); ll_new = ll3;
              }
            }
          }
        }
      }
    }
    // Rounding in sums over n can move the log-likelihood by ~1e-12 relative.
    if (ll_new < ll - 1e-9 * (std::abs(ll) + 1.0)) res.decreased = true;
    gp = g1;
    ep = e1;
    R.swap(R1);
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
  res.gate = gp;
  res.expert = ep;
  res.loglik = ll;
  // The fit reports the posterior itself, not its weighted version.
  if (cw) e_step(gate, expert, X, Y, U, gp, ep, R, nt);
  res.posterior = R;
  return res;
}

double loglik_gradient(const Gate& gate, const Expert& expert, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& gp,
                       const ExpertParams& ep, VectorXd* grad, int nthreads,
                       const VectorXd* w) {
  MatrixXd R;
  EStepWork work;
  const double ll = e_step(gate, expert, X, Y, U, gp, ep, R, nthreads, &work, w);
  const GateCache& c = work.cache;
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
