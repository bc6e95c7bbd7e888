// Trimmed Match (Chen and Au 2022) for paired geo experiments.
//
// Pair i has a response difference y_i and a spend difference x_i; the
// residual of a candidate iROAS theta is e_i(theta) = y_i - theta x_i. For a
// trim of k pairs from each tail, with m = n - 2k pairs in the body:
//  * the estimate solves "sum of the body's residuals = 0";
//  * its standard error is sqrt(W) / |sum of the body's x|, with W the
//    winsorized sum of squared residuals (the k lowest set to the lowest
//    kept one, the k highest to the highest kept one);
//  * the confidence set is {theta : Yuen's trimmed t-statistic, with
//    m - 1 degrees of freedom, is within +-q}, that is
//      (sum_body e)^2 <= q^2 m / (m - 1) (W - (winsorized sum)^2 / n).
// The order of the residuals only changes where two lines e_i and e_j
// cross, at theta_ij = (y_i - y_j) / (x_i - x_j). Between consecutive
// crossings the body and the winsorizing pairs are fixed, the body's sum is
// linear in theta and the inequality quadratic, so one sweep over the
// sorted crossings, swapping two neighbours at each, finds every root and
// the whole confidence set in O(n^2) per trim after one O(n^2 log n) sort.
// Crossings that
// coincide are handled by sorting the residuals afresh after them.
#ifndef MKTCAUSAL_TRIMMED_MATCH_H
#define MKTCAUSAL_TRIMMED_MATCH_H

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace mkt {

struct TmCrossing {
  double theta;
  int i, j;
};

struct TmResult {
  double estimate = std::numeric_limits<double>::quiet_NaN();
  double std_error = std::numeric_limits<double>::quiet_NaN();
  double conf_low = std::numeric_limits<double>::quiet_NaN();
  double conf_high = std::numeric_limits<double>::quiet_NaN();
  int n_roots = 0;
};

class TrimmedMatch {
 public:
  TrimmedMatch(const std::vector<double>& y, const std::vector<double>& x)
      : y_(y), x_(x), n_(static_cast<int>(y.size())) {
    for (int i = 0; i < n_; ++i) {
      for (int j = i + 1; j < n_; ++j) {
        const double dx = x_[i] - x_[j];
        if (dx != 0.0) crossings_.push_back({(y_[i] - y_[j]) / dx, i, j});
      }
    }
    std::sort(crossings_.begin(), crossings_.end(),
              [](const TmCrossing& a, const TmCrossing& b) { return a.theta < b.theta; });
  }

  // Estimate, standard error and the hull of the confidence set for a trim
  // of k pairs per tail; q is the t quantile (q <= 0 skips the interval).
  template <typename Poll>
  TmResult fit(int k, double q, Poll poll) const {
    TmResult out;
    const int m = n_ - 2 * k;
    std::vector<int> order(n_), pos(n_);
    const double inf = std::numeric_limits<double>::infinity();
    const int nc = static_cast<int>(crossings_.size());
    double lo_bound = -inf;
    double start = nc ? crossings_[0].theta - 1.0 - std::fabs(crossings_[0].theta) : 0.0;
    sort_at(start, order, pos);
    double best_se = inf;
    double ci_low = inf, ci_high = -inf;
    const double H = q > 0 ? q * q * m / (m - 1.0) : 0.0;
    int c = 0;
    // Sums over the body (positions k .. n - k - 1) of y, x, y^2, x^2, xy:
    // updated when a swap moves a pair across the body's edge, recomputed
    // after a fresh sort and every 256 updates against rounding drift.
    double sy = 0, sx = 0, syy = 0, sxx = 0, sxy = 0;
    int updates = 0;
    auto recompute = [&]() {
      sy = sx = syy = sxx = sxy = 0.0;
      for (int p = k; p < n_ - k; ++p) add(order[p], 1.0, sy, sx, syy, sxx, sxy);
      updates = 0;
    };
    recompute();
    while (true) {
      // The interval [lo_bound, hi_bound] with a fixed order.
      const double hi_bound = c < nc ? crossings_[c].theta : inf;
      if (sx != 0.0) {
        const double root = sy / sx;
        if (root >= lo_bound && root <= hi_bound) {
          const double se = std_error_at(root, k, order, sxx, sxy, syy, sx);
          ++out.n_roots;
          if (se < best_se) {
            best_se = se;
            out.estimate = root;
            out.std_error = se;
          }
        }
      }
      if (q > 0) {
        interval_piece(k, H, order, sy, sx, syy, sxx, sxy, lo_bound, hi_bound, ci_low,
                       ci_high);
      }
      if (c >= nc) break;
      // Advance past every crossing at this theta.
      int c_end = c + 1;
      while (c_end < nc && crossings_[c_end].theta == crossings_[c].theta) ++c_end;
      const TmCrossing& cr = crossings_[c];
      if (c_end == c + 1 && std::abs(pos[cr.i] - pos[cr.j]) == 1) {
        const int p = std::min(pos[cr.i], pos[cr.j]);
        std::swap(order[pos[cr.i]], order[pos[cr.j]]);
        std::swap(pos[cr.i], pos[cr.j]);
        // Entering and leaving the body: positions k - 1 | k and
        // n - k - 1 | n - k.
        if (k > 0 && (p == k - 1 || p == n_ - k - 1)) {
          const int in = p == k - 1 ? order[p + 1] : order[p];
          const int out_i = p == k - 1 ? order[p] : order[p + 1];
          add(in, 1.0, sy, sx, syy, sxx, sxy);
          add(out_i, -1.0, sy, sx, syy, sxx, sxy);
          if (++updates >= 256) recompute();
        }
      } else {
        const double next = c_end < nc ? crossings_[c_end].theta : cr.theta + 1.0 + std::fabs(cr.theta);
        sort_at(0.5 * (cr.theta + next), order, pos);
        recompute();
      }
      lo_bound = cr.theta;
      c = c_end;
      if ((c & 4095) == 0) poll();
    }
    if (q > 0 && ci_low <= ci_high) {
      out.conf_low = ci_low;
      out.conf_high = ci_high;
    }
    return out;
  }

 private:
  std::vector<double> y_, x_;

  void add(int i, double sign, double& sy, double& sx, double& syy, double& sxx,
           double& sxy) const {
    sy += sign * y_[i];
    sx += sign * x_[i];
    syy += sign * y_[i] * y_[i];
    sxx += sign * x_[i] * x_[i];
    sxy += sign * x_[i] * y_[i];
  }
  int n_;
  std::vector<TmCrossing> crossings_;

  void sort_at(double theta, std::vector<int>& order, std::vector<int>& pos) const {
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      const double ea = y_[a] - theta * x_[a], eb = y_[b] - theta * x_[b];
      return ea < eb || (ea == eb && a < b);
    });
    for (int p = 0; p < n_; ++p) pos[order[p]] = p;
  }

  // sqrt(winsorized sum of squares) / |sum of body x| at theta, given the
  // body's sums of x^2, xy and y^2.
  double std_error_at(double theta, int k, const std::vector<int>& order, double sxx,
                      double sxy, double syy, double sx) const {
    double w = syy - 2.0 * theta * sxy + theta * theta * sxx;
    if (k > 0) {
      const double elo = y_[order[k]] - theta * x_[order[k]];
      const double ehi = y_[order[n_ - k - 1]] - theta * x_[order[n_ - k - 1]];
      w += k * (elo * elo + ehi * ehi);
    }
    return std::sqrt(std::max(w, 0.0)) / std::fabs(sx);
  }

  // The part of the confidence set inside [lo, hi]: where
  // f(theta) = (sy - theta sx)^2 - H (W(theta) - S_w(theta)^2 / n) <= 0,
  // a quadratic in theta. Widens [ci_low, ci_high] to cover it.
  void interval_piece(int k, double H, const std::vector<int>& order, double sy, double sx,
                      double syy, double sxx, double sxy, double lo, double hi,
                      double& ci_low, double& ci_high) const {
    // W(theta) = a2 t^2 - 2 a1 t + a0; S_w(theta) = wy - t wx.
    double a2 = sxx, a1 = sxy, a0 = syy, wy = sy, wx = sx;
    if (k > 0) {
      for (int p : {k, n_ - k - 1}) {
        const int i = order[p];
        a2 += k * x_[i] * x_[i];
        a1 += k * x_[i] * y_[i];
        a0 += k * y_[i] * y_[i];
        wy += k * y_[i];
        wx += k * x_[i];
      }
    }
    // f = c2 t^2 + c1 t + c0
    const double c2 = sx * sx - H * (a2 - wx * wx / n_);
    const double c1 = -2.0 * sy * sx - H * (-2.0 * a1 + 2.0 * wy * wx / n_);
    const double c0 = sy * sy - H * (a0 - wy * wy / n_);
    auto inside = [&](double t) { return (c2 * t + c1) * t + c0 <= 0.0; };
    // Candidate endpoints: the interval's ends and the quadratic's roots.
    double pts[4];
    int np = 0;
    pts[np++] = lo;
    pts[np++] = hi;
    const double scale = std::fabs(c2) + std::fabs(c1) + std::fabs(c0);
    if (std::fabs(c2) > 1e-14 * scale) {
      const double disc = c1 * c1 - 4.0 * c2 * c0;
      if (disc >= 0.0) {
        const double sq = std::sqrt(disc);
        // Numerically stable roots.
        const double qq = -0.5 * (c1 + (c1 >= 0 ? sq : -sq));
        if (qq != 0.0) pts[np++] = qq / c2;
        pts[np++] = qq != 0.0 ? c0 / qq : -c1 / (2.0 * c2);
      }
    } else if (c1 != 0.0) {
      pts[np++] = -c0 / c1;
    }
    double in_range_buf[4];
    int nr = 0;
    for (int s = 0; s < np; ++s) {
      if (pts[s] >= lo && pts[s] <= hi) in_range_buf[nr++] = pts[s];
    }
    double* in_range_begin = in_range_buf;
    double* in_range_end = in_range_buf + nr;
    std::sort(in_range_begin, in_range_end);
    // f changes sign only at its roots, so testing each end and each
    // midpoint of the pieces tells which pieces lie in the set.
    for (int s = 0; s + 1 < nr; ++s) {
      const double a = in_range_buf[s], b = in_range_buf[s + 1];
      double mid;
      if (std::isinf(a) && std::isinf(b)) {
        mid = 0.0;
      } else if (std::isinf(a)) {
        mid = b - 1.0 - std::fabs(b);
      } else if (std::isinf(b)) {
        mid = a + 1.0 + std::fabs(a);
      } else {
        mid = 0.5 * (a + b);
      }
      if (inside(mid)) {
        ci_low = std::min(ci_low, a);
        ci_high = std::max(ci_high, b);
      }
    }
    for (int s = 0; s < nr; ++s) {
      const double t = in_range_buf[s];
      if (std::isfinite(t) && inside(t)) {
        ci_low = std::min(ci_low, t);
        ci_high = std::max(ci_high, t);
      }
    }
  }
};

}  // namespace mkt

#endif
