// Rcpp shim for the within transformation of demean.h: maps the R matrix and
// group codes onto Eigen and plain pointers, and polls for interrupts.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "demean.h"

// [[Rcpp::export]]
Rcpp::List cpp_demean(Rcpp::NumericMatrix x, const Rcpp::List& codes,
                      const Rcpp::IntegerVector& n_groups, const Rcpp::NumericVector& weights,
                      double tol, int max_iter) {
  Rcpp::NumericMatrix out = Rcpp::clone(x);
  Eigen::Map<Eigen::MatrixXd> X(out.begin(), out.nrow(), out.ncol());
  std::vector<Rcpp::IntegerVector> keep;
  std::vector<mkt::FactorCodes> fe;
  for (R_xlen_t k = 0; k < codes.size(); ++k) {
    keep.push_back(Rcpp::as<Rcpp::IntegerVector>(codes[k]));
    fe.push_back(mkt::FactorCodes{keep.back().begin(), n_groups[k]});
  }
  const double* w = weights.size() ? weights.begin() : nullptr;
  mkt::DemeanStatus st = mkt::demean_columns(X, fe, w, tol, max_iter,
                                             [] { Rcpp::checkUserInterrupt(); });
  return Rcpp::List::create(Rcpp::Named("x") = out,
                            Rcpp::Named("iterations") = st.iterations,
                            Rcpp::Named("converged") = st.converged);
}
