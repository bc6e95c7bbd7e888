// Vertices of the dual feasible set of the ARP moment-inequality program.
//
// The test statistic of Andrews, Roth and Pakes (2023) is the linear program
//   eta(y) = min_{eta, nu} eta  subject to  y - X nu <= eta * sd,
// whose dual is  max_g g'y  subject to  g >= 0, W'g = e1, with W = [sd, X].
// The dual feasible set does not depend on y, so listing its vertices once
// turns every later LP (one per grid value of the target and one per
// least-favourable draw) into a matrix product and a column maximum, and
// gives the exact conditioning interval of the test without bisection.
// The rows here are few (two per post-period), so enumerating bases is
// cheap; callers check the number of bases before calling.
#ifndef MKTCAUSAL_HONEST_H
#define MKTCAUSAL_HONEST_H

#include <Eigen/Dense>

#include <cmath>
#include <vector>

namespace mkt {

// Returns the vertices as the columns of an m x V matrix (V may be 0 when the
// dual is infeasible, that is when the primal is unbounded below). `tol`
// decides both singular bases and the sign of a basic solution.
template <typename Poll>
Eigen::MatrixXd dual_vertices(const Eigen::MatrixXd& W, double tol, Poll poll) {
  const int m = static_cast<int>(W.rows());
  const int p = static_cast<int>(W.cols());
  std::vector<Eigen::VectorXd> found;
  if (p == 0 || p > m) return Eigen::MatrixXd(m, 0);
  Eigen::VectorXd e1 = Eigen::VectorXd::Zero(p);
  e1(0) = 1.0;
  const double scale = W.cwiseAbs().maxCoeff();
  std::vector<int> rows(p);
  for (int j = 0; j < p; ++j) rows[j] = j;
  Eigen::MatrixXd Wb(p, p);
  long visited = 0;
  while (true) {
    for (int j = 0; j < p; ++j) Wb.row(j) = W.row(rows[j]);
    Eigen::FullPivLU<Eigen::MatrixXd> lu(Wb.transpose());
    lu.setThreshold(tol);
    if (lu.isInvertible()) {
      const Eigen::VectorXd gb = lu.solve(e1);
      // The residual guards against nearly singular bases that pass the
      // pivot threshold but give meaningless solutions.
      const double resid = (Wb.transpose() * gb - e1).cwiseAbs().maxCoeff();
      if (gb.minCoeff() >= -tol * (1.0 + gb.cwiseAbs().maxCoeff()) &&
          resid <= 1e-8 * (1.0 + scale * gb.cwiseAbs().maxCoeff())) {
        Eigen::VectorXd g = Eigen::VectorXd::Zero(m);
        for (int j = 0; j < p; ++j) g(rows[j]) = gb(j) > 0.0 ? gb(j) : 0.0;
        found.push_back(g);
      }
    }
    if (++visited % 4096 == 0) poll();
    // Next combination of p rows out of m, in lexicographic order.
    int j = p - 1;
    while (j >= 0 && rows[j] == m - p + j) --j;
    if (j < 0) break;
    ++rows[j];
    for (int k = j + 1; k < p; ++k) rows[k] = rows[k - 1] + 1;
  }
  Eigen::MatrixXd out(m, static_cast<int>(found.size()));
  for (std::size_t v = 0; v < found.size(); ++v) out.col(static_cast<int>(v)) = found[v];
  return out;
}

// A dense tableau simplex for linear programs in standard form,
//   max c'x  subject to  A x = b, x >= 0,
// with one feasible set and many objectives: phase 1 runs once, and each
// objective starts phase 2 from the basis the previous one ended on. This is
// what the ARP test needs once the dual vertices are too many to list (the
// dual of the test statistic, and of the ends of its conditioning interval,
// keep their feasible set while the data vector moves along a grid or over
// the least-favourable draws). Pivots follow Dantzig's rule and switch to
// Bland's rule after a run of degenerate pivots, so the method cannot cycle;
// the basis is refactorised every few dozen pivots to bound round-off.
enum LpStatus { LP_OPTIMAL = 0, LP_INFEASIBLE = 1, LP_UNBOUNDED = 2, LP_ITERATIONS = 3 };

class StandardLP {
 public:
  StandardLP(const Eigen::MatrixXd& A, const Eigen::VectorXd& b, double tol)
      : r_(static_cast<int>(A.rows())), n_(static_cast<int>(A.cols())), tol_(tol) {
    full_ = Eigen::MatrixXd::Zero(r_, n_ + r_);
    rhs_ = b;
    for (int i = 0; i < r_; ++i) {
      const double sgn = b(i) < 0.0 ? -1.0 : 1.0;
      full_.row(i).head(n_) = sgn * A.row(i);
      full_(i, n_ + i) = 1.0;
      rhs_(i) = sgn * b(i);
    }
    basis_.resize(r_);
    for (int i = 0; i < r_; ++i) basis_[i] = n_ + i;
    T_ = full_;
    beta_ = rhs_;
    // Phase 1: maximise minus the sum of the artificial variables.
    Eigen::VectorXd cost = Eigen::VectorXd::Zero(n_ + r_);
    cost.tail(r_).setConstant(-1.0);
    status_ = run(cost, n_ + r_);
    const double infeas = -cost_value(cost);
    feasible_ = status_ == LP_OPTIMAL &&
                infeas <= 1e-9 * (1.0 + rhs_.cwiseAbs().maxCoeff());
    if (!feasible_) {
      if (status_ == LP_OPTIMAL) status_ = LP_INFEASIBLE;
      return;
    }
    // Drive artificial variables (at zero) out of the basis; a row where no
    // real column can replace them is redundant and keeps its artificial.
    for (int i = 0; i < r_; ++i) {
      if (basis_[i] < n_) continue;
      int best = -1;
      double big = 1e-9;
      for (int j = 0; j < n_; ++j) {
        if (std::abs(T_(i, j)) > big) {
          big = std::abs(T_(i, j));
          best = j;
        }
      }
      if (best >= 0) pivot(i, best);
    }
    refactor();
  }

  bool feasible() const { return feasible_; }
  int status() const { return status_; }

  // Phase 2 for the objective c (length n); the value goes to `value`.
  int maximise(const Eigen::VectorXd& c, double& value) {
    if (!feasible_) return LP_INFEASIBLE;
    Eigen::VectorXd cost = Eigen::VectorXd::Zero(n_ + r_);
    cost.head(n_) = c;
    const int st = run(cost, n_);
    value = cost_value(cost);
    return st;
  }

  // The current basic solution (length n).
  Eigen::VectorXd solution() const {
    Eigen::VectorXd x = Eigen::VectorXd::Zero(n_);
    for (int i = 0; i < r_; ++i) {
      if (basis_[i] < n_) x(basis_[i]) = beta_(i) > 0.0 ? beta_(i) : 0.0;
    }
    return x;
  }

 private:
  int r_, n_;
  double tol_;
  Eigen::MatrixXd full_;  // [A | I], rows signed so that rhs_ >= 0
  Eigen::VectorXd rhs_;
  Eigen::MatrixXd T_;     // B^-1 full_
  Eigen::VectorXd beta_;  // B^-1 rhs_
  std::vector<int> basis_;
  int since_refactor_ = 0;
  bool feasible_ = false;
  int status_ = LP_OPTIMAL;

  double cost_value(const Eigen::VectorXd& cost) const {
    double v = 0.0;
    for (int i = 0; i < r_; ++i) v += cost(basis_[i]) * beta_(i);
    return v;
  }

  void refactor() {
    Eigen::MatrixXd B(r_, r_);
    for (int i = 0; i < r_; ++i) B.col(i) = full_.col(basis_[i]);
    Eigen::FullPivLU<Eigen::MatrixXd> lu(B);
    T_ = lu.solve(full_);
    beta_ = lu.solve(rhs_);
    since_refactor_ = 0;
  }

  void pivot(int row, int col) {
    const double piv = T_(row, col);
    T_.row(row) /= piv;
    beta_(row) /= piv;
    for (int i = 0; i < r_; ++i) {
      if (i == row) continue;
      const double f = T_(i, col);
      if (f == 0.0) continue;
      T_.row(i) -= f * T_.row(row);
      beta_(i) -= f * beta_(row);
    }
    basis_[row] = col;
    if (++since_refactor_ >= 40) refactor();
  }

  // Simplex iterations for `cost`, with columns below `allowed` free to
  // enter the basis.
  int run(const Eigen::VectorXd& cost, int allowed) {
    const double dtol = tol_ * (1.0 + cost.head(allowed).cwiseAbs().maxCoeff());
    const long max_iter = 200L * (r_ + n_) + 1000L;
    int degenerate = 0;
    Eigen::VectorXd cB(r_);
    for (long it = 0; it < max_iter; ++it) {
      for (int i = 0; i < r_; ++i) cB(i) = cost(basis_[i]);
      const Eigen::VectorXd d =
          cost.head(allowed) - T_.leftCols(allowed).transpose() * cB;
      const bool bland = degenerate > 2 * (r_ + 5);
      int enter = -1;
      double best = dtol;
      for (int j = 0; j < allowed; ++j) {
        if (d(j) > best) {
          enter = j;
          if (bland) break;
          best = d(j);
        }
      }
      if (enter < 0) return LP_OPTIMAL;
      int leave = -1;
      double ratio = 0.0;
      const double ptol = 1e-9 * (1.0 + T_.col(enter).cwiseAbs().maxCoeff());
      for (int i = 0; i < r_; ++i) {
        const double a = T_(i, enter);
        if (a <= ptol) continue;
        const double q = (beta_(i) > 0.0 ? beta_(i) : 0.0) / a;
        if (leave < 0 || q < ratio - 1e-14 * (1.0 + ratio) ||
            (q <= ratio + 1e-14 * (1.0 + ratio) && basis_[i] < basis_[leave])) {
          leave = i;
          ratio = q;
        }
      }
      if (leave < 0) return LP_UNBOUNDED;
      degenerate = ratio <= 1e-14 ? degenerate + 1 : 0;
      pivot(leave, enter);
    }
    return LP_ITERATIONS;
  }
};

}  // namespace mkt

#endif
