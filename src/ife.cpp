// Rcpp shim for the interactive fixed effects kernels of ife.h: copies R
// matrices into Eigen, turns C++ exceptions into R errors (Rcpp does this for
// std::exception) and polls for interrupts between iterations.
#include <Rcpp.h>
#include <chrono>
#include <RcppEigen.h>

#include "ife.h"
#include "ife_resample.h"

namespace {

std::vector<Eigen::MatrixXd> to_mats(const Rcpp::List& X) {
  std::vector<Eigen::MatrixXd> out;
  out.reserve(X.size());
  for (R_xlen_t k = 0; k < X.size(); ++k) {
    out.push_back(Rcpp::as<Eigen::MatrixXd>(X[k]));
  }
  return out;
}

// Eigen's own OpenMP products cost more than they give on these matrix
// sizes and would make timing depend on the machine's load: one thread
// inside the fit, restored afterwards.
struct EigenSingleThread {
  int saved;
  EigenSingleThread() : saved(Eigen::nbThreads()) { Eigen::setNbThreads(1); }
  ~EigenSingleThread() { Eigen::setNbThreads(saved); }
};

// The fit's poll between iterations (and between blocks of a large
// cross-product): R is asked at most every 50 ms, and an interrupt leaves
// C++ as Rcpp's exception, which Rcpp turns into R's interrupt.
struct Poll {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  void operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(50)) return;
    last = now;
    Rcpp::checkUserInterrupt();
  }
};

void check_interrupt_fn(void*) { R_CheckUserInterrupt(); }

// For the replicate loops, whose fits run on several threads: TRUE when the
// user pressed Ctrl-C, without jumping out of C++ (the kernel stops its
// threads and returns); asked at most every 50 ms, on the calling thread
// only. Asking consumes R's interrupt, so the shim raises it again with
// finish().
struct InterruptPending {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(50)) return false;
    last = now;
    return R_ToplevelExec(check_interrupt_fn, nullptr) == FALSE;
  }
};

void finish(bool interrupted) {
  if (interrupted) throw Rcpp::internal::InterruptedException();
}

uint64_t make_seed(const Rcpp::IntegerVector& seed) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
         static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
}

mkt::ife::Control make_control(int r, int force, double tol, int max_iter, bool soft,
                               double lambda) {
  mkt::ife::Control ctl;
  ctl.r = r;
  ctl.force = force;
  ctl.tol = tol;
  ctl.max_iter = max_iter;
  ctl.soft = soft;
  ctl.lambda = lambda;
  return ctl;
}

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_ife_fit(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& mask,
                       const Rcpp::List& X, int r, int force, double tol, int max_iter,
                       bool soft, double lambda, const Eigen::MatrixXd& F0,
                       const Eigen::VectorXd& beta0, const Eigen::MatrixXd& fill0) {
  const EigenSingleThread one_thread;
  const mkt::ife::Control ctl = make_control(r, force, tol, max_iter, soft, lambda);
  const mkt::ife::Fit f = mkt::ife::fit(Y, mask, to_mats(X), ctl, F0, beta0, fill0, Poll());
  return Rcpp::List::create(
      Rcpp::_["beta"] = f.beta, Rcpp::_["mu"] = f.mu, Rcpp::_["alpha"] = f.alpha,
      Rcpp::_["xi"] = f.xi, Rcpp::_["F"] = f.F, Rcpp::_["L"] = f.L, Rcpp::_["fit"] = f.fit,
      Rcpp::_["sv"] = f.sv, Rcpp::_["iter"] = f.iter, Rcpp::_["converged"] = f.converged,
      Rcpp::_["ssr"] = f.ssr, Rcpp::_["nobs"] = f.nobs);
}

// [[Rcpp::export]]
Rcpp::List cpp_ife_project(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& pre,
                           const Rcpp::List& X, const Eigen::VectorXd& beta, double mu,
                           const Eigen::VectorXd& xi, const Eigen::MatrixXd& F, int force) {
  Eigen::MatrixXd coefs;
  std::vector<int> status;
  const Eigen::MatrixXd y0 =
      mkt::ife::project(Y, pre, to_mats(X), beta, mu, xi, F, force, coefs, status);
  return Rcpp::List::create(Rcpp::_["y0"] = y0, Rcpp::_["coef"] = coefs,
                            Rcpp::_["status"] = Rcpp::wrap(status));
}

// Cross-validation MSPE pieces of one fit without EM (see cv_project_sse).
// [[Rcpp::export]]
Rcpp::NumericVector cpp_cf_cv_project(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& pre,
                                      const Eigen::MatrixXi& fold, const Rcpp::List& X,
                                      const Eigen::VectorXd& beta, double mu,
                                      const Eigen::VectorXd& xi, const Eigen::MatrixXd& F,
                                      int force, const std::vector<int>& folds) {
  double sse = 0.0, n = 0.0;
  mkt::ife::cv_project_sse(Y, pre, fold, to_mats(X), beta, mu, xi, F, force, folds, sse, n);
  return Rcpp::NumericVector::create(sse, n);
}

namespace {

// The shared arguments of the counterfactual replicate chunks.
mkt::ife::Layout make_layout(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& obs,
                             const Eigen::MatrixXd& fit_mask, const Eigen::MatrixXd& pre,
                             const Eigen::MatrixXd& treated, const Eigen::MatrixXd& placebo,
                             const Eigen::MatrixXi& event, const std::vector<int>& ever,
                             const Rcpp::List& X) {
  mkt::ife::Layout lay;
  lay.Y = Y;
  lay.obs = obs;
  lay.fit_mask = fit_mask;
  lay.pre = pre;
  lay.treated = treated;
  lay.placebo = placebo;
  lay.event = event;
  lay.ever = ever;
  lay.X = to_mats(X);
  return lay;
}

mkt::ife::ReplicateSpec make_spec(int r, int force, double tol, int max_iter, bool em, bool soft,
                                  double lambda, const Eigen::MatrixXd& F0,
                                  const Eigen::VectorXd& beta0,
                                  const std::vector<int>& event_keys) {
  mkt::ife::ReplicateSpec spec;
  spec.ctl = make_control(r, force, tol, max_iter, soft, lambda);
  spec.em = em;
  spec.F0 = F0;
  spec.beta0 = beta0;
  spec.event_keys = event_keys;
  return spec;
}

Rcpp::List wrap_chunk(const mkt::ife::ChunkResult& res) {
  return Rcpp::List::create(
      Rcpp::_["att"] = res.att, Rcpp::_["placebo"] = res.placebo, Rcpp::_["event"] = res.event,
      Rcpp::_["period"] = res.period, Rcpp::_["unit"] = res.unit,
      Rcpp::_["failed"] = Rcpp::wrap(res.failed));
}

}  // namespace

// One chunk of counterfactual() replicates (unit bootstrap or jackknife):
// `reps` are the replicates' 1-based indices in the whole run.
// [[Rcpp::export]]
Rcpp::List cpp_cf_resample_chunk(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& obs,
                                 const Eigen::MatrixXd& fit_mask, const Eigen::MatrixXd& pre,
                                 const Eigen::MatrixXd& treated, const Eigen::MatrixXd& placebo,
                                 const Eigen::MatrixXi& event, const std::vector<int>& ever,
                                 const Rcpp::List& X, int r, int force, double tol, int max_iter,
                                 bool em, bool soft, double lambda, const Eigen::MatrixXd& F0,
                                 const Eigen::VectorXd& beta0, const std::vector<int>& event_keys,
                                 const std::vector<int>& reps, bool jackknife,
                                 const Rcpp::IntegerVector& seed, int threads) {
  const EigenSingleThread one_thread;
  const mkt::ife::Layout lay = make_layout(Y, obs, fit_mask, pre, treated, placebo, event, ever, X);
  const mkt::ife::ReplicateSpec spec =
      make_spec(r, force, tol, max_iter, em, soft, lambda, F0, beta0, event_keys);
  InterruptPending interrupted;
  bool stopped = false;
  const mkt::ife::ChunkResult res = mkt::ife::cf_chunk(lay, spec, reps, jackknife, make_seed(seed),
                                                       threads, interrupted, stopped);
  finish(stopped);
  return wrap_chunk(res);
}

// Step 1 of the parametric bootstrap for one chunk: prediction errors of
// held-out never-treated units; `pattern` gives, per replicate, the 0-based
// row of the treated unit whose pre-periods the held-out unit borrows.
// [[Rcpp::export]]
Eigen::MatrixXd cpp_cf_param_errors_chunk(
    const Eigen::MatrixXd& Y, const Eigen::MatrixXd& obs, const Eigen::MatrixXd& fit_mask,
    const Eigen::MatrixXd& pre, const Eigen::MatrixXd& treated, const Eigen::MatrixXd& placebo,
    const Eigen::MatrixXi& event, const std::vector<int>& ever, const Rcpp::List& X, int r,
    int force, double tol, int max_iter, const Eigen::MatrixXd& F0, const Eigen::VectorXd& beta0,
    const std::vector<int>& reps, const std::vector<int>& pattern,
    const Rcpp::IntegerVector& seed, int threads) {
  const EigenSingleThread one_thread;
  const mkt::ife::Layout lay = make_layout(Y, obs, fit_mask, pre, treated, placebo, event, ever, X);
  const mkt::ife::ReplicateSpec spec =
      make_spec(r, force, tol, max_iter, false, false, 0.0, F0, beta0, std::vector<int>());
  InterruptPending interrupted;
  bool stopped = false;
  Eigen::MatrixXd out = mkt::ife::param_errors_chunk(lay, spec, reps, pattern, make_seed(seed),
                                                     threads, interrupted, stopped);
  finish(stopped);
  return out;
}

// Step 2 of the parametric bootstrap for one chunk (see param_boot_chunk).
// [[Rcpp::export]]
Rcpp::List cpp_cf_param_boot_chunk(
    const Eigen::MatrixXd& Y, const Eigen::MatrixXd& obs, const Eigen::MatrixXd& fit_mask,
    const Eigen::MatrixXd& pre, const Eigen::MatrixXd& treated, const Eigen::MatrixXd& placebo,
    const Eigen::MatrixXi& event, const std::vector<int>& ever, const Rcpp::List& X, int r,
    int force, double tol, int max_iter, const Eigen::MatrixXd& F0, const Eigen::VectorXd& beta0,
    const std::vector<int>& event_keys, const Eigen::MatrixXd& y0_main,
    const Eigen::MatrixXd& resid, const Eigen::MatrixXd& errors,
    const std::vector<int>& error_unit, const std::vector<int>& reps,
    const Rcpp::IntegerVector& seed, int threads) {
  const EigenSingleThread one_thread;
  const mkt::ife::Layout lay = make_layout(Y, obs, fit_mask, pre, treated, placebo, event, ever, X);
  const mkt::ife::ReplicateSpec spec =
      make_spec(r, force, tol, max_iter, false, false, 0.0, F0, beta0, event_keys);
  InterruptPending interrupted;
  bool stopped = false;
  const mkt::ife::ChunkResult res =
      mkt::ife::param_boot_chunk(lay, spec, y0_main, resid, errors, error_unit, reps,
                                 make_seed(seed), threads, interrupted, stopped);
  finish(stopped);
  return wrap_chunk(res);
}

// One chunk of ife()'s unit bootstrap: beta of each replicate.
// [[Rcpp::export]]
Rcpp::List cpp_ife_boot_chunk(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& mask,
                              const Rcpp::List& X, int r, int force, double tol, int max_iter,
                              const Eigen::MatrixXd& F0, const Eigen::VectorXd& beta0,
                              const std::vector<int>& reps, const Rcpp::IntegerVector& seed,
                              int threads) {
  const EigenSingleThread one_thread;
  const mkt::ife::Control ctl = make_control(r, force, tol, max_iter, false, 0.0);
  std::vector<int> failed;
  InterruptPending interrupted;
  bool stopped = false;
  const Eigen::MatrixXd beta =
      mkt::ife::ife_boot_chunk(Y, mask, to_mats(X), ctl, F0, beta0, reps, make_seed(seed), failed,
                               threads, interrupted, stopped);
  finish(stopped);
  return Rcpp::List::create(Rcpp::_["beta"] = beta, Rcpp::_["failed"] = Rcpp::wrap(failed));
}
