// Statistics of a two-arm experiment for many assignments at once, free of R:
// Lin's (2013) regression-adjusted estimator (separate OLS fits per arm on
// covariates centred at the full-sample mean) and its HC2 standard error.
// The fully interacted regression and the two per-arm regressions give the
// same coefficients and the same HC2 leverages, so each arm is fitted alone.
#ifndef MKTCAUSAL_LIN_STATS_H
#define MKTCAUSAL_LIN_STATS_H

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <vector>

namespace mkt {

struct ArmFit {
  double intercept = std::numeric_limits<double>::quiet_NaN();
  double var = std::numeric_limits<double>::quiet_NaN();
};

// x: n x p centred covariates (p may be 0); rows picks the arm.
inline ArmFit fit_arm(const Eigen::Ref<const Eigen::VectorXd>& y,
                      const Eigen::Ref<const Eigen::MatrixXd>& x,
                      const std::vector<int>& rows) {
  ArmFit out;
  const int m = static_cast<int>(rows.size());
  const int p = static_cast<int>(x.cols()) + 1;
  if (m <= p) return out;
  Eigen::MatrixXd xa(m, p);
  Eigen::VectorXd ya(m);
  for (int i = 0; i < m; ++i) {
    xa(i, 0) = 1.0;
    if (p > 1) xa.row(i).tail(p - 1) = x.row(rows[i]);
    ya(i) = y(rows[i]);
  }
  const Eigen::MatrixXd gram = xa.transpose() * xa;
  Eigen::LDLT<Eigen::MatrixXd> ldlt(gram);
  if (ldlt.info() != Eigen::Success) return out;
  const Eigen::MatrixXd ginv = ldlt.solve(Eigen::MatrixXd::Identity(p, p));
  const Eigen::VectorXd beta = ginv * (xa.transpose() * ya);
  const Eigen::VectorXd resid = ya - xa * beta;
  // HC2: squared residuals inflated by 1 / (1 - h_jj).
  const Eigen::MatrixXd xg = xa * ginv;
  Eigen::VectorXd w(m);
  for (int i = 0; i < m; ++i) {
    const double h = xg.row(i).dot(xa.row(i));
    w(i) = resid(i) * resid(i) / std::max(1.0 - h, 1e-12);
  }
  // Only the intercept's variance is needed: row 0 of ginv times the meat.
  const Eigen::VectorXd a = xa * ginv.row(0).transpose();
  out.intercept = beta(0);
  out.var = (a.array().square() * w.array()).sum();
  return out;
}

// For each column of `assign` (n x R, 0/1): Lin's estimate and its HC2 SE.
inline void lin_many(const Eigen::Ref<const Eigen::VectorXd>& y,
                     const Eigen::Ref<const Eigen::MatrixXd>& x,
                     const int* assign, int n, int n_draws, int threads,
                     double* estimate, double* std_error) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (int r = 0; r < n_draws; ++r) {
    const int* w = assign + static_cast<std::size_t>(r) * n;
    std::vector<int> treated, control;
    treated.reserve(n);
    control.reserve(n);
    for (int j = 0; j < n; ++j) (w[j] ? treated : control).push_back(j);
    const ArmFit f1 = fit_arm(y, x, treated);
    const ArmFit f0 = fit_arm(y, x, control);
    estimate[r] = f1.intercept - f0.intercept;
    std_error[r] = std::sqrt(f1.var + f0.var);
  }
}

}  // namespace mkt

#endif
