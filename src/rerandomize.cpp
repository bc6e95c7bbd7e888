// Rcpp shim for the re-randomization kernels: maps R objects onto the plain
// C++ structures of rerandomize.h and lin_stats.h, and polls for interrupts
// on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "lin_stats.h"
#include "rerandomize.h"

namespace {

mkt::StrataSpec make_strata(const Rcpp::IntegerVector& units, const Rcpp::IntegerVector& start,
                            const Rcpp::IntegerVector& n_small,
                            const Rcpp::IntegerVector& small_treated) {
  mkt::StrataSpec s;
  s.units.assign(units.begin(), units.end());
  s.start.assign(start.begin(), start.end());
  s.n_small.assign(n_small.begin(), n_small.end());
  s.small_treated.assign(small_treated.begin(), small_treated.end());
  return s;
}

mkt::CriterionSpec make_criterion(int type, const Rcpp::IntegerVector& block_start,
                                  const Rcpp::NumericVector& threshold) {
  mkt::CriterionSpec c;
  c.type = type;
  c.block_start.assign(block_start.begin(), block_start.end());
  c.threshold.assign(threshold.begin(), threshold.end());
  return c;
}

uint64_t make_seed(const Rcpp::IntegerVector& seed) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
         static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
}

struct Poller {
  Rcpp::Nullable<Rcpp::Function> progress;
  bool operator()(int64_t done) const {
    Rcpp::checkUserInterrupt();
    if (progress.isNotNull()) {
      Rcpp::Function f(progress);
      f(static_cast<double>(done));
    }
    return false;
  }
};

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_rerandomize_search(const Rcpp::NumericMatrix& z, const Rcpp::IntegerVector& units,
                                  const Rcpp::IntegerVector& start,
                                  const Rcpp::IntegerVector& n_small,
                                  const Rcpp::IntegerVector& small_treated, int crit_type,
                                  const Rcpp::IntegerVector& block_start,
                                  const Rcpp::NumericVector& threshold,
                                  const Rcpp::IntegerVector& seed, double want,
                                  double max_candidates, int block_size, int threads,
                                  Rcpp::Nullable<Rcpp::Function> progress) {
  const mkt::StrataSpec strata = make_strata(units, start, n_small, small_treated);
  const mkt::CriterionSpec crit = make_criterion(crit_type, block_start, threshold);
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  Poller poll{progress};
  const mkt::SearchResult res =
      mkt::search(sc, make_seed(seed), static_cast<int64_t>(want),
                  static_cast<int64_t>(max_candidates), block_size, threads, poll);
  Rcpp::IntegerMatrix assign(sc.n, static_cast<int>(res.n_found));
  std::copy(res.assignments.begin(), res.assignments.end(), assign.begin());
  Rcpp::NumericMatrix values(sc.n_values(), static_cast<int>(res.n_found));
  std::copy(res.values.begin(), res.values.end(), values.begin());
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["candidates"] = static_cast<double>(res.candidates),
                            Rcpp::_["best"] = res.best,
                            Rcpp::_["coin_flips"] = sc.coin_flips);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_rerandomize_score(const Rcpp::NumericMatrix& z,
                                          const Rcpp::IntegerVector& units,
                                          const Rcpp::IntegerVector& start,
                                          const Rcpp::IntegerVector& n_small,
                                          const Rcpp::IntegerVector& small_treated,
                                          int crit_type, const Rcpp::IntegerVector& block_start,
                                          const Rcpp::IntegerVector& seed, double n_draws,
                                          int block_size, int threads) {
  const mkt::StrataSpec strata = make_strata(units, start, n_small, small_treated);
  const int nb = crit_type == 0 ? static_cast<int>(block_start.size()) - 1 : 1;
  const mkt::CriterionSpec crit =
      make_criterion(crit_type, block_start, Rcpp::NumericVector(nb, R_PosInf));
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  Poller poll{R_NilValue};
  bool interrupted = false;
  const std::vector<double> vals = mkt::score(sc, make_seed(seed), static_cast<int64_t>(n_draws),
                                              block_size, threads, poll, interrupted);
  Rcpp::NumericMatrix out(sc.n_values(), static_cast<int>(n_draws));
  std::copy(vals.begin(), vals.end(), out.begin());
  return out;
}

// [[Rcpp::export]]
Rcpp::List cpp_rerandomize_enumerate(const Rcpp::NumericMatrix& z,
                                     const Rcpp::IntegerVector& units,
                                     const Rcpp::IntegerVector& start,
                                     const Rcpp::IntegerVector& n_treated, int crit_type,
                                     const Rcpp::IntegerVector& block_start,
                                     const Rcpp::NumericVector& threshold) {
  const int S = static_cast<int>(start.size()) - 1;
  const mkt::StrataSpec strata =
      make_strata(units, start, Rcpp::IntegerVector(S), Rcpp::IntegerVector(S));
  const mkt::CriterionSpec crit = make_criterion(crit_type, block_start, threshold);
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  const std::vector<int> nt(n_treated.begin(), n_treated.end());
  const mkt::Enumeration res = mkt::enumerate(sc, nt);
  Rcpp::IntegerMatrix assign(sc.n, static_cast<int>(res.n_found));
  std::copy(res.assignments.begin(), res.assignments.end(), assign.begin());
  Rcpp::NumericMatrix values(sc.n_values(), static_cast<int>(res.n_found));
  std::copy(res.values.begin(), res.values.end(), values.begin());
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["total"] = static_cast<double>(res.n_total));
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_lin_stats(const Eigen::Map<Eigen::VectorXd> y,
                                  const Eigen::Map<Eigen::VectorXd> v,
                                  const Eigen::Map<Eigen::MatrixXd> x,
                                  const Rcpp::IntegerMatrix& assign, int threads) {
  const int n = assign.nrow();
  const int R = assign.ncol();
  Rcpp::NumericMatrix out(5, R);
  mkt::lin_many(y, v, x, assign.begin(), n, R, threads, out.begin());
  Rcpp::rownames(out) = Rcpp::CharacterVector::create("A", "B", "P", "Q", "S");
  return out;
}

// [[Rcpp::export]]
Rcpp::List cpp_buffer_values(const Rcpp::NumericMatrix& x, const Rcpp::IntegerVector& stratum,
                             const Rcpp::NumericVector& n_treated,
                             const Rcpp::NumericVector& weight,
                             const Rcpp::IntegerVector& nb_start,
                             const Rcpp::IntegerVector& nb_idx, const Rcpp::NumericMatrix& L,
                             int crit_type, const Rcpp::IntegerVector& block_start,
                             int min_controls, const Rcpp::IntegerMatrix& w, int threads) {
  mkt::BufferSpec b;
  b.x = x.begin();
  b.n = x.nrow();
  b.k = x.ncol();
  b.stratum.assign(stratum.begin(), stratum.end());
  b.n_treated.assign(n_treated.begin(), n_treated.end());
  b.weight.assign(weight.begin(), weight.end());
  b.nb_start.assign(nb_start.begin(), nb_start.end());
  b.nb_idx.assign(nb_idx.begin(), nb_idx.end());
  b.L = L.begin();
  b.min_controls = min_controls;
  const int nb = crit_type == 0 ? static_cast<int>(block_start.size()) - 1 : 1;
  const mkt::CriterionSpec crit =
      make_criterion(crit_type, block_start, Rcpp::NumericVector(nb, R_PosInf));
  const int R = w.ncol();
  Rcpp::NumericMatrix vals(nb, R);
  Rcpp::NumericMatrix tau(b.k, R);
  Rcpp::IntegerMatrix kept(b.n_strata(), R);
  mkt::buffer_score_many(b, crit, w.begin(), R, threads, vals.begin(), tau.begin(), kept.begin());
  return Rcpp::List::create(Rcpp::_["values"] = vals, Rcpp::_["tau"] = tau,
                            Rcpp::_["kept"] = kept);
}
