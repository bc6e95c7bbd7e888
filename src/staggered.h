// Group-time 2x2 difference-in-differences for staggered adoption
// (Callaway & Sant'Anna 2021) without covariates, and the multiplier
// bootstrap over their influence functions. Free of R: the shim in
// staggered.cpp maps R objects onto these plain structures.
#ifndef MKTCAUSAL_STAGGERED_H
#define MKTCAUSAL_STAGGERED_H

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "parallel.h"
#include "rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mkt {

// One ATT(g,t) cell: the cohort g (a period index), the period t and the
// base period, all 0-based column indices of the N x T outcome matrix.
struct GtCell {
  int group;
  int time;
  int base;
  int control_after;  // controls: never treated, or cohort index > control_after
  bool not_yet;       // whether not-yet-treated cohorts may serve as controls
};

struct GtResult {
  std::vector<double> att;
  std::vector<int> n_treated;
  std::vector<int> n_control;
  std::vector<int> status;  // 0 ok, 1 no treated, 2 no controls, 3 trimmed
  std::vector<double> mean1, mean0, wsum1, wsum0;  // arm means and weight sums of dY
  std::vector<double> sumsq;                       // sum of squared influence values
};

// ATT(g,t) and its influence function on the n-scale used by did: the
// estimate minus the truth is approximately the mean over all n units of
// inf(i, k). Without covariates the doubly robust, IPW and regression
// estimators of Sant'Anna & Zhao (2020) reduce to the weighted difference of
// mean changes, and the influence function of the cell is, for the n1 units
// used, (n / n1) * [D w (dY - m1) / mean(w D) - (1 - D) w (dY - m0) / mean(w (1 - D))]
// with weights normalised to mean one over those units. `y` is column-major
// N x T with NaN for missing cells; cohort[i] is the 0-based first treated
// period or -1 for never treated. `trim` is the propensity cap of the
// doubly robust and IPW estimators (0 disables it): when the treated share
// reaches it every control is trimmed and the cell is NA.
inline GtResult gt_no_covariates(const double* y, int n, int nt, const int* cohort,
                                 const double* w, const std::vector<GtCell>& cells,
                                 double trim, double* inf, int threads) {
  const int K = static_cast<int>(cells.size());
  GtResult res;
  res.att.assign(K, std::numeric_limits<double>::quiet_NaN());
  res.n_treated.assign(K, 0);
  res.n_control.assign(K, 0);
  res.status.assign(K, 0);
  res.mean1.assign(K, 0.0);
  res.mean0.assign(K, 0.0);
  res.wsum1.assign(K, 0.0);
  res.wsum0.assign(K, 0.0);
  res.sumsq.assign(K, 0.0);
  (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (int k = 0; k < K; ++k) {
    const GtCell c = cells[k];
    const double* yt = y + static_cast<int64_t>(c.time) * n;
    const double* yb = y + static_cast<int64_t>(c.base) * n;
    double* out = inf + static_cast<int64_t>(k) * n;
    // Pass 1: weighted sums by arm over units observed in both periods.
    double sw1 = 0, sw0 = 0, sy1 = 0, sy0 = 0;
    int n1 = 0, n0 = 0;
    for (int i = 0; i < n; ++i) {
      out[i] = 0.0;
      const int g = cohort[i];
      const bool treated = g == c.group;
      const bool control = g < 0 || (c.not_yet && g > c.control_after && g != c.group);
      if (!treated && !control) continue;
      const double d = yt[i] - yb[i];
      if (std::isnan(d)) continue;
      if (treated) {
        sw1 += w[i];
        sy1 += w[i] * d;
        ++n1;
      } else {
        sw0 += w[i];
        sy0 += w[i] * d;
        ++n0;
      }
    }
    res.n_treated[k] = n1;
    res.n_control[k] = n0;
    if (n1 == 0) {
      res.status[k] = 1;
      continue;
    }
    if (n0 == 0) {
      res.status[k] = 2;
      continue;
    }
    if (trim > 0 && sw1 / (sw1 + sw0) >= trim) {
      res.status[k] = 3;
      continue;
    }
    const double m1 = sy1 / sw1, m0 = sy0 / sw0;
    res.att[k] = m1 - m0;
    res.mean1[k] = m1;
    res.mean0[k] = m0;
    res.wsum1[k] = sw1;
    res.wsum0[k] = sw0;
    // Pass 2: the influence function. With weights normalised to mean one
    // over the n1 + n0 units, w_i / mean(w D) = w_i * n_s / sw1 and the n / n_s
    // rescaling of did cancels n_s, leaving n * w_i / sw1.
    const double s1 = static_cast<double>(n) / sw1, s0 = static_cast<double>(n) / sw0;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) {
      const int g = cohort[i];
      const bool treated = g == c.group;
      const bool control = g < 0 || (c.not_yet && g > c.control_after && g != c.group);
      if (!treated && !control) continue;
      const double d = yt[i] - yb[i];
      if (std::isnan(d)) continue;
      out[i] = treated ? s1 * w[i] * (d - m1) : -s0 * w[i] * (d - m0);
      ss += out[i] * out[i];
    }
    res.sumsq[k] = ss;
  }
  return res;
}

// Mammen's two-point multipliers: mean 0, variance 1, third moment 1.
inline double mammen(double u) {
  static const double sq5 = std::sqrt(5.0);
  static const double lo = (1.0 - sq5) / 2.0, hi = (1.0 + sq5) / 2.0;
  static const double p_lo = (sq5 + 1.0) / (2.0 * sq5);
  return u < p_lo ? lo : hi;
}

// Multiplier bootstrap draws T(b, k) = (1/n) sum_c v(c, b) S(c, k), where S
// holds the influence functions summed within clusters (rows) and v are
// Mammen multipliers. Cluster c's B multipliers come from its own stream
// (seed, c), so a draw never depends on the blocking or on the thread count;
// blocks of clusters are added in a fixed order, and threads split the
// draws, so every entry is summed in the same order whatever the threads.
template <class Poll>
Eigen::MatrixXd multiplier_bootstrap(const Eigen::Ref<const Eigen::MatrixXd>& S, double n, int B,
                                     uint64_t seed, int threads, Poll poll) {
  const int C = static_cast<int>(S.rows());
  const int K = static_cast<int>(S.cols());
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(B, K);
  const int block = 1024;
  Eigen::MatrixXd V(B, block);
  for (int start = 0; start < C; start += block) {
    const int m = std::min(block, C - start);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int j = 0; j < m; ++j) {
      Xoshiro256pp rng(seed, static_cast<uint64_t>(start + j));
      for (int b = 0; b < B; ++b) V(b, j) = mammen(rng.unif());
    }
    const int nb = (B + threads - 1) / threads;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int t = 0; t < threads; ++t) {
      const int b0 = t * nb;
      const int len = std::min(B, b0 + nb) - b0;
      if (len > 0) {
        out.middleRows(b0, len).noalias() +=
            V.block(b0, 0, len, m) * S.middleRows(start, m);
      }
    }
    poll(start + m);
  }
  out /= n;
  return out;
}


// The same bootstrap draws for a balanced panel without covariates,
// clustered by unit, without forming the N x K influence matrix. There the
// influence function of cell k is c_k(h) w_i (dY_i - m_k(h)) for a unit i of
// cohort h that the cell uses, so each draw needs only the multiplier-
// weighted sums A(h, t) = sum_{i in h} v_i w_i Y_it and B(h) = sum_{i in h}
// v_i w_i: N x (T + 1) work per draw instead of N x K. Unit i's multipliers
// come from stream (seed, i) exactly as in multiplier_bootstrap(), so both
// paths give the same draws up to rounding. `order` lists the units sorted
// by cohort; `coef` (H x K) holds c_k(h), 0 where cell k does not use cohort
// h, and `centre` (H x K) holds m_k(h).
template <class Poll>
Eigen::MatrixXd multiplier_bootstrap_cohort(const double* y, int n, int nt, const double* w,
                                            const int* cohort_slot, const int* order, int H,
                                            const int* cell_time, const int* cell_base,
                                            const Eigen::MatrixXd& coef,
                                            const Eigen::MatrixXd& centre, int B,
                                            uint64_t seed, int threads, Poll poll) {
  const int K = static_cast<int>(coef.cols());
  const int width = nt + 1;
  // A for cohort h sits in columns h * width .. h * width + nt - 1, B in the last one.
  Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(B, static_cast<int64_t>(H) * width);
  // One parallel region: each thread owns a range of draws and walks all
  // units in cohort order, so there is no barrier per block (which stalls on
  // a busy machine). A thread draws each unit's stream up to the end of its
  // range and keeps its part; entries are accumulated unit by unit in the
  // same order whatever the number of threads.
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const ThreadShare share = thread_share(B);
    const int b0 = share.lo;
    const int len = share.hi - share.lo;
    if (len > 0) {
      // Blocks of at most 256 units of one cohort: a small product whose
      // inner dimension stays within one GEMM depth panel.
      const int block = 256;
      Eigen::MatrixXd V(len, block), M(block, width);
      int start = 0;
      while (start < n) {
        const int h = cohort_slot[order[start]];
        int m = 0;
        while (m < block && start + m < n && cohort_slot[order[start + m]] == h) ++m;
        for (int j = 0; j < m; ++j) {
          const int i = order[start + j];
          Xoshiro256pp rng(seed, static_cast<uint64_t>(i));
          for (int b = 0; b < b0; ++b) rng.next();
          for (int b = 0; b < len; ++b) V(b, j) = mammen(rng.unif());
          for (int t = 0; t < nt; ++t) M(j, t) = w[i] * y[static_cast<int64_t>(t) * n + i];
          M(j, nt) = w[i];
        }
        acc.block(b0, static_cast<int64_t>(h) * width, len, width).noalias() +=
            V.leftCols(m) * M.topRows(m);
        start += m;
      }
    }
  }
  poll(n);
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(B, K);
  for (int k = 0; k < K; ++k) {
    for (int h = 0; h < H; ++h) {
      const double c = coef(h, k);
      if (c == 0.0) continue;
      const int64_t col = static_cast<int64_t>(h) * width;
      out.col(k) += c * (acc.col(col + cell_time[k]) - acc.col(col + cell_base[k]) -
                         centre(h, k) * acc.col(col + nt));
    }
  }
  out /= static_cast<double>(n);
  return out;
}

// The same draws when the rows of S fall into groups that are zero outside
// a few columns: a cell's influence function lives on its cohort and its
// controls, so with clusters grouped by the cohorts they hold, group q
// touches only the columns with use(q, k) != 0. `order` lists the rows group
// by group (group q occupies order[start[q] .. start[q] + size[q] - 1]).
// Row c's multipliers come from stream (seed, c) as in
// multiplier_bootstrap(); threads split the draws, and every entry is
// summed over the rows in the same order whatever the number of threads.
template <class Poll>
Eigen::MatrixXd multiplier_bootstrap_blocks(const Eigen::Ref<const Eigen::MatrixXd>& S, double n,
                                            int B, uint64_t seed, const int* order,
                                            const int* start, const int* size, int n_groups,
                                            const Eigen::Ref<const Eigen::MatrixXi>& use,
                                            int threads, Poll poll) {
  const int K = static_cast<int>(S.cols());
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(B, K);
  std::vector<std::vector<int>> cols(n_groups);
  for (int q = 0; q < n_groups; ++q) {
    for (int k = 0; k < K; ++k) {
      if (use(q, k) != 0) cols[q].push_back(k);
    }
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const ThreadShare share = thread_share(B);
    const int b0 = share.lo;
    const int len = share.hi - share.lo;
    if (len > 0) {
      const int block = 256;
      Eigen::MatrixXd V(len, block), Sub(block, K), acc(len, K);
      for (int q = 0; q < n_groups; ++q) {
        const int kc = static_cast<int>(cols[q].size());
        if (kc == 0 || size[q] == 0) continue;
        acc.leftCols(kc).setZero();
        for (int s0 = 0; s0 < size[q]; s0 += block) {
          const int m = std::min(block, size[q] - s0);
          for (int j = 0; j < m; ++j) {
            const int c = order[start[q] + s0 + j];
            Xoshiro256pp rng(seed, static_cast<uint64_t>(c));
            for (int b = 0; b < b0; ++b) rng.next();
            for (int b = 0; b < len; ++b) V(b, j) = mammen(rng.unif());
            for (int l = 0; l < kc; ++l) Sub(j, l) = S(c, cols[q][l]);
          }
          acc.leftCols(kc).noalias() += V.leftCols(m) * Sub.topLeftCorner(m, kc);
        }
        for (int l = 0; l < kc; ++l) out.block(b0, cols[q][l], len, 1) += acc.col(l);
      }
    }
  }
  poll(static_cast<int>(S.rows()));
  out /= n;
  return out;
}

// Second moments of the cluster-by-cohort sums that the clustered scores of
// an event-study regression on a balanced panel depend on (see
// R/event_study-regression.R). For cluster c, z_c stacks, cohort by cohort
// (slot 0..H-1), the T weighted outcome sums sum_{i in c, cohort h} w_i
// y_it and the weight sum sum_{i in c, cohort h} w_i; the result is
// Q = sum_c z_c z_c', of size H (T + 1). `order` lists the units cluster by
// cluster and `cluster` gives each unit's cluster, so a cluster is a run of
// `order`. One pass over the units; work per cluster is the square of the
// number of cohorts it holds times (T + 1)^2.
inline Eigen::MatrixXd cluster_cohort_moments(const double* y, int n, int nt, const double* w,
                                              const int* slot, int H, const int* order,
                                              const int* cluster) {
  const int width = nt + 1;
  const int64_t D = static_cast<int64_t>(H) * width;
  Eigen::MatrixXd Q = Eigen::MatrixXd::Zero(D, D);
  Eigen::MatrixXd Z = Eigen::MatrixXd::Zero(width, H);  // column h: block of cohort h
  std::vector<int> touched;
  std::vector<char> seen(H, 0);
  int pos = 0;
  while (pos < n) {
    const int c = cluster[order[pos]];
    touched.clear();
    while (pos < n && cluster[order[pos]] == c) {
      const int i = order[pos];
      const int h = slot[i];
      if (!seen[h]) {
        seen[h] = 1;
        touched.push_back(h);
        Z.col(h).setZero();
      }
      const double wi = w[i];
      for (int t = 0; t < nt; ++t) Z(t, h) += wi * y[static_cast<int64_t>(t) * n + i];
      Z(nt, h) += wi;
      ++pos;
    }
    for (int a : touched) {
      for (int b : touched) {
        Q.block(static_cast<int64_t>(a) * width, static_cast<int64_t>(b) * width, width, width)
            .noalias() += Z.col(a) * Z.col(b).transpose();
      }
    }
    for (int a : touched) seen[a] = 0;
  }
  return Q;
}

}  // namespace mkt

#endif
