// Rcpp shim for the synthetic design's search (R/synthetic_design.R): many
// small weight problems on column subsets of one matrix, each solved by the
// simplex least-squares kernel of synth.h. Looping here rather than in R
// saves the call overhead that dominates a 3-column problem (an exhaustive
// search over 3 of 60 markets is 34,220 of them).
#include <Rcpp.h>
#include <RcppEigen.h>

#include "synth.h"

// Z: rows are fit periods, columns are markets, already centred on the
// target (z_j = x_j - xbar). sets: one column per candidate, 1-based column
// indices of Z. complement = false solves on the set's columns (the treated
// weights), true on every other column (the control weights), warm-started
// at w0 restricted to them. Returns each problem's objective
// ||Z_S w||^2 + eta ||w||^2, and whether every solve met its KKT tolerance.
// [[Rcpp::export]]
Rcpp::List cpp_design_sets(const Rcpp::NumericMatrix& Z, const Rcpp::IntegerMatrix& sets,
                           bool complement, double eta, const Rcpp::NumericVector& w0,
                           double tol, int max_iter) {
  const Eigen::Map<const Eigen::MatrixXd> Zm(Z.begin(), Z.nrow(), Z.ncol());
  const int J = Z.ncol();
  const int m = sets.nrow();
  const int K = sets.ncol();
  Rcpp::NumericVector obj(K);
  bool all_conv = true;
  double worst_kkt = 0.0;
  std::vector<char> in_set(J, 0);
  for (int k = 0; k < K; ++k) {
    if (k % 256 == 0) Rcpp::checkUserInterrupt();
    std::fill(in_set.begin(), in_set.end(), 0);
    for (int a = 0; a < m; ++a) in_set[sets(a, k) - 1] = 1;
    std::vector<int> cols;
    for (int j = 0; j < J; ++j)
      if (static_cast<bool>(in_set[j]) != complement) cols.push_back(j);
    const int n = static_cast<int>(cols.size());
    Eigen::MatrixXd Zs(Zm.rows(), n);
    Eigen::VectorXd warm(0);
    if (w0.size() == J) warm.resize(n);
    for (int a = 0; a < n; ++a) {
      Zs.col(a) = Zm.col(cols[a]);
      if (w0.size() == J) warm(a) = w0[cols[a]];
    }
    if (warm.size() && !(warm.array() > 0).any()) warm.resize(0);
    const mkt::SimplexResult r = mkt::simplex_min_norm(Zs, eta, warm, tol, max_iter);
    obj[k] = r.objective;
    all_conv = all_conv && r.converged;
    worst_kkt = std::max(worst_kkt, r.kkt);
  }
  return Rcpp::List::create(Rcpp::_["objective"] = obj, Rcpp::_["converged"] = all_conv,
                            Rcpp::_["kkt"] = worst_kkt);
}
