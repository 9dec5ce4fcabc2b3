#include "lsq.h"
#include "em.h"  // relative_gradient()

namespace moegate {

LsqProblem::LsqProblem(const Gate& gate, const std::string& activation, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& templ, int nthreads,
                       const VectorXd* weights)
    : gate_(gate), act_(make_activation(activation)), X_(X), Y_(Y), U_(U), nthreads_(nthreads),
      templ_(templ), w_(weights) {
  gate_.normalise_reference(templ_);
}

Index LsqProblem::n_par() const { return gate_.n_par() + X_.cols() * gate_.k(); }

VectorXd LsqProblem::pack(const GateParams& gp, const MatrixXd& coef) const {
  VectorXd theta(n_par());
  theta << gate_.pack(gp), Eigen::Map<const VectorXd>(coef.data(), coef.size());
  return theta;
}

void LsqProblem::unpack(const VectorXd& theta, GateParams& gp, MatrixXd& coef) const {
  const Index ng = gate_.n_par();
  gp = gate_.unpack(theta.head(ng), templ_);
  coef = Eigen::Map<const MatrixXd>(theta.data() + ng, X_.cols(), gate_.k());
}

double LsqProblem::rss(const VectorXd& theta, VectorXd* grad) const {
  GateParams gp = templ_;
  MatrixXd coef;
  unpack(theta, gp, coef);
  const Index n = X_.rows(), k = gate_.k(), p = X_.cols();
  GateCache c;
  gate_.forward(U_, gp, c, nthreads_);
  MatrixXd eta = MatrixXd(n, k);
  MatrixXd Mu(n, k);
  VectorXd resid(n);
  parallel_blocks(n, nthreads_, [&](Index lo, Index len) {
    eta.middleRows(lo, len).noalias() = X_.middleRows(lo, len) * coef;
    for (Index r = lo; r < lo + len; ++r) {
      double m = 0.0;
      for (Index i = 0; i < k; ++i) {
        Mu(r, i) = act_->value(eta(r, i));
        m += std::exp(c.logG(r, i)) * Mu(r, i);
      }
      resid(r) = Y_(r, 0) - m;
    }
  });
  const double f = block_sum<double>(n, nthreads_, 0.0, [&](Index lo, Index len, double& a) {
    if (w_) a += (w_->segment(lo, len).array() * resid.segment(lo, len).array().square()).sum();
    else a += resid.segment(lo, len).squaredNorm();
  });
  if (grad) {
    // From here on resid holds w_n e_n: the gradient of sum w e^2 is that of
    // sum e^2 with each residual scaled by its weight.
    if (w_) resid.array() *= w_->array();
    MatrixXd dH;
    gate_.mean_dlogits(c, Mu, dH, nthreads_);
    // d rss / d h_ni = -2 e_n dm_n / d h_ni
    parallel_blocks(n, nthreads_, [&](Index lo, Index len) {
      dH.middleRows(lo, len).array().colwise() *= -2.0 * resid.segment(lo, len).array();
    });
    const VectorXd gg = gate_.backward(U_, gp, c, dH, nthreads_);
    MatrixXd zero = MatrixXd::Zero(p, k);
    MatrixXd gc = block_sum<MatrixXd>(n, nthreads_, zero, [&](Index lo, Index len, MatrixXd& a) {
      MatrixXd F(len, k);
      for (Index i = 0; i < k; ++i)
        for (Index r = 0; r < len; ++r)
          F(r, i) = -2.0 * resid(lo + r) * std::exp(c.logG(lo + r, i)) *
                    act_->deriv(eta(lo + r, i));
      a.noalias() += X_.middleRows(lo, len).transpose() * F;
    });
    grad->resize(n_par());
    *grad << gg, Eigen::Map<const VectorXd>(gc.data(), gc.size());
  }
  return f;
}

namespace {

// BFGS-updated steps between differenced Hessians (0: none); see lsq_polish().
// Measured on over-specified k = 3 cosine-router fits, n = 1e4, 4 data sets
// per router (same starts): polish evaluations 579 / 36 / 38 / 76 (cosine)
// and 1236 / 1151 / 124 / 1334 (perturbed cosine) with the updates, 1802 /
// 36 / 36 / 56 and 1869 / 1924 / 153 / 1913 without; CPU 4.96 s vs 7.77 s
// and 16.8 s vs 20.3 s for the four fits; the RSS reached differed by at
// most 0.06 (of ~500) either way. Build with
// MOEGATE_CPPFLAGS=-DMOEGATE_LSQ_QUASI_STEPS=0 to measure without.
#ifndef MOEGATE_LSQ_QUASI_STEPS
#define MOEGATE_LSQ_QUASI_STEPS 20
#endif
const int kLsqQuasiSteps = MOEGATE_LSQ_QUASI_STEPS;

// Damped Newton on f = RSS / scale from x (f and its gradient g there, both
// updated), as polish_newton() does for the likelihood: the Hessian by
// forward differences of the analytic gradient (relative steps
// 1e-6 max(|x_j|, 1)), symmetrised; Levenberg damping where it is not
// positive definite (damped_newton_step(): the cosine routers' norms and the
// perturbed router's common shift are exact invariances, so the Hessian is
// singular there); step halving, so every accepted step lowers the RSS;
// between differenced Hessians BFGS updates from the gradients the steps
// evaluate anyway, with polish_newton()'s tests for when to difference again
// (a halved step, less than half the predicted decrease, a crawl). Ends
// when the relative gradient is at most grad_tol, no step lowers the RSS, or
// after polish_maxit iterations, or when `guard` (optional) refuses an
// accepted step (x, f and g then stay at the last step it allowed). Returns
// which: "gradient", "stalled", "maxit" or "runoff".
template <class Eval>
std::string lsq_polish(Eval&& eval, VectorXd& x, double& f, VectorXd& g, const LsqControl& ctl,
                       const std::function<bool(const VectorXd&)>& guard) {
  const Index m = x.size();
  MatrixXd H(m, m);
  VectorXd gj, gt, xt;
  bool fresh = false;  // H is the differenced Hessian at x
  int quasi_steps = 0;
  double last_step_gain = 0.0;
  for (int it = 0; it < ctl.polish_maxit; ++it) {
    if (relative_gradient(g, x, 1.0) <= ctl.grad_tol) return "gradient";
    if (!fresh && (quasi_steps == 0 || quasi_steps >= kLsqQuasiSteps)) {
      bool ok = true;
      for (Index j = 0; j < m && ok; ++j) {
        VectorXd xj = x;
        xj(j) += 1e-6 * std::max(std::abs(x(j)), 1.0);
        const double fj = eval(xj, &gj);
        ok = std::isfinite(fj) && gj.allFinite();
        if (ok) H.col(j) = (gj - g) / (xj(j) - x(j));
      }
      if (!ok) return "stalled";
      H = (0.5 * (H + H.transpose())).eval();
      fresh = true;
      quasi_steps = 0;
    }
    // damped_newton_step() solves H delta = g for a maximised function's
    // minus Hessian and gradient: here the Hessian and minus the gradient.
    const VectorXd delta = damped_newton_step(H, -g, 20, 1e-8, 10.0);
    if (delta.size() == 0) {
      if (fresh) return "stalled";
      quasi_steps = 0;  // difference the Hessian again
      continue;
    }
    bool accepted = false;
    double t = 1.0, ft = f;
    for (int half = 0; half < 30; ++half, t *= 0.5) {
      xt = x + t * delta;
      ft = eval(xt, &gt);
      if (std::isfinite(ft) && gt.allFinite() && ft < f) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      if (fresh) return "stalled";
      quasi_steps = 0;  // the updated Hessian misled: difference it again
      continue;
    }
    if (guard && guard(xt)) return "runoff";
    // The quadratic model's predicted decrease along the accepted step.
    const double predicted = -(t * g.dot(delta) + 0.5 * t * t * delta.dot(H * delta));
    const VectorXd step = xt - x, dg = gt - g;
    const double gain = f - ft;
    x = xt;
    f = ft;
    g = gt;
    fresh = false;
    if (kLsqQuasiSteps == 0) continue;
    quasi_steps++;
    // As in polish_newton(): a poor model (halved step, less than half the
    // predicted decrease, or a crawl: more than half the last step's gain)
    // has the next iteration difference the Hessian again.
    const bool crawls = quasi_steps > 1 && gain > 0.5 * last_step_gain;
    last_step_gain = gain;
    if (t < 1.0 || !(gain >= 0.5 * predicted) || crawls) {
      quasi_steps = 0;
      continue;
    }
    // BFGS update, kept only with positive curvature along the step.
    if (!bfgs_update(H, step, dg)) quasi_steps = 0;
  }
  return relative_gradient(g, x, 1.0) <= ctl.grad_tol ? "gradient" : "maxit";
}

}  // namespace

LsqResult lsq_fit(const Gate& gate, const std::string& activation, const CMat& X,
                  const CMat& Y, const CMat& U, const GateParams& gp0,
                  const MatrixXd& coef0, const LsqControl& ctl) {
  LsqProblem prob(gate, activation, X, Y, U, gp0, ctl.nthreads, ctl.weights);
  GateParams gp = gp0;
  gate.normalise_reference(gp);
  const VectorXd x0 = prob.pack(gp, coef0);
  int evals = 0;
  // The run-off guard, where the gate has the geometry (boundary_ratio() is
  // NaN elsewhere). Its bound is runoff_ratio times the start's ratio, or
  // runoff_ratio itself when that is below 1: the ratio is the gate norm in
  // units of eps_w, and with a small eps_w interior minima lie far out
  // (gate_perturbed_cosine()'s default eps_w = 0.01: the truth of
  // tests/testthat/test-lsq.R's k = 2 fit has ratio 25.1, its least-squares
  // fit 15.7, and a bound of 10 stopped that fit 31 above the truth's RSS of
  // 42.8), so the bound measures growth from where the fit started; starts
  // near eps_w's scale (ratio 1 and below) get runoff_ratio. The guard
  // watches the accepted iterates (L-BFGS's new best points, the polish's
  // accepted steps) and refuses the first whose ratio exceeds the bound. The
  // fit keeps the last iterate within the bound rather than the one that
  // crossed: a single Newton step can carry the ratio from below the bound
  // to far beyond it, so only the former bounds the returned gate norms by
  // the bound (max_i ||w_i|| <= eps_w bound after the shift of the v_i that
  // centres them); the RSS the crossing step would remove is what a run-off
  // gains, not a step towards a finite minimum. The guard only reads the
  // iterates: a fit it never stops is the fit without it.
  auto ratio_at = [&](const VectorXd& x) {
    GateParams gq;
    MatrixXd cq;
    prob.unpack(x, gq, cq);
    return gate.boundary_ratio(gq);
  };
  const double start_ratio = ratio_at(x0);
  const bool guarded = ctl.runoff_ratio < std::numeric_limits<double>::infinity() &&
                       std::isfinite(start_ratio);
  const double bound = ctl.runoff_ratio * std::max(1.0, start_ratio);
  double refused = std::numeric_limits<double>::quiet_NaN();
  std::function<bool(const VectorXd&)> guard;
  if (guarded) {
    guard = [&](const VectorXd& x) {
      const double r = ratio_at(x);
      if (r <= bound) return false;
      refused = r;
      return true;
    };
  }
  // The objective per unit of weight (per observation when unweighted).
  const double scale = ctl.weights ? std::max(ctl.weights->sum(), 1e-300)
                                   : static_cast<double>(std::max<Index>(X.rows(), 1));
  LbfgsResult opt = lbfgs_best(
      [&](const VectorXd& x, VectorXd& grad) {
        const double rss = prob.rss(x, &grad);
        grad /= scale;
        if (ctl.between) ctl.between(++evals, rss);
        return rss / scale;
      },
      x0, ctl.maxit, ctl.tol, 1e-10, 60, 6, guard);
  LsqResult res;
  res.converged = opt.finished;
  res.message = opt.message;
  // The gradient at the best point: the criterion of either rule (RSS / scale,
  // so relative_gradient() over a total of 1 is the RSS's over the weights).
  VectorXd x = opt.x, g;
  double f = std::isfinite(opt.f) ? prob.rss(x, &g) / scale : opt.f;
  if (g.size() == x.size()) g /= scale;
  const bool maxit = opt.message == "maximum iterations reached";
  if (!opt.finished && !maxit && g.size() == x.size()) {
    // A line search that cannot improve any further is the usual end near a
    // minimum of a flat objective: call it converged when the gradient at the
    // best point is negligible.
    res.converged = g.norm() <= 1e-6 * std::max(1.0, f);
  }
  res.stop_rule = res.converged ? "rss" : maxit ? "maxit" : "stalled";
  if (opt.guarded) {
    res.converged = true;
    res.stop_rule = "runoff";
    res.runoff_in = "lbfgs";
  } else if (ctl.gradient_stop && std::isfinite(f) && g.size() == x.size() && g.allFinite()) {
    std::string rule = relative_gradient(g, x, 1.0) <= ctl.grad_tol ? "gradient"
                       : maxit ? "maxit" : "stalled";
    if (rule != "gradient" && ctl.polish_newton) {
      const double f_before = f;
      res.polishes = 1;
      auto eval = [&](const VectorXd& xt, VectorXd* grad) {
        res.polish_evals++;
        const double rss = prob.rss(xt, grad);
        if (grad) *grad /= scale;
        if (ctl.between) ctl.between(++evals, rss);
        return rss / scale;
      };
      rule = lsq_polish(eval, x, f, g, ctl, guard);
      res.polish_gain = (f_before - f) * scale;
      if (rule == "runoff") res.runoff_in = "polish";
    }
    res.converged = rule == "gradient" || rule == "runoff";
    res.stop_rule = rule;
  }
  if (res.stop_rule == "runoff") res.runoff_refused = refused;
  res.runoff_start = start_ratio;
  res.runoff_bound = guarded ? bound : std::numeric_limits<double>::infinity();
  if (g.size() == x.size()) res.gradient_criterion = relative_gradient(g, x, 1.0);
  res.iter = opt.evals;
  prob.unpack(x, gp, res.coef);
  gate.normalise_reference(gp);
  res.gate = gp;
  res.boundary_ratio = gate.boundary_ratio(gp);
  res.rss = f * scale;
  return res;
}

}  // namespace moegate
