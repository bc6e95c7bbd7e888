// Rcpp shim for the staggered-adoption kernels of staggered.h: checks
// nothing (R/staggered.R has checked the inputs), maps R objects onto plain
// arrays and polls for interrupts on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "staggered.h"

namespace {

void check_interrupt_fn(void*) { R_CheckUserInterrupt(); }

// TRUE when the user pressed Ctrl-C (or Esc); never jumps out of C++. Called
// on the main thread only.
bool interrupt_pending() { return R_ToplevelExec(check_interrupt_fn, nullptr) == FALSE; }

uint64_t make_seed(const Rcpp::IntegerVector& seed) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
         static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
}

}  // namespace

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

// Draws b0 .. b0 + B - 1 of the multiplier bootstrap (see staggered.h),
// written straight into the R matrix returned. An interrupt stops the
// kernel; the shim then raises it as R's interrupt.
// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot(const Eigen::Map<Eigen::MatrixXd> S, double n, double b0,
                                       int B, const Rcpp::IntegerVector& seed, int threads) {
  Rcpp::NumericMatrix out(B, S.cols());
  Eigen::Map<Eigen::MatrixXd> O(out.begin(), B, S.cols());
  // The draws are split over threads by hand; Eigen's own GEMM threads stay off.
  Eigen::setNbThreads(1);
  if (mkt::multiplier_bootstrap(S, n, static_cast<int64_t>(b0), B, make_seed(seed), threads, O,
                                interrupt_pending)) {
    throw Rcpp::internal::InterruptedException();
  }
  return out;
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot_cohort(const Rcpp::NumericMatrix& y, const Rcpp::NumericVector& w,
                                              const Rcpp::IntegerVector& cohort_slot,
                                              const Rcpp::IntegerVector& order, int H,
                                              const Rcpp::IntegerVector& cell_time,
                                              const Rcpp::IntegerVector& cell_base,
                                              const Eigen::Map<Eigen::MatrixXd> coef,
                                              const Eigen::Map<Eigen::MatrixXd> centre, double b0,
                                              int B, const Rcpp::IntegerVector& seed, int threads) {
  Rcpp::NumericMatrix out(B, coef.cols());
  Eigen::Map<Eigen::MatrixXd> O(out.begin(), B, coef.cols());
  Eigen::setNbThreads(1);
  const Eigen::MatrixXd cf = coef, ce = centre;
  if (mkt::multiplier_bootstrap_cohort(y.begin(), y.nrow(), y.ncol(), w.begin(), cohort_slot.begin(),
                                       order.begin(), H, cell_time.begin(), cell_base.begin(), cf,
                                       ce, static_cast<int64_t>(b0), B, make_seed(seed), threads,
                                       O, interrupt_pending)) {
    throw Rcpp::internal::InterruptedException();
  }
  return out;
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_staggered_boot_blocks(const Eigen::Map<Eigen::MatrixXd> S, double n,
                                              double b0, int B, const Rcpp::IntegerVector& seed,
                                              const Rcpp::IntegerVector& order,
                                              const Rcpp::IntegerVector& start,
                                              const Rcpp::IntegerVector& size,
                                              const Eigen::Map<Eigen::MatrixXi> use, int threads) {
  Rcpp::NumericMatrix out(B, S.cols());
  Eigen::Map<Eigen::MatrixXd> O(out.begin(), B, S.cols());
  Eigen::setNbThreads(1);
  if (mkt::multiplier_bootstrap_blocks(S, n, static_cast<int64_t>(b0), B, make_seed(seed),
                                       order.begin(), start.begin(), size.begin(),
                                       static_cast<int>(size.size()), use, threads, O,
                                       interrupt_pending)) {
    throw Rcpp::internal::InterruptedException();
  }
  return out;
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
