#include "lsq.h"

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

LsqResult lsq_fit(const Gate& gate, const std::string& activation, const CMat& X,
                  const CMat& Y, const CMat& U, const GateParams& gp0,
                  const MatrixXd& coef0, const LsqControl& ctl) {
  LsqProblem prob(gate, activation, X, Y, U, gp0, ctl.nthreads, ctl.weights);
  GateParams gp = gp0;
  gate.normalise_reference(gp);
  const VectorXd x0 = prob.pack(gp, coef0);
  int evals = 0;
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
      x0, ctl.maxit, ctl.tol, 1e-10, 60);
  LsqResult res;
  res.converged = opt.finished;
  res.message = opt.message;
  if (!opt.finished && opt.message != "maximum iterations reached") {
    // A line search that cannot improve any further is the usual end near a
    // minimum of a flat objective: call it converged when the gradient at the
    // best point is negligible.
    VectorXd g;
    prob.rss(opt.x, &g);
    res.converged = g.norm() / scale <= 1e-6 * std::max(1.0, opt.f);
  }
  res.iter = opt.evals;
  prob.unpack(opt.x, gp, res.coef);
  gate.normalise_reference(gp);
  res.gate = gp;
  res.rss = opt.f * scale;
  return res;
}

}  // namespace moegate
