// Interactive fixed effects, free of R.
//
// Model on the cells where mask == 1:
//   y_it = mu + alpha_i + xi_t + x_it' beta + lambda_i' f_t + e_it,
// with alpha and/or xi dropped by `force` (0 none, 1 unit, 2 time, 3 both).
//
// Fitting is alternating least squares (Bai 2009) wrapped in EM for the cells
// outside the mask (Xu 2017; Liu, Wang and Xu 2024): masked cells are filled
// with the current fit, so every fixed point is a stationary point of the
// least-squares criterion over the observed cells alone. Given the factor
// part, beta and the additive effects are one within regression (X demeaned
// once, its cross-product factored once); given beta, the additive effects
// are means and the factors are the leading eigenvectors of the residual's
// cross-product on the smaller dimension (T x T or N x N), so a 20,000 x 100
// panel costs one 100 x 100 eigenproblem per iteration.
//
// With a grand mean only (force 0) the mean is not orthogonal to the factor
// part, so it is iterated with beta and the factors (see
// mean_beta_given_factors) rather than removed once.
//
// Normalisation: F'F / T = I, L = E F / T (so L'L is diagonal), the additive
// effects sum to zero, each factor's largest entry is positive.
//
// Matrix completion (Athey et al. 2021) replaces the rank-r step by
// soft-thresholding all singular values by lambda (soft-impute).
#ifndef MKTCAUSAL_IFE_H
#define MKTCAUSAL_IFE_H

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace mkt {
namespace ife {

using Eigen::MatrixXd;
using Eigen::VectorXd;

struct Control {
  int r = 0;              // number of factors (ALS) or unused (soft-impute)
  int force = 3;          // 0 none, 1 unit, 2 time, 3 two-way
  double tol = 1e-8;      // relative change of the fitted matrix
  int max_iter = 1000;
  bool soft = false;      // soft-impute instead of a rank-r step
  double lambda = 0.0;    // soft-threshold on singular values (soft-impute)
};

struct Fit {
  VectorXd beta;
  double mu = 0.0;
  VectorXd alpha, xi;
  MatrixXd F, L;          // T x r and N x r (soft-impute: rank after shrinkage)
  MatrixXd fit;           // N x T fitted values on every cell
  VectorXd sv;            // singular values of the last residual (descending)
  int iter = 0;
  bool converged = false;
  double ssr = 0.0;       // over mask cells
  double nobs = 0.0;
};

// Removes the additive effects that `force` asks for from Z (in place) and
// returns them.
inline void demean(MatrixXd& Z, int force, double& mu, VectorXd& alpha, VectorXd& xi) {
  const Eigen::Index N = Z.rows(), T = Z.cols();
  mu = Z.mean();
  alpha = VectorXd::Zero(N);
  xi = VectorXd::Zero(T);
  if (force == 1 || force == 3) alpha = Z.rowwise().mean().array() - mu;
  if (force == 2 || force == 3) xi = Z.colwise().mean().transpose().array() - mu;
  Z.array() -= mu;
  if (force == 1 || force == 3) Z.colwise() -= alpha;
  if (force == 2 || force == 3) Z.rowwise() -= xi.transpose();
}

struct NoPoll {
  void operator()() const {}
};

// The smaller cross-product of E, E'E (T <= N) or EE', lower triangle. On a
// large panel it is summed over blocks of rows (columns) of about 5e7
// multiply-adds each, with poll() between them, so that an interrupt is
// heard within a fraction of a second even when one product takes many.
template <class Poll>
MatrixXd small_gram(const MatrixXd& E, Poll& poll) {
  const Eigen::Index N = E.rows(), T = E.cols();
  const bool on_T = T <= N;
  const Eigen::Index k = on_T ? T : N, len = on_T ? N : T;
  MatrixXd M = MatrixXd::Zero(k, k);
  const double work = static_cast<double>(len) * static_cast<double>(k) * static_cast<double>(k);
  if (work <= 1e8) {
    if (on_T) {
      M.selfadjointView<Eigen::Lower>().rankUpdate(E.transpose());
    } else {
      M.selfadjointView<Eigen::Lower>().rankUpdate(E);
    }
    return M;
  }
  const Eigen::Index block =
      std::max<Eigen::Index>(64, static_cast<Eigen::Index>(5e7 / (static_cast<double>(k) * k)));
  for (Eigen::Index b = 0; b < len; b += block) {
    const Eigen::Index m = std::min(block, len - b);
    if (on_T) {
      M.selfadjointView<Eigen::Lower>().rankUpdate(E.middleRows(b, m).transpose());
    } else {
      M.selfadjointView<Eigen::Lower>().rankUpdate(E.middleCols(b, m));
    }
    poll();
  }
  return M;
}

// Leading r factors of E: F (T x r) with F'F/T = I and L = E F / T. Works on
// the smaller of E'E and EE'. Also returns the singular values of E.
template <class Poll = NoPoll>
void factors(const MatrixXd& E, int r, MatrixXd& F, MatrixXd& L, VectorXd& sv,
             Poll&& poll = Poll()) {
  const Eigen::Index N = E.rows(), T = E.cols();
  const double Td = static_cast<double>(T);
  Eigen::SelfAdjointEigenSolver<MatrixXd> es;
  es.compute(small_gram(E, poll));
  const Eigen::Index k = es.eigenvalues().size();
  sv.resize(k);
  for (Eigen::Index j = 0; j < k; ++j) sv[j] = std::sqrt(std::max(0.0, es.eigenvalues()[k - 1 - j]));
  F.resize(T, r);
  for (int j = 0; j < r; ++j) {
    VectorXd v = es.eigenvectors().col(k - 1 - j);
    if (T <= N) {
      F.col(j) = v * std::sqrt(Td);
    } else {
      VectorXd f = E.transpose() * v;
      const double s = sv[j];
      F.col(j) = (s > 0 ? f / s : f) * std::sqrt(Td);
    }
    Eigen::Index imax;
    F.col(j).cwiseAbs().maxCoeff(&imax);
    if (F(imax, j) < 0) F.col(j) *= -1.0;
  }
  L = E * F / Td;
}

// Leading r eigenpairs of the symmetric positive semi-definite M by
// subspace iteration with Rayleigh-Ritz, started from the columns of Q0.
// Inside the alternating least squares the previous iteration's factors are
// an excellent start, so a few products by M replace a full
// eigendecomposition (which costs most of an iteration on small panels).
// Returns false when the residual has not fallen below tol * theta_1 within
// max_steps; the caller then uses the full solver. A converged subspace is
// invariant but not necessarily the leading one: fit() checks that against
// the full solver once, at convergence.
inline bool leading_subspace(const MatrixXd& M, const MatrixXd& Q0, int max_steps, double tol,
                             MatrixXd& V, VectorXd& theta) {
  const Eigen::Index k = M.rows();
  const Eigen::Index r = Q0.cols();
  if (r == 0 || Q0.rows() != k || r >= k) return false;
  // Modified Gram-Schmidt: r is small, so this is cheaper than Householder.
  auto orthonormalize = [r](MatrixXd& Q) {
    for (Eigen::Index j = 0; j < r; ++j) {
      for (Eigen::Index l = 0; l < j; ++l) Q.col(j) -= Q.col(l).dot(Q.col(j)) * Q.col(l);
      const double nrm = Q.col(j).norm();
      if (!(nrm > 0)) return false;
      Q.col(j) /= nrm;
    }
    return true;
  };
  MatrixXd Q = Q0, Z(k, r), S(r, r);
  if (!orthonormalize(Q)) return false;
  Eigen::SelfAdjointEigenSolver<MatrixXd> es;
  for (int step = 0; step < max_steps; ++step) {
    Z.noalias() = M * Q;
    S.noalias() = Q.transpose() * Z;
    es.compute(S);
    const MatrixXd W = es.eigenvectors().rowwise().reverse();
    theta = es.eigenvalues().reverse();
    Q = Q * W;
    Z = Z * W;
    const double res = (Z - Q * theta.asDiagonal()).norm();
    if (theta[r - 1] > 0 && res <= tol * theta[0]) {
      V = Q;
      return true;
    }
    Q = Z;
    if (!orthonormalize(Q)) return false;
  }
  return false;
}

// factors() from given leading eigenvectors V (descending eigenvalues
// theta) of E'E (on_T) or EE', with the same normalisation.
inline void factors_from(const MatrixXd& E, int r, bool on_T, const MatrixXd& V,
                         const VectorXd& theta, MatrixXd& F, MatrixXd& L) {
  const double Td = static_cast<double>(E.cols());
  F.resize(E.cols(), r);
  for (int j = 0; j < r; ++j) {
    if (on_T) {
      F.col(j) = V.col(j) * std::sqrt(Td);
    } else {
      const VectorXd f = E.transpose() * V.col(j);
      const double s = std::sqrt(std::max(0.0, theta[j]));
      F.col(j) = (s > 0 ? f / s : f) * std::sqrt(Td);
    }
    Eigen::Index imax;
    F.col(j).cwiseAbs().maxCoeff(&imax);
    if (F(imax, j) < 0) F.col(j) *= -1.0;
  }
  L = E * F / Td;
}

// The warm-started factor step: subspace iteration from the previous
// factors (F_prev, L_prev) on the smaller cross-product of E. Returns false
// (leaving F and L untouched) when it does not converge.
template <class Poll>
bool factors_warm(const MatrixXd& E, int r, const MatrixXd& F_prev, const MatrixXd& L_prev,
                  double tol, MatrixXd& F, MatrixXd& L, VectorXd& theta, Poll& poll) {
  const Eigen::Index N = E.rows(), T = E.cols();
  const bool on_T = T <= N;
  MatrixXd M = small_gram(E, poll);
  M.triangularView<Eigen::StrictlyUpper>() = M.transpose();
  const MatrixXd& Q0 = on_T ? F_prev : L_prev;
  MatrixXd V;
  if (!leading_subspace(M, Q0, 60, tol, V, theta)) return false;
  factors_from(E, r, on_T, V, theta, F, L);
  return true;
}

// Soft-impute step: the low-rank part is E's SVD with singular values shrunk
// by lambda; F holds the right singular vectors scaled as above.
template <class Poll>
void soft_threshold(const MatrixXd& E, double lambda, MatrixXd& F, MatrixXd& L, VectorXd& sv,
                    Poll& poll) {
  MatrixXd Fall, Lall;
  const int kmax = static_cast<int>(std::min(E.rows(), E.cols()));
  factors(E, kmax, Fall, Lall, sv, poll);
  int k = 0;
  while (k < kmax && sv[k] > lambda) ++k;
  F = Fall.leftCols(k);
  L.resize(E.rows(), k);
  for (int j = 0; j < k; ++j) L.col(j) = Lall.col(j) * ((sv[j] - lambda) / sv[j]);
}

// The grand mean and beta given the factors F (F'F/T = I), with the
// loadings profiled out (Bai's 2009 step): least squares of Y M_F on
// 11' M_F and X_k M_F, M_F = I - F F'/T. Profiling the loadings, rather
// than holding the product L F' fixed, matters for a grand mean: the mean
// and a factor whose loadings are far from zero on average trade off, and
// holding L F' fixed lets each step move the mean very little. When the
// constant lies in the span of the factors the mean is not identified and
// is left at zero (the factors hold it). Throws when the regressors are
// collinear once the factors are projected out.
inline void mean_beta_given_factors(const MatrixXd& Y, const std::vector<MatrixXd>& X,
                                    const MatrixXd& F, double& mu, VectorXd& beta) {
  const Eigen::Index N = Y.rows(), T = Y.cols();
  const int p = static_cast<int>(X.size());
  const MatrixXd Fq = F / std::sqrt(static_cast<double>(T));
  auto project_out = [&Fq](const MatrixXd& M) -> MatrixXd {
    return M - (M * Fq) * Fq.transpose();
  };
  // 11' M_F = 1 c' with c = M_F 1.
  const VectorXd c = VectorXd::Ones(T) - Fq * Fq.transpose().rowwise().sum();
  const double cc = c.squaredNorm();
  const bool with_mean = cc > 1e-10 * static_cast<double>(T);
  const int q = p + (with_mean ? 1 : 0);
  if (q == 0) {
    mu = 0.0;
    return;
  }
  std::vector<MatrixXd> Z;
  Z.reserve(p);
  for (int k = 0; k < p; ++k) Z.push_back(project_out(X[k]));
  const MatrixXd zy = project_out(Y);
  MatrixXd G(q, q);
  VectorXd b(q);
  const int o = with_mean ? 1 : 0;
  if (with_mean) {
    G(0, 0) = static_cast<double>(N) * cc;
    b[0] = zy.colwise().sum().dot(c);
    for (int k = 0; k < p; ++k) G(0, k + 1) = G(k + 1, 0) = Z[k].colwise().sum().dot(c);
  }
  for (int k = 0; k < p; ++k) {
    b[k + o] = (Z[k].array() * zy.array()).sum();
    for (int l = 0; l <= k; ++l)
      G(k + o, l + o) = G(l + o, k + o) = (Z[k].array() * Z[l].array()).sum();
  }
  Eigen::LDLT<MatrixXd> f(G);
  if (f.info() != Eigen::Success || f.vectorD().minCoeff() <= 1e-12 * G.diagonal().maxCoeff())
    throw std::runtime_error("the covariates are collinear with the grand mean and the factors");
  const VectorXd sol = f.solve(b);
  mu = with_mean ? sol[0] : 0.0;
  beta = sol.tail(p);
}

// X: p covariate matrices, each N x T, finite on every cell (the caller puts
// any value on masked cells: they do not move the fixed point). mask: N x T of
// 0/1. F0/beta0/fill0 (values for the masked cells): optional warm start
// (empty to start cold). poll() is called
// every few iterations and may throw to interrupt.
template <class Poll>
Fit fit(const MatrixXd& Y, const MatrixXd& mask, const std::vector<MatrixXd>& X,
        const Control& ctl, const MatrixXd& F0, const VectorXd& beta0, const MatrixXd& fill0,
        Poll poll) {
  const Eigen::Index N = Y.rows(), T = Y.cols();
  const int p = static_cast<int>(X.size());
  const double Td = static_cast<double>(T);
  const bool missing = (mask.array() < 0.5).any();
  Fit out;
  out.nobs = mask.sum();
  if (out.nobs < 1) throw std::runtime_error("no observed cells to fit");

  // Within-transformed covariates and their cross-product, once.
  std::vector<MatrixXd> Xd(X);
  MatrixXd XX(p, p);
  {
    double m;
    VectorXd a, x;
    for (int k = 0; k < p; ++k) demean(Xd[k], ctl.force, m, a, x);
    for (int k = 0; k < p; ++k)
      for (int l = 0; l <= k; ++l) XX(k, l) = XX(l, k) = (Xd[k].array() * Xd[l].array()).sum();
  }
  Eigen::LDLT<MatrixXd> XXf;
  if (p > 0) {
    XXf.compute(XX);
    if (XXf.info() != Eigen::Success || XXf.vectorD().minCoeff() <= 1e-12 * XX.diagonal().maxCoeff())
      throw std::runtime_error("the covariates are collinear with the fixed effects");
  }
  auto solve_beta = [&](const MatrixXd& Z) {
    VectorXd b(p);
    for (int k = 0; k < p; ++k) b[k] = (Xd[k].array() * Z.array()).sum();
    return VectorXd(XXf.solve(b));
  };

  // Start: masked cells from additive means of the observed cells.
  MatrixXd Yf = Y;
  if (missing && fill0.rows() == N && fill0.cols() == T) {
    // Warm start of the EM: masked cells from a previous fit.
    Yf = (mask.array() > 0.5).select(Y, fill0);
  } else if (missing) {
    VectorXd rs = VectorXd::Zero(N), rn = VectorXd::Zero(N);
    VectorXd cs = VectorXd::Zero(T), cn = VectorXd::Zero(T);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index i = 0; i < N; ++i)
        if (mask(i, t) > 0.5) { rs[i] += Y(i, t); rn[i] += 1; cs[t] += Y(i, t); cn[t] += 1; }
    const double g = rs.sum() / out.nobs;
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index i = 0; i < N; ++i)
        if (mask(i, t) < 0.5) {
          const double ri = rn[i] > 0 ? rs[i] / rn[i] - g : 0.0;
          const double ct = cn[t] > 0 ? cs[t] / cn[t] - g : 0.0;
          Yf(i, t) = g + ri + ct;
        }
  }

  VectorXd beta = VectorXd::Zero(p);
  MatrixXd LF = MatrixXd::Zero(N, T);
  // With a grand mean only (force 0) the factor step does not remove the
  // mean of the residual: a grand mean is not orthogonal to the factor part
  // as unit (time) effects are to factors (loadings) of a row- (column-)
  // demeaned matrix, so subtracting it once and fitting factors to what is
  // left is not the least-squares fit. The mean is a parameter of the
  // iteration instead: the factors are fitted to the residual net of the
  // current mean, and the mean (with beta) to the residual net of the
  // factors, until all three settle together.
  const bool joint_mean = ctl.force == 0 && (ctl.soft || ctl.r > 0);
  bool have_mu = false;
  double mu_cur = 0.0;
  if (beta0.size() == p && p > 0) {
    beta = beta0;
  } else if (p > 0) {
    beta = solve_beta(Yf);
  }
  MatrixXd F, L;
  if (!ctl.soft && ctl.r > 0 && F0.rows() == T && F0.cols() == ctl.r) {
    // Warm start: project the current residual on the given factors.
    MatrixXd U = Yf;
    for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
    double m;
    VectorXd a, x;
    demean(U, ctl.force, m, a, x);
    LF = (U * F0 / Td) * F0.transpose();
    if (p > 0) beta = solve_beta(Yf - LF);
    if (joint_mean) {
      U = Yf - LF;
      for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
      mu_cur = U.mean();
      have_mu = true;
    }
  }

  MatrixXd fitm(N, T), U(N, T);
  double prev_norm = -1.0;
  MatrixXd prev_fit;
  // Warm factor steps (see factors_warm) need the previous factors; the
  // first iteration, and every one after a failed or refuted warm step,
  // uses the full eigensolver.
  bool have_prev = false, last_warm = false, warm_ok = !ctl.soft && ctl.r > 0;
  if (warm_ok && F0.rows() == T && F0.cols() == ctl.r) {
    F = F0;
    L = MatrixXd::Zero(N, ctl.r);
    have_prev = (T <= N);
  }
  VectorXd theta;
  MatrixXd U_last;
  double last_change = 1.0;
  for (int it = 1; it <= ctl.max_iter; ++it) {
    // Every iteration: the shim's poll asks R at most a few times a second.
    poll();
    U = Yf;
    for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
    if (joint_mean) {
      if (!have_mu) mu_cur = U.mean();
      have_mu = true;
      U.array() -= mu_cur;
      out.mu = mu_cur;
      out.alpha = VectorXd::Zero(N);
      out.xi = VectorXd::Zero(T);
    } else {
      demean(U, ctl.force, out.mu, out.alpha, out.xi);
    }
    if (ctl.soft) {
      soft_threshold(U, ctl.lambda, F, L, out.sv, poll);
      LF.noalias() = L * F.transpose();
    } else if (ctl.r > 0) {
      // The eigenvectors need only be accurate well below the current
      // change of the fit, and to 1e-12 once that change is small.
      const double eig_tol = std::min(1e-6, std::max(1e-12, 1e-4 * last_change));
      last_warm = warm_ok && have_prev && factors_warm(U, ctl.r, F, L, eig_tol, F, L, theta, poll);
      // A warm step that does not converge means a small eigengap: the
      // full solver is cheaper from then on.
      if (!last_warm && warm_ok && have_prev) warm_ok = false;
      if (!last_warm) factors(U, ctl.r, F, L, out.sv, poll);
      have_prev = true;
      if (last_warm) U_last = U;
      LF.noalias() = L * F.transpose();
    }
    poll();  // a large panel's iteration is several passes over N x T
    if (joint_mean && !ctl.soft) {
      mean_beta_given_factors(Yf, X, F, out.mu, beta);
      U = Yf;
      U.array() -= out.mu;
      for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
      L = U * F / Td;
      LF.noalias() = L * F.transpose();
    } else if (p > 0) {
      beta = solve_beta(Yf - LF);
      // The additive effects must belong to the new beta, or the EM fill
      // mixes two parameter values and drifts.
      U = Yf - LF;
      for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
      demean(U, ctl.force, out.mu, out.alpha, out.xi);
    } else if (joint_mean) {
      out.mu = (Yf - LF).mean();
    }
    mu_cur = out.mu;
    poll();
    fitm = LF;
    fitm.array() += out.mu;
    fitm.colwise() += out.alpha;
    fitm.rowwise() += out.xi.transpose();
    for (int k = 0; k < p; ++k) fitm.noalias() += beta[k] * X[k];
    if (missing) Yf = (mask.array() > 0.5).select(Y, fitm);
    out.iter = it;
    if (prev_norm >= 0) {
      const double change = (fitm - prev_fit).norm() / std::max(prev_norm, 1e-300);
      last_change = change;
      if (change < ctl.tol) {
        if (last_warm) {
          // Check the warm subspace against the full solver once: the same
          // leading eigenvalues mean the same leading subspace. Otherwise
          // continue with full steps only.
          MatrixXd Ff, Lf;
          factors(U_last, ctl.r, Ff, Lf, out.sv, poll);
          const double scale = std::max(out.sv[0] * out.sv[0], 1e-300);
          bool same = true;
          for (int j = 0; j < ctl.r; ++j)
            if (std::abs(out.sv[j] * out.sv[j] - theta[j]) > 1e-8 * scale) same = false;
          if (!same) {
            warm_ok = false;
            last_warm = false;
            prev_fit = fitm;
            prev_norm = fitm.norm();
            continue;
          }
        }
        out.converged = true;
        break;
      }
    }
    prev_fit = fitm;
    prev_norm = fitm.norm();
    // A model without factors or masked cells is solved exactly in one pass.
    if (!missing && !ctl.soft && ctl.r == 0 && it >= 1) {
      out.converged = true;
      break;
    }
  }
  // The additive effects and factors belong to the final beta.
  U = Yf;
  for (int k = 0; k < p; ++k) U.noalias() -= beta[k] * X[k];
  U -= LF;
  {
    double m;
    VectorXd a, x;
    demean(U, ctl.force, m, a, x);
    out.mu = m;
    out.alpha = a;
    out.xi = x;
  }
  fitm = LF;
  fitm.array() += out.mu;
  fitm.colwise() += out.alpha;
  fitm.rowwise() += out.xi.transpose();
  for (int k = 0; k < p; ++k) fitm.noalias() += beta[k] * X[k];
  out.beta = beta;
  if (ctl.soft || ctl.r > 0) {
    out.F = F;
    out.L = L;
  } else {
    out.F = MatrixXd(T, 0);
    out.L = MatrixXd(N, 0);
  }
  out.fit = fitm;
  out.ssr = ((Y - fitm).array().square() * mask.array()).sum();
  return out;
}

// Loadings (and unit effects when force has them) of new units from the
// cells where pre == 1, given the factors, beta, mu and xi of a fit:
//   y_it - mu - xi_t - x_it'beta = alpha_i + lambda_i' f_t + e_it.
// Returns the N x T imputed untreated outcomes on every cell. `status` gets,
// per unit, 0 on success or 1 when its pre-period cells are too few.
inline MatrixXd project(const MatrixXd& Y, const MatrixXd& pre, const std::vector<MatrixXd>& X,
                        const VectorXd& beta, double mu, const VectorXd& xi, const MatrixXd& F,
                        int force, MatrixXd& alpha_lambda, std::vector<int>& status) {
  const Eigen::Index N = Y.rows(), T = Y.cols();
  const int r = static_cast<int>(F.cols());
  const bool unit_fe = (force == 1 || force == 3);
  const int q = r + (unit_fe ? 1 : 0);
  MatrixXd base = MatrixXd::Constant(N, T, mu);
  base.rowwise() += xi.transpose();
  for (size_t k = 0; k < X.size(); ++k) base.noalias() += beta[k] * X[k];
  MatrixXd G(T, q);
  if (unit_fe) G.col(0).setOnes();
  if (r > 0) G.rightCols(r) = F;
  alpha_lambda = MatrixXd::Zero(N, q);
  status.assign(N, 0);
  MatrixXd out = base;
  for (Eigen::Index i = 0; i < N; ++i) {
    std::vector<Eigen::Index> rows;
    for (Eigen::Index t = 0; t < T; ++t) if (pre(i, t) > 0.5) rows.push_back(t);
    const Eigen::Index n = static_cast<Eigen::Index>(rows.size());
    if (q == 0) continue;
    if (n < q) { status[i] = 1; continue; }
    MatrixXd A(n, q);
    VectorXd z(n);
    for (Eigen::Index j = 0; j < n; ++j) {
      A.row(j) = G.row(rows[j]);
      z[j] = Y(i, rows[j]) - base(i, rows[j]);
    }
    Eigen::ColPivHouseholderQR<MatrixXd> qr(A);
    if (qr.rank() < q) { status[i] = 1; continue; }
    VectorXd c = qr.solve(z);
    alpha_lambda.row(i) = c.transpose();
    out.row(i) += (G * c).transpose();
  }
  return out;
}

// Cross-validation without EM: the factors do not use the treated units, so
// a fold only changes which pre-periods each treated unit's loadings come
// from. fold holds each cell's fold (0 for none); fold k is predicted from
// the pre cells outside it. Adds the squared prediction errors of the
// finite predictions to sse and their count to n, per fold in `folds`.
inline void cv_project_sse(const MatrixXd& Y, const MatrixXd& pre, const Eigen::MatrixXi& fold,
                           const std::vector<MatrixXd>& X, const VectorXd& beta, double mu,
                           const VectorXd& xi, const MatrixXd& F, int force,
                           const std::vector<int>& folds, double& sse, double& n) {
  MatrixXd coefs;
  std::vector<int> status;
  for (int k : folds) {
    const MatrixXd keep = (fold.array() == k).select(MatrixXd::Zero(pre.rows(), pre.cols()), pre);
    const MatrixXd y0 = project(Y, keep, X, beta, mu, xi, F, force, coefs, status);
    for (Eigen::Index i = 0; i < Y.rows(); ++i) {
      if (status[i] != 0) continue;
      for (Eigen::Index t = 0; t < Y.cols(); ++t) {
        if (fold(i, t) != k) continue;
        const double e = Y(i, t) - y0(i, t);
        if (std::isfinite(e)) { sse += e * e; n += 1; }
      }
    }
  }
}

}  // namespace ife
}  // namespace mkt

#endif  // MKTCAUSAL_IFE_H
