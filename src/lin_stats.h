// Statistics of a two-arm experiment for many assignments at once, free of R:
// Lin's (2013) regression-adjusted estimator (separate OLS fits per arm on
// covariates centred at the full-sample mean) and its HC2 variance. With no
// covariates it is the difference in means with Neyman's variance.
//
// Under a constant additive effect tau0 the imputed outcome for draw r is
// y - tau0 * w_obs + tau0 * w_r. The estimator is linear in the outcome and
// the HC2 variance quadratic, so each draw is summarised by five numbers,
//   estimate(tau0) - tau0 = A - tau0 B,
//   variance(tau0)        = P - 2 tau0 Q + tau0^2 S,
// from fits of y and of v = w_obs. The whole p-value curve of the
// randomization test then needs no refit (see R/randomization_test.R).
#ifndef MKTCAUSAL_LIN_STATS_H
#define MKTCAUSAL_LIN_STATS_H

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace mkt {

struct ArmFit {
  double a = std::numeric_limits<double>::quiet_NaN();  // intercept for y
  double b = std::numeric_limits<double>::quiet_NaN();  // intercept for v
  double pyy = std::numeric_limits<double>::quiet_NaN();
  double pyv = std::numeric_limits<double>::quiet_NaN();
  double pvv = std::numeric_limits<double>::quiet_NaN();
};

// x: n x p centred covariates (p may be 0); rows picks the arm.
inline ArmFit fit_arm(const Eigen::Ref<const Eigen::VectorXd>& y,
                      const Eigen::Ref<const Eigen::VectorXd>& v,
                      const Eigen::Ref<const Eigen::MatrixXd>& x,
                      const std::vector<int>& rows) {
  ArmFit out;
  const int m = static_cast<int>(rows.size());
  const int p = static_cast<int>(x.cols()) + 1;
  if (m <= p) return out;
  Eigen::MatrixXd xa(m, p);
  Eigen::MatrixXd ya(m, 2);
  for (int i = 0; i < m; ++i) {
    xa(i, 0) = 1.0;
    if (p > 1) xa.row(i).tail(p - 1) = x.row(rows[i]);
    ya(i, 0) = y(rows[i]);
    ya(i, 1) = v(rows[i]);
  }
  Eigen::LDLT<Eigen::MatrixXd> ldlt(xa.transpose() * xa);
  if (ldlt.info() != Eigen::Success) return out;
  const Eigen::MatrixXd ginv = ldlt.solve(Eigen::MatrixXd::Identity(p, p));
  const Eigen::MatrixXd beta = ginv * (xa.transpose() * ya);
  const Eigen::MatrixXd resid = ya - xa * beta;
  // Influence of each row on the intercept, and HC2's 1 / (1 - h_jj).
  const Eigen::MatrixXd xg = xa * ginv;
  const Eigen::VectorXd infl = xg.col(0);
  double pyy = 0.0, pyv = 0.0, pvv = 0.0;
  for (int i = 0; i < m; ++i) {
    const double h = xg.row(i).dot(xa.row(i));
    const double c = infl(i) * infl(i) / std::max(1.0 - h, 1e-12);
    pyy += c * resid(i, 0) * resid(i, 0);
    pyv += c * resid(i, 0) * resid(i, 1);
    pvv += c * resid(i, 1) * resid(i, 1);
  }
  out.a = beta(0, 0);
  out.b = beta(0, 1);
  out.pyy = pyy;
  out.pyv = pyv;
  out.pvv = pvv;
  return out;
}

// For each column r of `assign` (n x R, 0/1) writes A, B, P, Q, S (see top).
inline void lin_many(const Eigen::Ref<const Eigen::VectorXd>& y,
                     const Eigen::Ref<const Eigen::VectorXd>& v,
                     const Eigen::Ref<const Eigen::MatrixXd>& x, const int* assign, int n,
                     int n_draws, int threads, double* out /* 5 x R */) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (int r = 0; r < n_draws; ++r) {
    const int* w = assign + static_cast<std::size_t>(r) * n;
    std::vector<int> treated, control;
    treated.reserve(n);
    control.reserve(n);
    for (int j = 0; j < n; ++j) (w[j] ? treated : control).push_back(j);
    const ArmFit f1 = fit_arm(y, v, x, treated);
    const ArmFit f0 = fit_arm(y, v, x, control);
    double* o = out + static_cast<std::size_t>(r) * 5;
    o[0] = f1.a - f0.a;
    o[1] = f1.b - f0.b;
    o[2] = f1.pyy + f0.pyy;
    o[3] = f1.pyv + f0.pyv;
    o[4] = f1.pvv + f0.pvv;
  }
}

}  // namespace mkt

#endif
