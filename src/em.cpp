#include "em.h"

namespace moegate {

double e_step(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
              const CMat& U, const GateParams& gp, const ExpertParams& ep, MatrixXd& R,
              int nthreads, EStepWork* work, const VectorXd* w) {
  EStepWork local;
  EStepWork& ws = work ? *work : local;
  GateCache& c = ws.cache;
  // A gate M-step may have left the log-weights at gp in the cache already
  // (the cache belongs to one fit, so U is the same).
  if (!cache_at(c, gp, X.rows())) {
    gate.forward(U, gp, c, nthreads);
  }
  // The expert log-densities are written into R and turned into the
  // posterior in place (a separate n x k array was 32 MB at n = 1e6, k = 4).
  expert.log_density(X, Y, ep, R, nthreads);
  const Index n = X.rows(), k = gate.k();
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
        R(r, i) = c.logG(r, i) + R(r, i);
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

VectorXd free_score(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                    const CMat& U, const GateParams& gp, const ExpertParams& ep,
                    const MatrixXd& R, EStepWork& work, int nthreads) {
  GateCache& c = work.cache;
  if (!cache_at(c, gp, X.rows(), true)) gate.forward(U, gp, c, nthreads);
  // Fisher's identity: the score is the EM objective's gradient at R. The
  // n x k logit gradients go into the fit's work array (this runs at every
  // iteration under the gradient rule).
  MatrixXd& dH = work.dH;
  // The weights exponentiated here are kept for the next gate M-step at gp.
  gate.em_dlogits_keep(c, R, dH, nthreads);
  const VectorXd gg = gate.backward(U, gp, c, dH, nthreads);
  const VectorXd ge = expert.free_gradient(expert.gradient(X, Y, R, ep, nthreads), ep);
  VectorXd g(gg.size() + ge.size());
  g << gg, ge;
  return g;
}

double relative_gradient(const VectorXd& g, const VectorXd& theta, double n) {
  double m = 0.0;
  for (Index j = 0; j < g.size(); ++j) {
    if (g(j) == 0) continue;  // e.g. a variance on its floor: log(0) coordinate, zero score
    const double t = std::isfinite(theta(j)) ? std::max(std::abs(theta(j)), 1.0) : 1.0;
    const double v = std::abs(g(j)) * t;
    if (!(v <= m)) m = v;  // NaN propagates as a criterion that never passes
  }
  return m / std::max(n, 1e-300);
}

bool has_observed_information(const Gate& gate, const Expert& expert) {
  const GateSpec& s = gate.spec();
  return s.score == "inner" && s.activation == "identity" && s.normaliser == "softmax" &&
         !s.estimate_tau && gate.w_reference() && gate.b_reference() && gate.k() >= 1 &&
         expert.n_predictors() > 0;
}

// Row n's log-likelihood is log sum_i exp(a_ni), a_ni = log G_ni + log f_ni,
// and it depends on the parameters only through linear predictors: the gate's
// free logits h_j = (u_n' w_j) / tau + b_j (j < k; h_k = 0, the reference)
// and each expert's predictors eta_il = x_n' beta_il. So its Hessian is
// J' (d^2 l_n / d(h, eta)^2) J with J the predictors' designs, and minus the
// inner Hessian is (Louis' identity for the mixture's missing label)
//   Lambda_n = sum_i r_ni C_ni - (sum_i r_ni s_ni s_ni' - sbar_n sbar_n'),
// s_ni = d a_ni / d(h, eta): (e_i - g_n) on the gate logits and expert i's
// predictor gradient on its own predictors, sbar_n = sum_i r_ni s_ni, and
// C_ni = -d^2 a_ni: diag(g_n) - g_n g_n' on the gate logits (the same for
// every i) and minus expert i's predictor Hessian on its own. The information
// is sum_n w_n J_n' Lambda_n J_n, accumulated from the blocks
// D_a' diag(w Lambda_ab) D_b of each pair of predictors over blocks of rows
// (D the n x (q + 1) gate design, X or 1). One pass over the data with exponentials only, where the
// differenced information costs an E-step and score pass per coordinate.
bool observed_information(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                          const CMat& U, const GateParams& gp, const ExpertParams& ep,
                          const MatrixXd& R, const GateCache* cache, int nthreads,
                          MatrixXd& info) {
  if (!has_observed_information(gate, expert)) return false;
  const Index n = X.rows(), p = X.cols(), q = gate.q(), k = gate.k(), kg = k - 1;
  // Le linear predictors per expert (design X), Ls scalar ones (design 1).
  const Index Le = expert.n_predictors(), Ls = expert.n_scalar_predictors(), Lt = Le + Ls;
  const Index tri_e = Lt * (Lt + 1) / 2;
  const Index L = kg + k * Lt, ng = gate.n_par(), ne = expert.n_par(), m = ng + ne;
  if (ng != kg * (q + 1) || ne != k * (Le * p + Ls) || R.rows() != n || R.cols() != k)
    return false;
  GateCache own;
  const GateCache* c = cache;
  if (!c || !cache_at(*c, gp, n)) {
    gate.forward(U, gp, own, nthreads);
    c = &own;
  }
  const double inv_tau = std::exp(-gp.log_tau);
  const double intercept_design = gate.spec().intercept_inside ? inv_tau : 1.0;
  // Free coordinates of each predictor's design entries: gate logit j has
  // w_j (entries j q ..) and b_j (after all gate vectors); expert predictor l
  // has coefficient column l of the packed expert coordinates.
  std::vector<std::vector<Index>> idx(static_cast<size_t>(L));
  for (Index j = 0; j < kg; ++j) {
    for (Index a = 0; a < q; ++a) idx[j].push_back(j * q + a);
    idx[j].push_back(kg * q + j);
  }
  // design[a]: 0 the gate's (u / tau, intercept), 1 X, 2 the constant 1.
  std::vector<int> design(static_cast<size_t>(L), 0);
  for (Index i = 0; i < k; ++i) {
    for (Index c = 0; c < Le; ++c) {
      const Index l = kg + i * Lt + c;
      design[l] = 1;
      for (Index a = 0; a < p; ++a) idx[l].push_back(ng + (i * Le + c) * p + a);
    }
    for (Index c = 0; c < Ls; ++c) {
      const Index l = kg + i * Lt + Le + c;
      design[l] = 2;
      idx[l].push_back(ng + k * Le * p + i * Ls + c);
    }
  }
  const Index npair = L * (L + 1) / 2;
  // Pair t = (a, b), a <= b, in row-major upper-triangle order; the pairs are
  // grouped by the design of a, and each group's weighted designs D_b Lam_t
  // side by side, so that the whole block costs one product per design
  // (D_a' [Lam_t1 D_b1, Lam_t2 D_b2, ...]) instead of one per pair.
  std::vector<Index> pa, pb;
  for (Index a = 0; a < L; ++a)
    for (Index b = a; b < L; ++b) {
      pa.push_back(a);
      pb.push_back(b);
    }
  const Index dims[3] = {q + 1, p, 1};
  std::vector<std::vector<Index>> group(3);
  std::vector<Index> col0(static_cast<size_t>(npair));  // first column in its group
  Index width[3] = {0, 0, 0};
  for (Index t = 0; t < npair; ++t) {
    const int da = design[pa[t]];
    group[da].push_back(t);
    col0[t] = width[da];
    width[da] += dims[design[pb[t]]];
  }
  const MatrixXd zero = MatrixXd::Zero(m, m);
  info = block_sum<MatrixXd>(n, nthreads, zero, [&](Index lo, Index len, MatrixXd& acc) {
    MatrixXd EG, EH;
    expert.predictor_derivatives(X, Y, ep, lo, len, EG, EH);
    MatrixXd A(len, q + 1);
    A.leftCols(q) = U.middleRows(lo, len) * inv_tau;
    A.col(q).setConstant(intercept_design);
    // Lam(row, t): w_n Lambda_n(a, b) in closed form (sum_i r_i = 1):
    //   gate-gate      diag(g - r) - g g' + r r'
    //   gate-expert i  r_i (r - e_i) G_i'
    //   expert i-i     r_i H_i - r_i (1 - r_i) G_i G_i'
    //   expert i-j     r_i r_j G_i G_j'
    // with g the gate's probabilities, r the posterior, G_i and H_i expert
    // i's predictor gradient and minus Hessian (e_k = 0 on the free logits).
    // Column by column over the block's rows (vectorised): w the case
    // weights (the posterior's row sums), r the posterior per unit weight (0
    // on rows of weight 0, which add nothing).
    const ArrayXd w = R.middleRows(lo, len).rowwise().sum().array();
    const ArrayXd winv = (w > 0).select(w.inverse(), 0.0);
    const ArrayXXd gm = c->logG.middleRows(lo, len).array().exp();
    const ArrayXXd r = R.middleRows(lo, len).array().colwise() * winv;
    MatrixXd Lam(len, npair);
    for (Index t = 0; t < npair; ++t) {
      const Index a = pa[t], b = pb[t];
      auto out = Lam.col(t).array();
      if (b < kg) {
        out = w * (r.col(a) * r.col(b) - gm.col(a) * gm.col(b));
        if (a == b) out += w * (gm.col(a) - r.col(a));
        continue;
      }
      const Index ib = (b - kg) / Lt, cb = (b - kg) % Lt;
      const auto Gb = EG.col(ib * Lt + cb).array();
      if (a < kg) {
        out = w * r.col(ib) * (r.col(a) - (a == ib ? 1.0 : 0.0)) * Gb;
        continue;
      }
      const Index ia = (a - kg) / Lt, ca = (a - kg) % Lt;
      const auto Ga = EG.col(ia * Lt + ca).array();
      if (ia == ib) {
        // Expert ia's triangle entry (ca, cb), ca <= cb, row by row.
        const Index tri = ca * Lt - ca * (ca - 1) / 2 + (cb - ca);
        out = w * r.col(ia) * (EH.col(ia * tri_e + tri).array() - (1.0 - r.col(ia)) * Ga * Gb);
      } else {
        out = w * r.col(ia) * r.col(ib) * Ga * Gb;
      }
    }
    const MatrixXd Xb = X.middleRows(lo, len);
    const MatrixXd ones = MatrixXd::Ones(len, 1);
    const MatrixXd* D[3] = {&A, &Xb, &ones};
    MatrixXd WD, blk;
    for (int da = 0; da < 3; ++da) {
      if (group[da].empty()) continue;
      WD.resize(len, width[da]);
      for (Index t : group[da]) {
        const Index db = design[pb[t]];
        WD.middleCols(col0[t], dims[db]) = D[db]->array().colwise() * Lam.col(t).array();
      }
      blk.noalias() = D[da]->transpose() * WD;
      for (Index t : group[da]) {
        const std::vector<Index>& ia = idx[pa[t]];
        const std::vector<Index>& ib = idx[pb[t]];
        const bool off_diag = pa[t] != pb[t];
        for (size_t u = 0; u < ia.size(); ++u)
          for (size_t v = 0; v < ib.size(); ++v) {
            const double x = blk(static_cast<Index>(u), col0[t] + static_cast<Index>(v));
            acc(ia[u], ib[v]) += x;
            if (off_diag) acc(ib[v], ia[u]) += x;
          }
      }
    }
  });
  return info.allFinite();
}

namespace {

VectorXd pack_free(const Gate& gate, const Expert& expert, const GateParams& gp,
                   const ExpertParams& ep) {
  VectorXd th(gate.n_par() + expert.n_par());
  th << gate.pack(gp), expert.pack_free(ep);
  return th;
}

// The number of observations the log-likelihood sums over: the case weights'
// total when there are weights.
double n_obs(const CMat& X, const EmControl& ctl) {
  return ctl.weights ? ctl.weights->sum() : static_cast<double>(X.rows());
}

// A polish's end point, free coordinates x: (gp, ep, R, ll) move there only if
// a fresh E-step confirms that the log-likelihood increased.
bool adopt_if_better(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                     const CMat& U, const VectorXd& x, GateParams& gp, ExpertParams& ep,
                     MatrixXd& R, double& ll, EStepWork& work, const EmControl& ctl,
                     EmResult& res) {
  const Index ng = gate.n_par(), ne = expert.n_par();
  GateParams g = gate.unpack(x.head(ng), gp);
  ExpertParams e = expert.unpack_free(x.tail(ne), ep);
  MatrixXd Rn;
  const double lnew = e_step(gate, expert, X, Y, U, g, e, Rn, ctl.nthreads, &work, ctl.weights);
  if (!(lnew > ll)) return false;
  res.polish_gain += lnew - ll;
  gp = g;
  ep = e;
  R.swap(Rn);
  ll = lnew;
  return true;
}

// L-BFGS on -loglik / n over the free coordinates from (gp, ep), with the
// analytic score: one E-step and one score pass per evaluation. The best
// point seen (the start included) is kept, so the log-likelihood never
// decreases; (gp, ep, R, ll) are updated only when it increased.
bool polish_fit(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                const CMat& U, GateParams& gp, ExpertParams& ep, MatrixXd& R, double& ll,
                EStepWork& work, const EmControl& ctl, EmResult& res) {
  if (!expert.free_ok(ep)) return false;  // a variance on its floor: no free coordinates
  const Index ng = gate.n_par(), ne = expert.n_par();
  const double n = n_obs(X, ctl);
  const int nt = ctl.nthreads;
  const VectorXd x0 = pack_free(gate, expert, gp, ep);
  if (!x0.allFinite()) return false;
  MatrixXd Rp;
  // L-BFGS works on z = x / s with s_j = max(|x0_j|, 1), the scales of
  // relative_gradient(): the scaled gradient's entries are that criterion's
  // terms (times n), and the coordinates are better conditioned.
  const ArrayXd s = x0.array().abs().max(1.0);
  auto objective = [&](const VectorXd& z, VectorXd& grad) {
    const VectorXd x = (z.array() * s).matrix();
    const GateParams g = gate.unpack(x.head(ng), gp);
    const ExpertParams e = expert.unpack_free(x.tail(ne), ep);
    const double l = e_step(gate, expert, X, Y, U, g, e, Rp, nt, &work, ctl.weights);
    if (!std::isfinite(l)) return std::numeric_limits<double>::infinity();
    grad = (-free_score(gate, expert, X, Y, U, g, e, Rp, work, nt).array() * s / n).matrix();
    return -l / n;
  };
  // L-BFGS stops on ||grad|| <= eps max(1, ||z||), which with this eps
  // implies relative_gradient() <= grad_tol near x0 (||z0|| = sqrt(#coordinates)
  // at most... up to the change of s).
  const VectorXd z0 = (x0.array() / s).matrix();
  const int memory = static_cast<int>(std::min<Index>(x0.size(), 30));
  const LbfgsResult r = lbfgs_best(objective, z0, ctl.polish_maxit, 0.0,
                                   0.5 * ctl.grad_tol / std::max(1.0, z0.norm()), 40,
                                   std::max(memory, 6));
  res.polish_evals += r.evals;
  if (!(r.f < -ll / n)) return false;
  return adopt_if_better(gate, expert, X, Y, U, (r.x.array() * s).matrix(), gp, ep, R, ll,
                         work, ctl, res);
}

// Newton has stalled when its last kStallWindow iterations gained less than
// kStallGain log-likelihood units together and its gains are not shrinking
// (the last is more than a tenth of the first of them). Near a maximum,
// regular or degenerate (over-specified fits: Newton then converges
// linearly), the gains shrink geometrically, by a factor 0.2-0.3 per
// iteration or faster; constant tiny gains mean the log-likelihood creeps up
// a ridge with no maximum in reach (multinomial experts separating, a
// temperature running off, the kink of a non-smooth gate), where each
// iteration costs a pass per free coordinate and the gradient rule is never
// met: 100 such iterations, three polishes per fit, made fits at n = 2000
// take 10-40 s. Large gains (Newton's damped phase far from the maximum,
// 0.1-0.3 per iteration in the over-specified benchmark) never stall.
// EM resumes after a stalled polish and may polish again (kMaxPolishes):
// refusing that (tried) left Euclidean-gate fits in test-invariance.R
// unconverged, and a larger kStallGain (0.05, tried) moved them by 4e-6.
const int kStallWindow = 10;
const bool kRepeatAfterStall = true;
const double kStallGain = 0.01;

bool newton_stalled(const std::vector<double>& gains) {
  const size_t w = kStallWindow;
  if (gains.size() < w) return false;
  double sum = 0.0;
  for (size_t i = gains.size() - w; i < gains.size(); ++i) sum += gains[i];
  return sum < kStallGain && gains.back() > 0.1 * gains[gains.size() - w];
}

// Newton's method on the full log-likelihood over the free coordinates from
// (gp, ep): the observed information analytic where observed_information()
// has it (linear softmax gate, multinomial experts: one pass per iteration),
// else by forward differences of the analytic score (one evaluation per
// coordinate, steps relative to each coordinate's scale), Levenberg damping where it is not safely positive definite, and
// step halving so that every accepted step increases the log-likelihood.
// Near a regular maximum it converges quadratically, also where EM and
// quasi-Newton crawl along directions of small curvature. Stops when the
// gradient rule holds or no step gains. Updates (gp, ep, R, ll) when it gained.
//
// The differenced information costs one evaluation per free coordinate, the
// step about one: after an information by differences the next steps reuse it with
// BFGS updates from the scores they evaluate anyway (Dennis and Moré's
// quasi-Newton from an exact start), and the information is differenced
// again only when such a step needed halving, gained less than half of what
// its quadratic model predicted or more than half of the step before it (it
// crawls: the updates stopped finding the curvature), or failed, or after
// kMaxQuasiSteps of them. Measured (load 3-4, same starts, same maxima):
// multinomial experts, K = 3, k = 3, n = 5e4, 126-336 evaluations per polish
// before, 83-250 after; the over-specified k = 4 fit of bench-overspecified.R
// (n = 8000), 375 / 252 / 555 before, 284 / 209 / 420 after (0.67 / 0.54 /
// 1.14 s -> 0.66 / 0.47 / 0.88 s CPU). Without the crawl test the updated
// information crawled at constant gains for 20 steps at a time.
const int kMaxQuasiSteps = 20;

// The trust-region subproblem in the information's eigenbasis (H = V diag(lam)
// V', ascending lam; gv = V' g): the step c maximising the quadratic model
// gv'c - c' diag(lam) c / 2 within ||c|| <= radius (Moré and Sorensen's
// characterisation: c = gv / (lam + mu), mu >= max(0, -lam_min), mu = 0 or
// ||c|| = radius; in the "hard case", where gv has no component along the
// most negative curvature, the rest of the radius goes along it). Returns the
// model's predicted gain in `predicted`.
VectorXd trust_region_step(const VectorXd& lam, const VectorXd& gv, double radius,
                           double& predicted) {
  const Index m = lam.size();
  const double top = std::max(std::abs(lam(m - 1)), std::abs(lam(0)));
  const double tiny = 1e-12 * std::max(top, 1e-300);
  auto coef = [&](double mu) {
    VectorXd c(m);
    for (Index i = 0; i < m; ++i) c(i) = gv(i) / std::max(lam(i) + mu, tiny);
    return c;
  };
  VectorXd c;
  if (lam(0) > tiny && (c = coef(0.0)).norm() <= radius) {
    // The Newton step, inside the region.
  } else {
    const double lo = std::max(0.0, -lam(0)) + tiny;
    c = coef(lo);
    if (c.norm() <= radius) {
      // Hard case: the rest of the radius along the most negative curvature.
      const double extra = std::sqrt(std::max(radius * radius - c.squaredNorm(), 0.0));
      c(0) += gv(0) < 0 ? -extra : extra;
    } else {
      // ||c(mu)|| decreases in mu: bisect (in log scale) for ||c|| = radius.
      double a = lo, b = lo + gv.norm() / radius + top;
      for (int it = 0; it < 100 && b - a > 1e-12 * b; ++it) {
        const double mid = std::sqrt(a * b);
        if (coef(mid).norm() > radius) a = mid; else b = mid;
      }
      c = coef(b);
    }
  }
  predicted = gv.dot(c) - 0.5 * (lam.array() * c.array().square()).sum();
  return c;
}

// Newton's method with the analytic observed information in a trust region
// (Nocedal and Wright, ch. 4). Over-specified fits spend their polish in
// regions where the information is indefinite (the fitted atoms of a true
// one still separating: smallest eigenvalue -0.03 to -25 in 50 of 70
// iterations of a NeurIPS k = 4 fit): there the damped Newton step of
// polish_newton() points far along the negative curvature (step norms up to
// 860 against 0.01-0.5 for the steps taken) and was halved 2-13 times, in
// every other iteration, for one information each. The trust region keeps
// the length that worked: steps in coordinates scaled by the information's
// diagonal (unit curvature per coordinate), the radius shrunk to a quarter of
// a step that gained less than a quarter of its prediction and doubled after
// a full-length step that gained more than three quarters of it. A rejected
// trial costs an E-step (no score pass), and the next trial reuses the
// eigendecomposition. Every accepted step increases the log-likelihood;
// stalls are judged as in polish_newton().
bool polish_trust_region(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                         const CMat& U, GateParams& gp, ExpertParams& ep, MatrixXd& R,
                         double& ll, EStepWork& work, const EmControl& ctl, EmResult& res,
                         bool& stalled) {
  if (!expert.free_ok(ep)) return false;
  const Index ng = gate.n_par(), ne = expert.n_par(), m = ng + ne;
  const double n = n_obs(X, ctl);
  const int nt = ctl.nthreads;
  VectorXd x = pack_free(gate, expert, gp, ep);
  if (!x.allFinite()) return false;
  MatrixXd Rt;
  auto loglik_at = [&](const VectorXd& xt) {
    res.polish_evals++;
    return e_step(gate, expert, X, Y, U, gate.unpack(xt.head(ng), gp),
                  expert.unpack_free(xt.tail(ne), ep), Rt, nt, &work, ctl.weights);
  };
  // The score at xt, from the posterior (Rt) of the E-step just taken there.
  auto score_at = [&](const VectorXd& xt) {
    return free_score(gate, expert, X, Y, U, gate.unpack(xt.head(ng), gp),
                      expert.unpack_free(xt.tail(ne), ep), Rt, work, nt);
  };
  double f = loglik_at(x);
  if (!std::isfinite(f)) return false;
  VectorXd g = score_at(x);
  if (!g.allFinite()) return false;
  const double f0 = f;
  bool moved = false;
  double radius = 1.0;
  MatrixXd H(m, m);
  std::vector<double> gains;
  for (int it = 0; it < ctl.polish_maxit; ++it) {
    if (relative_gradient(g, x, n) <= ctl.grad_tol) break;
    if (newton_stalled(gains)) {
      stalled = true;
      break;
    }
    if (!observed_information(gate, expert, X, Y, U, gate.unpack(x.head(ng), gp),
                              expert.unpack_free(x.tail(ne), ep), Rt, &work.cache, nt, H))
      break;
    const double top = std::max(H.diagonal().cwiseAbs().maxCoeff(), 1e-300);
    const ArrayXd sc = H.diagonal().cwiseAbs().array().max(1e-12 * top).rsqrt();
    const MatrixXd Hs = (sc.matrix().asDiagonal() * H * sc.matrix().asDiagonal()).eval();
    Eigen::SelfAdjointEigenSolver<MatrixXd> eig(0.5 * (Hs + Hs.transpose()));
    if (eig.info() != Eigen::Success) break;
    const VectorXd gv = eig.eigenvectors().transpose() * (sc * g.array()).matrix();
    bool accepted = false;
    double ft = f;
    VectorXd xt;
    for (int trial = 0; trial < 30; ++trial) {
      double predicted = 0.0;
      const VectorXd c = trust_region_step(eig.eigenvalues(), gv, radius, predicted);
      // No gain the log-likelihood can resolve: the maximum within rounding.
      if (!(predicted > 64 * std::numeric_limits<double>::epsilon() * std::abs(f))) break;
      const double len = c.norm();
      xt = x + (sc * (eig.eigenvectors() * c).array()).matrix();
      ft = loglik_at(xt);
      const double rho = (ft - f) / predicted;
      if (std::isfinite(ft) && rho < 0.25) {
        radius = 0.25 * len;
      } else if (std::isfinite(ft) && rho > 0.75 && len >= 0.99 * radius) {
        radius = 2.0 * radius;
      } else if (!std::isfinite(ft)) {
        radius = 0.25 * len;
      }
      if (std::isfinite(ft) && ft > f) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    const VectorXd gt = score_at(xt);
    if (!gt.allFinite()) break;
    gains.push_back(ft - f);
    x = xt;
    f = ft;
    g = gt;
    moved = true;
  }
  if (!moved || !(f > f0) || !(f > ll)) return false;
  return adopt_if_better(gate, expert, X, Y, U, x, gp, ep, R, ll, work, ctl, res);
}

bool polish_newton(const Gate& gate, const Expert& expert, const CMat& X, const CMat& Y,
                   const CMat& U, GateParams& gp, ExpertParams& ep, MatrixXd& R, double& ll,
                   EStepWork& work, const EmControl& ctl, EmResult& res, bool& stalled) {
  // polish = "trust": the trust region where the information is analytic.
  if (ctl.polish == EmControl::kTrust && has_observed_information(gate, expert))
    return polish_trust_region(gate, expert, X, Y, U, gp, ep, R, ll, work, ctl, res, stalled);
  if (!expert.free_ok(ep)) return false;
  const Index ng = gate.n_par(), ne = expert.n_par(), m = ng + ne;
  const double n = n_obs(X, ctl);
  const int nt = ctl.nthreads;
  VectorXd x = pack_free(gate, expert, gp, ep);
  if (!x.allFinite()) return false;
  MatrixXd Rt;
  // Log-likelihood (and, with `score`, the score) at free coordinates xt.
  auto eval = [&](const VectorXd& xt, VectorXd* score) {
    const GateParams g = gate.unpack(xt.head(ng), gp);
    const ExpertParams e = expert.unpack_free(xt.tail(ne), ep);
    res.polish_evals++;
    const double l = e_step(gate, expert, X, Y, U, g, e, Rt, nt, &work, ctl.weights);
    if (score && std::isfinite(l)) *score = free_score(gate, expert, X, Y, U, g, e, Rt, work, nt);
    return l;
  };
  VectorXd g;
  double f = eval(x, &g);
  if (!std::isfinite(f) || !g.allFinite()) return false;
  const double f0 = f;
  // With an analytic information (one pass, no E-step) every iteration takes
  // it afresh at x, where the posterior Rt of the last evaluation was taken:
  // plain damped Newton, no differences and no BFGS updates.
  const bool analytic = has_observed_information(gate, expert);
  bool moved = false;
  MatrixXd H(m, m);  // minus the Hessian: by differences, then BFGS-updated
  bool fresh = false;  // H is the differenced information at x
  int quasi_steps = 0;
  VectorXd gj;
  // Gains of the Newton iterations: one per information differenced, summed
  // over the steps that used it (newton_stalled() judges iterations that
  // each cost an information, whatever the number of steps between them).
  std::vector<double> gains;
  double cycle_gain = 0.0, last_step_gain = 0.0;
  bool cycle_open = false;
  for (int it = 0; it < ctl.polish_maxit; ++it) {
    if (relative_gradient(g, x, n) <= ctl.grad_tol) break;
    if (!fresh && (analytic || quasi_steps == 0 || quasi_steps >= kMaxQuasiSteps)) {
      if (cycle_open) {
        gains.push_back(cycle_gain);
        cycle_gain = 0.0;
        cycle_open = false;
      }
      if (newton_stalled(gains)) {
        stalled = true;
        break;
      }
      bool ok = true;
      if (analytic) {
        ok = observed_information(gate, expert, X, Y, U, gate.unpack(x.head(ng), gp),
                                  expert.unpack_free(x.tail(ne), ep), Rt, &work.cache, nt, H);
      }
      for (Index j = 0; j < m && ok && !analytic; ++j) {
        const double h = 1e-6 * std::max(std::abs(x(j)), 1.0);
        VectorXd xj = x;
        xj(j) += h;
        const double fj = eval(xj, &gj);
        ok = std::isfinite(fj) && gj.allFinite();
        if (ok) H.col(j) = (g - gj) / (xj(j) - x(j));  // minus the Hessian's column j
      }
      if (!ok) break;
      H = (0.5 * (H + H.transpose())).eval();
      fresh = true;
      quasi_steps = 0;
      cycle_open = true;
    }
    const VectorXd delta = damped_newton_step(H, g, 20, 1e-8, 10.0);
    if (delta.size() == 0) {
      if (fresh) break;
      quasi_steps = 0;  // difference the information again
      continue;
    }
    bool accepted = false;
    double t = 1.0;
    VectorXd xt, gt;
    double ft = f;
    for (int half = 0; half < 30; ++half, t *= 0.5) {
      xt = x + t * delta;
      ft = eval(xt, &gt);
      if (std::isfinite(ft) && gt.allFinite() && ft > f) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      if (fresh) break;
      quasi_steps = 0;  // the updated information misled: difference it again
      continue;
    }
    // The quadratic model's predicted gain of the accepted step.
    const double predicted = t * g.dot(delta) - 0.5 * t * t * delta.dot(H * delta);
    const VectorXd step = xt - x, dg = g - gt;
    const double gain = ft - f;
    cycle_gain += gain;
    x = xt;
    f = ft;
    g = gt;
    moved = true;
    fresh = false;
    if (analytic) continue;
    quasi_steps++;
    // A step that gains more than half of the last one (within the cycle)
    // crawls: the updated information no longer finds the maximum's curvature.
    const bool crawls = quasi_steps > 1 && gain > 0.5 * last_step_gain;
    last_step_gain = gain;
    if (t < 1.0 || !(gain >= 0.5 * predicted) || crawls) {
      quasi_steps = 0;  // a poor model: the next step differences the information
      continue;
    }
    // BFGS update of the (minus) Hessian; without positive curvature along
    // the step the next iteration differences the information again.
    if (!bfgs_update(H, step, dg)) quasi_steps = 0;
  }
  if (!moved || !(f > f0) || !(f > ll)) return false;
  return adopt_if_better(gate, expert, X, Y, U, x, gp, ep, R, ll, work, ctl, res);
}

// Below this relative change the gradient rule evaluates the score (one pass
// more per iteration); above it the fit is far from any stationary point.
const double kScoreCheckBelow = 1e-4;
const int kMaxPolishes = 3;

// Whether a polish is cheaper than letting EM reach the gradient rule. EM
// converges linearly: the log-likelihood's increments shrink by a factor
// `ratio` per iteration, and the distance to the maximum (so the gradient)
// by about sqrt(ratio). A Newton polish costs about `newton_cost`
// evaluations (one E-step and score pass each, about an EM iteration each)
// per iteration: n_free + 2 with the differenced information, 3 with the
// analytic one (the step, a halving, the information's pass). EM that stalls (no gain) or does not speed down (ratio >= 1) is
// polished at once; a fast EM (a well-specified fit at large n, ratio ~0.3)
// needs a few more iterations, not 80 evaluations of the score. Without a
// measured rate (the first iteration, or just after a polish) EM goes on.
bool polish_pays(double gain, double ratio, double criterion, double grad_tol,
                 Index newton_cost) {
  if (!(gain > 0)) return true;
  if (std::isnan(ratio)) return false;  // no rate measured yet: one more EM iteration
  if (!(ratio > 0) || !(ratio < 1)) return true;
  if (!(criterion > grad_tol)) return false;
  const double em_iterations = 2.0 * std::log(grad_tol / criterion) / std::log(ratio);
  return em_iterations > static_cast<double>(newton_cost);
}

}  // namespace

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
    res.stop_rule = "numerical_failure";
    res.gate = gp;
    res.expert = ep;
    res.loglik = ll;
    res.posterior.swap(R);
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
  // Two n x k posterior buffers in all (five, then three before: 32 MB each at
  // n = 1e6, k = 4). An EM map reads its input posterior only in the
  // M-steps, before its E-step writes, so a map whose input is not needed
  // afterwards runs in place: the first map (the posterior at the current
  // parameters is not needed once it has run) and SQUAREM's stabilising step
  // (its input is the extrapolated point's posterior). R2 holds the second
  // step's posterior while the extrapolation is tried, and serves as the
  // gradient check's logit gradients between iterations.
  MatrixXd R2;
  auto score_at = [&](const GateParams& g, const ExpertParams& e) {
    work.dH.swap(R2);
    const VectorXd s = free_score(gate, expert, X, Y, U, g, e, R, work, nt);
    work.dH.swap(R2);
    return s;
  };
  double last_gain = std::numeric_limits<double>::quiet_NaN();
  bool polish_stalled = false;  // a Newton polish stalled: run no more
  const bool newton_like = ctl.polish == EmControl::kNewton || ctl.polish == EmControl::kTrust;
  const Index newton_cost = newton_like && has_observed_information(gate, expert)
                                ? 3
                                : gate.n_par() + expert.n_par() + 2;
  for (int it = 1; it <= ctl.maxit; ++it) {
    GateParams g1 = gp;
    ExpertParams e1 = ep;
    double ll_new = em_map(g1, e1, R, R);  // R: the posterior at (g1, e1) from here on
    res.em_steps++;
    if (!std::isfinite(ll_new)) {
      // Keep the last finite fit and say why the iterations stopped. (R now
      // holds the failed step's posterior; the one at the kept parameters is
      // recomputed below.)
      res.status = "numerical_failure";
      res.stop_rule = "numerical_failure";
      e_step(gate, expert, X, Y, U, gp, ep, R, nt, &work, cw);
      break;
    }
    if (ctl.squarem) {
      // SQUAREM (Varadhan & Roland 2008, scheme S3): extrapolate along two EM
      // steps and keep the extrapolation only if it beats the second step, so
      // the log-likelihood stays monotone.
      GateParams g2 = g1;
      ExpertParams e2 = e1;
      const double ll2 = em_map(g2, e2, R, R2);
      res.em_steps++;
      if (std::isfinite(ll2) && ll2 >= ll_new) {
        const VectorXd t0 = pack(gp, ep), t1 = pack(g1, e1), t2 = pack(g2, e2);
        const VectorXd r = t1 - t0, v = t2 - t1 - r;
        g1 = g2; e1 = e2; R.swap(R2); ll_new = ll2;
        const double vn = v.norm();
        if (vn > 0) {
          const double alpha = std::min(-r.norm() / vn, -1.0);
          const VectorXd tx = t0 - 2.0 * alpha * r + alpha * alpha * v;
          GateParams gx = gate.unpack(tx.head(gate.n_par()), gp);
          ExpertParams ex = expert.unpack(tx.tail(expert.n_par()), ep);
          if (tx.allFinite() && expert.project(ex)) {
            const double llx = e_step(gate, expert, X, Y, U, gx, ex, R2, nt, &work, cw);
            if (std::isfinite(llx) && llx >= ll_new) {
              // Stabilise with one EM step from the extrapolated point.
              const double ll3 = em_map(gx, ex, R2, R2);
              res.em_steps++;
              if (std::isfinite(ll3) && ll3 >= llx) {
                g1 = gx; e1 = ex; R.swap(R2); ll_new = ll3;
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
    res.trace.push_back(ll_new);
    res.iter = it;
    const double change = std::abs(ll_new - ll) / (std::abs(ll) + 1e-10);
    const double gain = ll_new - ll, gain_ratio = gain / last_gain;
    last_gain = gain;
    ll = ll_new;
    between(it, ll);
    if (!ctl.gradient_stop) {
      if (change < ctl.tol) {
        res.converged = true;
        res.stop_rule = "loglik";
        break;
      }
      continue;
    }
    if (change >= kScoreCheckBelow) continue;
    const double n = n_obs(X, ctl);
    res.gradient_criterion = relative_gradient(
        score_at(gp, ep), pack_free(gate, expert, gp, ep), n);
    if (res.gradient_criterion <= ctl.grad_tol) {
      res.converged = true;
      res.stop_rule = "gradient";
      break;
    }
    if (ctl.polish != EmControl::kNoPolish && change < ctl.polish_at &&
        res.polishes < kMaxPolishes && (!polish_stalled || kRepeatAfterStall) &&
        polish_pays(gain, gain_ratio, res.gradient_criterion, ctl.grad_tol, newton_cost)) {
      res.polishes++;
      const bool gained =
          newton_like
              ? polish_newton(gate, expert, X, Y, U, gp, ep, R, ll, work, ctl, res, polish_stalled)
              : polish_fit(gate, expert, X, Y, U, gp, ep, R, ll, work, ctl, res);
      if (gained) {
        last_gain = std::numeric_limits<double>::quiet_NaN();  // EM's rate is measured afresh
        res.trace.push_back(ll);
        between(-it, ll);
        res.gradient_criterion = relative_gradient(
            score_at(gp, ep),
            pack_free(gate, expert, gp, ep), n);
        if (res.gradient_criterion <= ctl.grad_tol) {
          res.converged = true;
          res.stop_rule = "gradient";
          break;
        }
      }
    }
  }
  // The criterion at the returned parameters, whichever rule stopped the fit
  // (one score pass), so every fit reports how stationary it is.
  if (res.stop_rule != "gradient" && res.status == "ok")
    res.gradient_criterion = relative_gradient(
        score_at(gp, ep), pack_free(gate, expert, gp, ep),
        n_obs(X, ctl));
  res.gate = gp;
  res.expert = ep;
  res.loglik = ll;
  // The fit reports the posterior itself, not its weighted version.
  if (cw) e_step(gate, expert, X, Y, U, gp, ep, R, nt);
  res.posterior.swap(R);  // handed over, not copied (n x k)
  return res;
}

double loglik_gradient(const Gate& gate, const Expert& expert, const CMat& X,
                       const CMat& Y, const CMat& U, const GateParams& gp,
                       const ExpertParams& ep, VectorXd* grad, int nthreads,
                       const VectorXd* w, MatrixXd* posterior) {
  MatrixXd own;
  MatrixXd& R = posterior ? *posterior : own;
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
