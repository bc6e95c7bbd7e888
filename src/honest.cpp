// Rcpp shim for honest.h: the vertex list of the ARP dual program and the
// warm-started simplex that replaces it when the vertices are too many, with
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

// Linear programs max (or min) c'x s.t. A x = b, x >= 0, for each column c
// of C, warm-started one from the next. Returns the values, a status per
// column (0 optimal, 1 infeasible, 2 unbounded, 3 iteration limit) and, with
// `solutions`, the optimal x of each column and a label that changes only
// when x does (consecutive columns often share their optimum).
// [[Rcpp::export]]
Rcpp::List cpp_honest_lp(const Rcpp::NumericMatrix& A, const Rcpp::NumericVector& b,
                         const Rcpp::NumericMatrix& C, bool maximise, bool solutions,
                         double tol) {
  const Eigen::MatrixXd a = Eigen::Map<const Eigen::MatrixXd>(A.begin(), A.nrow(), A.ncol());
  const Eigen::VectorXd rhs = Eigen::Map<const Eigen::VectorXd>(b.begin(), b.size());
  const int n = A.ncol();
  const int k = C.ncol();
  mkt::StandardLP lp(a, rhs, tol);
  Rcpp::NumericVector value(k, NA_REAL);
  Rcpp::IntegerVector status(k, lp.feasible() ? 0 : lp.status());
  Rcpp::NumericMatrix sol(solutions ? n : 0, solutions ? k : 0);
  Rcpp::IntegerVector group(solutions ? k : 0);
  if (lp.feasible()) {
    Eigen::VectorXd prev;
    int label = 0;
    for (int j = 0; j < k; ++j) {
      if (j % 256 == 255) Rcpp::checkUserInterrupt();
      Eigen::VectorXd c = Eigen::Map<const Eigen::VectorXd>(&C(0, j), n);
      if (!maximise) c = -c;
      double v = 0.0;
      status[j] = lp.maximise(c, v);
      value[j] = maximise ? v : -v;
      if (solutions) {
        const Eigen::VectorXd x = lp.solution();
        std::copy(x.data(), x.data() + n, &sol(0, j));
        if (j > 0 && (x - prev).cwiseAbs().maxCoeff() > 1e-10 * (1.0 + x.cwiseAbs().maxCoeff())) {
          ++label;
        }
        group[j] = label + 1;
        prev = x;
      }
    }
  }
  return Rcpp::List::create(Rcpp::Named("value") = value, Rcpp::Named("status") = status,
                            Rcpp::Named("solution") = sol, Rcpp::Named("group") = group);
}
