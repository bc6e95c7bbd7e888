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
//   lin            a regression across the donors (an ANCOVA, as in Lin
//                  2013, fitted on the untreated arm) of each market's total
//                  over the target block on its total over F, in outcome
//                  units (level times index); the counterfactual of the
//                  treated set is the sum of its markets' predictions. Its
//                  RMSE is that of diff_in_means (the pre-period path of the
//                  treated index against the donors').
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
// step costs O(J |S|) for the gradient plus one new column. The bordered
// system of the corral's affine minimiser, [0 1'; 1 Q_SS] (border first),
// is kept as its inverse and updated by the block formulas when a member
// enters or leaves (O(|S|^2) a change instead of a factorisation), and
// refactorised every 32 changes against drift. tol is relative to the
// largest diagonal entry. w0 (length J, or empty) is a warm start: its
// support seeds the corral.
template <class ColFn>
inline GramSimplexResult gram_simplex(int J, const Eigen::VectorXd& diag, ColFn&& col,
                                      double tol, int max_iter,
                                      const Eigen::VectorXd& w0 = Eigen::VectorXd()) {
  GramSimplexResult out;
  out.w = Eigen::VectorXd::Zero(J);
  if (J == 1) {
    out.w(0) = 1.0;
    out.converged = true;
    out.objective = diag(0);
    return out;
  }
  const double scale = std::max(diag.maxCoeff(), std::numeric_limits<double>::min());
  const double gap_tol = tol * scale;
  const double loose_tol = std::max(gap_tol, 1e-9 * scale);
  std::vector<int> S;
  std::vector<char> in_s(J, 0);
  // Buffers with room for every donor: the corral's columns of Q (J x m
  // used), the inverse of the bordered matrix ((m + 1) x (m + 1) used), so
  // that no step allocates. A member leaves by moving the last one into its
  // place (the corral's order does not matter).
  const int cap = J + 1;
  Eigen::MatrixXd cols(J, cap);
  Eigen::MatrixXd Ainv(cap + 1, cap + 1);
  Eigen::VectorXd wS(cap), g(J), c(J), u(cap + 1), q(cap + 1), v(cap);
  int changes = 0;
  auto m_now = [&]() { return static_cast<int>(S.size()); };

  // From scratch: false when the corral is not affinely independent.
  auto refactor = [&]() -> bool {
    const int m = m_now();
    Eigen::MatrixXd A = Eigen::MatrixXd::Zero(m + 1, m + 1);
    A.block(0, 1, 1, m).setOnes();
    A.block(1, 0, m, 1).setOnes();
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) A(a + 1, b + 1) = cols(S[b], a) / scale;
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(A);
    if (!(lu.rcond() > 1e-13)) return false;
    Ainv.topLeftCorner(m + 1, m + 1) = lu.inverse();
    changes = 0;
    return Ainv.topLeftCorner(m + 1, m + 1).allFinite();
  };
  // Drops the member at corral position a (0-based): the last member moves
  // into its place, then the block formula removes the last row and column.
  auto drop = [&](int a) {
    const int m = m_now();
    const int p = a + 1, last = m;
    if (p != last) {
      Ainv.row(p).head(m + 1).swap(Ainv.row(last).head(m + 1));
      Ainv.col(p).head(m + 1).swap(Ainv.col(last).head(m + 1));
      cols.col(a) = cols.col(m - 1);
      wS(a) = wS(m - 1);
      in_s[S[a]] = 0;
      S[a] = S[m - 1];
    } else {
      in_s[S[a]] = 0;
    }
    const double gll = Ainv(last, last);
    q.head(m) = Ainv.col(last).head(m);
    Ainv.topLeftCorner(m, m).noalias() -= q.head(m) * q.head(m).transpose() / gll;
    S.pop_back();
    ++changes;
  };
  // Adds market j (its column in c); false when it is affinely dependent
  // on the corral.
  auto add = [&](int j) -> bool {
    const int m = m_now();
    u(0) = 1.0;
    for (int a = 0; a < m; ++a) u(a + 1) = c(S[a]) / scale;
    const double d = c(j) / scale;
    q.head(m + 1).noalias() = Ainv.topLeftCorner(m + 1, m + 1) * u.head(m + 1);
    const double uq = u.head(m + 1).dot(q.head(m + 1));
    const double sc = d - uq;
    if (!(std::abs(sc) > 1e-12 * (std::abs(d) + std::abs(uq) + 1e-300))) return false;
    Ainv.topLeftCorner(m + 1, m + 1).noalias() += q.head(m + 1) * q.head(m + 1).transpose() / sc;
    Ainv.col(m + 1).head(m + 1) = -q.head(m + 1) / sc;
    Ainv.row(m + 1).head(m + 1) = -q.head(m + 1).transpose() / sc;
    Ainv(m + 1, m + 1) = 1.0 / sc;
    cols.col(m) = c;
    S.push_back(j);
    in_s[j] = 1;
    wS(m) = 0.0;
    ++changes;
    return true;
  };

  bool warm = false;
  if (w0.size() == J && (w0.array() > 0).count() > 1) {
    for (int j = 0; j < J; ++j)
      if (w0(j) > 0) S.push_back(j);
    const int m = m_now();
    double tot = 0;
    for (int a = 0; a < m; ++a) {
      col(S[a], c);
      cols.col(a) = c;
      in_s[S[a]] = 1;
      wS(a) = w0(S[a]);
      tot += wS(a);
    }
    wS.head(m) /= tot;
    warm = refactor();
    if (!warm) {
      for (int j : S) in_s[j] = 0;
      S.clear();
    }
  }
  if (!warm) {
    int j0 = 0;
    diag.minCoeff(&j0);
    S.assign(1, j0);
    in_s[j0] = 1;
    col(j0, c);
    cols.col(0) = c;
    wS(0) = 1.0;
    Ainv(0, 0) = -diag(j0) / scale;
    Ainv(0, 1) = Ainv(1, 0) = 1.0;
    Ainv(1, 1) = 0.0;
  }

  // Minor cycle: move to the affine minimiser of S, dropping members whose
  // weight would turn negative, until it lies inside the hull of S.
  auto minor = [&]() {
    for (int guard = 0; guard < 4 * J + 10; ++guard) {
      if (changes >= 32 && !refactor()) break;
      const int m = m_now();
      v.head(m) = Ainv.col(0).segment(1, m);
      if (!v.head(m).allFinite()) break;
      if ((v.head(m).array() > 1e-15).all()) {
        wS.head(m) = v.head(m) / v.head(m).sum();
        break;
      }
      double theta = 1.0;
      for (int a = 0; a < m; ++a) {
        if (v(a) <= 1e-15) {
          const double den = wS(a) - v(a);
          if (den > 0) theta = std::min(theta, wS(a) / den);
        }
      }
      wS.head(m) = (1.0 - theta) * wS.head(m) + theta * v.head(m);
      int best = 0;
      wS.head(m).maxCoeff(&best);
      for (int a = m - 1; a >= 0; --a) {
        if (wS(a) <= 1e-15 && S.size() > 1) {
          if (a == best) continue;
          // The member moved into position a is the last, already kept;
          // follow the best member if it is the one that moves.
          if (best == m_now() - 1) best = a;
          drop(a);
        }
      }
      const int m2 = m_now();
      wS.head(m2) = wS.head(m2).cwiseMax(0.0);
      wS.head(m2) /= wS.head(m2).sum();
    }
  };
  if (warm) minor();
  bool stalled = false;
  int iter = 0;
  for (;;) {
    const int m = m_now();
    g.noalias() = cols.leftCols(m) * wS.head(m);
    double xx = 0;
    for (int a = 0; a < m; ++a) xx += wS(a) * g(S[a]);
    int j = 0;
    const double gmin = g.minCoeff(&j);
    if (xx - gmin <= gap_tol || in_s[j] || stalled || iter >= max_iter || m >= cap - 1) {
      out.converged = xx - gmin <= ((in_s[j] || stalled) ? loose_tol : gap_tol);
      out.objective = xx;
      break;
    }
    col(j, c);
    if (!add(j)) {
      stalled = true;
      continue;
    }
    ++iter;
    minor();
  }
  for (size_t a = 0; a < S.size(); ++a) out.w(S[a]) = wS(a);
  out.iterations = iter;
  return out;
}

// --- the backtest --------------------------------------------------------

enum class SelectMethod { synth = 0, tbr = 1, diff_in_means = 2, lin = 3 };

// Cross-products of one set of periods: M = sum z z', s = sum z, n periods.
struct CrossProducts {
  Eigen::MatrixXd M;
  Eigen::VectorXd s;
  Eigen::VectorXd Ml;  // M times the level vector (for the donors' index)
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
  bool warm = true;  // warm-start placebo fits from the window's fit
  // Per block: 1 when its placebo errors rank the candidate sets, 0 when
  // they are the reference of the planned test. The two never mix, so the
  // test's reference was not looked at by the selection.
  std::vector<char> selection;
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
  for (int k = 0; k < K; ++k) {
    p.blocks.push_back(cross_products(Z, block_start[k], block_len[k]));
    p.blocks.back().Ml = p.blocks.back().M * level;
  }
  const int N = static_cast<int>(Z.rows());
  for (int wb : window_block) {
    BacktestWindow w;
    w.block = wb;
    w.pre.M = Eigen::MatrixXd::Zero(N, N);
    w.pre.s = Eigen::VectorXd::Zero(N);
    w.pre.Ml = Eigen::VectorXd::Zero(N);
    for (int k = 0; k < wb; ++k) {
      w.pre.M += p.blocks[k].M;
      w.pre.s += p.blocks[k].s;
      w.pre.Ml += p.blocks[k].Ml;
      w.pre.n += p.blocks[k].n;
      if (full[k]) w.placebo.push_back(k);
    }
    p.windows.push_back(std::move(w));
  }
  return p;
}

// The lin counterfactual of the treated index over a target block: the
// least-squares line, across the donors, of y_m = level_m * st_m (the
// market's total over the target) on x_m = level_m * sf_m (its total over
// the fit period), summed over the treated markets and divided by their
// total level (so it is in the units of the treated index). With one donor,
// or donors of equal x, the slope is 0 (the donors' mean).
inline double lin_counterfactual(const Eigen::VectorXd& level, const Eigen::VectorXd& sf,
                                 const Eigen::VectorXd& st, const std::vector<int>& set,
                                 const std::vector<int>& donors) {
  const int J = static_cast<int>(donors.size());
  double mx = 0, my = 0;
  for (int m : donors) {
    mx += level(m) * sf(m);
    my += level(m) * st(m);
  }
  mx /= J;
  my /= J;
  double sxx = 0, sxy = 0;
  for (int m : donors) {
    const double dx = level(m) * sf(m) - mx;
    sxx += dx * dx;
    sxy += dx * (level(m) * st(m) - my);
  }
  const double beta = sxx > 0 ? sxy / sxx : 0.0;
  double pred = 0, lev = 0;
  for (int i : set) {
    pred += my + beta * (level(i) * sf(i) - mx);
    lev += level(i);
  }
  return pred / lev;
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
  Eigen::MatrixXd Cset(N, k);  // the treated columns of C_F
  for (int i = 0; i < k; ++i) {
    Ccol(set[i], tmp);
    Cset.col(i) = tmp;
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
    // C u = (C level - C[, S] level_S) / sum_D level, with C level from the
    // precomputed M level: O(N k) a fit, never the J x J block.
    double lev_d = 0;
    for (int j = 0; j < J; ++j) lev_d += p.level(donors[j]);
    Eigen::VectorXd u = p.level / lev_d;
    for (int i = 0; i < k; ++i) u(set[i]) = 0;
    double cov = c.dot(u);
    Eigen::VectorXd Cu = pre.Ml;
    if (dropped) Cu -= dropped->Ml;
    Cu -= s * (s.dot(p.level) / n);
    for (int i = 0; i < k; ++i) Cu -= p.level(set[i]) * Cset.col(i);
    Cu /= lev_d;
    const double var = u.dot(Cu);
    const double beta = p.method == SelectMethod::tbr ? (var > 0 ? cov / var : 0.0) : 1.0;
    const double xc_t = u.dot(tb.s), xc_mean = u.dot(s) / n;
    cf = x1_mean * nt + beta * (xc_t - nt * xc_mean);
    sse = std::max(0.0, c0 - 2 * beta * cov + beta * beta * var);
    if (p.method == SelectMethod::lin) cf = lin_counterfactual(p.level, s, tb.s, set, donors);
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
  double noise = 0;              // RMS of the selection blocks' placebo estimates
  int n_noise = 0;
  std::vector<double> placebo;   // the test's reference (inference blocks)
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
    double ss = 0;
    for (int b : win.placebo) {
      wbuf = p.warm ? w_test : Eigen::VectorXd();
      OneFit g = fit_block(p, win, b, b, set, a, donors, wbuf);
      const double e = g.gap / g.cf;
      if (!p.selection.empty() && p.selection[b]) {
        ss += e * e;
        ++out.n_noise;
      } else {
        out.placebo.push_back(e);
      }
      out.converged = out.converged && g.converged;
    }
    out.noise = out.n_noise ? std::sqrt(ss / out.n_noise) : 0.0;
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
