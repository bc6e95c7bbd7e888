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
//
// The fits run inside parallel regions (src/rerandomize.h, lin_many), so
// they never allocate: each thread owns a LinWork sized before the region,
// and the small normal equations are solved by hand (Cholesky), not by
// Eigen's decompositions, which allocate. An arm whose design is singular
// (fewer clusters than parameters, or collinear covariates within the arm)
// gives NaN, which R turns into a classed error.
#ifndef MKTCAUSAL_LIN_STATS_H
#define MKTCAUSAL_LIN_STATS_H

#include <algorithm>
#include <cmath>
#include <initializer_list>
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

// Scratch of one thread for fits with p = 1 + covariates parameters and up
// to n rows per arm.
struct LinWork {
  int p = 0;
  std::vector<int> treated, control;  // rows of each arm
  std::vector<double> A;              // p x p normal matrix, then its Cholesky factor
  std::vector<double> G;              // p x p inverse
  std::vector<double> xr, g;          // one row, and G times it
  std::vector<double> xty, xtv, by, bv;
  LinWork() = default;
  // Each vector keeps 128 bytes of spare capacity after its data, so that
  // no cache line holds two threads' scratch (false sharing).
  LinWork(int n, int p_)
      : p(p_), treated(n), control(n), A(static_cast<std::size_t>(p_) * p_),
        G(static_cast<std::size_t>(p_) * p_), xr(p_), g(p_), xty(p_), xtv(p_), by(p_),
        bv(p_) {
    for (std::vector<int>* v : {&treated, &control}) v->reserve(v->size() + 33);
    for (std::vector<double>* v : {&A, &G, &xr, &g, &xty, &xtv, &by, &bv}) {
      v->reserve(v->size() + 17);
    }
  }
};

// Row r of [1, x] into w.xr; x is n x (p - 1), column-major.
inline void lin_row(const double* x, int n, int r, LinWork& w) {
  w.xr[0] = 1.0;
  for (int c = 1; c < w.p; ++c) w.xr[c] = x[r + static_cast<std::size_t>(c - 1) * n];
}

// OLS of y and v on [1, x] over `rows` (m of them) and the HC2 pieces of
// the intercept: with G = (X'X)^-1 and g_i = G x_i, row i moves the
// intercept by g_i[0] e_i, and HC2 scales its squared residual by
// 1 / (1 - x_i' g_i).
inline ArmFit fit_arm(const double* y, const double* v, const double* x, int n,
                      const int* rows, int m, LinWork& w) {
  ArmFit out;
  const int p = w.p;
  if (m <= p) return out;
  double* A = w.A.data();
  std::fill(w.A.begin(), w.A.end(), 0.0);
  std::fill(w.xty.begin(), w.xty.end(), 0.0);
  std::fill(w.xtv.begin(), w.xtv.end(), 0.0);
  for (int i = 0; i < m; ++i) {
    const int r = rows[i];
    lin_row(x, n, r, w);
    for (int a = 0; a < p; ++a) {
      const double xa = w.xr[a];
      w.xty[a] += xa * y[r];
      w.xtv[a] += xa * v[r];
      for (int b = 0; b <= a; ++b) A[a * p + b] += xa * w.xr[b];
    }
  }
  // Cholesky A = L L' in the lower triangle (row-major, A[a * p + b], b <= a).
  // A pivot that loses all but 1e-10 of its diagonal marks a column that
  // is (nearly) a combination of the others within this arm.
  for (int a = 0; a < p; ++a) {
    const double diag = A[a * p + a];
    for (int b = 0; b <= a; ++b) {
      double s = A[a * p + b];
      for (int c = 0; c < b; ++c) s -= A[a * p + c] * A[b * p + c];
      if (b < a) {
        A[a * p + b] = s / A[b * p + b];
      } else {
        if (!(s > 1e-10 * diag) || !std::isfinite(s)) return out;
        A[a * p + a] = std::sqrt(s);
      }
    }
  }
  // G = (L L')^-1, column by column.
  double* G = w.G.data();
  for (int col = 0; col < p; ++col) {
    double* gcol = w.g.data();
    for (int a = 0; a < p; ++a) {  // L z = e_col
      double s = a == col ? 1.0 : 0.0;
      for (int c = 0; c < a; ++c) s -= A[a * p + c] * gcol[c];
      gcol[a] = s / A[a * p + a];
    }
    for (int a = p - 1; a >= 0; --a) {  // L' g = z
      double s = gcol[a];
      for (int c = a + 1; c < p; ++c) s -= A[c * p + a] * gcol[c];
      gcol[a] = s / A[a * p + a];
    }
    for (int a = 0; a < p; ++a) G[a * p + col] = gcol[a];
  }
  for (int a = 0; a < p; ++a) {
    double sy = 0.0, sv = 0.0;
    for (int b = 0; b < p; ++b) {
      sy += G[a * p + b] * w.xty[b];
      sv += G[a * p + b] * w.xtv[b];
    }
    w.by[a] = sy;
    w.bv[a] = sv;
  }
  double pyy = 0.0, pyv = 0.0, pvv = 0.0;
  for (int i = 0; i < m; ++i) {
    const int r = rows[i];
    lin_row(x, n, r, w);
    double h = 0.0, fy = 0.0, fv = 0.0;
    for (int a = 0; a < p; ++a) {
      double s = 0.0;
      for (int b = 0; b < p; ++b) s += G[a * p + b] * w.xr[b];
      w.g[a] = s;
      h += w.xr[a] * s;
      fy += w.xr[a] * w.by[a];
      fv += w.xr[a] * w.bv[a];
    }
    const double ry = y[r] - fy;
    const double rv = v[r] - fv;
    const double c = w.g[0] * w.g[0] / std::max(1.0 - h, 1e-12);
    pyy += c * ry * ry;
    pyv += c * ry * rv;
    pvv += c * rv * rv;
  }
  out.a = w.by[0];
  out.b = w.bv[0];
  out.pyy = pyy;
  out.pyv = pyv;
  out.pvv = pvv;
  return out;
}

// A, B, P, Q, S (see top) of the assignment `assign` (n, 0/1) into `out`.
inline void lin_one(const double* y, const double* v, const double* x, int n,
                    const int* assign, LinWork& w, double* out) {
  int n1 = 0, n0 = 0;
  for (int j = 0; j < n; ++j) {
    if (assign[j]) {
      w.treated[n1++] = j;
    } else {
      w.control[n0++] = j;
    }
  }
  const ArmFit f1 = fit_arm(y, v, x, n, w.treated.data(), n1, w);
  const ArmFit f0 = fit_arm(y, v, x, n, w.control.data(), n0, w);
  out[0] = f1.a - f0.a;
  out[1] = f1.b - f0.b;
  out[2] = f1.pyy + f0.pyy;
  out[3] = f1.pyv + f0.pyv;
  out[4] = f1.pvv + f0.pvv;
}

}  // namespace mkt

#endif
