#include "numerics.h"

namespace moegate {

namespace {

// Objective, gradient (p x (K-1)) and negative Hessian (upper blocks) in one
// pass over the data. Per row one exp per category and one log: the
// probabilities reuse the exponentials of the log-sum-exp.
struct MultinomEval {
  double objective;
  MatrixXd grad;
  MatrixXd neg_hess;
};

MultinomEval multinom_eval(const CMat& Z, const CMat& T, const MatrixXd& B, int nthreads,
                           bool hessian, const MatrixXd* logp0 = nullptr) {
  const Index n = Z.rows(), p = Z.cols(), km1 = B.cols();
  const Index m = p * km1;
  // Column 0: objective (row 0); columns 1..km1: gradient; then the Hessian.
  MatrixXd zero = MatrixXd::Zero(std::max<Index>(p, m), 1 + km1 + (hessian ? m : 0));
  MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
    const auto Tb = T.middleRows(lo, len);
    const auto Zb = Z.middleRows(lo, len);
    MatrixXd resid(len, km1);
    ArrayXXd prob(len, km1);
    ArrayXd tot(len);
    double f = 0.0;
    if (logp0) {
      for (Index r = 0; r < len; ++r) {
        double t_row = Tb(r, km1);
        double fr = Tb(r, km1) != 0 ? Tb(r, km1) * (*logp0)(lo + r, km1) : 0.0;
        for (Index c = 0; c < km1; ++c) {
          const double lp = (*logp0)(lo + r, c);
          prob(r, c) = exp_nonpos(lp);
          t_row += Tb(r, c);
          if (Tb(r, c) != 0) fr += Tb(r, c) * lp;
        }
        f += fr;
        tot(r) = t_row;
        for (Index c = 0; c < km1; ++c) resid(r, c) = Tb(r, c) - t_row * prob(r, c);
      }
    }
    MatrixXd eta;
    if (!logp0) eta = Zb.lazyProduct(B);
    for (Index r = 0; r < len && !logp0; ++r) {
      double mx = 0.0;  // the reference category's linear predictor
      for (Index c = 0; c < km1; ++c) mx = std::max(mx, eta(r, c));
      double s = exp_nonpos(-mx);
      for (Index c = 0; c < km1; ++c) {
        prob(r, c) = exp_nonpos(eta(r, c) - mx);
        s += prob(r, c);
      }
      const double lse = mx + std::log(s);
      double t_row = Tb(r, km1);
      double fr = -Tb(r, km1) * lse;
      for (Index c = 0; c < km1; ++c) {
        prob(r, c) /= s;
        t_row += Tb(r, c);
        if (Tb(r, c) != 0) fr += Tb(r, c) * (eta(r, c) - lse);
      }
      f += fr;
      tot(r) = t_row;
      for (Index c = 0; c < km1; ++c) resid(r, c) = Tb(r, c) - t_row * prob(r, c);
    }
    a(0, 0) += f;
    a.block(0, 1, p, km1).noalias() += Zb.transpose().lazyProduct(resid);
    if (!hessian) return;
    MatrixXd WZ(len, p);
    for (Index c = 0; c < km1; ++c) {
      for (Index c2 = c; c2 < km1; ++c2) {
        const ArrayXd w = tot * prob.col(c) * ((c == c2 ? 1.0 : 0.0) - prob.col(c2));
        WZ = Zb.array().colwise() * w;
        a.block(c * p, 1 + km1 + c2 * p, p, p).noalias() += Zb.transpose().lazyProduct(WZ);
      }
    }
  });
  MultinomEval out;
  out.objective = acc(0, 0);
  out.grad = acc.block(0, 1, p, km1);
  if (hessian) {
    out.neg_hess = acc.block(0, 1 + km1, m, m);
    out.neg_hess = out.neg_hess.selfadjointView<Eigen::Upper>();
  }
  return out;
}

}  // namespace

double multinom_objective(const CMat& Z, const CMat& T, const MatrixXd& B, int nthreads,
                          MatrixXd* grad) {
  MultinomEval e = multinom_eval(Z, T, B, nthreads, false);
  if (grad) *grad = e.grad;
  return e.objective;
}

NewtonResult multinom_newton(const CMat& Z, const CMat& T, MatrixXd& B, int max_steps,
                             double tol, int nthreads, double ridge, const MatrixXd* logp0) {
  const Index p = Z.rows() > 0 ? Z.cols() : B.rows(), km1 = B.cols();
  const Index m = p * km1;
  // Objective, gradient and Hessian at the current point come from one pass;
  // an accepted trial point's pass is reused for the next step, so a Newton
  // step costs one pass over the data.
  auto evaluate = [&](const MatrixXd& Bc, const MatrixXd* lp) {
    MultinomEval e = multinom_eval(Z, T, Bc, nthreads, true, lp);
    if (ridge > 0) {
      e.objective -= 0.5 * ridge * Bc.squaredNorm();
      e.grad -= ridge * Bc;
      e.neg_hess.diagonal().array() += ridge;
    }
    return e;
  };
  NewtonResult res{0.0, 0, false};
  MultinomEval cur = evaluate(B, logp0);
  const double stop = tol * (std::abs(cur.objective) + 1.0);
  for (int step = 0; step < max_steps; ++step) {
    const VectorXd g = Eigen::Map<const VectorXd>(cur.grad.data(), m);
    const MatrixXd& H = cur.neg_hess;
    // Levenberg damping only when the Hessian is not safely positive definite
    // (collinear columns, duplicated experts, separation).
    VectorXd delta;
    double damp = 0.0;
    const double scale = std::max(H.diagonal().cwiseAbs().maxCoeff(), 1e-300);
    for (int attempt = 0; attempt < 12; ++attempt) {
      MatrixXd Hd = H;
      if (damp > 0) Hd.diagonal().array() += damp;
      Eigen::LDLT<MatrixXd> ldlt(Hd);
      if (ldlt.info() == Eigen::Success && ldlt.isPositive() &&
          ldlt.vectorD().minCoeff() > 1e-12 * scale) {
        delta = ldlt.solve(g);
        if (delta.allFinite()) break;
      }
      delta.resize(0);
      damp = damp == 0 ? 1e-10 * scale : damp * 100;
    }
    if (delta.size() == 0) break;
    // Half the Newton decrement predicts the remaining gain: stop before
    // spending a pass on a step that cannot matter.
    if (0.5 * g.dot(delta) <= stop) break;
    double t = 1.0;
    bool accepted = false;
    for (int h = 0; h < 30; ++h) {
      MatrixXd Bnew = B + t * Eigen::Map<const MatrixXd>(delta.data(), p, km1);
      MultinomEval trial = evaluate(Bnew, nullptr);
      if (std::isfinite(trial.objective) && trial.objective >= cur.objective) {
        B = Bnew;
        cur = std::move(trial);
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) break;
    res.steps = step + 1;
    res.improved = true;
  }
  res.objective = cur.objective;
  return res;
}

}  // namespace moegate
