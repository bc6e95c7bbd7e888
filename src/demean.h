// Within transformations and the sums a fixed-effects regression needs.
// Plain C++ over Eigen, no R: the shim in demean.cpp maps R memory.
//
// 1. demean_columns(): any number of fixed effects given as group codes, by
//    alternating projections. Each sweep replaces x by x minus its
//    (weighted) group means, one factor after the other; repeated sweeps
//    converge to the projection onto the orthogonal complement of all the
//    factors' indicator columns. A column has converged when the largest
//    change over a full sweep is at most tol times the largest absolute value
//    of the original column. Columns are independent and run in parallel.
// 2. demean_grid(): unit and time effects of a panel held as N x T matrices
//    (the panel layer's layout), solved through the Schur complement of the
//    smaller dimension by conjugate gradients; see the comment above it.
// 3. cluster_gram(): the cross-product matrix of the rows of each cluster,
//    from which every clustered sandwich of a regression on these columns
//    follows (a residual is a linear combination of the columns).
#ifndef MKTCAUSAL_DEMEAN_H
#define MKTCAUSAL_DEMEAN_H

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mkt {

struct FactorCodes {
  const int* code;  // 0-based group of each row
  int n_groups;
};

struct DemeanStatus {
  int iterations = 0;  // largest number of sweeps (or iterations) over columns
  bool converged = true;
  bool interrupted = false;
};

// --- 1. alternating projections over group codes ------------------------------

inline int demean_one_column(double* x, Eigen::Index n, const std::vector<FactorCodes>& fe,
                             const double* w, const std::vector<std::vector<double>>& wsum,
                             double tol, int max_iter, std::vector<double>& sums,
                             std::vector<double>& old, bool& done, std::atomic<bool>& stop,
                             const std::function<bool()>* interrupted) {
  const std::size_t n_fe = fe.size();
  double scale = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) scale = std::max(scale, std::abs(x[i]));
  done = true;
  if (scale == 0.0) return 0;
  int iter = 0;
  done = false;
  while (!done && iter < max_iter) {
    ++iter;
    std::copy(x, x + n, old.begin());
    for (std::size_t k = 0; k < n_fe; ++k) {
      const int* g = fe[k].code;
      std::fill(sums.begin(), sums.begin() + fe[k].n_groups, 0.0);
      if (w) {
        for (Eigen::Index i = 0; i < n; ++i) sums[g[i]] += w[i] * x[i];
      } else {
        for (Eigen::Index i = 0; i < n; ++i) sums[g[i]] += x[i];
      }
      for (int h = 0; h < fe[k].n_groups; ++h) sums[h] /= wsum[k][h];
      for (Eigen::Index i = 0; i < n; ++i) x[i] -= sums[g[i]];
      // Between factors (a pass over every row): only the calling thread
      // asks R (interrupted() limits itself to a few calls a second); the
      // others see the flag.
      if (interrupted && (*interrupted)()) stop.store(true);
      if (stop.load(std::memory_order_relaxed)) return iter;
    }
    // One factor: a single sweep is the exact projection.
    if (n_fe == 1) {
      done = true;
      break;
    }
    double change = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) change = std::max(change, std::abs(x[i] - old[i]));
    done = change <= tol * scale;
  }
  return iter;
}

// X (n x k) is modified in place. w is null for unweighted projections.
// Columns run on `threads` threads, each column by one thread, so the result
// does not depend on the number of threads. interrupted() is called on the
// calling thread only (thread 0 of the team: between factors of its own
// columns, and, once it has no column left, every few milliseconds while
// the others finish theirs) and returns true when the user asked to stop.
inline DemeanStatus demean_columns(Eigen::Ref<Eigen::MatrixXd> X,
                                   const std::vector<FactorCodes>& fe, const double* w,
                                   double tol, int max_iter, int threads,
                                   const std::function<bool()>& interrupted) {
  DemeanStatus status;
  const Eigen::Index n = X.rows();
  const std::size_t n_fe = fe.size();
  const int k = static_cast<int>(X.cols());
  if (n_fe == 0 || n == 0 || k == 0) return status;
  // Group totals of the weights are the same for every column and sweep.
  std::vector<std::vector<double>> wsum(n_fe);
  int max_groups = 0;
  for (std::size_t f = 0; f < n_fe; ++f) {
    wsum[f].assign(fe[f].n_groups, 0.0);
    max_groups = std::max(max_groups, fe[f].n_groups);
    for (Eigen::Index i = 0; i < n; ++i) wsum[f][fe[f].code[i]] += w ? w[i] : 1.0;
  }
  // A column is the unit of work: below some million rows a column takes
  // less than a team of threads costs to start and to wait for.
  threads = n < (Eigen::Index(1) << 20) ? 1 : std::max(1, std::min(threads, k));
  // Work space per thread, allocated before the parallel region.
  std::vector<std::vector<double>> sums(threads, std::vector<double>(max_groups));
  std::vector<std::vector<double>> old(threads, std::vector<double>(n));
  std::vector<int> iters(k, 0);
  std::vector<char> ok(k, 1);
  std::atomic<bool> stop(false);
  std::atomic<int> next(0), finished(0);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    for (;;) {
      const int j = next.fetch_add(1);
      if (j >= k) break;
      if (!stop.load(std::memory_order_relaxed)) {
        bool done = true;
        iters[j] = demean_one_column(X.col(j).data(), n, fe, w, wsum, tol, max_iter,
                                     sums[tid], old[tid], done, stop,
                                     tid == 0 ? &interrupted : nullptr);
        ok[j] = done;
      }
      finished.fetch_add(1);
    }
    // The calling thread keeps listening while the others finish.
    if (tid == 0) {
      while (finished.load() < k) {
        if (interrupted()) stop.store(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  status.interrupted = stop.load();
  for (int j = 0; j < k; ++j) {
    status.iterations = std::max(status.iterations, iters[j]);
    if (n_fe > 1 && !ok[j]) status.converged = false;
  }
  return status;
}

// --- 2. unit and time effects on the panel grid -------------------------------
//
// The columns are N x T matrices (unit fastest). With omega_it the weight of
// cell (i, t), 0 on cells not used, the projection residual is
// x_it - a_i - b_t where (a, b) solve the normal equations
//   W_i a_i + sum_t omega_it b_t = sum_t omega_it x_it,   W_i = sum_t omega_it
//   sum_i omega_it a_i + V_t b_t = sum_i omega_it x_it,   V_t = sum_i omega_it.
// Eliminating the larger dimension (say the units) leaves the Schur
// complement system of the smaller one,
//   S b = r,  S = diag(V) - Omega' diag(1/W) Omega,
// symmetric positive semi-definite; its null space holds the shifts between
// a and b, which cancel in the residual. It is solved by conjugate gradients
// with a Jacobi preconditioner, all columns together, so each iteration is
// two passes over the used cells whatever the number of columns. On a
// balanced panel S is a multiple of the identity on the complement of its
// null space and one iteration is exact; missing cells add a few. A column
// has converged when its residual is at most tol times its right-hand side.
//
// The used cells are kept as a list, period by period and unit within
// period (the order of the output), so that sparse panels (units observed
// in short windows) cost their cells, not N x T.

struct GridLayout {
  int N = 0, T = 0;
  std::vector<int> unit;        // unit (0-based) of each used cell
  std::vector<double> w;        // weight of each used cell (empty: all 1)
  std::vector<int64_t> offset;  // first cell of each period; offset[T] = n
  std::vector<double> W, V;     // unit and period totals of the weights
  int64_t n = 0;                // cells used
};

// A cell is used when observed, every column is not NaN there and (with
// weights) its weight is positive.
inline GridLayout grid_layout(int N, int T, const int* observed,
                              const std::vector<const double*>& cols, const double* w,
                              int threads) {
  GridLayout g;
  g.N = N;
  g.T = T;
  const int64_t NT = static_cast<int64_t>(N) * T;
  threads = NT * static_cast<int64_t>(cols.size() + 1) < (int64_t(1) << 24) ? 1 : threads;
  std::vector<unsigned char> use(NT, 0);
  std::vector<int64_t> count(T, 0);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
#endif
  for (int t = 0; t < T; ++t) {
    int64_t c0 = static_cast<int64_t>(t) * N, k = 0;
    for (int i = 0; i < N; ++i) {
      const int64_t c = c0 + i;
      if (!observed[c]) continue;
      bool ok = !w || w[c] > 0.0;
      for (std::size_t j = 0; ok && j < cols.size(); ++j) ok = !std::isnan(cols[j][c]);
      if (!ok) continue;
      use[c] = 1;
      ++k;
    }
    count[t] = k;
  }
  g.offset.assign(T + 1, 0);
  for (int t = 0; t < T; ++t) g.offset[t + 1] = g.offset[t] + count[t];
  g.n = g.offset[T];
  g.unit.resize(g.n);
  if (w) g.w.resize(g.n);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
#endif
  for (int t = 0; t < T; ++t) {
    int64_t c0 = static_cast<int64_t>(t) * N, k = g.offset[t];
    for (int i = 0; i < N; ++i) {
      if (!use[c0 + i]) continue;
      g.unit[k] = i;
      if (w) g.w[k] = w[c0 + i];
      ++k;
    }
  }
  g.W.assign(N, 0.0);
  g.V.assign(T, 0.0);
  for (int t = 0; t < T; ++t) {
    double s = 0.0;
    for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) {
      const double om = w ? g.w[k] : 1.0;
      g.W[g.unit[k]] += om;
      s += om;
    }
    g.V[t] = s;
  }
  return g;
}

namespace grid_detail {

// The first cell of period t whose unit is at least i0 (cells of a period
// are sorted by unit).
inline int64_t first_at(const GridLayout& g, int t, int i0) {
  const int* b = g.unit.data() + g.offset[t];
  const int* e = g.unit.data() + g.offset[t + 1];
  return g.offset[t] + (std::lower_bound(b, e, i0) - b);
}

// out(i, j) = sum_t omega_it v(t, j). The units are cut into blocks that
// threads take one at a time (a thread slowed by other work on its core then
// takes fewer, rather than holding the others at the barrier); each block's
// units accumulate their cells in period order, so the sums do not depend on
// the number of threads.
inline void row_agg(const GridLayout& g, const Eigen::MatrixXd& v, Eigen::MatrixXd& out,
                    int threads) {
  const int N = g.N, T = g.T;
  const int m = static_cast<int>(v.cols());
  out.setZero(N, m);
  const bool weighted = !g.w.empty();
  const int n_blocks = threads == 1 ? 1 : std::min(N, 16 * threads);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (int blk = 0; blk < n_blocks; ++blk) {
    const int i0 = static_cast<int>(static_cast<int64_t>(N) * blk / n_blocks);
    const int i1 = static_cast<int>(static_cast<int64_t>(N) * (blk + 1) / n_blocks);
    if (i0 >= i1) continue;
    for (int t = 0; t < T; ++t) {
      const int64_t k0 = n_blocks == 1 ? g.offset[t] : first_at(g, t, i0);
      const int64_t k1 = n_blocks == 1 ? g.offset[t + 1] : first_at(g, t, i1);
      for (int j = 0; j < m; ++j) {
        const double vt = v(t, j);
        double* o = out.col(j).data();
        if (weighted) {
          for (int64_t k = k0; k < k1; ++k) o[g.unit[k]] += g.w[k] * vt;
        } else {
          for (int64_t k = k0; k < k1; ++k) o[g.unit[k]] += vt;
        }
      }
    }
  }
}

// out(t, j) = sum_i omega_it u(i, j): periods split among threads.
inline void col_agg(const GridLayout& g, const Eigen::MatrixXd& u, Eigen::MatrixXd& out,
                    int threads) {
  const int T = g.T;
  const int m = static_cast<int>(u.cols());
  out.setZero(T, m);
  const bool weighted = !g.w.empty();
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
#endif
  for (int t = 0; t < T; ++t) {
    const int64_t k0 = g.offset[t], k1 = g.offset[t + 1];
    for (int j = 0; j < m; ++j) {
      const double* x = u.col(j).data();
      double s = 0.0;
      if (weighted) {
        for (int64_t k = k0; k < k1; ++k) s += g.w[k] * x[g.unit[k]];
      } else {
        for (int64_t k = k0; k < k1; ++k) s += x[g.unit[k]];
      }
      out(t, j) = s;
    }
  }
}

inline Eigen::VectorXd safe_inverse(const std::vector<double>& d) {
  Eigen::VectorXd out(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) out[i] = d[i] > 0.0 ? 1.0 / d[i] : 0.0;
  return out;
}

}  // namespace grid_detail

// Demeans the columns (each N*T, NaN allowed on unused cells) and writes the
// used cells, period by period and unit within period, to out (n x m,
// column-major); with scale_sqrt_w each value is multiplied by the square
// root of its cell's weight (weighted least squares on the result is then
// ordinary least squares). interrupted() is polled on the calling thread
// between iterations.
inline DemeanStatus demean_grid(const GridLayout& g, const std::vector<const double*>& cols,
                                double* out, bool scale_sqrt_w, double tol, int max_iter,
                                int threads, const std::function<bool()>& interrupted) {
  using grid_detail::col_agg;
  using grid_detail::row_agg;
  DemeanStatus status;
  const int N = g.N, T = g.T;
  const int m = static_cast<int>(cols.size());
  const int64_t n = g.n;
  if (m == 0 || n == 0) return status;
  // Each pass is short: below some 16 million cell-columns a team of threads
  // costs more in start-up and waiting (on a busy machine) than it saves.
  threads = n * m < (int64_t(1) << 24) ? 1 : std::max(1, threads);
  const bool weighted = !g.w.empty();
  const Eigen::VectorXd invW = grid_detail::safe_inverse(g.W);
  const Eigen::VectorXd invV = grid_detail::safe_inverse(g.V);

  // The used cells' values, and their weighted unit and period totals.
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
#endif
  for (int t = 0; t < T; ++t) {
    const int64_t base = static_cast<int64_t>(t) * N;
    for (int j = 0; j < m; ++j) {
      double* o = out + static_cast<int64_t>(j) * n;
      const double* x = cols[j] + base;
      for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) o[k] = x[g.unit[k]];
    }
  }
  Eigen::MatrixXd rx = Eigen::MatrixXd::Zero(N, m), cx = Eigen::MatrixXd::Zero(T, m);
  for (int j = 0; j < m; ++j) {
    const double* o = out + static_cast<int64_t>(j) * n;
    double* r = rx.col(j).data();
    for (int t = 0; t < T; ++t) {
      double s = 0.0;
      for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) {
        const double v = weighted ? g.w[k] * o[k] : o[k];
        r[g.unit[k]] += v;
        s += v;
      }
      cx(t, j) = s;
    }
  }

  // The smaller dimension is solved for; `on_time` when it is the periods.
  const bool on_time = T <= N;
  const int K = on_time ? T : N;
  Eigen::VectorXd dsmall(K);
  for (int k = 0; k < K; ++k) dsmall[k] = on_time ? g.V[k] : g.W[k];
  const Eigen::VectorXd& inv_large = on_time ? invW : invV;
  Eigen::MatrixXd tmp_large;
  // S p for every column of p.
  auto apply_S = [&](const Eigen::MatrixXd& p, Eigen::MatrixXd& q) {
    if (on_time) {
      row_agg(g, p, tmp_large, threads);
      tmp_large.array().colwise() *= inv_large.array();
      col_agg(g, tmp_large, q, threads);
    } else {
      col_agg(g, p, tmp_large, threads);
      tmp_large.array().colwise() *= inv_large.array();
      row_agg(g, tmp_large, q, threads);
    }
    q = (p.array().colwise() * dsmall.array()).matrix() - q;
  };
  // Right-hand side of the reduced system.
  Eigen::MatrixXd rhs;
  {
    Eigen::MatrixXd scaled = on_time ? rx : cx;
    scaled.array().colwise() *= inv_large.array();
    if (on_time) {
      col_agg(g, scaled, rhs, threads);
      rhs = cx - rhs;
    } else {
      row_agg(g, scaled, rhs, threads);
      rhs = rx - rhs;
    }
  }
  // Jacobi preconditioner: the diagonal of S.
  Eigen::VectorXd diag = dsmall;
  for (int t = 0; t < T; ++t) {
    for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) {
      const double om = weighted ? g.w[k] : 1.0;
      const int i = g.unit[k];
      if (on_time) diag[t] -= om * om * invW[i]; else diag[i] -= om * om * invV[t];
    }
  }
  Eigen::VectorXd invdiag(K);
  for (int k = 0; k < K; ++k) {
    invdiag[k] = diag[k] > 1e-12 * std::max(dsmall[k], 1e-300) ? 1.0 / diag[k] : 0.0;
  }

  // Preconditioned conjugate gradients, one system per column.
  Eigen::MatrixXd sol = Eigen::MatrixXd::Zero(K, m), r = rhs, z, p, q;
  z = (r.array().colwise() * invdiag.array()).matrix();
  p = z;
  Eigen::VectorXd rz(m), target(m);
  std::vector<char> done(m, 0);
  for (int j = 0; j < m; ++j) {
    rz[j] = r.col(j).dot(z.col(j));
    target[j] = tol * rhs.col(j).norm();
    if (rhs.col(j).norm() == 0.0 || rz[j] <= 0.0) done[j] = 1;
  }
  int iter = 0;
  auto all_done = [&]() {
    for (int j = 0; j < m; ++j) if (!done[j]) return false;
    return true;
  };
  while (!all_done() && iter < max_iter) {
    ++iter;
    apply_S(p, q);
    for (int j = 0; j < m; ++j) {
      if (done[j]) continue;
      const double pq = p.col(j).dot(q.col(j));
      if (!(pq > 0.0)) {
        done[j] = 1;  // no curvature left: the residual is in the null space
        continue;
      }
      const double a = rz[j] / pq;
      sol.col(j) += a * p.col(j);
      r.col(j) -= a * q.col(j);
      if (r.col(j).norm() <= target[j]) {
        done[j] = 1;
        continue;
      }
      z.col(j) = (r.col(j).array() * invdiag.array()).matrix();
      const double rz_new = r.col(j).dot(z.col(j));
      p.col(j) = z.col(j) + (rz_new / rz[j]) * p.col(j);
      rz[j] = rz_new;
    }
    if (interrupted()) {
      status.interrupted = true;
      return status;
    }
  }
  status.iterations = iter;
  status.converged = all_done();

  // The other dimension's effects, then the residuals of the used cells.
  Eigen::MatrixXd a_unit, b_time;
  if (on_time) {
    b_time = sol;
    row_agg(g, b_time, a_unit, threads);
    a_unit = ((rx - a_unit).array().colwise() * invW.array()).matrix();
  } else {
    a_unit = sol;
    col_agg(g, a_unit, b_time, threads);
    b_time = ((cx - b_time).array().colwise() * invV.array()).matrix();
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
#endif
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < m; ++j) {
      double* o = out + static_cast<int64_t>(j) * n;
      const double bt = b_time(t, j);
      const double* a = a_unit.col(j).data();
      for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) {
        const double v = o[k] - a[g.unit[k]] - bt;
        o[k] = scale_sqrt_w && weighted ? v * std::sqrt(g.w[k]) : v;
      }
    }
  }
  return status;
}

// --- 3. per-cluster cross-products --------------------------------------------
//
// A is n x m (column-major) and code the cluster of each row, 0..G-1. Writes
// C (G*m x m, column-major) with C[r*G + g, s] = sum over rows of cluster g of
// A[, r] * A[, s], and the number of rows of each cluster. Threads own ranges
// of clusters and scan every row, so each sum runs in row order whatever the
// number of threads.
inline void cluster_gram(const double* A, int64_t n, int m, const int* code, int G,
                         double* C, int* count, int threads) {
  const int64_t GM = static_cast<int64_t>(G) * m;
  std::fill(C, C + GM * m, 0.0);
  std::fill(count, count + G, 0);
  threads = n * m * m < (int64_t(1) << 24) ? 1 : std::max(1, threads);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const ThreadShare share = thread_share(G);
    const int g0 = share.lo, g1 = share.hi;
    if (g0 < g1) {
      for (int64_t i = 0; i < n; ++i) {
        const int g = code[i];
        if (g < g0 || g >= g1) continue;
        ++count[g];
        for (int s = 0; s < m; ++s) {
          const double as = A[static_cast<int64_t>(s) * n + i];
          if (as == 0.0) continue;
          double* col = C + static_cast<int64_t>(s) * GM + g;
          for (int r = 0; r <= s; ++r) col[static_cast<int64_t>(r) * G] +=
              A[static_cast<int64_t>(r) * n + i] * as;
        }
      }
      // The lower triangle mirrors the upper one.
      for (int s = 0; s < m; ++s) {
        for (int r = s + 1; r < m; ++r) {
          for (int g = g0; g < g1; ++g) {
            C[static_cast<int64_t>(s) * GM + static_cast<int64_t>(r) * G + g] =
                C[static_cast<int64_t>(r) * GM + static_cast<int64_t>(s) * G + g];
          }
        }
      }
    }
  }
}

}  // namespace mkt

#endif
