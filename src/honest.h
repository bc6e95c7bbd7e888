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

}  // namespace mkt

#endif
