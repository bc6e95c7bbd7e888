// Rcpp shim for trimmed_match.h: every trim level of one set of pairs, with
// interrupts polled on the main thread.
#include <Rcpp.h>

#include "trimmed_match.h"

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_trimmed_match(const Rcpp::NumericVector& y, const Rcpp::NumericVector& x,
                                      const Rcpp::IntegerVector& trims,
                                      const Rcpp::NumericVector& quantiles) {
  const std::vector<double> yv(y.begin(), y.end()), xv(x.begin(), x.end());
  const mkt::TrimmedMatch tm(yv, xv);
  auto poll = []() { Rcpp::checkUserInterrupt(); };
  Rcpp::NumericMatrix out(trims.size(), 5);
  for (R_xlen_t r = 0; r < trims.size(); ++r) {
    const mkt::TmResult res = tm.fit(trims[r], quantiles[r], poll);
    out(r, 0) = res.estimate;
    out(r, 1) = res.std_error;
    out(r, 2) = res.conf_low;
    out(r, 3) = res.conf_high;
    out(r, 4) = res.n_roots;
  }
  Rcpp::colnames(out) = Rcpp::CharacterVector::create("estimate", "std.error", "conf.low",
                                                       "conf.high", "n_roots");
  return out;
}
