// Synthetic control weights, free of R.
//
// Every weight problem of the family is a least-squares fit on the simplex:
//   min_w ||y - X w||^2 + eta ||w||^2,  w >= 0, sum(w) = 1.
// Because the weights sum to one, y - X w = -(X - y 1') w, so the problem is
// the minimum-norm point of the convex hull of the columns z_j = x_j - y
// (augmented by sqrt(eta) e_j when eta > 0). Wolfe's (1976) algorithm solves
// that problem exactly in finitely many steps: it keeps a set S of affinely
// independent columns ("corral"), moves to the affine minimiser of S when it
// lies inside the hull of S, and otherwise steps towards it until a weight
// hits zero and leaves S. Each step solves a small bordered system on the
// Gram matrix of S, so the cost grows with the support, not with the number
// of donors, and the answer meets the KKT conditions to rounding error
// rather than to an iteration budget (Frank-Wolfe, used by synthdid, stops
// early). A warm start passes the support of an earlier solution.
//
// The nested search of Abadie, Diamond and Hainmueller for diagonal predictor
// weights V sits on top: for each V the inner problem gives w(V), and V
// minimises the pre-period outcome MSPE of w(V). The outer problem is not
// convex, so it is run by Nelder-Mead from several starts, each inner solve
// warm-started from the last.
#ifndef MKTCAUSAL_SYNTH_H
#define MKTCAUSAL_SYNTH_H

#include <Eigen/Dense>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <vector>

namespace mkt {

struct SimplexResult {
  Eigen::VectorXd w;
  int iterations = 0;     // major (vertex-adding) steps
  bool converged = false;
  bool stopped = false;   // stop() asked the solver to give up (a user interrupt)
  double kkt = 0.0;       // KKT residual relative to the largest column norm
  double objective = 0.0; // ||Z w||^2 + eta ||w||^2
};

// A request to stop, polled by the long loops between steps: null (never),
// or a function that returns true once the user has asked to stop. The
// kernels never ask R themselves; the shim decides who may (the main thread).
using StopFn = std::function<bool()>;

inline bool stop_requested(const StopFn* stop) { return stop && (*stop)(); }

// Minimum-norm point of the hull of the columns of Z (m x J), with ridge eta.
// tol is relative to the largest squared column norm. w0 (length J, or
// empty) is a warm start whose support seeds S when it is affinely
// independent. `stop` is polled once per step (a step costs O(m J) plus a
// small factorisation), so a large problem can be abandoned mid-way; the
// result then has stopped = true and is not an optimum.
inline SimplexResult simplex_min_norm(const Eigen::MatrixXd& Z, double eta,
                                      const Eigen::VectorXd& w0, double tol,
                                      int max_iter, const StopFn* stop = nullptr) {
  const int J = static_cast<int>(Z.cols());
  SimplexResult out;
  out.w = Eigen::VectorXd::Zero(J);
  if (J == 1) {
    out.w(0) = 1.0;
    out.converged = true;
    out.objective = Z.col(0).squaredNorm() + eta;
    return out;
  }
  Eigen::VectorXd norm2 = Z.colwise().squaredNorm().transpose();
  norm2.array() += eta;
  const double scale = std::max(norm2.maxCoeff(), std::numeric_limits<double>::min());
  const double gap_tol = tol * scale;

  std::vector<int> S;
  Eigen::VectorXd wS;  // weights of the members of S, in order
  std::vector<char> in_s(J, 0);

  // Gram matrix of the members of S, kept in step with S so that each step
  // costs O(|S| m) for the new column instead of O(|S|^2 m).
  Eigen::MatrixXd Gs;
  auto rebuild_gram = [&]() {
    const int m = static_cast<int>(S.size());
    Gs.resize(m, m);
    for (int a = 0; a < m; ++a)
      for (int b = 0; b <= a; ++b) Gs(a, b) = Gs(b, a) = Z.col(S[a]).dot(Z.col(S[b]));
  };
  auto add_member = [&](int j) {
    const int m = static_cast<int>(S.size());
    Gs.conservativeResize(m + 1, m + 1);
    for (int a = 0; a < m; ++a) Gs(a, m) = Gs(m, a) = Z.col(S[a]).dot(Z.col(j));
    Gs(m, m) = Z.col(j).squaredNorm();
    S.push_back(j);
  };
  auto keep_members = [&](const std::vector<int>& pos) {
    const int m = static_cast<int>(pos.size());
    Eigen::MatrixXd G2(m, m);
    std::vector<int> S2(m);
    for (int a = 0; a < m; ++a) {
      S2[a] = S[pos[a]];
      for (int b = 0; b < m; ++b) G2(a, b) = Gs(pos[a], pos[b]);
    }
    S = S2;
    Gs = G2;
  };

  // Bordered solve of the affine minimiser of S: [Q 1; 1' 0][v; mu] = [0; 1].
  // Q is divided by the data's scale, which leaves v unchanged and keeps the
  // system balanced whatever the units of the outcome.
  auto affine_min = [&](Eigen::VectorXd& v) -> bool {
    const int m = static_cast<int>(S.size());
    Eigen::MatrixXd B = Eigen::MatrixXd::Zero(m + 1, m + 1);
    B.topLeftCorner(m, m) = Gs / scale;
    B.topLeftCorner(m, m).diagonal().array() += eta / scale;
    B.block(0, m, m, 1).setOnes();
    B.block(m, 0, 1, m).setOnes();
    Eigen::VectorXd rhs = Eigen::VectorXd::Zero(m + 1);
    rhs(m) = 1.0;
    // Partial pivoting suffices for this small balanced system; a tiny
    // reciprocal condition number means S lost affine independence.
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(B);
    if (!(lu.rcond() > 1e-13)) return false;
    Eigen::VectorXd sol = lu.solve(rhs);
    if (!sol.allFinite()) return false;
    v = sol.head(m);
    return true;
  };

  // Warm start: the support of w0 if it is a valid corral, else the vertex
  // of smallest norm.
  bool warm = false;
  if (w0.size() == J && (w0.array() > 0).any()) {
    for (int j = 0; j < J; ++j)
      if (w0(j) > 0) S.push_back(j);
    rebuild_gram();
    Eigen::VectorXd v;
    if (static_cast<int>(S.size()) <= Z.rows() + 1 + (eta > 0 ? J : 0) && affine_min(v)) {
      wS.resize(S.size());
      for (size_t a = 0; a < S.size(); ++a) wS(a) = w0(S[a]);
      wS /= wS.sum();
      for (int j : S) in_s[j] = 1;
      warm = true;
    } else {
      S.clear();
    }
  }
  if (!warm) {
    int j0 = 0;
    norm2.minCoeff(&j0);
    S.assign(1, j0);
    rebuild_gram();
    wS = Eigen::VectorXd::Ones(1);
    in_s[j0] = 1;
  }

  Eigen::VectorXd x(Z.rows()), g(J), v;
  bool stalled = false;
  // Rounding can stop the exact algorithm a little short of gap_tol; a
  // relative gap of 1e-9 is still an optimum to the precision of the data.
  const double loose_tol = std::max(gap_tol, 1e-9 * scale);
  bool need_minor = warm;  // a warm support starts at its own affine minimiser
  int iter = 0;
  for (;;) {
    if (need_minor) {
      // Minor cycle: move to the affine minimiser of S, dropping members whose
      // weight would turn negative, until the minimiser lies inside hull(S).
      for (int guard = 0; guard < 4 * J + 10; ++guard) {
        if (stop_requested(stop)) {
          out.stopped = true;
          break;
        }
        if (!affine_min(v)) {
          // S lost affine independence to rounding: drop its newest member
          // and stop, since adding it again would cycle.
          stalled = true;
          in_s[S.back()] = 0;
          S.pop_back();
          Gs.conservativeResize(S.size(), S.size());
          Eigen::VectorXd keep = wS.head(S.size());
          wS = keep / keep.sum();
          break;
        }
        if ((v.array() > 1e-15).all()) {
          wS = v;
          break;
        }
        double theta = 1.0;
        for (int a = 0; a < v.size(); ++a) {
          if (v(a) <= 1e-15) {
            const double denom = wS(a) - v(a);
            if (denom > 0) theta = std::min(theta, wS(a) / denom);
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
        if (pos.empty()) {  // cannot happen in exact arithmetic; keep the best vertex
          int a_best = 0;
          wn.maxCoeff(&a_best);
          pos.push_back(a_best);
          w2.push_back(1.0);
          in_s[S[a_best]] = 1;
        }
        keep_members(pos);
        wS = Eigen::Map<Eigen::VectorXd>(w2.data(), static_cast<Eigen::Index>(w2.size()));
        wS /= wS.sum();
      }
    }
    x.setZero();
    for (size_t a = 0; a < S.size(); ++a) x.noalias() += wS(a) * Z.col(S[a]);
    g.noalias() = Z.transpose() * x;
    double wnorm2 = 0.0;
    for (size_t a = 0; a < S.size(); ++a) {
      g(S[a]) += eta * wS(a);
      wnorm2 += wS(a) * wS(a);
    }
    const double xx = x.squaredNorm() + eta * wnorm2;
    int j = 0;
    const double gmin = g.minCoeff(&j);
    if (!out.stopped && stop_requested(stop)) out.stopped = true;
    if (xx - gmin <= gap_tol || in_s[j] || stalled || iter >= max_iter || out.stopped) {
      out.converged = !out.stopped &&
                      xx - gmin <= ((in_s[j] || stalled) ? loose_tol : gap_tol);
      double kkt = std::max(0.0, xx - gmin);
      for (int s : S) kkt = std::max(kkt, std::abs(g(s) - xx));
      out.kkt = kkt / scale;
      out.objective = xx;
      break;
    }
    add_member(j);
    in_s[j] = 1;
    Eigen::VectorXd w2(wS.size() + 1);
    w2.head(wS.size()) = wS;
    w2(wS.size()) = 0.0;
    wS = w2;
    need_minor = true;
    ++iter;
  }
  for (size_t a = 0; a < S.size(); ++a) out.w(S[a]) = wS(a);
  out.iterations = iter;
  return out;
}

// Least squares on the simplex: min ||y - X w||^2 + eta ||w||^2.
inline SimplexResult simplex_ls(const Eigen::MatrixXd& X, const Eigen::VectorXd& y,
                                double eta, const Eigen::VectorXd& w0, double tol,
                                int max_iter, const StopFn* stop = nullptr) {
  Eigen::MatrixXd Z = X.colwise() - y;
  return simplex_min_norm(Z, eta, w0, tol, max_iter, stop);
}

struct NestedResult {
  Eigen::VectorXd v;        // predictor weights, summing to 1
  Eigen::VectorXd w;        // donor weights at v
  double loss = 0.0;        // pre-period outcome MSPE at (v, w)
  Eigen::VectorXd start_loss;  // best loss reached from each start
  int evaluations = 0;      // inner solves
  bool inner_converged = true;
  double inner_kkt = 0.0;
  // Each start's last Nelder-Mead run stopped on its tolerance, not on the
  // evaluation cap. A capped run may have stopped short of a better V.
  bool v_converged = true;
  int capped_starts = 0;
};

// Pre-period outcome MSPE of the weights that predictor weights v give.
// X1: k predictors of the treated unit; X0: k x J donors (both already
// scaled); Y1, Y0: outcomes over the fit periods.
class NestedProblem {
 public:
  NestedProblem(const Eigen::VectorXd& X1, const Eigen::MatrixXd& X0,
                const Eigen::VectorXd& Y1, const Eigen::MatrixXd& Y0, double tol,
                int max_iter, const StopFn* stop)
      : D_(X0.colwise() - X1), Y1_(Y1), Y0_(Y0), tol_(tol), max_iter_(max_iter),
        stop_(stop) {}

  double loss(const Eigen::VectorXd& v, Eigen::VectorXd& w_warm, SimplexResult* keep) {
    Eigen::MatrixXd Zv = v.array().sqrt().matrix().asDiagonal() * D_;
    SimplexResult r = simplex_min_norm(Zv, 0.0, w_warm, tol_, max_iter_, stop_);
    ++evaluations;
    w_warm = r.w;
    if (keep) *keep = r;
    return (Y1_ - Y0_ * r.w).squaredNorm() / static_cast<double>(Y1_.size());
  }
  int evaluations = 0;

 private:
  Eigen::MatrixXd D_;
  Eigen::VectorXd Y1_;
  Eigen::MatrixXd Y0_;
  double tol_;
  int max_iter_;
  const StopFn* stop_;
};

// v = u^2 / sum(u^2): any real u maps onto the simplex and weights can reach 0.
inline Eigen::VectorXd to_simplex(const Eigen::VectorXd& u) {
  Eigen::VectorXd v = u.array().square().matrix();
  const double s = v.sum();
  if (!(s > 0)) return Eigen::VectorXd::Constant(u.size(), 1.0 / u.size());
  return v / s;
}

// Nelder-Mead on u from start u0; returns the best u found. `converged` says
// whether the run stopped because the simplex's values agreed to ftol
// (true) or because it used its max_eval evaluations (false).
template <class F>
inline Eigen::VectorXd nelder_mead(F&& f, const Eigen::VectorXd& u0, int max_eval,
                                   double ftol, double& fbest, bool& converged) {
  const int k = static_cast<int>(u0.size());
  std::vector<Eigen::VectorXd> P(k + 1, u0);
  std::vector<double> fv(k + 1);
  for (int i = 0; i < k; ++i) {
    const double step = std::max(0.1 * std::abs(u0(i)), 0.05);
    P[i + 1](i) += step;
  }
  int evals = 0;
  for (int i = 0; i <= k; ++i) {
    fv[i] = f(P[i]);
    ++evals;
  }
  converged = false;
  std::vector<int> ord(k + 1);
  for (;;) {
    for (int i = 0; i <= k; ++i) ord[i] = i;
    std::sort(ord.begin(), ord.end(), [&](int a, int b) { return fv[a] < fv[b]; });
    const int best = ord[0], worst = ord[k], second = ord[k - 1];
    if (std::abs(fv[worst] - fv[best]) <= ftol * (std::abs(fv[best]) + 1e-300)) {
      converged = true;
      break;
    }
    if (evals >= max_eval) break;
    Eigen::VectorXd c = Eigen::VectorXd::Zero(k);
    for (int i = 0; i <= k; ++i)
      if (i != worst) c += P[i];
    c /= k;
    Eigen::VectorXd xr = c + (c - P[worst]);
    const double fr = f(xr);
    ++evals;
    if (fr < fv[best]) {
      Eigen::VectorXd xe = c + 2.0 * (c - P[worst]);
      const double fe = f(xe);
      ++evals;
      if (fe < fr) {
        P[worst] = xe;
        fv[worst] = fe;
      } else {
        P[worst] = xr;
        fv[worst] = fr;
      }
    } else if (fr < fv[second]) {
      P[worst] = xr;
      fv[worst] = fr;
    } else {
      const bool outside = fr < fv[worst];
      Eigen::VectorXd xc = outside ? Eigen::VectorXd(c + 0.5 * (xr - c))
                                   : Eigen::VectorXd(c + 0.5 * (P[worst] - c));
      const double fc = f(xc);
      ++evals;
      if (fc < (outside ? fr : fv[worst])) {
        P[worst] = xc;
        fv[worst] = fc;
      } else {
        for (int i = 0; i <= k; ++i) {
          if (i == best) continue;
          P[i] = P[best] + 0.5 * (P[i] - P[best]);
          fv[i] = f(P[i]);
          ++evals;
        }
      }
    }
  }
  int b = 0;
  for (int i = 1; i <= k; ++i)
    if (fv[i] < fv[b]) b = i;
  fbest = fv[b];
  return P[b];
}

// Nested V search from each column of `starts` (k x n_start, each on the
// simplex). Each start runs Nelder-Mead, then restarts it once from its own
// optimum (a standard guard against a collapsed simplex); max_eval caps the
// evaluations of each run. `poll` runs on the calling thread before every
// evaluation (it may throw on a user interrupt: nothing here is parallel);
// `stop` reaches the inner solver, so that a large inner problem is
// abandoned too.
template <class Poll>
inline NestedResult nested_v(const Eigen::VectorXd& X1, const Eigen::MatrixXd& X0,
                             const Eigen::VectorXd& Y1, const Eigen::MatrixXd& Y0,
                             const Eigen::MatrixXd& starts, double tol, int max_iter,
                             int max_eval, double ftol, Poll&& poll,
                             const StopFn* stop = nullptr) {
  NestedProblem prob(X1, X0, Y1, Y0, tol, max_iter, stop);
  const int k = static_cast<int>(X1.size());
  NestedResult out;
  out.start_loss.resize(starts.cols());
  double best = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_v = Eigen::VectorXd::Constant(k, 1.0 / k);
  Eigen::VectorXd warm;
  // The inner weights need not be unique when the treated unit lies inside
  // the donors' predictor hull, so the best (v, w) pair met is kept as is.
  Eigen::VectorXd best_w;
  SimplexResult r;
  auto f = [&](const Eigen::VectorXd& u) {
    poll();
    const Eigen::VectorXd v = to_simplex(u);
    const double l = prob.loss(v, warm, &r);
    if (l < best) {
      best = l;
      best_v = v;
      best_w = r.w;
      out.inner_converged = r.converged;
      out.inner_kkt = r.kkt;
    }
    return l;
  };
  for (int s = 0; s < starts.cols(); ++s) {
    Eigen::VectorXd u = starts.col(s).array().sqrt().matrix();
    double fb = f(u);
    bool converged = true;
    if (k > 1) {
      for (int round = 0; round < 2; ++round) {
        u = nelder_mead(f, u, max_eval, ftol, fb, converged);
      }
    }
    if (!converged) ++out.capped_starts;
    out.start_loss(s) = fb;
  }
  out.v_converged = out.capped_starts == 0;
  out.loss = best;
  out.v = best_v;
  out.w = best_w;
  out.evaluations = prob.evaluations;
  return out;
}

// Placebo in space for the outcome-only synthetic control (Abadie, Diamond
// and Hainmueller 2010): each row k of Y (J units x T periods, complete) in
// turn plays the treated unit and is fitted on the first n_pre periods from
// the other J - 1 rows. The problems are independent and each is solved
// exactly, so the answer does not depend on the number of threads.
//
// Threads pay only when the loop is long enough to amortise waking them: the
// first problems are solved on the calling thread and timed, and when the
// whole loop would take less than `serial_seconds` at that pace it stays on
// one thread. Otherwise the problems run in rounds of about a quarter of a
// second, each on one thread or in one parallel region on all of them,
// whichever has been measured faster (not many small regions, whose barriers
// cost idle threads their spin on a busy machine); between rounds
// `progress(done)` runs on the calling thread. Inside a region the calling thread (thread 0) polls
// `interrupted()` and raises a flag that every solver polls, so an interrupt
// stops the loop within one solver step; the caller turns `interrupted` into
// an R interrupt after the region. The work matrices of each thread are
// allocated before any region; a failure inside a problem (memory exhaustion
// in the solver's small work arrays) is recorded and raised after the region.
struct PlaceboResult {
  Eigen::MatrixXd gaps;          // T x J: unit k's gap in column k
  std::vector<int> converged;    // per problem
  Eigen::VectorXd kkt;           // per problem
  bool failed = false;
  bool interrupted = false;
  int threads_used = 1;          // threads of the widest round
};

template <class Progress>
inline PlaceboResult placebo_in_space(const Eigen::MatrixXd& Y, int n_pre, double tol,
                                      int max_iter, int threads, double serial_seconds,
                                      const StopFn& interrupted, Progress&& progress) {
  using clock = std::chrono::steady_clock;
  const int J = static_cast<int>(Y.rows());
  const int T = static_cast<int>(Y.cols());
  PlaceboResult out;
  out.gaps.setZero(T, J);
  out.converged.assign(J, 0);
  out.kkt.setZero(J);
  if (J < 2) return out;
  threads = std::max(1, std::min(threads, J));
  const Eigen::MatrixXd P = Y.leftCols(n_pre).transpose();  // n_pre x J
  std::vector<Eigen::MatrixXd> Z(threads, Eigen::MatrixXd(n_pre, J - 1));
  std::atomic<bool> stop(false);
  std::atomic<int> failed(0);
  // Thread 0 is the caller's thread: it alone asks R.
  const StopFn main_stop = [&]() {
    if (stop.load(std::memory_order_relaxed)) return true;
    if (interrupted()) stop.store(true);
    return stop.load(std::memory_order_relaxed);
  };
  const StopFn worker_stop = [&]() { return stop.load(std::memory_order_relaxed); };

  auto solve = [&](int k, int id) {
    try {
      Eigen::MatrixXd& Zk = Z[id];
      for (int j = 0, c = 0; j < J; ++j) {
        if (j == k) continue;
        Zk.col(c++) = P.col(j) - P.col(k);
      }
      const SimplexResult r = simplex_min_norm(Zk, 0.0, Eigen::VectorXd(), tol, max_iter,
                                               id == 0 ? &main_stop : &worker_stop);
      for (int t = 0; t < T; ++t) {
        double s = 0.0;
        for (int j = 0, c = 0; j < J; ++j) {
          if (j == k) continue;
          s += r.w(c++) * Y(j, t);
        }
        out.gaps(t, k) = Y(k, t) - s;
      }
      out.converged[k] = r.converged ? 1 : 0;
      out.kkt(k) = r.kkt;
    } catch (...) {
      failed.store(1);
    }
  };

  // Problems per second on one thread and on all of them, as measured so
  // far (0: not yet). A busy machine can give the process no more CPU for
  // two threads than for one (a fair share per session), and then two
  // threads only add the waits at the end of each region. So the loop first
  // times a few problems on this thread (about 50 ms; when the whole loop
  // would take less than serial_seconds at that pace it stays here), then as
  // many on the threads; after that each round runs in the mode measured
  // faster, where the threads must beat one by 15% (the noise of a busy
  // machine is no reason to wake them), and every 12th round probes the other
  // mode for 50 ms, since the load changes.
  // A negative serial_seconds puts every round on the threads (for tests
  // and benchmarks of the parallel path).
  const bool forced = serial_seconds < 0 && threads > 1;
  double rate[2] = {0.0, 0.0};
  int start = 0;
  for (int round = forced ? 1 : 0; start < J && !stop.load() && !failed.load(); ++round) {
    int mode = 0;
    bool probe = round <= 1;
    if (forced) {
      mode = 1;
      probe = false;
    } else if (round == 1) {
      if (rate[0] > 0 && (J - start) / rate[0] < serial_seconds) threads = 1;
      mode = threads > 1 ? 1 : 0;
    } else if (round > 1 && threads > 1) {
      const int best = rate[1] > 1.15 * rate[0] ? 1 : 0;
      probe = round % 12 == 0;
      mode = probe ? 1 - best : best;
    }
    if (mode == 1) out.threads_used = threads;
    // A quarter of a second a round (a twentieth for the first and for a
    // probe), at least one problem a thread.
    const double r = rate[mode] > 0 ? rate[mode] : rate[0] * threads;
    const double secs_target = probe ? 0.05 : 0.25;
    int size = 1;
    if (round == 0) {
      size = J;  // stopped by time below
    } else {
      const double target = r > 0 ? secs_target * r : static_cast<double>(J);
      size = static_cast<int>(
          std::min<double>(J - start, std::max<double>(mode == 1 ? threads : 1, target)));
    }
    int end = start + size;
    const clock::time_point t_round = clock::now();
    if (mode == 1) {
      std::atomic<int> finished(0);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
      {
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
#endif
        for (int k = start; k < end; ++k) {
          if (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
            solve(k, id);
          }
          finished.fetch_add(1);
        }
        // Out of problems, the calling thread keeps polling while the others
        // finish theirs, so a long last problem still stops on an interrupt.
        if (id == 0) {
          while (finished.load() < size) {
            main_stop();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }
      }
    } else {
      for (int k = start; k < end && !stop.load() && !failed.load(); ++k) {
        solve(k, 0);
        // The first round stops after about 50 ms.
        if (round == 0 &&
            std::chrono::duration<double>(clock::now() - t_round).count() >= secs_target) {
          end = k + 1;
          size = end - start;
        }
      }
    }
    const double secs = std::chrono::duration<double>(clock::now() - t_round).count();
    if (secs > 0) rate[mode] = rate[mode] > 0 ? 0.5 * rate[mode] + 0.5 * size / secs : size / secs;
    start = end;
    if (!stop.load() && !failed.load()) progress(start);
  }
  out.failed = failed.load() != 0;
  out.interrupted = stop.load();
  return out;
}

}  // namespace mkt

#endif  // MKTCAUSAL_SYNTH_H
