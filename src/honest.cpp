// Rcpp shim for honest.h: the vertex list of the ARP dual program, with
// interrupts polled on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "honest.h"

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_honest_vertices(const Rcpp::NumericMatrix& W, double tol) {
  const Eigen::MatrixXd w = Eigen::Map<const Eigen::MatrixXd>(W.begin(), W.nrow(), W.ncol());
  auto poll = []() { Rcpp::checkUserInterrupt(); };
  const Eigen::MatrixXd v = mkt::dual_vertices(w, tol, poll);
  Rcpp::NumericMatrix out(v.rows(), v.cols());
  std::copy(v.data(), v.data() + v.size(), out.begin());
  return out;
}
