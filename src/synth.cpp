// Rcpp shim for the synthetic control kernels of synth.h: converts R
// matrices, turns C++ exceptions into R errors, and polls for interrupts
// (between starts of the nested search, between rounds of the placebo loop)
// on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

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

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_simplex_ls(const Rcpp::NumericMatrix& X, const Rcpp::NumericVector& y,
                          double eta, const Rcpp::NumericVector& w0, double tol,
                          int max_iter) {
  const mkt::SimplexResult r =
      mkt::simplex_ls(as_mat(X), as_vec(y), eta, as_vec(w0), tol, max_iter);
  return Rcpp::List::create(Rcpp::_["w"] = as_r(r.w), Rcpp::_["iterations"] = r.iterations,
                            Rcpp::_["converged"] = r.converged, Rcpp::_["kkt"] = r.kkt,
                            Rcpp::_["objective"] = r.objective);
}

// [[Rcpp::export]]
Rcpp::List cpp_synth_nested(const Rcpp::NumericVector& X1, const Rcpp::NumericMatrix& X0,
                            const Rcpp::NumericVector& Y1, const Rcpp::NumericMatrix& Y0,
                            const Rcpp::NumericMatrix& starts, double tol, int max_iter,
                            int max_eval, double ftol) {
  auto poll = []() { Rcpp::checkUserInterrupt(); };
  const mkt::NestedResult r = mkt::nested_v(as_vec(X1), as_mat(X0), as_vec(Y1), as_mat(Y0),
                                            as_mat(starts), tol, max_iter, max_eval, ftol, poll);
  return Rcpp::List::create(Rcpp::_["v"] = as_r(r.v), Rcpp::_["w"] = as_r(r.w),
                            Rcpp::_["loss"] = r.loss,
                            Rcpp::_["start_loss"] = as_r(r.start_loss),
                            Rcpp::_["evaluations"] = r.evaluations,
                            Rcpp::_["converged"] = r.inner_converged,
                            Rcpp::_["kkt"] = r.inner_kkt);
}

// Placebo in space for the outcome-only fit: every row of Y in turn fitted
// from the others on the first n_pre periods, on `threads` threads. Between
// rounds, on this (the main) thread: interrupts are polled and `progress`
// (an R function of the number of problems done, or NULL) is called.
// [[Rcpp::export]]
Rcpp::List cpp_synth_placebo(const Rcpp::NumericMatrix& Y, int n_pre, double tol,
                             int max_iter, int threads,
                             Rcpp::Nullable<Rcpp::Function> progress) {
  auto poll = [&](int done) {
    Rcpp::checkUserInterrupt();
    if (progress.isNotNull()) {
      Rcpp::Function f(progress);
      f(done);
    }
  };
  const mkt::PlaceboResult r =
      mkt::placebo_in_space(as_mat(Y), n_pre, tol, max_iter, threads, poll);
  Rcpp::NumericMatrix gaps(r.gaps.rows(), r.gaps.cols());
  std::copy(r.gaps.data(), r.gaps.data() + r.gaps.size(), gaps.begin());
  return Rcpp::List::create(Rcpp::_["gaps"] = gaps,
                            Rcpp::_["converged"] = Rcpp::wrap(r.converged),
                            Rcpp::_["kkt"] = as_r(r.kkt), Rcpp::_["failed"] = r.failed);
}
