// Replicate loops of the interactive fixed effects family, free of R.
//
// A chunk of bootstrap or jackknife replicates runs here in one call, so the
// per-replicate cost is the fit alone (subsetting rows, imputing and
// averaging gaps in R cost more than the fit on small panels). Replicate b
// draws its units from its own xoshiro256++ stream, derived from the seed R
// drew and b itself: the draws depend on neither the chunking nor the plan.
#ifndef MKTCAUSAL_IFE_RESAMPLE_H
#define MKTCAUSAL_IFE_RESAMPLE_H

#include <Eigen/Dense>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ife.h"
#include "rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mkt {
namespace ife {

// --- replicates on threads ----------------------------------------------------
//
// A chunk's replicates are independent fits, each run whole by one thread
// from its own stream (seed, replicate index): the answer is the same for
// any number of threads. Replicates are handed out one at a time, so a
// thread slowed by other work on its core takes fewer of them and two
// threads are never slower than one. `interrupted()` asks R whether the user
// pressed Ctrl-C without jumping out of C++; only the calling thread (thread
// 0 of the team) calls it, between the iterations of its own fits and, once
// it has no replicate left, every few milliseconds while the others finish.
// Each fit's poll throws Stopped once the flag is set, so every thread stops
// within an iteration. Nothing escapes the parallel region: a replicate that
// fails in an unexpected way (out of memory) stops the chunk and becomes an
// error after the region.

struct Stopped {};

// Runs body(b, poll) for b in 0..B-1; body catches its own expected failures
// (std::runtime_error: a replicate with collinear regressors). Returns true
// when interrupted; throws std::runtime_error after the region when a
// replicate failed otherwise.
template <class Body, class Interrupt>
bool parallel_replicates(Eigen::Index B, int threads, Interrupt& interrupted, Body body) {
  std::atomic<bool> stop(false), crashed(false);
  std::atomic<Eigen::Index> next(0), finished(0);
  threads = static_cast<int>(std::max<Eigen::Index>(1, std::min<Eigen::Index>(threads, B)));
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    auto poll = [&stop, &interrupted, tid]() {
      if (tid == 0 && interrupted()) stop.store(true);
      if (stop.load(std::memory_order_relaxed)) throw Stopped();
    };
    for (;;) {
      const Eigen::Index b = next.fetch_add(1);
      if (b >= B) break;
      if (!stop.load(std::memory_order_relaxed)) {
        try {
          poll();
          body(b, poll);
        } catch (const Stopped&) {
        } catch (...) {
          crashed.store(true);
          stop.store(true);
        }
      }
      finished.fetch_add(1);
    }
    if (tid == 0) {
      while (finished.load() < B) {
        if (interrupted()) stop.store(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  if (crashed.load()) {
    throw std::runtime_error("a replicate fit failed (out of memory?); use fewer threads");
  }
  return stop.load();
}

// The treatment structure of a panel for counterfactual(): which cells are
// fitted, which are treated, placebo or pre-treatment, and event times.
struct Layout {
  MatrixXd Y, obs, fit_mask, pre, treated, placebo;  // N x T, 0/1 except Y
  Eigen::MatrixXi event;                            // N x T, valid where ever
  std::vector<int> ever;                            // N, 0/1
  std::vector<MatrixXd> X;                          // p, each N x T
};

// How each replicate is fitted: em = false is Xu's (2017) estimator (the
// factors from the never-treated rows, loadings of treated rows projected
// from their pre-periods); em = true fits every row on its fit_mask cells.
struct ReplicateSpec {
  Control ctl;
  bool em = false;
  MatrixXd F0;        // warm start (empty for none)
  VectorXd beta0;     // warm start (empty for none)
  std::vector<int> event_keys;  // event times reported, in order
};

// Estimands of one replicate; NaN where a group has no cell (or a gap is not
// finite, as an NA propagates through R's mean()).
struct ReplicateStats {
  double att, placebo;
  VectorXd event, period, unit;  // by key, by column, by original unit
};

// Rows of a bootstrap replicate: the ever-treated and the never-treated
// units resampled separately, treated first.
inline std::vector<int> boot_rows(const std::vector<int>& tr, const std::vector<int>& co,
                                  Xoshiro256pp& rng) {
  std::vector<int> u;
  u.reserve(tr.size() + co.size());
  for (size_t j = 0; j < tr.size(); ++j) u.push_back(tr[rng.below(static_cast<uint32_t>(tr.size()))]);
  for (size_t j = 0; j < co.size(); ++j) u.push_back(co[rng.below(static_cast<uint32_t>(co.size()))]);
  return u;
}

inline MatrixXd take_rows(const MatrixXd& A, const std::vector<int>& u) {
  MatrixXd out(static_cast<Eigen::Index>(u.size()), A.cols());
  for (size_t j = 0; j < u.size(); ++j) out.row(static_cast<Eigen::Index>(j)) = A.row(u[j]);
  return out;
}

inline std::vector<MatrixXd> take_rows(const std::vector<MatrixXd>& A, const std::vector<int>& u) {
  std::vector<MatrixXd> out;
  out.reserve(A.size());
  for (const MatrixXd& a : A) out.push_back(take_rows(a, u));
  return out;
}

// Imputed untreated outcomes of the rows u (y0 rows in the order of u; only
// the ever-treated rows are filled without EM, the others are not used).
// Throws when a fit fails (collinear covariates in the replicate, ...).
template <class Poll>
MatrixXd impute_rows(const Layout& lay, const MatrixXd& Y, const ReplicateSpec& spec,
                     const std::vector<int>& u, Poll poll) {
  const Eigen::Index T = lay.Y.cols();
  const MatrixXd empty;
  const VectorXd none;
  const bool warm_f = !spec.ctl.soft && spec.ctl.r > 0;
  const MatrixXd& F0 = warm_f ? spec.F0 : empty;
  const VectorXd& beta0 = spec.ctl.soft ? none : spec.beta0;
  if (spec.em) {
    const Fit f = fit(take_rows(Y, u), take_rows(lay.fit_mask, u), take_rows(lay.X, u),
                      spec.ctl, F0, beta0, empty, poll);
    return f.fit;
  }
  std::vector<int> co, tr;  // positions within u
  for (size_t j = 0; j < u.size(); ++j) (lay.ever[u[j]] ? tr : co).push_back(static_cast<int>(j));
  std::vector<int> uc, ut;
  for (int j : co) uc.push_back(u[j]);
  for (int j : tr) ut.push_back(u[j]);
  const Fit f = fit(take_rows(Y, uc), take_rows(lay.fit_mask, uc), take_rows(lay.X, uc),
                    spec.ctl, F0, beta0, empty, poll);
  MatrixXd coefs;
  std::vector<int> status;
  const MatrixXd yt = project(take_rows(Y, ut), take_rows(lay.pre, ut), take_rows(lay.X, ut),
                              f.beta, f.mu, f.xi, f.F, spec.ctl.force, coefs, status);
  MatrixXd y0 = MatrixXd::Constant(static_cast<Eigen::Index>(u.size()), T,
                                   std::numeric_limits<double>::quiet_NaN());
  for (size_t j = 0; j < tr.size(); ++j) {
    if (status[j] == 0) y0.row(tr[j]) = yt.row(static_cast<Eigen::Index>(j));
  }
  return y0;
}

// The estimands of a replicate with rows u and imputed y0, as cf_stats() in
// R/counterfactual.R computes them; unit estimates are averaged over the
// copies of each original unit.
inline ReplicateStats replicate_stats(const Layout& lay, const MatrixXd& Y,
                                      const ReplicateSpec& spec, const std::vector<int>& u,
                                      const MatrixXd& y0) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Eigen::Index N = lay.Y.rows(), T = lay.Y.cols();
  const int K = static_cast<int>(spec.event_keys.size());
  // Event times run from -(T - 1) to T - 1: a direct index into the keys.
  std::vector<int> key_of(2 * T + 1, -1);
  for (int k = 0; k < K; ++k) {
    const long e = spec.event_keys[k];
    if (e > -T && e < T) key_of[e + T] = k;
  }
  double att_s = 0, att_n = 0, pl_s = 0, pl_n = 0;
  VectorXd ev_s = VectorXd::Zero(K), ev_n = VectorXd::Zero(K);
  VectorXd pe_s = VectorXd::Zero(T), pe_n = VectorXd::Zero(T);
  VectorXd un_s = VectorXd::Zero(N), un_n = VectorXd::Zero(N);
  for (size_t j = 0; j < u.size(); ++j) {
    const int i = u[j];
    if (!lay.ever[i]) continue;
    double row_s = 0, row_n = 0;
    for (Eigen::Index t = 0; t < T; ++t) {
      if (lay.obs(i, t) < 0.5) continue;
      const bool tc = lay.treated(i, t) > 0.5;
      const int e = lay.event(i, t);
      const double gap = Y(i, t) - y0(static_cast<Eigen::Index>(j), t);
      if (tc) {
        att_s += gap; att_n += 1;
        pe_s[t] += gap; pe_n[t] += 1;
        row_s += gap; row_n += 1;
      }
      if (lay.placebo(i, t) > 0.5) { pl_s += gap; pl_n += 1; }
      if (tc || e < 0) {
        const int k = key_of[e + T];
        if (k >= 0) { ev_s[k] += gap; ev_n[k] += 1; }
      }
    }
    if (row_n > 0) { un_s[i] += row_s / row_n; un_n[i] += 1; }
  }
  ReplicateStats s;
  s.att = att_n > 0 ? att_s / att_n : nan;
  s.placebo = pl_n > 0 ? pl_s / pl_n : nan;
  s.event = VectorXd::Constant(K, nan);
  for (int k = 0; k < K; ++k) if (ev_n[k] > 0) s.event[k] = ev_s[k] / ev_n[k];
  s.period = VectorXd::Constant(T, nan);
  for (Eigen::Index t = 0; t < T; ++t) if (pe_n[t] > 0) s.period[t] = pe_s[t] / pe_n[t];
  s.unit = VectorXd::Constant(N, nan);
  for (Eigen::Index i = 0; i < N; ++i) if (un_n[i] > 0) s.unit[i] = un_s[i] / un_n[i];
  return s;
}

// Results of a chunk of counterfactual replicates: one row per replicate.
struct ChunkResult {
  VectorXd att, placebo;
  MatrixXd event, period, unit;
  std::vector<int> failed;
  ChunkResult(Eigen::Index B, Eigen::Index K, Eigen::Index T, Eigen::Index N) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    att = VectorXd::Constant(B, nan);
    placebo = VectorXd::Constant(B, nan);
    event = MatrixXd::Constant(B, K, nan);
    period = MatrixXd::Constant(B, T, nan);
    unit = MatrixXd::Constant(B, N, nan);
    failed.assign(B, 0);
  }
  void store(Eigen::Index b, const ReplicateStats& s) {
    att[b] = s.att;
    placebo[b] = s.placebo;
    event.row(b) = s.event.transpose();
    period.row(b) = s.period.transpose();
    unit.row(b) = s.unit.transpose();
  }
};

// Replicates `reps` (1-based indices into the whole run): the unit bootstrap
// (jackknife = false; stream b of `seed`) or leave-one-out (replicate b
// drops unit b). A replicate whose fit throws is marked failed, its row NaN.
template <class Interrupt>
ChunkResult cf_chunk(const Layout& lay, const ReplicateSpec& spec, const std::vector<int>& reps,
                     bool jackknife, uint64_t seed, int threads, Interrupt& interrupted,
                     bool& was_interrupted) {
  const Eigen::Index N = lay.Y.rows(), T = lay.Y.cols();
  const Eigen::Index B = static_cast<Eigen::Index>(reps.size());
  const Eigen::Index K = static_cast<Eigen::Index>(spec.event_keys.size());
  ChunkResult out(B, K, T, N);
  std::vector<int> tr, co;
  for (Eigen::Index i = 0; i < N; ++i) (lay.ever[i] ? tr : co).push_back(static_cast<int>(i));
  was_interrupted = parallel_replicates(B, threads, interrupted, [&](Eigen::Index b, auto& poll) {
    std::vector<int> u;
    if (jackknife) {
      for (int i = 0; i < N; ++i) if (i != reps[b] - 1) u.push_back(i);
    } else {
      Xoshiro256pp rng(seed, static_cast<uint64_t>(reps[b]));
      u = boot_rows(tr, co, rng);
    }
    MatrixXd y0;
    try {
      y0 = impute_rows(lay, lay.Y, spec, u, poll);
    } catch (const std::runtime_error&) {
      out.failed[b] = 1;
      return;
    }
    out.store(b, replicate_stats(lay, lay.Y, spec, u, y0));
  });
  return out;
}

// Step 1 of Xu's (2017) parametric bootstrap, replicates `reps`: replicate
// m holds out a random never-treated unit as if it were the treated unit
// pattern[m] (0-based row, cycling over the treated units), refits on a
// resample of the other never-treated units and returns the held-out
// unit's prediction errors (0 on unobserved cells; a NaN row when the fit
// or the projection fails).
template <class Interrupt>
MatrixXd param_errors_chunk(const Layout& lay, const ReplicateSpec& spec,
                            const std::vector<int>& reps, const std::vector<int>& pattern,
                            uint64_t seed, int threads, Interrupt& interrupted,
                            bool& was_interrupted) {
  const Eigen::Index N = lay.Y.rows(), T = lay.Y.cols();
  const Eigen::Index B = static_cast<Eigen::Index>(reps.size());
  MatrixXd out = MatrixXd::Constant(B, T, std::numeric_limits<double>::quiet_NaN());
  std::vector<int> co;
  for (Eigen::Index i = 0; i < N; ++i) if (!lay.ever[i]) co.push_back(static_cast<int>(i));
  const MatrixXd empty;
  const MatrixXd& F0 = spec.ctl.r > 0 ? spec.F0 : empty;
  was_interrupted = parallel_replicates(B, threads, interrupted, [&](Eigen::Index b, auto& poll) {
    Xoshiro256pp rng(seed, static_cast<uint64_t>(reps[b]));
    const int c0 = co[rng.below(static_cast<uint32_t>(co.size()))];
    std::vector<int> rest;
    for (int i : co) if (i != c0) rest.push_back(i);
    std::vector<int> u(rest.size());
    for (size_t j = 0; j < rest.size(); ++j) u[j] = rest[rng.below(static_cast<uint32_t>(rest.size()))];
    const int j = pattern[b];
    try {
      const Fit f = fit(take_rows(lay.Y, u), take_rows(lay.fit_mask, u), take_rows(lay.X, u),
                        spec.ctl, F0, spec.beta0, empty, poll);
      const std::vector<int> one(1, c0);
      MatrixXd pre = take_rows(lay.obs, one);
      for (Eigen::Index t = 0; t < T; ++t) pre(0, t) = (pre(0, t) > 0.5 && lay.pre(j, t) > 0.5) ? 1.0 : 0.0;
      MatrixXd coefs;
      std::vector<int> status;
      const MatrixXd y0 = project(take_rows(lay.Y, one), pre, take_rows(lay.X, one), f.beta, f.mu,
                                 f.xi, f.F, spec.ctl.force, coefs, status);
      if (status[0] != 0) return;
      for (Eigen::Index t = 0; t < T; ++t)
        out(b, t) = lay.obs(c0, t) > 0.5 ? lay.Y(c0, t) - y0(0, t) : 0.0;
    } catch (const std::runtime_error&) {
      return;
    }
  });
  return out;
}

// Step 2 of the parametric bootstrap: replicate b rebuilds the panel as the
// main fit's untreated outcomes y0 plus errors (resampled residual rows of
// the never-treated units; for each treated unit one step-1 error row of
// its own pattern), so the effect is zero, and re-estimates. `errors` holds
// the complete step-1 rows and `error_unit` the treated row each belongs to.
template <class Interrupt>
ChunkResult param_boot_chunk(const Layout& lay, const ReplicateSpec& spec, const MatrixXd& y0_main,
                             const MatrixXd& resid, const MatrixXd& errors,
                             const std::vector<int>& error_unit, const std::vector<int>& reps,
                             uint64_t seed, int threads, Interrupt& interrupted,
                             bool& was_interrupted) {
  const Eigen::Index N = lay.Y.rows(), T = lay.Y.cols();
  const Eigen::Index B = static_cast<Eigen::Index>(reps.size());
  const Eigen::Index K = static_cast<Eigen::Index>(spec.event_keys.size());
  ChunkResult out(B, K, T, N);
  std::vector<int> tr, co;
  for (Eigen::Index i = 0; i < N; ++i) (lay.ever[i] ? tr : co).push_back(static_cast<int>(i));
  std::vector<std::vector<int>> pool(N);
  for (size_t e = 0; e < error_unit.size(); ++e) pool[error_unit[e]].push_back(static_cast<int>(e));
  std::vector<int> all(N);
  for (Eigen::Index i = 0; i < N; ++i) all[i] = static_cast<int>(i);
  was_interrupted = parallel_replicates(B, threads, interrupted, [&](Eigen::Index b, auto& poll) {
    Xoshiro256pp rng(seed, static_cast<uint64_t>(reps[b]));
    MatrixXd Yb = y0_main;
    for (int i : co) Yb.row(i) += resid.row(co[rng.below(static_cast<uint32_t>(co.size()))]);
    bool ok = true;
    for (int i : tr) {
      if (pool[i].empty()) { ok = false; break; }
      Yb.row(i) += errors.row(pool[i][rng.below(static_cast<uint32_t>(pool[i].size()))]);
    }
    if (!ok) { out.failed[b] = 1; return; }
    Yb = Yb.cwiseProduct(lay.obs);
    MatrixXd y0;
    try {
      y0 = impute_rows(lay, Yb, spec, all, poll);
    } catch (const std::runtime_error&) {
      out.failed[b] = 1;
      return;
    }
    out.store(b, replicate_stats(lay, Yb, spec, all, y0));
  });
  return out;
}

// ife()'s unit bootstrap: replicate b resamples all units from stream b of
// `seed` and refits warm-started; returns beta per row (NaN and failed when
// the replicate's fit throws).
template <class Interrupt>
MatrixXd ife_boot_chunk(const MatrixXd& Y, const MatrixXd& mask, const std::vector<MatrixXd>& X,
                        const Control& ctl, const MatrixXd& F0, const VectorXd& beta0,
                        const std::vector<int>& reps, uint64_t seed, std::vector<int>& failed,
                        int threads, Interrupt& interrupted, bool& was_interrupted) {
  const Eigen::Index N = Y.rows();
  const Eigen::Index B = static_cast<Eigen::Index>(reps.size());
  const Eigen::Index p = static_cast<Eigen::Index>(X.size());
  MatrixXd out = MatrixXd::Constant(B, p, std::numeric_limits<double>::quiet_NaN());
  failed.assign(B, 0);
  const MatrixXd empty;
  was_interrupted = parallel_replicates(B, threads, interrupted, [&](Eigen::Index b, auto& poll) {
    Xoshiro256pp rng(seed, static_cast<uint64_t>(reps[b]));
    std::vector<int> u(N);
    for (Eigen::Index j = 0; j < N; ++j) u[j] = static_cast<int>(rng.below(static_cast<uint32_t>(N)));
    try {
      const Fit f = fit(take_rows(Y, u), take_rows(mask, u), take_rows(X, u), ctl, F0, beta0,
                        empty, poll);
      out.row(b) = f.beta.transpose();
    } catch (const std::runtime_error&) {
      failed[b] = 1;
    }
  });
  return out;
}

}  // namespace ife
}  // namespace mkt

#endif  // MKTCAUSAL_IFE_RESAMPLE_H
