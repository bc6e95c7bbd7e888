// Within transformation by alternating projections: sweeps out any number of
// fixed effects (group codes) from each column of a matrix, with optional
// weights. Plain C++ over Eigen, no R: the shim in demean.cpp maps R memory.
//
// Each sweep replaces x by x minus its (weighted) group means, one factor
// after the other; repeated sweeps converge to the projection onto the
// orthogonal complement of all the factors' indicator columns. A column has
// converged when the largest change over a full sweep is at most tol times
// the largest absolute value of the original column.
#ifndef MKTCAUSAL_DEMEAN_H
#define MKTCAUSAL_DEMEAN_H

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace mkt {

struct FactorCodes {
  const int* code;  // 0-based group of each row
  int n_groups;
};

struct DemeanStatus {
  int iterations = 0;  // largest number of sweeps over columns
  bool converged = true;
};

// X (n x k) is modified in place. w is null for unweighted projections.
// poll is called every 64 sweeps (on the calling thread) so that the caller
// can honour user interrupts.
inline DemeanStatus demean_columns(Eigen::Ref<Eigen::MatrixXd> X,
                                   const std::vector<FactorCodes>& fe, const double* w,
                                   double tol, int max_iter,
                                   const std::function<void()>& poll) {
  DemeanStatus status;
  const Eigen::Index n = X.rows();
  const std::size_t n_fe = fe.size();
  if (n_fe == 0 || n == 0) return status;
  // Group totals of the weights are the same for every column and sweep.
  std::vector<std::vector<double>> wsum(n_fe);
  for (std::size_t k = 0; k < n_fe; ++k) {
    wsum[k].assign(fe[k].n_groups, 0.0);
    for (Eigen::Index i = 0; i < n; ++i) wsum[k][fe[k].code[i]] += w ? w[i] : 1.0;
  }
  std::vector<double> sums, old(n);
  for (Eigen::Index j = 0; j < X.cols(); ++j) {
    double* x = X.col(j).data();
    double scale = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) scale = std::max(scale, std::abs(x[i]));
    if (scale == 0.0) continue;
    int iter = 0;
    bool done = false;
    while (!done && iter < max_iter) {
      ++iter;
      std::copy(x, x + n, old.begin());
      for (std::size_t k = 0; k < n_fe; ++k) {
        const int* g = fe[k].code;
        sums.assign(fe[k].n_groups, 0.0);
        if (w) {
          for (Eigen::Index i = 0; i < n; ++i) sums[g[i]] += w[i] * x[i];
        } else {
          for (Eigen::Index i = 0; i < n; ++i) sums[g[i]] += x[i];
        }
        for (int h = 0; h < fe[k].n_groups; ++h) sums[h] /= wsum[k][h];
        for (Eigen::Index i = 0; i < n; ++i) x[i] -= sums[g[i]];
      }
      // One factor: a single sweep is the exact projection.
      if (n_fe == 1) break;
      double change = 0.0;
      for (Eigen::Index i = 0; i < n; ++i) change = std::max(change, std::abs(x[i] - old[i]));
      done = change <= tol * scale;
      if (iter % 64 == 0) poll();
    }
    if (n_fe > 1 && !done) status.converged = false;
    status.iterations = std::max(status.iterations, iter);
  }
  return status;
}

}  // namespace mkt

#endif
