// Rcpp shim for the staggered-adoption kernels of staggered.h: checks
// nothing (R/staggered.R has checked the inputs), maps R objects onto plain
// arrays and polls for interrupts on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "staggered.h"

// [[Rcpp::export]]
Rcpp::List cpp_staggered_gt(const Rcpp::NumericMatrix& y, const Rcpp::IntegerVector& cohort,
                            const Rcpp::NumericVector& w, const Rcpp::IntegerVector& group,
                            const Rcpp::IntegerVector& time, const Rcpp::IntegerVector& base,
                            const Rcpp::IntegerVector& control_after, bool not_yet,
                            double trim, int threads) {
  const int n = y.nrow();
  const int K = group.size();
  std::vector<mkt::GtCell> cells(K);
  for (int k = 0; k < K; ++k) {
    cells[k] = mkt::GtCell{group[k], time[k], base[k], control_after[k], not_yet};
  }
  Rcpp::NumericMatrix inf(n, K);
  const mkt::GtResult r = mkt::gt_no_covariates(y.begin(), n, y.ncol(), cohort.begin(), w.begin(),
                                                cells, trim, inf.begin(), threads);
  return Rcpp::List::create(Rcpp::_["att"] = Rcpp::wrap(r.att),
                            Rcpp::_["n_treated"] = Rcpp::wrap(r.n_treated),
                            Rcpp::_["n_control"] = Rcpp::wrap(r.n_control),
                            Rcpp::_["status"] = Rcpp::wrap(r.status),
                            Rcpp::_["mean1"] = Rcpp::wrap(r.mean1),
                            Rcpp::_["mean0"] = Rcpp::wrap(r.mean0),
                            Rcpp::_["wsum1"] = Rcpp::wrap(r.wsum1),
                            Rcpp::_["wsum0"] = Rcpp::wrap(r.wsum0),
                            Rcpp::_["sumsq"] = Rcpp::wrap(r.sumsq),
                            Rcpp::_["inf"] = inf);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot(const Eigen::Map<Eigen::MatrixXd> S, double n, int B,
                                       const Rcpp::IntegerVector& seed, int threads) {
  const uint64_t s = (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
                     static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
  // The draws are split over threads by hand; Eigen's own GEMM threads stay off.
  Eigen::setNbThreads(1);
  const Eigen::MatrixXd out = mkt::multiplier_bootstrap(
      S, n, B, s, threads, [](int) { Rcpp::checkUserInterrupt(); });
  return Rcpp::wrap(out);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot_cohort(const Rcpp::NumericMatrix& y, const Rcpp::NumericVector& w,
                                              const Rcpp::IntegerVector& cohort_slot,
                                              const Rcpp::IntegerVector& order, int H,
                                              const Rcpp::IntegerVector& cell_time,
                                              const Rcpp::IntegerVector& cell_base,
                                              const Eigen::Map<Eigen::MatrixXd> coef,
                                              const Eigen::Map<Eigen::MatrixXd> centre, int B,
                                              const Rcpp::IntegerVector& seed, int threads) {
  const uint64_t s = (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
                     static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
  Eigen::setNbThreads(1);
  const Eigen::MatrixXd cf = coef, ce = centre;
  const Eigen::MatrixXd out = mkt::multiplier_bootstrap_cohort(
      y.begin(), y.nrow(), y.ncol(), w.begin(), cohort_slot.begin(), order.begin(), H,
      cell_time.begin(), cell_base.begin(), cf, ce, B, s, threads,
      [](int) { Rcpp::checkUserInterrupt(); });
  return Rcpp::wrap(out);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot_blocks(const Eigen::Map<Eigen::MatrixXd> S, double n, int B,
                                              const Rcpp::IntegerVector& seed,
                                              const Rcpp::IntegerVector& order,
                                              const Rcpp::IntegerVector& start,
                                              const Rcpp::IntegerVector& size,
                                              const Eigen::Map<Eigen::MatrixXi> use, int threads) {
  const uint64_t s = (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
                     static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
  Eigen::setNbThreads(1);
  const Eigen::MatrixXd out = mkt::multiplier_bootstrap_blocks(
      S, n, B, s, order.begin(), start.begin(), size.begin(), static_cast<int>(size.size()), use,
      threads, [](int) { Rcpp::checkUserInterrupt(); });
  return Rcpp::wrap(out);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_cluster_cohort_moments(const Rcpp::NumericMatrix& y,
                                               const Rcpp::NumericVector& w,
                                               const Rcpp::IntegerVector& slot, int H,
                                               const Rcpp::IntegerVector& order,
                                               const Rcpp::IntegerVector& cluster) {
  const Eigen::MatrixXd Q = mkt::cluster_cohort_moments(y.begin(), y.nrow(), y.ncol(), w.begin(),
                                                        slot.begin(), H, order.begin(),
                                                        cluster.begin());
  return Rcpp::wrap(Q);
}
