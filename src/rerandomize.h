// Candidate search for re-randomized designs (Morgan & Rubin 2012), free of R.
//
// The R side turns covariates into one k-vector z_j per cluster such that the
// balance criterion of an assignment is a function of s(W) = sum of z_j over
// the treated clusters: whitened (Mahalanobis, tiers) or standardized
// (maximum absolute standardized difference). z is centred within each
// stratum, so the sum over treated clusters equals minus the sum over
// controls, and each candidate only draws and sums the smaller arm of each
// stratum (a partial Fisher-Yates shuffle).
//
// Work is cut into blocks of `block_size` candidates. Block b always uses
// stream b of the seed and starts from the identity permutation, so the
// candidates, and which one is accepted first, do not depend on threads.
#ifndef MKTCAUSAL_RERANDOMIZE_H
#define MKTCAUSAL_RERANDOMIZE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "rng.h"

namespace mkt {

struct StrataSpec {
  std::vector<int> units;        // cluster indices, stratum by stratum
  std::vector<int> start;        // stratum s holds units[start[s] .. start[s+1])
  std::vector<int> n_small;      // size of the smaller arm in stratum s
  std::vector<int> small_treated;  // 1 if the smaller arm is the treated arm
  int n_strata() const { return static_cast<int>(start.size()) - 1; }
};

struct CriterionSpec {
  int type = 0;                   // 0: sum of squares by block; 1: max |s_k|
  std::vector<int> block_start;   // block b covers coordinates [bs[b], bs[b+1])
  std::vector<double> threshold;  // one per block (type 0) or one (type 1)
  int n_blocks() const { return static_cast<int>(block_start.size()) - 1; }
};

struct Scorer {
  const double* z;  // k x n, column j is cluster j
  int k;
  int n;
  const StrataSpec& strata;
  const CriterionSpec& crit;

  // Draws one candidate into perm (a permutation of `units` per stratum) and
  // returns its block values in `vals`; `s` is scratch of length k.
  inline void draw(Xoshiro256pp& rng, std::vector<int>& perm, double* s,
                   double* vals) const {
    switch (k) {  // a compile-time width lets the compiler unroll the sums
      case 1: draw_k<1>(rng, perm, s); break;
      case 2: draw_k<2>(rng, perm, s); break;
      case 3: draw_k<3>(rng, perm, s); break;
      case 4: draw_k<4>(rng, perm, s); break;
      case 5: draw_k<5>(rng, perm, s); break;
      case 6: draw_k<6>(rng, perm, s); break;
      case 7: draw_k<7>(rng, perm, s); break;
      case 8: draw_k<8>(rng, perm, s); break;
      default: draw_k<0>(rng, perm, s);
    }
    evaluate(s, vals);
  }

  template <int K>
  inline void draw_k(Xoshiro256pp& rng, std::vector<int>& perm, double* s) const {
    const int kk = K > 0 ? K : k;
    double acc[K > 0 ? K : 1];
    std::fill(s, s + k, 0.0);
    const int S = strata.n_strata();
    for (int st = 0; st < S; ++st) {
      const int a = strata.start[st];
      const int m = strata.start[st + 1] - a;
      const int take = strata.n_small[st];
      int* p = perm.data() + a;
      if (K > 0) {
        // Two accumulators halve the chain of dependent additions.
        double acc2[K > 0 ? K : 1];
        for (int c = 0; c < K; ++c) acc[c] = acc2[c] = 0.0;
        int i = 0;
        for (; i + 1 < take; i += 2) {
          const int j0 = i + static_cast<int>(rng.below(static_cast<uint32_t>(m - i)));
          const int u0 = p[j0];
          p[j0] = p[i];
          p[i] = u0;
          const int j1 = i + 1 + static_cast<int>(rng.below(static_cast<uint32_t>(m - i - 1)));
          const int u1 = p[j1];
          p[j1] = p[i + 1];
          p[i + 1] = u1;
          const double* z0 = z + static_cast<std::size_t>(u0) * K;
          const double* z1 = z + static_cast<std::size_t>(u1) * K;
// GCC does not unroll at R's default -O2; unrolled, the sums over the
// covariates vectorise (17% more candidates per second on one core).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
          for (int c = 0; c < K; ++c) {
            acc[c] += z0[c];
            acc2[c] += z1[c];
          }
        }
        if (i < take) {
          const int j = i + static_cast<int>(rng.below(static_cast<uint32_t>(m - i)));
          const int u = p[j];
          p[j] = p[i];
          p[i] = u;
          const double* zj = z + static_cast<std::size_t>(u) * K;
          for (int c = 0; c < K; ++c) acc[c] += zj[c];
        }
        for (int c = 0; c < K; ++c) acc[c] += acc2[c];
        if (strata.small_treated[st]) {
          for (int c = 0; c < K; ++c) s[c] += acc[c];
        } else {
          for (int c = 0; c < K; ++c) s[c] -= acc[c];
        }
      } else {
        const double sign = strata.small_treated[st] ? 1.0 : -1.0;
        for (int i = 0; i < take; ++i) {
          const int j = i + static_cast<int>(rng.below(static_cast<uint32_t>(m - i)));
          std::swap(p[i], p[j]);
          const double* zj = z + static_cast<std::size_t>(p[i]) * kk;
          for (int c = 0; c < kk; ++c) s[c] += sign * zj[c];
        }
      }
    }
  }

  inline void evaluate(const double* s, double* vals) const {
    if (crit.type == 0) {
      const int B = crit.n_blocks();
      for (int b = 0; b < B; ++b) {
        double acc = 0.0;
        for (int c = crit.block_start[b]; c < crit.block_start[b + 1]; ++c) acc += s[c] * s[c];
        vals[b] = acc;
      }
    } else {
      double mx = 0.0;
      for (int c = 0; c < k; ++c) mx = std::max(mx, std::fabs(s[c]));
      vals[0] = mx;
    }
  }

  inline bool accepted(const double* vals) const {
    const int B = crit.type == 0 ? crit.n_blocks() : 1;
    for (int b = 0; b < B; ++b) {
      if (!(vals[b] <= crit.threshold[b])) return false;
    }
    return true;
  }

  inline double total(const double* vals) const {
    if (crit.type != 0) return vals[0];
    double t = 0.0;
    for (int b = 0; b < crit.n_blocks(); ++b) t += vals[b];
    return t;
  }

  int n_values() const { return crit.type == 0 ? crit.n_blocks() : 1; }

  // Writes the 0/1 assignment that the current permutation encodes.
  void assignment(const std::vector<int>& perm, int* out) const {
    for (int st = 0; st < strata.n_strata(); ++st) {
      const int a = strata.start[st];
      const int b = strata.start[st + 1];
      const int take = strata.n_small[st];
      const int small_val = strata.small_treated[st] ? 1 : 0;
      for (int i = a; i < b; ++i) out[perm[i]] = (i - a < take) ? small_val : 1 - small_val;
    }
  }
};

// Result of one block: accepted candidates (as their within-block index and
// 0/1 assignment) and the best total criterion seen.
struct BlockResult {
  std::vector<int> accepted_index;
  std::vector<int> assignments;  // n per accepted candidate
  std::vector<double> values;    // n_values per accepted candidate
  double best = std::numeric_limits<double>::infinity();
  int64_t drawn = 0;
};

inline void run_block(const Scorer& sc, uint64_t seed, int64_t block, int64_t size,
                      int64_t max_accept, BlockResult& out) {
  Xoshiro256pp rng(seed, static_cast<uint64_t>(block));
  std::vector<int> perm(sc.strata.units);
  std::vector<double> s(sc.k), vals(sc.n_values());
  out = BlockResult();
  for (int64_t i = 0; i < size; ++i) {
    sc.draw(rng, perm, s.data(), vals.data());
    ++out.drawn;
    const double tot = sc.total(vals.data());
    if (tot < out.best) out.best = tot;
    if (sc.accepted(vals.data())) {
      out.accepted_index.push_back(static_cast<int>(i));
      const std::size_t off = out.assignments.size();
      out.assignments.resize(off + sc.n);
      sc.assignment(perm, out.assignments.data() + off);
      out.values.insert(out.values.end(), vals.begin(), vals.end());
      if (static_cast<int64_t>(out.accepted_index.size()) >= max_accept) return;
    }
  }
}

struct SearchResult {
  std::vector<int> assignments;  // n x n_found, column-major
  std::vector<double> values;    // n_values x n_found
  int64_t n_found = 0;
  int64_t candidates = 0;        // candidates drawn, in stream order, up to the last kept
  double best = std::numeric_limits<double>::infinity();
  bool interrupted = false;
};

// Collects the first `want` accepted candidates of the stream (in stream
// order), drawing at most `max_candidates`. `poll` runs on the calling
// thread between rounds and returns true to stop (a user interrupt).
template <class Poll>
SearchResult search(const Scorer& sc, uint64_t seed, int64_t want,
                    int64_t max_candidates, int64_t block_size, int threads,
                    Poll poll) {
  SearchResult res;
  const int64_t n_blocks_total = (max_candidates + block_size - 1) / block_size;
  const int64_t round = std::max<int64_t>(8, 2 * static_cast<int64_t>(threads));
  std::vector<BlockResult> blocks(static_cast<std::size_t>(round));
  int64_t next_block = 0;
  while (next_block < n_blocks_total && res.n_found < want) {
    const int64_t nb = std::min<int64_t>(round, n_blocks_total - next_block);
    const int64_t need = want - res.n_found;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
#endif
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t b = next_block + i;
      const int64_t size = std::min<int64_t>(block_size, max_candidates - b * block_size);
      run_block(sc, seed, b, size, need, blocks[static_cast<std::size_t>(i)]);
    }
    for (int64_t i = 0; i < nb && res.n_found < want; ++i) {
      const BlockResult& br = blocks[static_cast<std::size_t>(i)];
      const int64_t b = next_block + i;
      res.best = std::min(res.best, br.best);
      const int64_t take = std::min<int64_t>(want - res.n_found,
                                             static_cast<int64_t>(br.accepted_index.size()));
      res.assignments.insert(res.assignments.end(), br.assignments.begin(),
                             br.assignments.begin() + take * sc.n);
      res.values.insert(res.values.end(), br.values.begin(),
                        br.values.begin() + take * sc.n_values());
      res.n_found += take;
      if (res.n_found >= want && take > 0) {
        res.candidates = b * block_size + br.accepted_index[static_cast<std::size_t>(take - 1)] + 1;
      } else {
        res.candidates = b * block_size + br.drawn;
      }
    }
    next_block += nb;
    if (res.n_found < want && poll(res.candidates)) {
      res.interrupted = true;
      break;
    }
  }
  return res;
}

// Criterion values of `n_draws` candidates under the base design (complete or
// stratified randomization), for empirical thresholds and plots.
template <class Poll>
std::vector<double> score(const Scorer& sc, uint64_t seed, int64_t n_draws,
                          int64_t block_size, int threads, Poll poll, bool& interrupted) {
  const int nv = sc.n_values();
  std::vector<double> out(static_cast<std::size_t>(n_draws) * nv);
  const int64_t n_blocks_total = (n_draws + block_size - 1) / block_size;
  const int64_t round = std::max<int64_t>(8, 2 * static_cast<int64_t>(threads));
  interrupted = false;
  for (int64_t first = 0; first < n_blocks_total; first += round) {
    const int64_t nb = std::min<int64_t>(round, n_blocks_total - first);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
#endif
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t b = first + i;
      Xoshiro256pp rng(seed, static_cast<uint64_t>(b));
      std::vector<int> perm(sc.strata.units);
      std::vector<double> s(sc.k);
      const int64_t lo = b * block_size;
      const int64_t hi = std::min<int64_t>(n_draws, lo + block_size);
      for (int64_t d = lo; d < hi; ++d) sc.draw(rng, perm, s.data(), out.data() + d * nv);
    }
    if (first + nb < n_blocks_total && poll(first + nb)) {
      interrupted = true;
      break;
    }
  }
  return out;
}

// Every assignment of the base design, in lexicographic order within each
// stratum and an odometer across strata; keeps those the rule accepts.
struct Enumeration {
  std::vector<int> assignments;
  std::vector<double> values;
  int64_t n_total = 0;
  int64_t n_found = 0;
};

inline Enumeration enumerate(const Scorer& sc, const std::vector<int>& n_treated) {
  Enumeration res;
  const int S = sc.strata.n_strata();
  std::vector<std::vector<int>> comb(S);
  for (int st = 0; st < S; ++st) {
    comb[st].resize(n_treated[st]);
    for (int i = 0; i < n_treated[st]; ++i) comb[st][i] = i;
  }
  std::vector<int> w(sc.n);
  std::vector<double> s(sc.k), vals(sc.n_values());
  while (true) {
    std::fill(w.begin(), w.end(), 0);
    std::fill(s.begin(), s.end(), 0.0);
    for (int st = 0; st < S; ++st) {
      const int a = sc.strata.start[st];
      for (int idx : comb[st]) {
        const int j = sc.strata.units[a + idx];
        w[j] = 1;
        const double* zj = sc.z + static_cast<std::size_t>(j) * sc.k;
        for (int c = 0; c < sc.k; ++c) s[c] += zj[c];
      }
    }
    sc.evaluate(s.data(), vals.data());
    ++res.n_total;
    if (sc.accepted(vals.data())) {
      res.assignments.insert(res.assignments.end(), w.begin(), w.end());
      res.values.insert(res.values.end(), vals.begin(), vals.end());
      ++res.n_found;
    }
    // Advance the odometer: the last stratum moves fastest.
    int st = S - 1;
    for (; st >= 0; --st) {
      std::vector<int>& c = comb[st];
      const int m = sc.strata.start[st + 1] - sc.strata.start[st];
      const int r = static_cast<int>(c.size());
      int i = r - 1;
      while (i >= 0 && c[i] == m - r + i) --i;
      if (i >= 0) {
        ++c[i];
        for (int j = i + 1; j < r; ++j) c[j] = c[j - 1] + 1;
        break;
      }
      for (int j = 0; j < r; ++j) c[j] = j;  // wrap and carry
    }
    if (st < 0) break;
  }
  return res;
}

}  // namespace mkt

#endif
