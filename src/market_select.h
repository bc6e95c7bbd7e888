// Backtests of candidate treated sets for market selection, free of R.
//
// The panel is Z (N markets x T periods), each market's outcome divided by
// its base level, so every series is an index near 1. Time is cut into
// blocks (contiguous ranges of periods); a backtest window is one block, its
// fit period every block before it, and its placebo windows the full blocks
// before it. For a treated set S with volume shares a (a_i = level_i /
// sum_S level), the treated index is x1 = Z' a (the treated markets' total
// over their total level) and the donors are the markets outside S.
//
// Every fit of the search is a least-squares fit of the treated index on the
// donors over a set F of periods, with an intercept (the series are centred
// over F). Its only data are the centred cross-products C_F = M_F - s_F s_F'
// / n_F, with M_F = sum_{t in F} z_t z_t' and s_F = sum_{t in F} z_t; they
// are additive over blocks, so per window the cross-products of its fit
// period are formed once and a placebo fit (the fit period without block b)
// subtracts that block's: no fit ever reads the panel again, and the same
// arrays serve every candidate set and every effect size. A set only picks
// which rows are treated (a) and which are donors (D).
//
// Methods:
//   synth          weights w on the simplex over D minimising the centred
//                  squared error (a synthetic control with an intercept, as
//                  in Doudchenko and Imbens, and Ferman and Pinto). In Gram
//                  form: min w'Qw with Q_jk = C_jk - c_j - c_k + c0, c = C a,
//                  c0 = a'C a (because sum w = 1); solved by Wolfe's
//                  min-norm-point algorithm on columns of Q formed on demand.
//   tbr            time-based regression (Kerman, Wang and Vaver 2017): the
//                  treated index on the donors' volume-weighted index, with
//                  intercept and slope fitted over F.
//   diff_in_means  the treated index minus the donors' index, each centred
//                  over F (the difference in means of the two indices,
//                  adjusted for their pre-period levels).
//
// A window's estimate is the relative lift sum(gap) / sum(counterfactual)
// over its periods. An effect delta multiplies the treated index in the
// window only, so the fit is unchanged and the estimate is linear in delta:
// est(delta) = est0 + delta * slope, slope = sum(x1) / sum(counterfactual).

#ifndef MKTCAUSAL_MARKET_SELECT_H
#define MKTCAUSAL_MARKET_SELECT_H

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace mkt {

// --- the Gram-form simplex solver ---------------------------------------

struct GramSimplexResult {
  Eigen::VectorXd w;
  bool converged = false;
  int iterations = 0;
  double objective = 0;  // w'Qw
};

// min w'Qw on the simplex, Q (J x J, positive semi-definite) given by its
// diagonal and a function that writes column j into `out`. Wolfe's (1976)
// algorithm, as in synth.h's simplex_min_norm, but on the Gram matrix: a
// step costs O(J |S|) for the gradient plus one new column, so a fit costs
// far less than forming Q. tol is relative to the largest diagonal entry.
// w0 (length J, or empty) is a warm start: its support seeds the corral,
// which is first moved to its affine minimiser as after any added member.
template <class ColFn>
inline GramSimplexResult gram_simplex(int J, const Eigen::VectorXd& diag, ColFn&& col,
                                      double tol, int max_iter,
                                      const Eigen::VectorXd& w0 = Eigen::VectorXd()) {
  GramSimplexResult out;
  out.w = Eigen::VectorXd::Zero(J);
  if (J == 1) {
    out.w(0) = 1.0;
    out.converged = true;
    return out;
  }
  const double scale = std::max(diag.maxCoeff(), std::numeric_limits<double>::min());
  const double gap_tol = tol * scale;
  std::vector<int> S;
  std::vector<char> in_s(J, 0);
  Eigen::MatrixXd cols(J, 0);  // columns of Q for the members of S
  Eigen::MatrixXd G;           // Q restricted to S
  Eigen::VectorXd wS, v, g(J), c(J);

  bool warm = false;
  if (w0.size() == J && (w0.array() > 0).count() > 1) {
    for (int j = 0; j < J; ++j)
      if (w0(j) > 0) S.push_back(j);
    const int m = static_cast<int>(S.size());
    cols.resize(J, m);
    G.resize(m, m);
    wS.resize(m);
    for (int a = 0; a < m; ++a) {
      col(S[a], c);
      cols.col(a) = c;
      in_s[S[a]] = 1;
      wS(a) = w0(S[a]);
    }
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) G(a, b) = cols(S[b], a);
    wS /= wS.sum();
    warm = true;
  } else {
    int j0 = 0;
    diag.minCoeff(&j0);
    S.push_back(j0);
    in_s[j0] = 1;
    col(j0, c);
    cols = c;
    G.resize(1, 1);
    G(0, 0) = diag(j0);
    wS = Eigen::VectorXd::Ones(1);
  }

  auto affine_min = [&](Eigen::VectorXd& sol_v) -> bool {
    const int m = static_cast<int>(S.size());
    Eigen::MatrixXd B = Eigen::MatrixXd::Zero(m + 1, m + 1);
    B.topLeftCorner(m, m) = G / scale;
    B.block(0, m, m, 1).setOnes();
    B.block(m, 0, 1, m).setOnes();
    Eigen::VectorXd rhs = Eigen::VectorXd::Zero(m + 1);
    rhs(m) = 1.0;
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(B);
    if (!(lu.rcond() > 1e-13)) return false;
    Eigen::VectorXd sol = lu.solve(rhs);
    if (!sol.allFinite()) return false;
    sol_v = sol.head(m);
    return true;
  };
  auto keep = [&](const std::vector<int>& pos) {
    const int m = static_cast<int>(pos.size());
    Eigen::MatrixXd G2(m, m), cols2(J, m);
    std::vector<int> S2(m);
    for (int a = 0; a < m; ++a) {
      S2[a] = S[pos[a]];
      cols2.col(a) = cols.col(pos[a]);
      for (int b = 0; b < m; ++b) G2(a, b) = G(pos[a], pos[b]);
    }
    S = S2;
    G = G2;
    cols = cols2;
  };

  const double loose_tol = std::max(gap_tol, 1e-9 * scale);
  bool stalled = false;
  // Minor cycle: move to the affine minimiser of S, dropping members whose
  // weight would turn negative, until it lies inside the hull of S.
  auto minor = [&]() {
    for (int guard = 0; guard < 4 * J + 10; ++guard) {
      if (!affine_min(v)) {
        stalled = true;
        in_s[S.back()] = 0;
        std::vector<int> pos(S.size() - 1);
        for (size_t a = 0; a < pos.size(); ++a) pos[a] = static_cast<int>(a);
        Eigen::VectorXd w2 = wS.head(pos.size());
        keep(pos);
        wS = w2 / w2.sum();
        break;
      }
      if ((v.array() > 1e-15).all()) {
        wS = v;
        break;
      }
      double theta = 1.0;
      for (int a = 0; a < v.size(); ++a) {
        if (v(a) <= 1e-15) {
          const double den = wS(a) - v(a);
          if (den > 0) theta = std::min(theta, wS(a) / den);
        }
      }
      Eigen::VectorXd wn = (1.0 - theta) * wS + theta * v;
      std::vector<int> pos;
      std::vector<double> w2;
      for (int a = 0; a < wn.size(); ++a) {
        if (wn(a) > 1e-15) {
          pos.push_back(a);
          w2.push_back(wn(a));
        } else {
          in_s[S[a]] = 0;
        }
      }
      if (pos.empty()) {
        int a_best = 0;
        wn.maxCoeff(&a_best);
        pos.push_back(a_best);
        w2.push_back(1.0);
        in_s[S[a_best]] = 1;
      }
      keep(pos);
      wS = Eigen::Map<Eigen::VectorXd>(w2.data(), static_cast<Eigen::Index>(w2.size()));
      wS /= wS.sum();
    }
  };
  if (warm) {
    minor();
    // A warm support that lost a member to rounding restarts cleanly.
    stalled = false;
  }
  int iter = 0;
  for (;;) {
    g.noalias() = cols * wS;
    double xx = 0;
    for (size_t a = 0; a < S.size(); ++a) xx += wS(a) * g(S[a]);
    int j = 0;
    const double gmin = g.minCoeff(&j);
    if (xx - gmin <= gap_tol || in_s[j] || stalled || iter >= max_iter) {
      out.converged = xx - gmin <= ((in_s[j] || stalled) ? loose_tol : gap_tol);
      out.objective = xx;
      break;
    }
    col(j, c);
    const int m = static_cast<int>(S.size());
    cols.conservativeResize(J, m + 1);
    cols.col(m) = c;
    G.conservativeResize(m + 1, m + 1);
    for (int a = 0; a < m; ++a) G(a, m) = G(m, a) = c(S[a]);
    G(m, m) = c(j);
    S.push_back(j);
    in_s[j] = 1;
    wS.conservativeResize(m + 1);
    wS(m) = 0.0;
    ++iter;
    minor();
  }
  for (size_t a = 0; a < S.size(); ++a) out.w(S[a]) = wS(a);
  out.iterations = iter;
  return out;
}

// --- the backtest --------------------------------------------------------

enum class SelectMethod { synth = 0, tbr = 1, diff_in_means = 2 };

// Cross-products of one set of periods: M = sum z z', s = sum z, n periods.
struct CrossProducts {
  Eigen::MatrixXd M;
  Eigen::VectorXd s;
  double n = 0;
};

// What a window keeps: its fit period's cross-products, the block it tests,
// and its placebo blocks.
struct BacktestWindow {
  int block = 0;                // index of the tested block
  std::vector<int> placebo;     // full blocks of the fit period
  CrossProducts pre;            // over the fit period (every block before)
};

// The precomputed arrays of one panel and one window plan; shared by every
// candidate set.
struct BacktestPlan {
  Eigen::MatrixXd Z;                 // N x T index series
  Eigen::VectorXd level;             // N base levels (volume weights)
  std::vector<CrossProducts> blocks; // per block
  std::vector<BacktestWindow> windows;
  SelectMethod method = SelectMethod::synth;
  double tol = 1e-10;
  int max_iter = 10000;
};

inline CrossProducts cross_products(const Eigen::MatrixXd& Z, int start, int len) {
  CrossProducts cp;
  const Eigen::MatrixXd Zb = Z.middleCols(start, len);
  cp.M = Eigen::MatrixXd::Zero(Z.rows(), Z.rows());
  cp.M.selfadjointView<Eigen::Lower>().rankUpdate(Zb);
  cp.M = cp.M.selfadjointView<Eigen::Lower>();
  cp.s = Zb.rowwise().sum();
  cp.n = len;
  return cp;
}

// block_start/block_len: the blocks in time order (0-based starts);
// window_block: the tested block of each window; full: whether a block is a
// full test length (only full blocks are placebos).
inline BacktestPlan make_plan(const Eigen::MatrixXd& Z, const Eigen::VectorXd& level,
                              const std::vector<int>& block_start,
                              const std::vector<int>& block_len,
                              const std::vector<char>& full,
                              const std::vector<int>& window_block, SelectMethod method,
                              double tol, int max_iter) {
  BacktestPlan p;
  p.Z = Z;
  p.level = level;
  p.method = method;
  p.tol = tol;
  p.max_iter = max_iter;
  const int K = static_cast<int>(block_start.size());
  p.blocks.reserve(K);
  for (int k = 0; k < K; ++k) p.blocks.push_back(cross_products(Z, block_start[k], block_len[k]));
  const int N = static_cast<int>(Z.rows());
  for (int wb : window_block) {
    BacktestWindow w;
    w.block = wb;
    w.pre.M = Eigen::MatrixXd::Zero(N, N);
    w.pre.s = Eigen::VectorXd::Zero(N);
    for (int k = 0; k < wb; ++k) {
      w.pre.M += p.blocks[k].M;
      w.pre.s += p.blocks[k].s;
      w.pre.n += p.blocks[k].n;
      if (full[k]) w.placebo.push_back(k);
    }
    p.windows.push_back(std::move(w));
  }
  return p;
}

// One fit on the fit period (pre minus block `drop`, or all of pre when
// drop < 0) predicting block `target`: returns the estimate, the sum of the
// treated index and the counterfactual over the target, and the fit's
// RMSE. `set` holds the treated rows; `is_treated` flags them.
struct OneFit {
  double gap = 0, x1 = 0, cf = 0, rmse = 0;
  bool converged = true;
};

// wbuf: on entry a warm start for the weights (or empty), on exit the
// weights found.
inline OneFit fit_block(const BacktestPlan& p, const BacktestWindow& win, int drop, int target,
                        const std::vector<int>& set, const Eigen::VectorXd& a,
                        const std::vector<int>& donors, Eigen::VectorXd& wbuf) {
  const int N = static_cast<int>(p.Z.rows());
  const int J = static_cast<int>(donors.size());
  const int k = static_cast<int>(set.size());
  const CrossProducts& pre = win.pre;
  const CrossProducts* dropped = drop >= 0 ? &p.blocks[drop] : nullptr;
  const double n = pre.n - (dropped ? dropped->n : 0.0);
  Eigen::VectorXd s = pre.s;
  if (dropped) s -= dropped->s;
  // Column m of the centred cross-products C_F, over all N rows.
  auto Ccol = [&](int m, Eigen::VectorXd& out) {
    out = pre.M.col(m);
    if (dropped) out -= dropped->M.col(m);
    out -= s * (s(m) / n);
  };
  // c = C a (N), c0 = a'C a.
  Eigen::VectorXd c = Eigen::VectorXd::Zero(N), tmp(N);
  for (int i = 0; i < k; ++i) {
    Ccol(set[i], tmp);
    c += a(i) * tmp;
  }
  double c0 = 0;
  for (int i = 0; i < k; ++i) c0 += a(i) * c(set[i]);
  const CrossProducts& tb = p.blocks[target];
  double x1_t = 0, x1_mean = 0;
  for (int i = 0; i < k; ++i) {
    x1_t += a(i) * tb.s(set[i]);
    x1_mean += a(i) * s(set[i]);
  }
  x1_mean /= n;
  const double nt = tb.n;
  OneFit f;
  f.x1 = x1_t;
  double cf = 0, sse = 0;
  if (p.method == SelectMethod::synth) {
    Eigen::VectorXd diag(J);
    for (int j = 0; j < J; ++j) {
      const int m = donors[j];
      const double Cmm = pre.M(m, m) - (dropped ? dropped->M(m, m) : 0.0) - s(m) * s(m) / n;
      diag(j) = Cmm - 2 * c(m) + c0;
    }
    auto col = [&](int j, Eigen::VectorXd& out) {
      const int m = donors[j];
      Ccol(m, tmp);
      out.resize(J);
      const double base = c0 - c(m);
      for (int r = 0; r < J; ++r) out(r) = tmp(donors[r]) - c(donors[r]) + base;
    };
    GramSimplexResult r = gram_simplex(J, diag, col, p.tol, p.max_iter, wbuf);
    f.converged = r.converged;
    wbuf = r.w;
    // counterfactual over the target: x1_mean * nt + sum_j w_j (s_tj - nt s_j / n)
    double q = 0;
    for (int j = 0; j < J; ++j) {
      if (r.w(j) == 0) continue;
      const int m = donors[j];
      q += r.w(j) * (tb.s(m) - nt * s(m) / n);
    }
    cf = x1_mean * nt + q;
    sse = std::max(0.0, r.objective);  // the in-sample SSE, w'Qw
  } else {
    // The donors' volume-weighted index u (u_j = level_j / sum_D level).
    // C u over the donors: C (level - level on S) / sum_D level, formed from
    // the full level vector without touching the J x J block.
    double lev_d = 0;
    for (int j = 0; j < J; ++j) lev_d += p.level(donors[j]);
    Eigen::VectorXd u = p.level / lev_d;
    for (int i = 0; i < k; ++i) u(set[i]) = 0;
    // cov(x1, xc) = c'u ; var(xc) = u'C u.
    double cov = c.dot(u);
    Eigen::VectorXd Cu = Eigen::VectorXd::Zero(N);
    for (int j = 0; j < J; ++j) {
      const int m = donors[j];
      Ccol(m, tmp);
      Cu += u(m) * tmp;
    }
    const double var = u.dot(Cu);
    const double beta = p.method == SelectMethod::tbr ? (var > 0 ? cov / var : 0.0) : 1.0;
    const double xc_t = u.dot(tb.s), xc_mean = u.dot(s) / n;
    cf = x1_mean * nt + beta * (xc_t - nt * xc_mean);
    sse = std::max(0.0, c0 - 2 * beta * cov + beta * beta * var);
  }
  f.cf = cf;
  f.gap = x1_t - cf;
  f.rmse = std::sqrt(sse / n);
  return f;
}

// One window of one candidate: the test estimate at zero effect, its slope
// in delta, the placebo estimates, and the fit's RMSE relative to the
// treated index's level.
struct WindowScore {
  double est0 = 0, slope = 0, rmse = 0;
  std::vector<double> placebo;
  bool converged = true;
};

inline WindowScore score_window(const BacktestPlan& p, const BacktestWindow& win,
                                const std::vector<int>& set, bool placebos) {
  const int N = static_cast<int>(p.Z.rows());
  const int k = static_cast<int>(set.size());
  std::vector<char> treated(N, 0);
  for (int i : set) treated[i] = 1;
  std::vector<int> donors;
  donors.reserve(N - k);
  for (int m = 0; m < N; ++m)
    if (!treated[m]) donors.push_back(m);
  Eigen::VectorXd a(k);
  double tot = 0;
  for (int i = 0; i < k; ++i) tot += p.level(set[i]);
  for (int i = 0; i < k; ++i) a(i) = p.level(set[i]) / tot;
  Eigen::VectorXd wbuf;
  WindowScore out;
  OneFit f = fit_block(p, win, -1, win.block, set, a, donors, wbuf);
  out.est0 = f.gap / f.cf;
  out.slope = f.x1 / f.cf;
  out.converged = f.converged;
  double lvl = 0;
  for (int i = 0; i < k; ++i) lvl += a(i) * win.pre.s(set[i]);
  lvl /= win.pre.n;
  out.rmse = f.rmse / lvl;
  if (placebos) {
    out.placebo.reserve(win.placebo.size());
    const Eigen::VectorXd w_test = wbuf;
    for (int b : win.placebo) {
      wbuf = w_test;
      OneFit g = fit_block(p, win, b, b, set, a, donors, wbuf);
      out.placebo.push_back(g.gap / g.cf);
      out.converged = out.converged && g.converged;
    }
  }
  return out;
}

// The donor weights of one window's test fit (for checks and reports).
inline Eigen::VectorXd window_weights(const BacktestPlan& p, int window,
                                      const std::vector<int>& set) {
  const BacktestWindow& win = p.windows[window];
  const int N = static_cast<int>(p.Z.rows());
  const int k = static_cast<int>(set.size());
  std::vector<char> treated(N, 0);
  for (int i : set) treated[i] = 1;
  std::vector<int> donors;
  for (int m = 0; m < N; ++m)
    if (!treated[m]) donors.push_back(m);
  Eigen::VectorXd a(k);
  double tot = 0;
  for (int i = 0; i < k; ++i) tot += p.level(set[i]);
  for (int i = 0; i < k; ++i) a(i) = p.level(set[i]) / tot;
  Eigen::VectorXd wbuf;
  fit_block(p, win, -1, win.block, set, a, donors, wbuf);
  Eigen::VectorXd full = Eigen::VectorXd::Zero(N);
  if (wbuf.size() == static_cast<Eigen::Index>(donors.size()))
    for (size_t j = 0; j < donors.size(); ++j) full(donors[j]) = wbuf(j);
  return full;
}

// The critical value of |estimate| for a window with placebo estimates e at
// level alpha. rank: reject when |est| exceeds the (m+1)-th largest |e_b|,
// m = floor(alpha (B + 1)) - 1, i.e. the p-value (1 + #{|e_b| >= |est|}) /
// (B + 1) is at most alpha; infinite (never reject) when m < 0. t: the
// placebo root mean square times the quantile tq (given per B by the caller).
inline double critical_value(std::vector<double> e, double alpha, bool rank, double tq) {
  const int B = static_cast<int>(e.size());
  if (rank) {
    const int m = static_cast<int>(std::floor(alpha * (B + 1) + 1e-9)) - 1;
    if (m < 0 || B == 0) return std::numeric_limits<double>::infinity();
    for (double& x : e) x = std::abs(x);
    std::nth_element(e.begin(), e.begin() + m, e.end(), std::greater<double>());
    return e[m];
  }
  if (B < 2) return std::numeric_limits<double>::infinity();
  double ss = 0;
  for (double x : e) ss += x * x;
  return tq * std::sqrt(ss / B);
}

}  // namespace mkt

#endif
