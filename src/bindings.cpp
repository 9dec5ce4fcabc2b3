// Every // [[Rcpp::export]] of moegate: conversions between R lists and the
// C++ structs, nothing else. R validates all inputs before calling these.
#include "em.h"
#include "lsq.h"
#include <RcppEigen.h>

using namespace moegate;
using Rcpp::List;
using Rcpp::Named;

namespace {

GateSpec gate_spec_from(const List& s, const List& control) {
  GateSpec g;
  g.score = Rcpp::as<std::string>(s["score"]);
  g.activation = Rcpp::as<std::string>(s["activation"]);
  g.normaliser = Rcpp::as<std::string>(s["normalizer"]);
  g.transform = Rcpp::as<std::string>(s["transform"]);
  g.eps_w = Rcpp::as<double>(s["eps_w"]);
  g.eps_u = Rcpp::as<double>(s["eps_u"]);
  g.intercept_inside = Rcpp::as<std::string>(s["intercept"]) == "inside";
  g.estimate_tau = Rcpp::as<bool>(s["estimate_tau"]);
  if (control.containsElementNamed("gate_maxit") && !Rf_isNull(control["gate_maxit"]))
    g.gate_maxit = Rcpp::as<int>(control["gate_maxit"]);
  if (control.containsElementNamed("gate_tol")) g.gate_tol = Rcpp::as<double>(control["gate_tol"]);
  if (control.containsElementNamed("stop") && control.containsElementNamed("grad_tol") &&
      Rcpp::as<std::string>(control["stop"]) == "gradient")
    g.grad_tol = Rcpp::as<double>(control["grad_tol"]);
  if (control.containsElementNamed("gate_optimizer"))
    g.gate_optimizer = Rcpp::as<std::string>(control["gate_optimizer"]);
  return g;
}

ExpertSpec expert_spec_from(const List& s, const List& control) {
  ExpertSpec e;
  e.family = Rcpp::as<std::string>(s["family"]);
  e.activation = Rcpp::as<std::string>(s["activation"]);
  e.var_floor = Rcpp::as<double>(s["var_floor"]);
  e.n_classes = Rcpp::as<int>(s["n_classes"]);
  if (control.containsElementNamed("expert_maxit"))
    e.expert_maxit = Rcpp::as<int>(control["expert_maxit"]);
  if (control.containsElementNamed("expert_tol"))
    e.expert_tol = Rcpp::as<double>(control["expert_tol"]);
  return e;
}

GateParams gate_params_from(const List& p) {
  GateParams g;
  g.W = Rcpp::as<MatrixXd>(p["W"]);
  g.b0 = Rcpp::as<VectorXd>(p["b0"]);
  g.log_tau = std::log(Rcpp::as<double>(p["tau"]));
  return g;
}

List gate_params_to(const GateParams& g) {
  return List::create(Named("W") = g.W, Named("b0") = g.b0, Named("tau") = std::exp(g.log_tau));
}

ExpertParams expert_params_from(const List& p) {
  ExpertParams e;
  e.coef = Rcpp::as<MatrixXd>(p["coef"]);
  e.sigma2 = Rcpp::as<VectorXd>(p["sigma2"]);
  return e;
}

List expert_params_to(const ExpertParams& e) {
  return List::create(Named("coef") = e.coef, Named("sigma2") = e.sigma2);
}

// The gate input u = M(z); the identity transform uses Z in place.
CMat gate_input(const std::string& id, const CMat& Z, MatrixXd& store) {
  if (id == "identity") return Z;
  store = apply_transform(id, Z);
  return store;
}

// Case weights from control$weights (NULL or absent: none) into `store`;
// returns the pointer the fits take (nullptr when unweighted).
const VectorXd* weights_from(SEXP w, VectorXd& store) {
  if (Rf_isNull(w)) return nullptr;
  store = Rcpp::as<VectorXd>(w);
  return &store;
}

const VectorXd* control_weights(const List& control, VectorXd& store) {
  if (!control.containsElementNamed("weights")) return nullptr;
  return weights_from(control["weights"], store);
}

int trace_from(const List& control) {
  return control.containsElementNamed("trace") ? Rcpp::as<int>(control["trace"]) : 0;
}

// Trace lines report the objective in the user's units: the fit runs in
// internal units (R/scaling.R), whose log-likelihood differs by a constant
// and whose RSS by a factor.
double control_double(const List& control, const char* name, double dflt) {
  return control.containsElementNamed(name) && !Rf_isNull(control[name])
             ? Rcpp::as<double>(control[name])
             : dflt;
}

// Prefix of trace lines, e.g. "start 2/5: " (empty for a single start).
std::string trace_label_from(const List& control) {
  if (!control.containsElementNamed("trace_label") || Rf_isNull(control["trace_label"])) return "";
  return Rcpp::as<std::string>(control["trace_label"]);
}

int nthreads_from(const List& control) {
  return control.containsElementNamed("nthreads") ? Rcpp::as<int>(control["nthreads"]) : 1;
}

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_em_fit(const Eigen::Map<Eigen::MatrixXd> X, const Eigen::Map<Eigen::MatrixXd> Y,
                      const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                      const List expert_spec, const List gate_params, const List expert_params,
                      const Eigen::Map<Eigen::MatrixXd> R0, const List control) {
  const int nt = nthreads_from(control);
  const GateSpec gs = gate_spec_from(gate_spec, control);
  const ExpertSpec es = expert_spec_from(expert_spec, control);
  MatrixXd U_store;
  // control$gate_columns = c(offset, q): the gate input is the q columns of X
  // from `offset` (0-based; R checked that they are the gate's scaled input),
  // read in place instead of from a second copy of the same numbers; Z is
  // then unused.
  const bool shared = control.containsElementNamed("gate_columns") &&
                      !Rf_isNull(control["gate_columns"]);
  Rcpp::IntegerVector gate_columns = shared ? Rcpp::IntegerVector(control["gate_columns"])
                                            : Rcpp::IntegerVector(2);
  const CMat U = shared ? CMat(Eigen::Map<const MatrixXd>(X.data() + gate_columns[0] * X.rows(),
                                                          X.rows(), gate_columns[1]))
                        : gate_input(gs.transform, Z, U_store);
  const Index k = Rcpp::as<MatrixXd>(gate_params["W"]).cols();
  Gate gate(gs, U.cols(), k);
  std::unique_ptr<Expert> expert = make_expert(es, X.cols(), k);
  EmControl ctl;
  ctl.tol = Rcpp::as<double>(control["tol"]);
  ctl.maxit = Rcpp::as<int>(control["maxit"]);
  ctl.nthreads = nt;
  ctl.squarem = control.containsElementNamed("accelerate") &&
                Rcpp::as<std::string>(control["accelerate"]) == "squarem";
  VectorXd w_store;
  ctl.weights = control_weights(control, w_store);
  if (control.containsElementNamed("stop"))
    ctl.gradient_stop = Rcpp::as<std::string>(control["stop"]) == "gradient";
  if (control.containsElementNamed("grad_tol")) ctl.grad_tol = Rcpp::as<double>(control["grad_tol"]);
  if (control.containsElementNamed("polish")) {
    const std::string polish = Rcpp::as<std::string>(control["polish"]);
    ctl.polish = polish == "newton"  ? EmControl::kNewton
                 : polish == "trust" ? EmControl::kTrust
                 : polish == "lbfgs" ? EmControl::kLbfgs : EmControl::kNoPolish;
  }
  if (control.containsElementNamed("polish_at")) ctl.polish_at = Rcpp::as<double>(control["polish_at"]);
  if (control.containsElementNamed("polish_maxit"))
    ctl.polish_maxit = Rcpp::as<int>(control["polish_maxit"]);
  const int trace = trace_from(control);
  const std::string label = trace_label_from(control);
  const double shift = control_double(control, "trace_shift", 0.0);
  // A negative iteration reports a polish after iteration -it (always shown
  // when tracing: it changes the log-likelihood more than EM iterations do).
  auto between = [trace, &label, shift](int it, double ll) {
    if (trace > 0 && it < 0)
      Rprintf("  %spolish after %5d  log-likelihood %.10g\n", label.c_str(), -it, ll + shift);
    else if (trace > 0 && it % trace == 0)
      Rprintf("  %siteration %5d  log-likelihood %.10g\n", label.c_str(), it, ll + shift);
    Rcpp::checkUserInterrupt();
  };
  EmResult res = em_fit(gate, *expert, X, Y, U, gate_params_from(gate_params),
                        expert_params_from(expert_params), R0, ctl, between);
  Rcpp::LogicalVector floor(k);
  for (Index i = 0; i < k; ++i) floor[i] = expert->floor_binds(res.expert, i);
  return List::create(Named("gate") = gate_params_to(res.gate),
                      Named("expert") = expert_params_to(res.expert),
                      Named("loglik") = res.loglik, Named("trace") = res.trace,
                      Named("iter") = res.iter, Named("em_steps") = res.em_steps,
                      Named("converged") = res.converged, Named("decreased") = res.decreased, Named("status") = res.status,
                      Named("posterior") = res.posterior, Named("floor_binds") = floor,
                      Named("stop_rule") = res.stop_rule,
                      Named("gradient_criterion") = res.gradient_criterion,
                      Named("polish") = Rcpp::NumericVector::create(
                          Named("runs") = res.polishes, Named("evaluations") = res.polish_evals,
                          Named("gain") = res.polish_gain),
                      Named("gate_work") = Rcpp::IntegerVector::create(
                          Named("steps") = res.gate_work.steps,
                          Named("passes") = res.gate_work.passes,
                          Named("light_passes") = res.gate_work.light_passes));
}

// [[Rcpp::export]]
Rcpp::List cpp_lsq_fit(const Eigen::Map<Eigen::MatrixXd> X, const Eigen::Map<Eigen::MatrixXd> Y,
                       const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                       const std::string activation, const List gate_params,
                       const Eigen::Map<Eigen::MatrixXd> coef, const List control) {
  const GateSpec gs = gate_spec_from(gate_spec, control);
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  const Index k = coef.cols();
  Gate gate(gs, U.cols(), k);
  LsqControl ctl;
  ctl.tol = Rcpp::as<double>(control["tol"]);
  ctl.maxit = Rcpp::as<int>(control["maxit"]);
  ctl.nthreads = nthreads_from(control);
  // run_lsq() passes the least-squares rule (moe_control()'s lsq_stop) as `stop`.
  if (control.containsElementNamed("stop"))
    ctl.gradient_stop = Rcpp::as<std::string>(control["stop"]) == "gradient";
  if (control.containsElementNamed("grad_tol")) ctl.grad_tol = Rcpp::as<double>(control["grad_tol"]);
  if (control.containsElementNamed("polish")) {
    // Any Newton polish of the likelihood ("newton", or a trust-region
    // variant) is the damped Newton polish for least squares.
    const std::string polish = Rcpp::as<std::string>(control["polish"]);
    ctl.polish_newton = polish == "newton" || polish == "trust";
  }
  if (control.containsElementNamed("polish_maxit"))
    ctl.polish_maxit = Rcpp::as<int>(control["polish_maxit"]);
  // Absent (a control stored before the guard): off, so that such fits replay.
  ctl.runoff_ratio = control_double(control, "runoff_ratio",
                                    std::numeric_limits<double>::infinity());
  VectorXd w_store;
  ctl.weights = control_weights(control, w_store);
  const int trace = trace_from(control);
  const std::string label = trace_label_from(control);
  if (trace > 0) {
    // L-BFGS has no iteration hook: trace its objective evaluations.
    const double factor = control_double(control, "trace_factor", 1.0);
    ctl.between = [trace, &label, factor](int ev, double rss) {
      if (ev % trace == 0)
        Rprintf("  %sevaluation %5d  RSS %.10g\n", label.c_str(), ev, rss * factor);
    };
  }
  LsqResult res = lsq_fit(gate, activation, X, Y, U, gate_params_from(gate_params), coef, ctl);
  return List::create(Named("gate") = gate_params_to(res.gate), Named("coef") = res.coef,
                      Named("rss") = res.rss, Named("iter") = res.iter,
                      Named("converged") = res.converged, Named("stop_rule") = res.stop_rule,
                      Named("gradient_criterion") = res.gradient_criterion,
                      Named("polish") = Rcpp::NumericVector::create(
                          Named("runs") = res.polishes, Named("evaluations") = res.polish_evals,
                          Named("gain") = res.polish_gain),
                      Named("message") = res.message,
                      Named("runoff") = Rcpp::List::create(
                          Named("ratio") = res.boundary_ratio,
                          Named("refused") = res.runoff_refused,
                          Named("start") = res.runoff_start, Named("bound") = res.runoff_bound,
                          Named("runoff_ratio") = ctl.runoff_ratio,
                          Named("phase") = res.runoff_in));
}

// [[Rcpp::export]]
Rcpp::List cpp_gate_forward(const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                            const List gate_params, int nthreads,
                            bool log_weights_only = false) {
  const GateSpec gs = gate_spec_from(gate_spec, List());
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  const GateParams gp = gate_params_from(gate_params);
  Gate gate(gs, U.cols(), gp.W.cols());
  GateCache c;
  gate.forward(U, gp, c, nthreads);
  if (log_weights_only) return List::create(Named("log_weights") = c.logG);
  return List::create(Named("input") = U, Named("logits") = c.H,
                      Named("log_weights") = c.logG);
}

// The gate's EM objective sum R log G at packed parameters theta (NULL: the
// packing of gate_params), with its analytic gradient.
// [[Rcpp::export]]
Rcpp::List cpp_gate_objective(const Eigen::Map<Eigen::MatrixXd> Z,
                              const Eigen::Map<Eigen::MatrixXd> R, const List gate_spec,
                              const List gate_params, Rcpp::Nullable<Rcpp::NumericVector> theta,
                              int nthreads, bool information = false) {
  const GateSpec gs = gate_spec_from(gate_spec, List());
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  GateParams gp = gate_params_from(gate_params);
  Gate gate(gs, U.cols(), gp.W.cols());
  if (theta.isNotNull()) gp = gate.unpack(Rcpp::as<VectorXd>(theta.get()), gp);
  VectorXd grad;
  const double f = gate.em_objective(U, R, gp, &grad, nthreads);
  List out = List::create(Named("value") = f, Named("gradient") = grad,
                          Named("theta") = gate.pack(gp), Named("params") = gate_params_to(gp));
  if (information && gate.normalised()) {
    VectorXd g2;
    MatrixXd info;
    out["fisher_value"] = gate.em_fisher(U, R, gp, g2, info, nthreads);
    out["fisher_gradient"] = g2;
    out["information"] = info;
  }
  return out;
}

// One gate M-step from gate_params given responsibilities R.
// [[Rcpp::export]]
Rcpp::List cpp_gate_mstep(const Eigen::Map<Eigen::MatrixXd> Z, const Eigen::Map<Eigen::MatrixXd> R,
                          const List gate_spec, const List gate_params, const List control) {
  const GateSpec gs = gate_spec_from(gate_spec, control);
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  GateParams gp = gate_params_from(gate_params);
  Gate gate(gs, U.cols(), gp.W.cols());
  const double f = gate.mstep(U, R, gp, nthreads_from(control));
  const MstepStats& st = gate.last_mstep_stats();
  return List::create(Named("value") = f, Named("params") = gate_params_to(gp),
                      Named("steps") = st.steps, Named("passes") = st.passes,
                      Named("light_passes") = st.light_passes);
}

// Log-likelihood and its gradient at packed parameters theta (NULL: packing of
// the given parameters). Gate parameters come first, then expert parameters.
// [[Rcpp::export]]
Rcpp::List cpp_loglik(const Eigen::Map<Eigen::MatrixXd> X, const Eigen::Map<Eigen::MatrixXd> Y,
                      const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                      const List expert_spec, const List gate_params, const List expert_params,
                      Rcpp::Nullable<Rcpp::NumericVector> theta, bool gradient, int nthreads,
                      SEXP weights = R_NilValue) {
  const GateSpec gs = gate_spec_from(gate_spec, List());
  const ExpertSpec es = expert_spec_from(expert_spec, List());
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  GateParams gp = gate_params_from(gate_params);
  ExpertParams ep = expert_params_from(expert_params);
  const Index k = gp.W.cols();
  Gate gate(gs, U.cols(), k);
  std::unique_ptr<Expert> expert = make_expert(es, X.cols(), k);
  if (theta.isNotNull()) {
    const VectorXd th = Rcpp::as<VectorXd>(theta.get());
    const Index ng = gate.n_par();
    if (th.size() != ng + expert->n_par()) Rcpp::stop("theta has the wrong length");
    gp = gate.unpack(th.head(ng), gp);
    ep = expert->unpack(th.tail(expert->n_par()), ep);
  }
  VectorXd grad, w_store;
  const VectorXd* w = weights_from(weights, w_store);
  MatrixXd R;
  // One E-step gives the log-likelihood, the posterior and (Fisher's
  // identity) the score; with case weights the reported posterior is the
  // unweighted one.
  const double ll = loglik_gradient(gate, *expert, X, Y, U, gp, ep,
                                    gradient ? &grad : nullptr, nthreads, w, &R);
  if (w) e_step(gate, *expert, X, Y, U, gp, ep, R, nthreads);
  VectorXd th(gate.n_par() + expert->n_par());
  th << gate.pack(gp), expert->pack(ep);
  MatrixXd logF;
  expert->log_density(X, Y, ep, logF, nthreads);
  return List::create(Named("loglik") = ll, Named("gradient") = grad, Named("theta") = th,
                      Named("n_gate") = gate.n_par(), Named("posterior") = R,
                      Named("log_density") = logF, Named("gate") = gate_params_to(gp),
                      Named("expert") = expert_params_to(ep));
}

// The analytic observed information wrt the free coordinates (gate.pack(),
// expert.pack_free()) at the given parameters, with the score there; NULL
// information where no analytic form is implemented.
// [[Rcpp::export]]
Rcpp::List cpp_observed_information(const Eigen::Map<Eigen::MatrixXd> X,
                                    const Eigen::Map<Eigen::MatrixXd> Y,
                                    const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                                    const List expert_spec, const List gate_params,
                                    const List expert_params, int nthreads,
                                    SEXP weights = R_NilValue) {
  const GateSpec gs = gate_spec_from(gate_spec, List());
  const ExpertSpec es = expert_spec_from(expert_spec, List());
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  const GateParams gp = gate_params_from(gate_params);
  const ExpertParams ep = expert_params_from(expert_params);
  const Index k = gp.W.cols();
  Gate gate(gs, U.cols(), k);
  std::unique_ptr<Expert> expert = make_expert(es, X.cols(), k);
  VectorXd w_store;
  const VectorXd* w = weights_from(weights, w_store);
  MatrixXd R;
  EStepWork work;
  const double ll = e_step(gate, *expert, X, Y, U, gp, ep, R, nthreads, &work, w);
  const VectorXd score = free_score(gate, *expert, X, Y, U, gp, ep, R, work, nthreads);
  MatrixXd info;
  const bool ok = observed_information(gate, *expert, X, Y, U, gp, ep, R, &work.cache, nthreads, info);
  VectorXd th(gate.n_par() + expert->n_par());
  th << gate.pack(gp), expert->pack_free(ep);
  return List::create(Named("loglik") = ll, Named("score") = score, Named("theta") = th,
                      Named("information") = ok ? Rcpp::wrap(info) : R_NilValue);
}

// Residual sum of squares of a regression-function MoE and its gradient.
// [[Rcpp::export]]
Rcpp::List cpp_lsq_objective(const Eigen::Map<Eigen::MatrixXd> X,
                             const Eigen::Map<Eigen::MatrixXd> Y,
                             const Eigen::Map<Eigen::MatrixXd> Z, const List gate_spec,
                             const std::string activation, const List gate_params,
                             const Eigen::Map<Eigen::MatrixXd> coef,
                             Rcpp::Nullable<Rcpp::NumericVector> theta, int nthreads,
                             SEXP weights = R_NilValue) {
  const GateSpec gs = gate_spec_from(gate_spec, List());
  MatrixXd U_store;
  const CMat U = gate_input(gs.transform, Z, U_store);
  GateParams gp = gate_params_from(gate_params);
  MatrixXd cf = coef;
  Gate gate(gs, U.cols(), gp.W.cols());
  VectorXd w_store;
  LsqProblem prob(gate, activation, X, Y, U, gp, nthreads, weights_from(weights, w_store));
  VectorXd th = theta.isNotNull() ? Rcpp::as<VectorXd>(theta.get()) : prob.pack(gp, cf);
  if (th.size() != prob.n_par()) Rcpp::stop("theta has the wrong length");
  VectorXd grad;
  const double f = prob.rss(th, &grad);
  prob.unpack(th, gp, cf);
  return List::create(Named("value") = f, Named("gradient") = grad, Named("theta") = th,
                      Named("gate") = gate_params_to(gp), Named("coef") = cf);
}

// n x k log-densities and, for Gaussian experts, n x k means.
// [[Rcpp::export]]
Rcpp::List cpp_expert_eval(const Eigen::Map<Eigen::MatrixXd> X, const Eigen::Map<Eigen::MatrixXd> Y,
                           const List expert_spec, const List expert_params, int nthreads) {
  const ExpertSpec es = expert_spec_from(expert_spec, List());
  const ExpertParams ep = expert_params_from(expert_params);
  const Index k = es.family == "multinomial" ? ep.coef.cols() / (es.n_classes - 1) : ep.coef.cols();
  std::unique_ptr<Expert> expert = make_expert(es, X.cols(), k);
  MatrixXd logF;
  if (Y.rows() == X.rows()) expert->log_density(X, Y, ep, logF, nthreads);
  MatrixXd Mu;
  if (es.family == "gaussian") expert->mean(X, ep, Mu);
  return List::create(Named("log_density") = logF, Named("mean") = Mu);
}

// The radius of the smallest ball enclosing the columns of P
// (enclosing_radius()).
// [[Rcpp::export]]
double cpp_enclosing_radius(const Eigen::Map<Eigen::MatrixXd> P) {
  return enclosing_radius(P);
}

// Gate::boundary_ratio() of a gate configuration at the given parameters
// (NA where it does not apply).
// [[Rcpp::export]]
double cpp_boundary_ratio(const List gate_spec, const List gate_params) {
  const GateParams gp = gate_params_from(gate_params);
  Gate gate(gate_spec_from(gate_spec, List()), gp.W.rows(), gp.W.cols());
  return gate.boundary_ratio(gp);
}

// Which gate parameters are free for a configuration (reference convention).
// [[Rcpp::export]]
Rcpp::List cpp_gate_info(const List gate_spec, int q, int k) {
  Gate gate(gate_spec_from(gate_spec, List()), q, k);
  return List::create(Named("n_par") = gate.n_par(), Named("w_reference") = gate.w_reference(),
                      Named("b_reference") = gate.b_reference(),
                      Named("normalized") = gate.normalised());
}

// The number of threads a parallel region over n rows uses when `requested`
// are asked for (the minimum-work rule), and the rule's rows per thread;
// for tests and bench/bench-threads.R.
// [[Rcpp::export]]
Rcpp::List cpp_thread_count(int requested, double n) {
  return List::create(Named("threads") = thread_count(requested, static_cast<Index>(n)),
                      Named("min_rows_per_thread") = static_cast<double>(kMinRowsPerThread));
}

// The k-means start's assignment of every row to its nearest centre
// (nearest_centre() in numerics.cpp): columns x_cols (1-based) of X and all
// of Y, divided by `scales`, against the k x L `centres`; 1-based groups.
// [[Rcpp::export]]
Rcpp::IntegerVector cpp_nearest_centre(const Eigen::Map<Eigen::MatrixXd> X,
                                       const Rcpp::IntegerVector x_cols,
                                       const Eigen::Map<Eigen::MatrixXd> Y,
                                       const Rcpp::NumericVector scales,
                                       const Eigen::Map<Eigen::MatrixXd> centres) {
  std::vector<int> cols(x_cols.begin(), x_cols.end());
  for (int& c : cols) c -= 1;
  const std::vector<int> group = nearest_centre(X, cols, Y,
                                                std::vector<double>(scales.begin(), scales.end()),
                                                centres);
  Rcpp::IntegerVector out(group.begin(), group.end());
  for (R_xlen_t r = 0; r < out.size(); ++r) out[r] += 1;
  return out;
}

// Whether columns offset + 1, ..., offset + ncol(U) of X (1-based offset 0:
// the first columns) hold exactly U's numbers (same_columns()).
// [[Rcpp::export]]
bool cpp_same_columns(const Eigen::Map<Eigen::MatrixXd> X, int offset,
                      const Eigen::Map<Eigen::MatrixXd> U) {
  return same_columns(X, offset, U);
}

// Which columns of M hold one value in every row (constant_columns()).
// [[Rcpp::export]]
Rcpp::LogicalVector cpp_constant_columns(const Eigen::Map<Eigen::MatrixXd> M) {
  const std::vector<bool> constant = constant_columns(M);
  Rcpp::LogicalVector out(M.cols());
  for (Index j = 0; j < M.cols(); ++j) out[j] = constant[static_cast<size_t>(j)];
  return out;
}

// Per column of M: `centre` (mean(M[, j]) when `centre`, else 0) and `msd`,
// mean((M[, j] - centre)^2), the numbers of those R expressions
// (column_moments()).
// [[Rcpp::export]]
Rcpp::List cpp_column_moments(const Eigen::Map<Eigen::MatrixXd> M, bool centre) {
  VectorXd c, msd;
  column_moments(M, centre, c, msd);
  return List::create(Named("centre") = Rcpp::NumericVector(c.data(), c.data() + c.size()),
                      Named("msd") = Rcpp::NumericVector(msd.data(), msd.data() + msd.size()));
}

// The scaled copy of a design (scale_columns()): one allocation, no R
// temporaries. icol: 1-based, 0 for none.
// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_scale_columns(const Eigen::Map<Eigen::MatrixXd> M,
                                      const Eigen::Map<Eigen::VectorXd> centre,
                                      const Eigen::Map<Eigen::VectorXd> scale, int icol) {
  Rcpp::NumericMatrix out(M.rows(), M.cols());
  scale_columns(M, centre, scale, icol - 1, out.begin());
  return out;
}
