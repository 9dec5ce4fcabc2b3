#include "numerics.h"

namespace moegate {

namespace {

// Fill eta (len x K) with the linear predictors of rows [lo, lo+len) and the
// reference column 0, then turn it into log-probabilities in place.
inline void block_log_probs(const CMat& Z, const MatrixXd& B, Index lo,
                            Index len, MatrixXd& logp) {
  const Index km1 = B.cols();
  logp.resize(len, km1 + 1);
  logp.leftCols(km1).noalias() = Z.middleRows(lo, len) * B;
  logp.col(km1).setZero();
  for (Index r = 0; r < len; ++r) {
    const double m = logp.row(r).maxCoeff();
    const double lse = m + std::log((logp.row(r).array() - m).exp().sum());
    logp.row(r).array() -= lse;
  }
}

}  // namespace

double multinom_objective(const CMat& Z, const CMat& T, const MatrixXd& B,
                          int nthreads, MatrixXd* grad) {
  const Index n = Z.rows(), p = Z.cols(), km1 = B.cols();
  if (grad == nullptr) {
    return block_sum<double>(n, nthreads, 0.0, [&](Index lo, Index len, double& acc) {
      MatrixXd logp;
      block_log_probs(Z, B, lo, len, logp);
      acc += (T.middleRows(lo, len).array() * logp.array()).sum();
    });
  }
  // Objective in the last row of an extended (p + 1) x (K - 1) accumulator.
  MatrixXd zero = MatrixXd::Zero(p + 1, km1);
  MatrixXd acc = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& a) {
    MatrixXd logp;
    block_log_probs(Z, B, lo, len, logp);
    const auto Tb = T.middleRows(lo, len);
    a(p, 0) += (Tb.array() * logp.array()).sum();
    const VectorXd tot = Tb.rowwise().sum();
    MatrixXd resid = Tb.leftCols(km1);
    resid.array() -= logp.leftCols(km1).array().exp().colwise() * tot.array();
    a.topRows(p).noalias() += Z.middleRows(lo, len).transpose() * resid;
  });
  *grad = acc.topRows(p);
  return acc(p, 0);
}

NewtonResult multinom_newton(const CMat& Z, const CMat& T, MatrixXd& B,
                             int max_steps, double tol, int nthreads, double ridge) {
  const Index n = Z.rows(), p = Z.cols(), km1 = B.cols();
  const Index m = p * km1;
  auto penalised = [&](const MatrixXd& Bc, MatrixXd* g) {
    double f = multinom_objective(Z, T, Bc, nthreads, g);
    if (ridge > 0) {
      f -= 0.5 * ridge * Bc.squaredNorm();
      if (g) *g -= ridge * Bc;
    }
    return f;
  };
  NewtonResult res{0.0, 0, false};
  MatrixXd grad;
  double f = penalised(B, &grad);
  res.objective = f;
  for (int step = 0; step < max_steps; ++step) {
    // Negative Hessian, blocks (c, c') of size p x p, upper triangle only.
    MatrixXd zeroH = MatrixXd::Zero(m, m);
    MatrixXd H = block_sum<MatrixXd>(n, nthreads, zeroH, [&](Index lo, Index len, MatrixXd& a) {
      MatrixXd logp;
      block_log_probs(Z, B, lo, len, logp);
      const ArrayXXd prob = logp.leftCols(km1).array().exp();
      const ArrayXd tot = T.middleRows(lo, len).rowwise().sum().array();
      const auto Zb = Z.middleRows(lo, len);
      MatrixXd WZ(len, p);
      for (Index c = 0; c < km1; ++c) {
        for (Index c2 = c; c2 < km1; ++c2) {
          ArrayXd w = tot * prob.col(c) * ((c == c2 ? 1.0 : 0.0) - prob.col(c2));
          WZ = Zb.array().colwise() * w;
          a.block(c * p, c2 * p, p, p).noalias() += Zb.transpose() * WZ;
        }
      }
    });
    H = H.selfadjointView<Eigen::Upper>();
    if (ridge > 0) H.diagonal().array() += ridge;
    const VectorXd g = Eigen::Map<const VectorXd>(grad.data(), m);
    // Levenberg damping only when the Hessian is not safely positive definite
    // (collinear columns, separation).
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
    // Step halving until the objective does not decrease.
    double t = 1.0;
    bool accepted = false;
    MatrixXd Bnew(p, km1);
    MatrixXd gnew;
    double fnew = f;
    for (int h = 0; h < 30; ++h) {
      Bnew = B + t * Eigen::Map<const MatrixXd>(delta.data(), p, km1);
      fnew = penalised(Bnew, &gnew);
      if (std::isfinite(fnew) && fnew >= f) { accepted = true; break; }
      t *= 0.5;
    }
    if (!accepted) break;
    const double gain = fnew - f;
    B = Bnew;
    grad = gnew;
    f = fnew;
    res.steps = step + 1;
    res.improved = true;
    // Newton decrement as the stopping rule: it measures the remaining gain.
    if (gain <= tol * (std::abs(f) + 1.0) && g.dot(delta) <= tol * (std::abs(f) + 1.0)) break;
  }
  res.objective = f;
  return res;
}

}  // namespace moegate
