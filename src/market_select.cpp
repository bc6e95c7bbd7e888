// Rcpp shim for the market-selection backtests of market_select.h: maps R
// memory to Eigen, loops over candidate sets (one thread: the search scales
// over candidate chunks on the user's future plan), and polls for user
// interrupts between sets on the main thread.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "market_select.h"

namespace {

mkt::BacktestPlan plan_from_r(const Rcpp::NumericMatrix& Z, const Rcpp::NumericVector& level,
                              const Rcpp::IntegerVector& block_start,
                              const Rcpp::IntegerVector& block_len,
                              const Rcpp::LogicalVector& full,
                              const Rcpp::IntegerVector& window_block,
                              const Rcpp::LogicalVector& selection, int method,
                              double tol, int max_iter) {
  const Eigen::MatrixXd Zm = Eigen::Map<const Eigen::MatrixXd>(Z.begin(), Z.nrow(), Z.ncol());
  const Eigen::VectorXd lv = Eigen::Map<const Eigen::VectorXd>(level.begin(), level.size());
  std::vector<char> fl(full.size());
  for (R_xlen_t i = 0; i < full.size(); ++i) fl[i] = full[i] == TRUE;
  mkt::BacktestPlan p = mkt::make_plan(Zm, lv, Rcpp::as<std::vector<int>>(block_start),
                                       Rcpp::as<std::vector<int>>(block_len), fl,
                                       Rcpp::as<std::vector<int>>(window_block),
                                       static_cast<mkt::SelectMethod>(method), tol, max_iter);
  p.selection.resize(selection.size());
  for (R_xlen_t i = 0; i < selection.size(); ++i) p.selection[i] = selection[i] == TRUE;
  return p;
}

}  // namespace

// Scores candidate sets: set i is sets[offsets[i] .. offsets[i + 1] - 1]
// (0-based rows of Z). Returns, per set and window, the estimate at zero
// effect, its slope in the effect, the critical value of the planned test
// and the fit's relative RMSE. tq[B] is the t quantile for B placebos.
// [[Rcpp::export]]
Rcpp::List cpp_market_backtest(const Rcpp::NumericMatrix& Z, const Rcpp::NumericVector& level,
                               const Rcpp::IntegerVector& block_start,
                               const Rcpp::IntegerVector& block_len,
                               const Rcpp::LogicalVector& full,
                               const Rcpp::IntegerVector& window_block,
                               const Rcpp::LogicalVector& selection, int method,
                               const Rcpp::IntegerVector& sets,
                               const Rcpp::IntegerVector& offsets, double alpha, bool rank,
                               const Rcpp::NumericVector& tq, double tol, int max_iter) {
  const mkt::BacktestPlan p = plan_from_r(Z, level, block_start, block_len, full, window_block,
                                          selection, method, tol, max_iter);
  const int n_sets = static_cast<int>(offsets.size()) - 1;
  const int W = static_cast<int>(p.windows.size());
  Rcpp::NumericMatrix est(n_sets, W), slope(n_sets, W), crit(n_sets, W), rmse(n_sets, W),
      noise(n_sets, W);
  Rcpp::LogicalMatrix conv(n_sets, W);
  for (int i = 0; i < n_sets; ++i) {
    Rcpp::checkUserInterrupt();
    std::vector<int> set(sets.begin() + offsets[i], sets.begin() + offsets[i + 1]);
    for (int w = 0; w < W; ++w) {
      const mkt::WindowScore s = mkt::score_window(p, p.windows[w], set, true);
      const int B = static_cast<int>(s.placebo.size());
      est(i, w) = s.est0;
      slope(i, w) = s.slope;
      rmse(i, w) = s.rmse;
      noise(i, w) = s.n_noise ? s.noise : NA_REAL;
      conv(i, w) = s.converged;
      crit(i, w) = mkt::critical_value(s.placebo, alpha, rank, B < tq.size() ? tq[B] : NA_REAL);
    }
  }
  return Rcpp::List::create(Rcpp::_["estimate"] = est, Rcpp::_["slope"] = slope,
                            Rcpp::_["critical"] = crit, Rcpp::_["rmse"] = rmse,
                            Rcpp::_["noise"] = noise,
                            Rcpp::_["converged"] = conv);
}

// One set in detail: per window the placebo estimates and the donor weights
// of the test fit (N x W, zero on treated rows).
// [[Rcpp::export]]
Rcpp::List cpp_market_backtest_detail(const Rcpp::NumericMatrix& Z,
                                      const Rcpp::NumericVector& level,
                                      const Rcpp::IntegerVector& block_start,
                                      const Rcpp::IntegerVector& block_len,
                                      const Rcpp::LogicalVector& full,
                                      const Rcpp::IntegerVector& window_block,
                                      const Rcpp::LogicalVector& selection, int method,
                                      const Rcpp::IntegerVector& set, double tol,
                                      int max_iter) {
  const mkt::BacktestPlan p = plan_from_r(Z, level, block_start, block_len, full, window_block,
                                          selection, method, tol, max_iter);
  const std::vector<int> s = Rcpp::as<std::vector<int>>(set);
  const int W = static_cast<int>(p.windows.size());
  Rcpp::List placebo(W);
  Rcpp::NumericMatrix weights(Z.nrow(), W);
  for (int w = 0; w < W; ++w) {
    Rcpp::checkUserInterrupt();
    const mkt::WindowScore sc = mkt::score_window(p, p.windows[w], s, true);
    placebo[w] = Rcpp::NumericVector(sc.placebo.begin(), sc.placebo.end());
    const Eigen::VectorXd wt = mkt::window_weights(p, w, s);
    std::copy(wt.data(), wt.data() + wt.size(), weights.column(w).begin());
  }
  return Rcpp::List::create(Rcpp::_["placebo"] = placebo, Rcpp::_["weights"] = weights);
}

// The kernel's critical value for placebo estimates e (for the estimators
// fitted in R, so that every method uses the same rejection rule).
// [[Rcpp::export]]
double cpp_market_critical(const Rcpp::NumericVector& e, double alpha, bool rank, double tq) {
  return mkt::critical_value(std::vector<double>(e.begin(), e.end()), alpha, rank, tq);
}
