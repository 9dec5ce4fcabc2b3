#include "lsq.h"
#include <optimization/LBFGS.h>

namespace moegate {

LsqProblem::LsqProblem(const Gate& gate, const std::string& activation, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& templ, int nthreads)
    : gate_(gate), act_(make_activation(activation)), X_(X), Y_(Y), U_(U), nthreads_(nthreads),
      templ_(templ) {
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
    a += resid.segment(lo, len).squaredNorm();
  });
  if (grad) {
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

struct LsqObjective {
  const LsqProblem& prob;
  double scale;
  double best_f;
  VectorXd best_x;
  int evals;
  double operator()(const VectorXd& x, VectorXd& grad) {
    ++evals;
    const double f = prob.rss(x, &grad) / scale;
    grad /= scale;
    if (!std::isfinite(f) || !grad.allFinite()) {
      grad.setZero();
      return std::numeric_limits<double>::infinity();
    }
    if (f < best_f) { best_f = f; best_x = x; }
    return f;
  }
};

}  // namespace

LsqResult lsq_fit(const Gate& gate, const std::string& activation, const CMat& X,
                  const CMat& Y, const CMat& U, const GateParams& gp0,
                  const MatrixXd& coef0, const LsqControl& ctl) {
  LsqProblem prob(gate, activation, X, Y, U, gp0, ctl.nthreads);
  GateParams gp = gp0;
  gate.normalise_reference(gp);
  VectorXd x = prob.pack(gp, coef0);
  LsqObjective obj{prob, static_cast<double>(std::max<Index>(X.rows(), 1)),
                   std::numeric_limits<double>::infinity(), x, 0};
  LBFGSpp::LBFGSParam<double> param;
  param.epsilon = 1e-10;
  param.epsilon_rel = 1e-10;
  param.past = 1;
  param.delta = ctl.tol;
  param.max_iterations = ctl.maxit;
  param.max_linesearch = 60;
  LBFGSpp::LBFGSSolver<double, LBFGSpp::LineSearchMoreThuente> solver(param);
  LsqResult res;
  double fx = 0.0;
  try {
    const int iters = solver.minimize(obj, x, fx);
    res.converged = iters < ctl.maxit;
    res.message = res.converged ? "converged" : "maximum iterations reached";
  } catch (const std::exception& e) {
    // A line search that cannot improve any further is the usual end near a
    // minimum of a flat objective: call it converged when the gradient at the
    // best point is negligible.
    VectorXd g;
    prob.rss(obj.best_x, &g);
    res.converged = g.norm() / obj.scale <= 1e-6 * std::max(1.0, obj.best_f);
    res.message = std::string("line search ended: ") + e.what();
  }
  res.iter = obj.evals;
  prob.unpack(obj.best_x, gp, res.coef);
  gate.normalise_reference(gp);
  res.gate = gp;
  res.rss = obj.best_f * obj.scale;
  return res;
}

}  // namespace moegate
