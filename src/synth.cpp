// Rcpp shim for the synthetic control kernels of synth.h: converts R
// matrices, turns C++ exceptions into R errors, and polls for interrupts on
// the main thread. The serial kernels (one weight problem, the nested V
// search) poll with Rcpp::checkUserInterrupt(), which throws through plain
// C++ frames; the placebo loop runs OpenMP regions, so there the main thread
// only raises a flag and the interrupt is re-raised here once the region is
// over.
#include <Rcpp.h>
#include <RcppEigen.h>

#include <chrono>

#include "synth.h"

namespace {

Eigen::VectorXd as_vec(const Rcpp::NumericVector& x) {
  return Eigen::Map<const Eigen::VectorXd>(x.begin(), x.size());
}

Eigen::MatrixXd as_mat(const Rcpp::NumericMatrix& x) {
  return Eigen::Map<const Eigen::MatrixXd>(x.begin(), x.nrow(), x.ncol());
}

Rcpp::NumericVector as_r(const Eigen::VectorXd& x) {
  return Rcpp::NumericVector(x.data(), x.data() + x.size());
}

void check_interrupt_fn(void*) { R_CheckUserInterrupt(); }

// Asks R whether the user pressed Ctrl-C, at most every 20 ms (the solvers
// call it once per step, and a step can take microseconds); never jumps out
// of C++. Once seen, the answer stays true: R has consumed the interrupt.
class InterruptPoll {
 public:
  bool operator()() {
    if (seen_) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(20)) return false;
    last_ = now;
    seen_ = R_ToplevelExec(check_interrupt_fn, nullptr) == FALSE;
    return seen_;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool seen_ = false;
};

// The interrupt that InterruptPoll consumed, raised as R's own (Rcpp turns
// this exception into Rf_onintr() at the boundary).
[[noreturn]] void raise_interrupt() { throw Rcpp::internal::InterruptedException(); }

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_simplex_ls(const Rcpp::NumericMatrix& X, const Rcpp::NumericVector& y,
                          double eta, const Rcpp::NumericVector& w0, double tol,
                          int max_iter) {
  InterruptPoll poll;
  const mkt::StopFn stop = [&poll]() { return poll(); };
  const mkt::SimplexResult r =
      mkt::simplex_ls(as_mat(X), as_vec(y), eta, as_vec(w0), tol, max_iter, &stop);
  if (r.stopped) raise_interrupt();
  return Rcpp::List::create(Rcpp::_["w"] = as_r(r.w), Rcpp::_["iterations"] = r.iterations,
                            Rcpp::_["converged"] = r.converged, Rcpp::_["kkt"] = r.kkt,
                            Rcpp::_["objective"] = r.objective);
}

// [[Rcpp::export]]
Rcpp::List cpp_synth_nested(const Rcpp::NumericVector& X1, const Rcpp::NumericMatrix& X0,
                            const Rcpp::NumericVector& Y1, const Rcpp::NumericMatrix& Y0,
                            const Rcpp::NumericMatrix& starts, double tol, int max_iter,
                            int max_eval, double ftol) {
  InterruptPoll poll;
  const mkt::StopFn stop = [&poll]() { return poll(); };
  auto between = [&poll]() {
    if (poll()) raise_interrupt();
  };
  const mkt::NestedResult r = mkt::nested_v(as_vec(X1), as_mat(X0), as_vec(Y1), as_mat(Y0),
                                            as_mat(starts), tol, max_iter, max_eval, ftol,
                                            between, &stop);
  return Rcpp::List::create(Rcpp::_["v"] = as_r(r.v), Rcpp::_["w"] = as_r(r.w),
                            Rcpp::_["loss"] = r.loss,
                            Rcpp::_["start_loss"] = as_r(r.start_loss),
                            Rcpp::_["evaluations"] = r.evaluations,
                            Rcpp::_["converged"] = r.inner_converged,
                            Rcpp::_["kkt"] = r.inner_kkt,
                            Rcpp::_["v_converged"] = r.v_converged,
                            Rcpp::_["capped_starts"] = r.capped_starts);
}

// Placebo in space for the outcome-only fit: every row of Y in turn fitted
// from the others on the first n_pre periods, on up to `threads` threads
// (one when the loop would take less than serial_seconds; a negative value
// puts every round on the threads). Between rounds, on this (the main)
// thread, `progress` (an R function of the number of problems done, or NULL)
// is called.
// [[Rcpp::export]]
Rcpp::List cpp_synth_placebo(const Rcpp::NumericMatrix& Y, int n_pre, double tol,
                             int max_iter, int threads, double serial_seconds,
                             Rcpp::Nullable<Rcpp::Function> progress) {
  InterruptPoll poll;
  const mkt::StopFn interrupted = [&poll]() { return poll(); };
  auto report = [&](int done) {
    if (progress.isNotNull()) {
      Rcpp::Function f(progress);
      f(done);
    }
  };
  const mkt::PlaceboResult r = mkt::placebo_in_space(as_mat(Y), n_pre, tol, max_iter, threads,
                                                     serial_seconds, interrupted, report);
  if (r.interrupted) raise_interrupt();
  Rcpp::NumericMatrix gaps(r.gaps.rows(), r.gaps.cols());
  std::copy(r.gaps.data(), r.gaps.data() + r.gaps.size(), gaps.begin());
  return Rcpp::List::create(Rcpp::_["gaps"] = gaps,
                            Rcpp::_["converged"] = Rcpp::wrap(r.converged),
                            Rcpp::_["kkt"] = as_r(r.kkt), Rcpp::_["failed"] = r.failed,
                            Rcpp::_["threads"] = r.threads_used);
}
