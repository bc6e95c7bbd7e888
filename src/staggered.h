// Group-time 2x2 difference-in-differences for staggered adoption
// (Callaway & Sant'Anna 2021) without covariates, and the multiplier
// bootstrap over their influence functions. Free of R: the shim in
// staggered.cpp maps R objects onto these plain structures.
#ifndef MKTCAUSAL_STAGGERED_H
#define MKTCAUSAL_STAGGERED_H

#include <Eigen/Dense>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <thread>
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

// --- the multiplier bootstrap ----------------------------------------------
//
// Draws are made in slices of kBootSlice consecutive draws. The multipliers
// of cluster c in slice s come from their own stream (boot_slice_seed(seed,
// s), c), so the multiplier of cluster c in draw b depends only on (seed, c,
// b): not on which draws a call computes (R asks for the draws chunk by
// chunk, for progress), nor on the thread that computes them. A call
// computes draws [b0, b0 + B); its work units are the parts of global
// slices inside that range, and each unit runs the same operations in the
// same order whatever the number of threads, so the draws are identical for
// any thread count (and for any chunking in whole slices).
//
// Memory: every buffer is allocated before the parallel region, one set per
// thread; anything thrown inside the region (an allocation of Eigen's
// product temporaries) is caught there and rethrown after it, where the
// shim turns it into an R error. Interrupts: the calling thread polls
// (through `poll`, at most every 50 ms) between blocks of clusters and,
// once it has no work left, while the other threads finish theirs; a
// request to stop is seen by every thread at its next block.

constexpr int kBootSlice = 64;
constexpr int kBootBlock = 256;  // clusters per product: one GEMM depth panel

inline uint64_t boot_slice_seed(uint64_t seed, uint64_t slice) {
  uint64_t x = seed + 0x632be59bd9b4e019ULL * (slice + 1);
  return splitmix64(x);
}

// One work unit: `len` draws starting at global draw `first`, written to
// rows `row` .. row + len - 1 of the output.
struct BootUnit {
  int row;
  int len;
  int64_t first;
};

inline std::vector<BootUnit> boot_units(int64_t b0, int B) {
  std::vector<BootUnit> out;
  int row = 0;
  while (row < B) {
    const int64_t b = b0 + row;
    const int64_t slice_end = (b / kBootSlice + 1) * kBootSlice;
    const int len = static_cast<int>(std::min<int64_t>(slice_end - b, B - row));
    out.push_back(BootUnit{row, len, b});
    row += len;
  }
  return out;
}

// Fills column j of V (rows 0..len-1) with the multipliers of cluster c for
// the unit's draws.
inline void boot_multipliers(Eigen::MatrixXd& V, int j, uint64_t seed, const BootUnit& u,
                             int64_t c) {
  const int64_t slice = u.first / kBootSlice;
  Xoshiro256pp rng(boot_slice_seed(seed, static_cast<uint64_t>(slice)), static_cast<uint64_t>(c));
  for (int64_t skip = slice * kBootSlice; skip < u.first; ++skip) rng.next();
  for (int r = 0; r < u.len; ++r) V(r, j) = mammen(rng.unif());
}

// Runs work(unit, thread, check) over the units on `threads` threads
// (dynamic scheduling; a unit's result does not depend on the thread).
// check() returns true when the work should stop: on the calling thread it
// polls for an interrupt. Returns true when interrupted.
template <class Work, class Poll>
bool boot_run(const std::vector<BootUnit>& units, int threads, Work work, Poll poll) {
  const int n_units = static_cast<int>(units.size());
  std::atomic<int> next(0), done(0);
  std::atomic<bool> stop(false), interrupted(false), failed(false);
  std::exception_ptr error = nullptr;
  auto last = std::chrono::steady_clock::now();
  auto main_check = [&]() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last >= std::chrono::milliseconds(50)) {
      last = now;
      if (poll()) {
        interrupted.store(true);
        stop.store(true);
      }
    }
    return stop.load(std::memory_order_relaxed);
  };
  auto other_check = [&]() { return stop.load(std::memory_order_relaxed); };
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    try {
      while (!stop.load(std::memory_order_relaxed)) {
        const int u = next.fetch_add(1);
        if (u >= n_units) break;
        if (tid == 0) {
          work(units[u], tid, main_check);
        } else {
          work(units[u], tid, other_check);
        }
        done.fetch_add(1);
      }
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(mkt_boot_error)
#endif
      {
        if (!failed.load()) error = std::current_exception();
        failed.store(true);
      }
      stop.store(true);
    }
    if (tid == 0) {
      // Keep polling while the other threads finish their units.
      while (!stop.load() && done.load() < n_units) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        last = std::chrono::steady_clock::time_point();
        main_check();
      }
    }
  }
  if (failed.load() && error) std::rethrow_exception(error);
  return interrupted.load();
}

// Multiplier bootstrap draws b0 .. b0 + B - 1 of T(b, k) = (1/n) sum_c v(c, b)
// S(c, k), where S holds the influence functions summed within clusters
// (rows) and v are Mammen multipliers; written to `out` (B x K, zeroed
// here). Clusters are added block by block in row order.
template <class Poll>
bool multiplier_bootstrap(const Eigen::Ref<const Eigen::MatrixXd>& S, double n, int64_t b0,
                          int B, uint64_t seed, int threads, Eigen::Ref<Eigen::MatrixXd> out,
                          Poll poll) {
  const int C = static_cast<int>(S.rows());
  const std::vector<BootUnit> units = boot_units(b0, B);
  threads = std::max(1, std::min<int>(threads, static_cast<int>(units.size())));
  std::vector<Eigen::MatrixXd> Vs(threads, Eigen::MatrixXd(kBootSlice, kBootBlock));
  out.setZero();
  const bool stopped = boot_run(units, threads, [&](const BootUnit& u, int tid, auto& check) {
    Eigen::MatrixXd& V = Vs[tid];
    for (int start = 0; start < C; start += kBootBlock) {
      if (check()) return;
      const int m = std::min(kBootBlock, C - start);
      for (int j = 0; j < m; ++j) boot_multipliers(V, j, seed, u, start + j);
      out.middleRows(u.row, u.len).noalias() +=
          V.topLeftCorner(u.len, m) * S.middleRows(start, m);
    }
  }, poll);
  out /= n;
  return stopped;
}

// The same bootstrap draws for a balanced panel without covariates,
// clustered by unit, without forming the N x K influence matrix. There the
// influence function of cell k is c_k(h) w_i (dY_i - m_k(h)) for a unit i of
// cohort h that the cell uses, so each draw needs only the multiplier-
// weighted sums A(h, t) = sum_{i in h} v_i w_i Y_it and B(h) = sum_{i in h}
// v_i w_i: N x (T + 1) work per draw instead of N x K. Unit i's multipliers
// are those of cluster i in multiplier_bootstrap(), so both give the same
// draws up to rounding. `order` lists the units sorted by cohort; `coef`
// (H x K) holds c_k(h), 0 where cell k does not use cohort h, and `centre`
// (H x K) holds m_k(h).
template <class Poll>
bool multiplier_bootstrap_cohort(const double* y, int n, int nt, const double* w,
                                 const int* cohort_slot, const int* order, int H,
                                 const int* cell_time, const int* cell_base,
                                 const Eigen::MatrixXd& coef, const Eigen::MatrixXd& centre,
                                 int64_t b0, int B, uint64_t seed, int threads,
                                 Eigen::Ref<Eigen::MatrixXd> out, Poll poll) {
  const int K = static_cast<int>(coef.cols());
  const int width = nt + 1;
  const std::vector<BootUnit> units = boot_units(b0, B);
  threads = std::max(1, std::min<int>(threads, static_cast<int>(units.size())));
  // Per thread: multipliers, weighted outcomes of a block of units, and A
  // for cohort h in columns h * width .. h * width + nt - 1, B in the last.
  std::vector<Eigen::MatrixXd> Vs(threads, Eigen::MatrixXd(kBootSlice, kBootBlock));
  std::vector<Eigen::MatrixXd> Ms(threads, Eigen::MatrixXd(kBootBlock, width));
  std::vector<Eigen::MatrixXd> accs(threads,
                                    Eigen::MatrixXd(kBootSlice, static_cast<int64_t>(H) * width));
  out.setZero();
  const bool stopped = boot_run(units, threads, [&](const BootUnit& u, int tid, auto& check) {
    Eigen::MatrixXd& V = Vs[tid];
    Eigen::MatrixXd& M = Ms[tid];
    Eigen::MatrixXd& acc = accs[tid];
    acc.setZero();
    // Blocks of at most kBootBlock units of one cohort.
    int start = 0;
    while (start < n) {
      if (check()) return;
      const int h = cohort_slot[order[start]];
      int m = 0;
      while (m < kBootBlock && start + m < n && cohort_slot[order[start + m]] == h) ++m;
      for (int j = 0; j < m; ++j) {
        const int i = order[start + j];
        boot_multipliers(V, j, seed, u, i);
        for (int t = 0; t < nt; ++t) M(j, t) = w[i] * y[static_cast<int64_t>(t) * n + i];
        M(j, nt) = w[i];
      }
      acc.block(0, static_cast<int64_t>(h) * width, u.len, width).noalias() +=
          V.topLeftCorner(u.len, m) * M.topRows(m);
      start += m;
    }
    for (int k = 0; k < K; ++k) {
      for (int hh = 0; hh < H; ++hh) {
        const double c = coef(hh, k);
        if (c == 0.0) continue;
        const int64_t col = static_cast<int64_t>(hh) * width;
        out.col(k).segment(u.row, u.len) +=
            c * (acc.col(col + cell_time[k]).head(u.len) - acc.col(col + cell_base[k]).head(u.len) -
                 centre(hh, k) * acc.col(col + nt).head(u.len));
      }
    }
  }, poll);
  out /= static_cast<double>(n);
  return stopped;
}

// The same draws when the rows of S fall into groups that are zero outside
// a few columns: a cell's influence function lives on its cohort and its
// controls, so with clusters grouped by the cohorts they hold, group q
// touches only the columns with use(q, k) != 0. `order` lists the rows group
// by group (group q occupies order[start[q] .. start[q] + size[q] - 1]).
// Row c's multipliers are those of multiplier_bootstrap(); every entry is
// summed over the rows in the same order whatever the number of threads.
template <class Poll>
bool multiplier_bootstrap_blocks(const Eigen::Ref<const Eigen::MatrixXd>& S, double n,
                                 int64_t b0, int B, uint64_t seed, const int* order,
                                 const int* start, const int* size, int n_groups,
                                 const Eigen::Ref<const Eigen::MatrixXi>& use, int threads,
                                 Eigen::Ref<Eigen::MatrixXd> out, Poll poll) {
  const int K = static_cast<int>(S.cols());
  std::vector<std::vector<int>> cols(n_groups);
  for (int q = 0; q < n_groups; ++q) {
    for (int k = 0; k < K; ++k) {
      if (use(q, k) != 0) cols[q].push_back(k);
    }
  }
  const std::vector<BootUnit> units = boot_units(b0, B);
  threads = std::max(1, std::min<int>(threads, static_cast<int>(units.size())));
  std::vector<Eigen::MatrixXd> Vs(threads, Eigen::MatrixXd(kBootSlice, kBootBlock));
  std::vector<Eigen::MatrixXd> Subs(threads, Eigen::MatrixXd(kBootBlock, K));
  std::vector<Eigen::MatrixXd> accs(threads, Eigen::MatrixXd(kBootSlice, K));
  out.setZero();
  const bool stopped = boot_run(units, threads, [&](const BootUnit& u, int tid, auto& check) {
    Eigen::MatrixXd& V = Vs[tid];
    Eigen::MatrixXd& Sub = Subs[tid];
    Eigen::MatrixXd& acc = accs[tid];
    for (int q = 0; q < n_groups; ++q) {
      const int kc = static_cast<int>(cols[q].size());
      if (kc == 0 || size[q] == 0) continue;
      acc.topLeftCorner(u.len, kc).setZero();
      for (int s0 = 0; s0 < size[q]; s0 += kBootBlock) {
        if (check()) return;
        const int m = std::min(kBootBlock, size[q] - s0);
        for (int j = 0; j < m; ++j) {
          const int c = order[start[q] + s0 + j];
          boot_multipliers(V, j, seed, u, c);
          for (int l = 0; l < kc; ++l) Sub(j, l) = S(c, cols[q][l]);
        }
        acc.topLeftCorner(u.len, kc).noalias() +=
            V.topLeftCorner(u.len, m) * Sub.topLeftCorner(m, kc);
      }
      for (int l = 0; l < kc; ++l) {
        out.col(cols[q][l]).segment(u.row, u.len) += acc.col(l).head(u.len);
      }
    }
  }, poll);
  out /= n;
  return stopped;
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
