// Rcpp shim for streams.h: .Random.seed vectors of L'Ecuyer-CMRG replicate
// streams.
#include <Rcpp.h>

#include <vector>

#include "streams.h"

// `base` is an L'Ecuyer-CMRG .Random.seed (kind code and six numbers);
// returns a 7 x count integer matrix whose column r is the .Random.seed of
// replicate first + r - 1.
// [[Rcpp::export]]
Rcpp::IntegerMatrix cpp_replicate_seeds(const Rcpp::IntegerVector& base, double first, int count) {
  if (base.size() != 7 || count < 0 || !(first >= 1) || first > 9007199254740992.0) {
    Rcpp::stop("Internal error: bad stream request.");
  }
  mkt::streams::State s;
  for (int k = 0; k < 3; ++k) {
    s.s1[k] = static_cast<uint32_t>(base[1 + k]);
    s.s2[k] = static_cast<uint32_t>(base[4 + k]);
  }
  std::vector<uint64_t> states(6 * static_cast<size_t>(count));
  mkt::streams::replicate_states(s, static_cast<uint64_t>(first), count, states.data());
  Rcpp::IntegerMatrix out(7, count);
  for (int r = 0; r < count; ++r) {
    out(0, r) = base[0];
    for (int k = 0; k < 6; ++k) {
      out(1 + k, r) = static_cast<int>(static_cast<uint32_t>(states[6 * r + k]));
    }
  }
  return out;
}
