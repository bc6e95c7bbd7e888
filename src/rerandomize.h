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
// Designs whose strata treat about half their clusters draw differently: a
// fair coin per cluster, then uniform corrections within each stratum until
// its treated count is right. Conditional on its count, a coin-flip subset is
// uniform, and removing (or adding) uniformly chosen members keeps it uniform,
// so the candidate is still a draw from complete (stratified) randomization.
// Its sum then takes one table lookup per 8 clusters instead of one addition
// per treated cluster. Which way a design draws depends only on its shape.
//
// A search for one assignment (rerandomize()) cuts its stream into blocks of
// `block_size` candidates. Block b always uses stream b of the seed and
// starts from the identity permutation, so the candidates, and which one is
// accepted first, do not depend on threads. Searches for many assignments
// (reference draws, simulations) give each replicate its own stream, indexed
// by the replicate's number in the resampling loop, so a replicate's
// assignment does not depend on the chunk it is drawn in either.
#ifndef MKTCAUSAL_RERANDOMIZE_H
#define MKTCAUSAL_RERANDOMIZE_H

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "lin_stats.h"
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

// Per-thread scratch of a candidate: the permutation (Fisher-Yates draws) or
// the treated bit mask over positions of `units` (coin-flip draws).
struct DrawState {
  std::vector<int> perm;
  std::vector<uint64_t> mask;
};

// Memory that threads write all the time must not share a cache line with
// another thread's (false sharing made two threads slower than one). Each
// thread's slice of a shared array is `padded(n)` doubles apart, and each
// thread's own vectors keep 128 bytes of spare capacity after their data.
inline std::size_t padded(std::size_t n) { return (n + 7) / 8 * 8 + 8; }

template <class T>
inline void pad(std::vector<T>& v) {
  v.reserve(v.size() + 128 / sizeof(T) + 1);
}

// Bit count without the library call that __builtin_popcountll becomes when
// the target does not promise a popcnt instruction (R's default flags).
inline int popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ULL;
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
}

struct Scorer {
  const double* z;  // k x n, column j is cluster j
  int k;
  int n;
  const StrataSpec& strata;
  const CriterionSpec& crit;
  bool coin_flips = false;     // draw by coin flips and corrections
  std::vector<int> n_treated;  // per stratum
  // table[(b * 256 + v) * k + c]: coordinate c of the sum of z over the
  // clusters at positions 8b .. 8b+7 whose bits are set in byte value v.
  std::vector<double> table;

  Scorer(const double* z_, int k_, int n_, const StrataSpec& strata_,
         const CriterionSpec& crit_)
      : z(z_), k(k_), n(n_), strata(strata_), crit(crit_) {
    const int S = strata.n_strata();
    n_treated.resize(S);
    double fisher_yates = 0.0, coins = n / 8.0;
    for (int st = 0; st < S; ++st) {
      const int m = strata.start[st + 1] - strata.start[st];
      const int small = strata.n_small[st];
      n_treated[st] = strata.small_treated[st] ? small : m - small;
      fisher_yates += small;
      // Expected corrections (|count - target|, each taking about two
      // tries) plus the per-stratum bit count.
      coins += 2.0 * (std::fabs(m / 2.0 - n_treated[st]) + 0.4 * std::sqrt(m)) + 1.0;
    }
    const double table_bytes = std::ceil(n / 8.0) * 256.0 * k * sizeof(double);
    coin_flips = n >= 16 && coins < 0.75 * fisher_yates && table_bytes <= 8.0 * 1024 * 1024;
    if (coin_flips) build_table();
  }

  // Back to the identity permutation (the mask needs nothing: every draw
  // overwrites it); never allocates.
  void reset_state(DrawState& state) const {
    if (!coin_flips) std::copy(strata.units.begin(), strata.units.end(), state.perm.begin());
  }

  DrawState new_state() const {
    DrawState state;
    if (coin_flips) {
      state.mask.assign(static_cast<std::size_t>((n + 63) / 64), 0);
      pad(state.mask);
    } else {
      state.perm = strata.units;
      pad(state.perm);
    }
    return state;
  }

  // Draws one candidate into `state` and returns its block values in
  // `vals`; `s` is scratch of length k.
  inline void draw(Xoshiro256pp& rng, DrawState& state, double* s, double* vals) const {
    if (coin_flips) {
      flip_coins(rng, state.mask);
      switch (k) {  // a compile-time width lets the compiler unroll the sums
        case 1: sum_table<1>(state.mask, s); break;
        case 2: sum_table<2>(state.mask, s); break;
        case 3: sum_table<3>(state.mask, s); break;
        case 4: sum_table<4>(state.mask, s); break;
        case 5: sum_table<5>(state.mask, s); break;
        case 6: sum_table<6>(state.mask, s); break;
        case 7: sum_table<7>(state.mask, s); break;
        case 8: sum_table<8>(state.mask, s); break;
        default: sum_table<0>(state.mask, s);
      }
    } else {
      std::vector<int>& perm = state.perm;
      switch (k) {
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
    }
    evaluate(s, vals);
  }

  void build_table() {
    const int n_bytes = (n + 7) / 8;
    table.assign(static_cast<std::size_t>(n_bytes) * 256 * k, 0.0);
    for (int b = 0; b < n_bytes; ++b) {
      double* tb = table.data() + static_cast<std::size_t>(b) * 256 * k;
      for (int v = 1; v < 256; ++v) {
        // Entry v is entry v-without-its-lowest-bit plus that bit's cluster.
        const int low = __builtin_ctz(static_cast<unsigned>(v));
        const int pos = 8 * b + low;
        const double* prev = tb + static_cast<std::size_t>(v & (v - 1)) * k;
        double* cur = tb + static_cast<std::size_t>(v) * k;
        if (pos >= n) {
          std::copy(prev, prev + k, cur);
          continue;
        }
        const double* zj = z + static_cast<std::size_t>(strata.units[pos]) * k;
        for (int c = 0; c < k; ++c) cur[c] = prev[c] + zj[c];
      }
    }
  }

  static inline bool bit(const std::vector<uint64_t>& mask, int j) {
    return (mask[static_cast<std::size_t>(j >> 6)] >> (j & 63)) & 1ULL;
  }

  // Set bits of mask at positions [a, b).
  static inline int count_range(const std::vector<uint64_t>& mask, int a, int b) {
    int count = 0;
    while (a < b) {
      const int w = a >> 6;
      const int lo = a & 63;
      const int hi = std::min(64, lo + (b - a));
      uint64_t word = mask[static_cast<std::size_t>(w)] >> lo;
      if (hi - lo < 64) word &= (1ULL << (hi - lo)) - 1ULL;
      count += popcount64(word);
      a += hi - lo;
    }
    return count;
  }

  inline void flip_coins(Xoshiro256pp& rng, std::vector<uint64_t>& mask) const {
    const std::size_t W = mask.size();
    for (std::size_t w = 0; w < W; ++w) mask[w] = rng.next();
    if (n & 63) mask[W - 1] &= (1ULL << (n & 63)) - 1ULL;
    const int S = strata.n_strata();
    for (int st = 0; st < S; ++st) {
      const int a = strata.start[st];
      const uint32_t m = static_cast<uint32_t>(strata.start[st + 1] - a);
      const int target = n_treated[st];
      int count = count_range(mask, a, a + static_cast<int>(m));
      // Uniform removals from (or additions to) the treated set, by
      // rejection from the whole stratum. A try's outcome is a coin toss, so
      // it updates the mask arithmetically rather than through a branch the
      // processor would mispredict half the time.
      while (count > target) {
        const int j = a + static_cast<int>(rng.below(m));
        uint64_t& word = mask[static_cast<std::size_t>(j >> 6)];
        const uint64_t hit = (word >> (j & 63)) & 1ULL;
        word &= ~(hit << (j & 63));
        count -= static_cast<int>(hit);
      }
      while (count < target) {
        const int j = a + static_cast<int>(rng.below(m));
        uint64_t& word = mask[static_cast<std::size_t>(j >> 6)];
        const uint64_t miss = ((word >> (j & 63)) & 1ULL) ^ 1ULL;
        word |= miss << (j & 63);
        count += static_cast<int>(miss);
      }
    }
  }

  // One accumulator: table loads are independent, so the chain of additions
  // is short, and a second accumulator only pushed the sums out of registers
  // (measured: 29 vs 17 million table sums per second for k = 6).
  template <int K>
  inline void sum_table(const std::vector<uint64_t>& mask, double* s) const {
    const int kk = K > 0 ? K : k;
    const int n_bytes = (n + 7) / 8;
    double acc[K > 0 ? K : 1];
    if (K == 0) {
      std::fill(s, s + kk, 0.0);
      for (int b = 0; b < n_bytes; ++b) {
        const unsigned v = (mask[static_cast<std::size_t>(b >> 3)] >> (8 * (b & 7))) & 255U;
        const double* t = table.data() + (static_cast<std::size_t>(b) * 256 + v) * kk;
        for (int c = 0; c < kk; ++c) s[c] += t[c];
      }
      return;
    }
    for (int c = 0; c < K; ++c) acc[c] = 0.0;
    for (int b = 0; b < n_bytes; ++b) {
      const unsigned v = (mask[static_cast<std::size_t>(b >> 3)] >> (8 * (b & 7))) & 255U;
      const double* t = table.data() + (static_cast<std::size_t>(b) * 256 + v) * K;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
      for (int c = 0; c < K; ++c) acc[c] += t[c];
    }
    for (int c = 0; c < K; ++c) s[c] = acc[c];
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

  // Writes the 0/1 assignment that the current draw encodes.
  void assignment(const DrawState& state, int* out) const {
    if (coin_flips) {
      for (int i = 0; i < n; ++i) out[strata.units[i]] = bit(state.mask, i) ? 1 : 0;
      return;
    }
    for (int st = 0; st < strata.n_strata(); ++st) {
      const int a = strata.start[st];
      const int b = strata.start[st + 1];
      const int take = strata.n_small[st];
      const int small_val = strata.small_treated[st] ? 1 : 0;
      for (int i = a; i < b; ++i) {
        out[state.perm[i]] = (i - a < take) ? small_val : 1 - small_val;
      }
    }
  }
};


// --- several cells ----------------------------------------------------------------
//
// Multi-cell designs: k cells (a shared control and k - 1 treated cells)
// with fixed sizes in every stratum. The criterion is the Mahalanobis norm of
// the stacked, stratum-weighted covariate mean differences of every treated
// cell against control. That stacked vector is a sum over clusters of a
// vector that depends on the cluster and its cell, so the R side whitens
// those vectors once: z[j, c] (D = (k - 1) d values) for cluster j in cell c,
// and the criterion of a candidate is the plain squared norm of the sum of
// z[j, cell(j)]. Within a stratum the z of one cell (the largest, "implicit"
// cell) is subtracted from every cell's, which changes no sum (the
// covariates are centred within strata) and makes that cell's z zero: a
// candidate then draws and sums only the clusters of the other cells, by a
// partial Fisher-Yates shuffle of the stratum, cell after cell. Designs with
// large strata draw by bit masks instead (CellScorer::draw_masks()); which
// way depends only on the design's shape, and results never on threads.
struct CellSpec {
  const double* z = nullptr;       // D x (n * C): column j * C + c
  int n = 0;                       // clusters
  int C = 0;                       // cells
  int D = 0;                       // stacked dimension
  std::vector<int> units;          // cluster indices, stratum by stratum
  std::vector<int> start;          // stratum s holds units[start[s] .. start[s+1])
  std::vector<int> draw_start;     // stratum s draws runs draw_start[s] .. draw_start[s+1]
  std::vector<int> draw_cell;      // run q: draw_count[q] clusters into cell draw_cell[q]
  std::vector<int> draw_count;
  std::vector<int> implicit;       // the cell of the clusters left undrawn in stratum s
  std::vector<int> sizes;          // S x C, column-major: clusters of cell c in stratum s
  int force = 0;                   // 0: the cheaper draw; 1: shuffle; 2: bit masks (tests)
  double threshold = std::numeric_limits<double>::infinity();
  int n_strata() const { return static_cast<int>(start.size()) - 1; }
};

// The scorer of multi-cell candidates, with the interface that
// search_first(), search_each() and score() use: `k` is the scratch length
// (D), there is one criterion value.
struct CellScorer {
  const CellSpec& spec;
  const double* z;
  int k;
  int n;
  bool coin_flips = false;
  // Bit-mask draws (see draw_masks()): the cell left undrawn everywhere,
  // the drawn cells in order, each level's Bernoulli numerator (of 16) and
  // the byte tables of each drawn cell.
  bool masks = false;
  int base_cell = 0;
  std::vector<int> order;
  std::vector<int> level_k;
  int n_words = 0;
  int n_bytes = 0;
  std::vector<double> table;  // ((cell index * n_bytes + byte) * 256 + value) * D

  explicit CellScorer(const CellSpec& spec_)
      : spec(spec_), z(spec_.z), k(spec_.D), n(spec_.n) {
    const int S = spec.n_strata();
    const int C = spec.C;
    // The cell with most clusters overall is left undrawn.
    std::vector<double> total(C, 0.0);
    for (int c = 0; c < C; ++c) {
      for (int st = 0; st < S; ++st) total[c] += spec.sizes[st + c * S];
    }
    base_cell = static_cast<int>(std::max_element(total.begin(), total.end()) - total.begin());
    // Operation counts of one candidate by either method: a bounded draw
    // (with its swap and gather) against a random word, a correction try and
    // a table lookup.
    double shuffle = 0.0, by_masks = 0.0, left = n;
    for (int st = 0; st < S; ++st) {
      for (int q = spec.draw_start[st]; q < spec.draw_start[st + 1]; ++q) {
        shuffle += spec.draw_count[q] * (3.0 + k / 4.0);
      }
    }
    for (int c = 0; c < C; ++c) {
      if (c == base_cell) continue;
      order.push_back(c);
    }
    // Level 0 splits off the base cell; level q >= 1 the q-th drawn cell
    // from the clusters not yet placed (the last drawn cell takes the rest).
    const int levels = C - 1;
    for (int lv = 0; lv < levels; ++lv) {
      double target = 0.0;
      if (lv == 0) {
        target = n - total[base_cell];
      } else {
        target = total[order[lv - 1]];
      }
      const double p = target / std::max(left, 1.0);
      int kk = static_cast<int>(std::lround(16.0 * p));
      kk = std::min(15, std::max(1, kk));
      level_k.push_back(kk);
      const double words = 4 - __builtin_ctz(static_cast<unsigned>(kk));
      by_masks += words * ((n + 63) / 64) * 1.0;
      for (int st = 0; st < S; ++st) {
        const double m = spec.start[st + 1] - spec.start[st];
        const double share = m / n;
        const double room = left * share;
        const double pq = kk / 16.0;
        // |count - target|: spread plus bias, each move taking about
        // m / eligible tries of about two operations.
        const double dev = 0.8 * std::sqrt(room * pq * (1 - pq)) + std::fabs(room * pq - target * share);
        const double eligible = std::max(1.0, std::min(room * pq, room * (1 - pq)));
        by_masks += 2.0 * dev * m / eligible + 2.0;
      }
      if (lv >= 1) left -= target;
      else left = target;
    }
    n_words = (n + 63) / 64;
    n_bytes = (n + 7) / 8;
    by_masks += (C - 1.0) * n_bytes * (1.0 + k / 4.0);
    const double table_bytes = (C - 1.0) * n_bytes * 256.0 * k * sizeof(double);
    // The counts above understate the masks' cost (measured on 210 clusters:
    // the masks take 0.76 of the shuffle's time with cells of 70/70/70 and
    // 1.85 times it with 130/40/40, against 0.40 and 0.64 counted).
    masks = n >= 16 && table_bytes <= 8.0 * 1024 * 1024 && 2.2 * by_masks < shuffle;
    if (spec.force == 1) masks = false;
    if (spec.force == 2) masks = table_bytes <= 8.0 * 1024 * 1024;
    if (masks) build_tables();
  }

  // Byte tables of each drawn cell: entry (b, v) is the sum over the
  // positions 8b .. 8b+7 set in v of z[cluster, cell] - z[cluster, base],
  // which sums to the criterion's vector with the base cell's terms zero
  // (whatever cell the stratum's z was shifted by).
  void build_tables() {
    const int C = spec.C;
    const int nd = static_cast<int>(order.size());
    table.assign(static_cast<std::size_t>(nd) * n_bytes * 256 * k, 0.0);
    for (int ci = 0; ci < nd; ++ci) {
      const int cell = order[ci];
      for (int b = 0; b < n_bytes; ++b) {
        double* tb = table.data() + (static_cast<std::size_t>(ci) * n_bytes + b) * 256 * k;
        for (int v = 1; v < 256; ++v) {
          const int low = __builtin_ctz(static_cast<unsigned>(v));
          const int pos = 8 * b + low;
          const double* prev = tb + static_cast<std::size_t>(v & (v - 1)) * k;
          double* cur = tb + static_cast<std::size_t>(v) * k;
          if (pos >= n) {
            std::copy(prev, prev + k, cur);
            continue;
          }
          const std::size_t u = static_cast<std::size_t>(spec.units[pos]);
          const double* zc = z + (u * C + cell) * k;
          const double* z0 = z + (u * C + base_cell) * k;
          for (int c = 0; c < k; ++c) cur[c] = prev[c] + zc[c] - z0[c];
        }
      }
    }
  }

  void reset_state(DrawState& state) const {
    if (!masks) std::copy(spec.units.begin(), spec.units.end(), state.perm.begin());
  }

  DrawState new_state() const {
    DrawState state;
    if (masks) {
      // C - 1 masks of drawn cells, then the mask of clusters not yet placed.
      state.mask.assign(static_cast<std::size_t>(spec.C) * n_words + 1, 0);
      pad(state.mask);
    } else {
      state.perm = spec.units;
      pad(state.perm);
    }
    return state;
  }

  // Bernoulli(kk / 16) bits: from the lowest set bit of kk up, x = r | x for
  // a set bit and r & x for a clear one.
  static inline uint64_t bernoulli_word(Xoshiro256pp& rng, int kk) {
    int i = __builtin_ctz(static_cast<unsigned>(kk));
    uint64_t x = rng.next();
    for (++i; i < 4; ++i) {
      const uint64_t r = rng.next();
      x = ((kk >> i) & 1) ? (r | x) : (r & x);
    }
    return x;
  }

  static inline int count_and(const uint64_t* a, const uint64_t* b, int lo, int hi) {
    int count = 0;
    while (lo < hi) {
      const int w = lo >> 6;
      const int o = lo & 63;
      const int len = std::min(64 - o, hi - lo);
      uint64_t word = (a[w] & b[w]) >> o;
      if (len < 64) word &= (1ULL << len) - 1ULL;
      count += popcount64(word);
      lo += len;
    }
    return count;
  }

  // A draw by bit masks, the multi-cell form of Scorer's coin flips. Level 0
  // gives each position a Bernoulli bit (about the share of clusters outside
  // the base cell) and corrects every stratum's count by uniform removals or
  // additions; level q then does the same within the positions not yet
  // placed, for the q-th drawn cell. Conditional on its count an i.i.d.
  // subset is uniform, and uniform corrections keep it so, so each level is
  // a uniform subset of the right size of what is left, and the candidate a
  // draw from complete randomization within strata. The sums are read from
  // the byte tables of each drawn cell.
  inline void draw_masks(Xoshiro256pp& rng, DrawState& state) const {
    const int C = spec.C;
    const int S = spec.n_strata();
    const int W = n_words;
    uint64_t* m = state.mask.data();
    uint64_t* rest = m + static_cast<std::size_t>(C - 1) * W;  // not yet placed
    for (int w = 0; w < W; ++w) rest[w] = ~0ULL;
    if (n & 63) rest[W - 1] = (1ULL << (n & 63)) - 1ULL;
    // Level 0 draws the union of the drawn cells into mask slot C - 2 when
    // there are more levels (it is split further), else straight into the
    // one drawn cell's slot (0).
    const int levels = C - 1;
    for (int lv = 0; lv < levels; ++lv) {
      uint64_t* b = m + static_cast<std::size_t>(lv == 0 ? levels - 1 : lv - 1) * W;
      const int kk = level_k[lv];
      for (int w = 0; w < W; ++w) b[w] = bernoulli_word(rng, kk) & rest[w];
      for (int st = 0; st < S; ++st) {
        const int a = spec.start[st];
        const uint32_t len = static_cast<uint32_t>(spec.start[st + 1] - a);
        int target;
        if (lv == 0) {
          target = (spec.start[st + 1] - a) - spec.sizes[st + base_cell * S];
        } else {
          target = spec.sizes[st + order[lv - 1] * S];
        }
        int count = count_and(b, rest, a, a + static_cast<int>(len));
        while (count > target) {
          const int j = a + static_cast<int>(rng.below(len));
          const uint64_t bitj = 1ULL << (j & 63);
          uint64_t& word = b[j >> 6];
          const uint64_t hit = word & bitj;
          word &= ~hit;
          count -= static_cast<int>(hit >> (j & 63));
        }
        while (count < target) {
          const int j = a + static_cast<int>(rng.below(len));
          const uint64_t bitj = 1ULL << (j & 63);
          uint64_t& word = b[j >> 6];
          const uint64_t hit = rest[j >> 6] & ~word & bitj;
          word |= hit;
          count += static_cast<int>(hit >> (j & 63));
        }
      }
      if (lv == 0) {
        for (int w = 0; w < W; ++w) rest[w] = b[w];
      } else {
        for (int w = 0; w < W; ++w) rest[w] &= ~b[w];
      }
    }
    // The last drawn cell takes what is left of the drawn cells' union.
    if (levels > 1) {
      uint64_t* last = m + static_cast<std::size_t>(levels - 1) * W;
      for (int w = 0; w < W; ++w) last[w] = rest[w];
    }
  }

  template <int K>
  inline void sum_masks(const DrawState& state, double* s) const {
    const int kk = K > 0 ? K : k;
    const int nd = spec.C - 1;
    double acc[K > 0 ? K : 1];
    if (K > 0) {
      for (int c = 0; c < K; ++c) acc[c] = 0.0;
    } else {
      std::fill(s, s + kk, 0.0);
    }
    for (int ci = 0; ci < nd; ++ci) {
      const uint64_t* mk = state.mask.data() + static_cast<std::size_t>(ci) * n_words;
      const double* tc = table.data() + static_cast<std::size_t>(ci) * n_bytes * 256 * kk;
      for (int b = 0; b < n_bytes; ++b) {
        const unsigned v = (mk[b >> 3] >> (8 * (b & 7))) & 255U;
        const double* t = tc + (static_cast<std::size_t>(b) * 256 + v) * kk;
        if (K > 0) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12
#endif
          for (int c = 0; c < K; ++c) acc[c] += t[c];
        } else {
          for (int c = 0; c < kk; ++c) s[c] += t[c];
        }
      }
    }
    if (K > 0) {
      for (int c = 0; c < K; ++c) s[c] = acc[c];
    }
  }

  int n_values() const { return 1; }

  inline void draw(Xoshiro256pp& rng, DrawState& state, double* s, double* vals) const {
    if (masks) {
      draw_masks(rng, state);
      switch (k) {
        case 2: sum_masks<2>(state, s); break;
        case 3: sum_masks<3>(state, s); break;
        case 4: sum_masks<4>(state, s); break;
        case 6: sum_masks<6>(state, s); break;
        case 8: sum_masks<8>(state, s); break;
        case 9: sum_masks<9>(state, s); break;
        case 12: sum_masks<12>(state, s); break;
        default: sum_masks<0>(state, s);
      }
      double acc = 0.0;
      for (int c = 0; c < k; ++c) acc += s[c] * s[c];
      vals[0] = acc;
      return;
    }
    switch (k) {
      case 1: draw_d<1>(rng, state.perm, s); break;
      case 2: draw_d<2>(rng, state.perm, s); break;
      case 3: draw_d<3>(rng, state.perm, s); break;
      case 4: draw_d<4>(rng, state.perm, s); break;
      case 5: draw_d<5>(rng, state.perm, s); break;
      case 6: draw_d<6>(rng, state.perm, s); break;
      case 8: draw_d<8>(rng, state.perm, s); break;
      case 9: draw_d<9>(rng, state.perm, s); break;
      case 10: draw_d<10>(rng, state.perm, s); break;
      case 12: draw_d<12>(rng, state.perm, s); break;
      default: draw_d<0>(rng, state.perm, s);
    }
    double acc = 0.0;
    for (int c = 0; c < k; ++c) acc += s[c] * s[c];
    vals[0] = acc;
  }

  template <int K>
  inline void draw_d(Xoshiro256pp& rng, std::vector<int>& perm, double* s) const {
    const int kk = K > 0 ? K : k;
    const int C = spec.C;
    const int S = spec.n_strata();
    if (K == 0) std::fill(s, s + kk, 0.0);
    double acc[K > 0 ? K : 1];
    if (K > 0) {
      for (int c = 0; c < K; ++c) acc[c] = 0.0;
    }
    for (int st = 0; st < S; ++st) {
      const int a = spec.start[st];
      const int m = spec.start[st + 1] - a;
      int* p = perm.data() + a;
      int i = 0;
      for (int q = spec.draw_start[st]; q < spec.draw_start[st + 1]; ++q) {
        const int cell = spec.draw_cell[q];
        const int end = i + spec.draw_count[q];
        if (K > 0 && end - i >= 4) {
          // Two draws a step into two accumulators halve the chain of
          // dependent additions (as in Scorer::draw_k).
          double acc2[K > 0 ? K : 1];
          for (int c = 0; c < K; ++c) acc2[c] = 0.0;
          for (; i + 1 < end; i += 2) {
            const int j0 = i + static_cast<int>(rng.below(static_cast<uint32_t>(m - i)));
            const int u0 = p[j0];
            p[j0] = p[i];
            p[i] = u0;
            const int j1 = i + 1 + static_cast<int>(rng.below(static_cast<uint32_t>(m - i - 1)));
            const int u1 = p[j1];
            p[j1] = p[i + 1];
            p[i + 1] = u1;
            const double* z0 = z + (static_cast<std::size_t>(u0) * C + cell) * K;
            const double* z1 = z + (static_cast<std::size_t>(u1) * C + cell) * K;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12
#endif
            for (int c = 0; c < K; ++c) {
              acc[c] += z0[c];
              acc2[c] += z1[c];
            }
          }
          for (int c = 0; c < K; ++c) acc[c] += acc2[c];
        }
        for (; i < end; ++i) {
          const int j = i + static_cast<int>(rng.below(static_cast<uint32_t>(m - i)));
          const int u = p[j];
          p[j] = p[i];
          p[i] = u;
          const double* zj = z + (static_cast<std::size_t>(u) * C + cell) * kk;
          if (K > 0) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12
#endif
            for (int c = 0; c < K; ++c) acc[c] += zj[c];
          } else {
            for (int c = 0; c < kk; ++c) s[c] += zj[c];
          }
        }
      }
    }
    if (K > 0) {
      for (int c = 0; c < K; ++c) s[c] = acc[c];
    }
  }

  inline bool accepted(const double* vals) const { return vals[0] <= spec.threshold; }
  inline double total(const double* vals) const { return vals[0]; }

  // Writes the cell (0 .. C-1) of every cluster that the current draw encodes.
  void assignment(const DrawState& state, int* out) const {
    if (masks) {
      for (int i = 0; i < n; ++i) out[spec.units[i]] = base_cell;
      for (int ci = 0; ci < spec.C - 1; ++ci) {
        const uint64_t* mk = state.mask.data() + static_cast<std::size_t>(ci) * n_words;
        for (int i = 0; i < n; ++i) {
          if ((mk[i >> 6] >> (i & 63)) & 1ULL) out[spec.units[i]] = order[ci];
        }
      }
      return;
    }
    for (int st = 0; st < spec.n_strata(); ++st) {
      const int a = spec.start[st];
      const int b = spec.start[st + 1];
      int i = a;
      for (int q = spec.draw_start[st]; q < spec.draw_start[st + 1]; ++q) {
        for (int t = 0; t < spec.draw_count[q]; ++t, ++i) out[state.perm[i]] = spec.draw_cell[q];
      }
      for (; i < b; ++i) out[state.perm[i]] = spec.implicit[st];
    }
  }
};

// --- running independent items on threads ------------------------------------
//
// Every parallel loop of this file (blocks of candidates, replicates, Lin
// fits of reference draws) is a set of items whose results depend only on
// their index, never on the thread that runs them. ItemQueue runs them:
//
// * the calling thread first runs items alone for `warmup` seconds, so a
//   short job never pays for starting (and, on a busy machine, waiting for)
//   a second thread;
// * what is left runs in ONE parallel region, each thread claiming the next
//   item from a shared counter: no barrier between items, and a thread that
//   the system deschedules delays only the item it holds;
// * the calling thread (thread 0, R's main thread) polls every `poll_every`
//   seconds through `poll`, which returns true to stop (a user interrupt);
//   every thread then stops at its next check.
//
// Items must neither allocate nor throw: their scratch is allocated before
// (one slot per thread) and they write into memory allocated before. A job
// can shrink itself with limit_to() (a search that has found what it needs):
// items at or past the limit are not started, and running ones may stop
// early (cancelled()).
template <class Poll>
class ItemQueue {
 public:
  using Clock = std::chrono::steady_clock;

  ItemQueue(int64_t n_items, Poll& poll, double poll_every = 0.1)
      : poll_(poll), poll_every_(poll_every), next_(0), limit_(n_items), stop_(false),
        last_poll_(Clock::now()) {}

  bool cancelled(int64_t item) const {
    return stop_.load(std::memory_order_relaxed) ||
           item >= limit_.load(std::memory_order_relaxed);
  }
  bool interrupted() const { return stop_.load(); }
  int64_t limit() const { return limit_.load(); }
  int64_t claimed() const { return std::min(next_.load(), limit_.load()); }

  // Items from `n` on are no longer needed.
  void limit_to(int64_t n) {
    int64_t cur = limit_.load();
    while (n < cur && !limit_.compare_exchange_weak(cur, n)) {
    }
  }

  // Called by items now and then; polls on thread 0 only.
  void tick(int thread) {
    if (thread != 0) return;
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - last_poll_).count() < poll_every_) return;
    last_poll_ = now;
    if (poll_(claimed())) stop_.store(true);
  }

  // Runs item(i, thread) for i = 0, 1, ... below the limit.
  template <class Item>
  void run(int threads, double warmup, Item item) {
    const Clock::time_point start = Clock::now();
    while (!stop_.load()) {
      const int64_t i = next_.load();
      if (i >= limit_.load()) return;
      if (threads > 1 && limit_.load() - i > 1 &&
          std::chrono::duration<double>(Clock::now() - start).count() >= warmup) {
        break;
      }
      next_.store(i + 1);
      item(i, 0);
      tick(0);
    }
    if (stop_.load()) return;
    const int64_t left = limit_.load() - next_.load();
    const int nth = static_cast<int>(std::min<int64_t>(threads, left));
    if (nth <= 1) {
      for (int64_t i = next_.fetch_add(1); i < limit_.load() && !stop_.load();
           i = next_.fetch_add(1)) {
        item(i, 0);
        tick(0);
      }
      return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
#endif
    {
      int thread = 0;
#ifdef _OPENMP
      thread = omp_get_thread_num();
#endif
      for (int64_t i = next_.fetch_add(1); i < limit_.load() && !stop_.load();
           i = next_.fetch_add(1)) {
        item(i, thread);
        tick(thread);
      }
    }
  }

 private:
  Poll& poll_;
  double poll_every_;
  std::atomic<int64_t> next_;
  std::atomic<int64_t> limit_;
  std::atomic<bool> stop_;
  Clock::time_point last_poll_;  // touched by thread 0 only
};

// Seconds a job runs on the calling thread alone before it takes more
// threads: longer than starting a region costs on a busy machine (a
// descheduled thread can take a scheduler slice, a few milliseconds, to
// join), short enough to be nothing beside a job worth sharing.
const double kWarmup = 0.02;

// How often a long item lets the calling thread poll: every this many
// candidates.
const int64_t kTick = 256;

// --- searches ------------------------------------------------------------------

// The first accepted candidate of the stream (blocks 0, 1, ... of
// `block_size` candidates, block b drawn from stream b of the seed from the
// identity permutation), drawing at most `max_candidates`.
struct FirstResult {
  bool found = false;
  std::vector<int> assignment;  // n, when found
  std::vector<double> values;   // n_values, when found
  double candidates = 0;        // drawn up to and including the accepted one
  double best = std::numeric_limits<double>::infinity();
  bool interrupted = false;
};

template <class Sc, class Poll>
FirstResult search_first(const Sc& sc, uint64_t seed, int64_t max_candidates,
                         int64_t block_size, int threads, Poll& poll) {
  FirstResult res;
  const int64_t n_blocks = (max_candidates + block_size - 1) / block_size;
  threads = std::max(1, threads);
  const int nv = sc.n_values();
  std::vector<DrawState> states;
  for (int t = 0; t < threads; ++t) states.push_back(sc.new_state());
  const std::size_t stride = padded(sc.k + nv);
  std::vector<double> scratch(threads * stride);
  // best, hit block and hit index of thread t at [8 * t]
  std::vector<double> best(8 * threads, std::numeric_limits<double>::infinity());
  const int64_t none = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> hit_block(8 * threads, none), hit_index(8 * threads, -1);
  auto blocks_to_candidates = [&](int64_t blocks) {
    return static_cast<double>(std::min<int64_t>(max_candidates, blocks * block_size));
  };
  auto poll_candidates = [&](int64_t blocks) { return poll(blocks_to_candidates(blocks)); };
  ItemQueue<decltype(poll_candidates)> queue(n_blocks, poll_candidates);
  queue.run(threads, kWarmup, [&](int64_t b, int t) {
    DrawState& state = states[t];
    sc.reset_state(state);
    double* s = scratch.data() + t * stride;
    double* vals = s + sc.k;
    Xoshiro256pp rng(seed, static_cast<uint64_t>(b));
    const int64_t size = std::min<int64_t>(block_size, max_candidates - b * block_size);
    for (int64_t i = 0; i < size; ++i) {
      if ((i & (kTick - 1)) == kTick - 1) {
        if (queue.cancelled(b)) return;
        queue.tick(t);
      }
      sc.draw(rng, state, s, vals);
      const double tot = sc.total(vals);
      if (tot < best[8 * t]) best[8 * t] = tot;
      if (sc.accepted(vals)) {
        // Blocks are claimed in order, so every block before b is drawn
        // in full unless it holds an earlier acceptance.
        hit_block[8 * t] = b;
        hit_index[8 * t] = i;
        queue.limit_to(b + 1);
        return;
      }
    }
  });
  res.interrupted = queue.interrupted();
  if (res.interrupted) return res;
  int64_t b = none, idx = -1;
  for (int t = 0; t < threads; ++t) {
    if (hit_block[8 * t] < b) {
      b = hit_block[8 * t];
      idx = hit_index[8 * t];
    }
  }
  if (b == none) {
    res.candidates = static_cast<double>(max_candidates);
    res.best = *std::min_element(best.begin(), best.end());
    return res;
  }
  // Replay the accepted candidate's block up to it.
  DrawState state = sc.new_state();
  std::vector<double> s(sc.k);
  res.values.assign(nv, 0.0);
  Xoshiro256pp rng(seed, static_cast<uint64_t>(b));
  for (int64_t i = 0; i <= idx; ++i) sc.draw(rng, state, s.data(), res.values.data());
  res.assignment.assign(sc.n, 0);
  sc.assignment(state, res.assignment.data());
  res.found = true;
  res.best = sc.total(res.values.data());
  res.candidates = static_cast<double>(b * block_size + idx + 1);
  return res;
}

// Criterion values of `n_draws` candidates under the base design (complete or
// stratified randomization), for empirical thresholds and plots, written to
// `out` (n_values x n_draws). Returns false when interrupted.
template <class Sc, class Poll>
bool score(const Sc& sc, uint64_t seed, int64_t n_draws, int64_t block_size,
           int threads, Poll& poll, double* out) {
  threads = std::max(1, threads);
  const int nv = sc.n_values();
  std::vector<DrawState> states;
  for (int t = 0; t < threads; ++t) states.push_back(sc.new_state());
  const std::size_t stride = padded(sc.k);
  std::vector<double> scratch(threads * stride);
  const int64_t n_blocks = (n_draws + block_size - 1) / block_size;
  auto poll_draws = [&](int64_t blocks) {
    return poll(static_cast<double>(std::min<int64_t>(n_draws, blocks * block_size)));
  };
  ItemQueue<decltype(poll_draws)> queue(n_blocks, poll_draws);
  queue.run(threads, kWarmup, [&](int64_t b, int t) {
    DrawState& state = states[t];
    sc.reset_state(state);
    double* s = scratch.data() + t * stride;
    Xoshiro256pp rng(seed, static_cast<uint64_t>(b));
    const int64_t lo = b * block_size;
    const int64_t hi = std::min<int64_t>(n_draws, lo + block_size);
    for (int64_t d = lo; d < hi; ++d) {
      if (((d - lo) & (kTick - 1)) == kTick - 1) {
        if (queue.cancelled(b)) return;
        queue.tick(t);
      }
      sc.draw(rng, state, s, out + d * nv);
    }
  });
  return !queue.interrupted();
}

// Buffer zones. A candidate's buffer is every untreated cluster with a
// treated neighbour; the rest of the untreated are the retained controls.
// The criterion compares treated clusters with retained controls: tau =
// sum_s pi_s (mean_T,s x - mean_C,s x), whitened by solving L u = tau with
// the lower-triangular L of the base design's covariance, then scored as in
// CriterionSpec. Candidates leaving a stratum fewer than min_controls
// controls are inadmissible (every value +Inf). The draws themselves come
// from the Scorer; this only scores them.
struct BufferSpec {
  const double* x = nullptr;       // n x k covariates, column-major
  int n = 0;
  int k = 0;
  std::vector<int> stratum;        // 0-based stratum of each cluster
  std::vector<double> n_treated;   // per stratum
  std::vector<double> weight;      // pi_s per stratum
  std::vector<int> nb_start;       // neighbours of i: nb_idx[nb_start[i] .. nb_start[i+1])
  std::vector<int> nb_idx;
  const double* L = nullptr;       // k x k lower triangular, column-major
  int min_controls = 1;
  int n_strata() const { return static_cast<int>(n_treated.size()); }
};

// Scores candidate `w` (0/1 per cluster). Writes the criterion values
// (`vals`, one per block or one for max-abs), the imbalance tau (`tau`, k)
// and the retained controls per stratum (`kept`, S); `sx` and `u` are
// scratch of length S * k and k.
inline void buffer_score(const BufferSpec& b, const CriterionSpec& crit, const int* w,
                         double* vals, double* tau, int* kept, double* sxt, double* sxc,
                         double* u) {
  const int S = b.n_strata();
  const int k = b.k;
  std::fill(sxt, sxt + static_cast<std::size_t>(S) * k, 0.0);
  std::fill(sxc, sxc + static_cast<std::size_t>(S) * k, 0.0);
  std::fill(kept, kept + S, 0);
  for (int i = 0; i < b.n; ++i) {
    const int st = b.stratum[i];
    double* acc;
    if (w[i]) {
      acc = sxt + static_cast<std::size_t>(st) * k;
    } else {
      bool exposed = false;
      for (int p = b.nb_start[i]; p < b.nb_start[i + 1] && !exposed; ++p) exposed = w[b.nb_idx[p]] != 0;
      if (exposed) continue;
      ++kept[st];
      acc = sxc + static_cast<std::size_t>(st) * k;
    }
    for (int c = 0; c < k; ++c) acc[c] += b.x[i + static_cast<std::size_t>(c) * b.n];
  }
  bool admissible = true;
  for (int c = 0; c < k; ++c) tau[c] = 0.0;
  for (int st = 0; st < S; ++st) {
    if (kept[st] < b.min_controls) admissible = false;
    const double nc = kept[st] > 0 ? kept[st] : 1.0;
    for (int c = 0; c < k; ++c) {
      tau[c] += b.weight[st] * (sxt[st * k + c] / b.n_treated[st] - sxc[st * k + c] / nc);
    }
  }
  // Forward substitution L u = tau.
  for (int r = 0; r < k; ++r) {
    double acc = tau[r];
    for (int c = 0; c < r; ++c) acc -= b.L[r + static_cast<std::size_t>(c) * k] * u[c];
    u[r] = acc / b.L[r + static_cast<std::size_t>(r) * k];
  }
  const double inf = std::numeric_limits<double>::infinity();
  if (crit.type == 1) {
    double m = 0.0;
    for (int c = 0; c < k; ++c) m = std::max(m, std::fabs(u[c]));
    vals[0] = admissible ? m : inf;
    return;
  }
  for (int blk = 0; blk < crit.n_blocks(); ++blk) {
    double ss = 0.0;
    for (int c = crit.block_start[blk]; c < crit.block_start[blk + 1]; ++c) ss += u[c] * u[c];
    vals[blk] = admissible ? ss : inf;
  }
}

// Scratch of buffer_score for one thread.
struct BufferScratch {
  std::vector<int> w, kept;
  std::vector<double> tau, sxt, sxc, u;
  BufferScratch() = default;
  BufferScratch(const BufferSpec& b, int n) : w(n), kept(b.n_strata()), tau(b.k),
      sxt(static_cast<std::size_t>(b.n_strata()) * b.k), sxc(sxt.size()), u(b.k) {
    pad(w);
    pad(kept);
    pad(tau);
    pad(sxt);
    pad(sxc);
    pad(u);
  }
};

// One accepted assignment per replicate. Replicate r (its index in the
// resampling loop, `replicates[r]`) draws candidates from its own stream of
// the seed, from the identity permutation, until one passes, at most
// `budget` of them: so each replicate's assignment depends only on the seed
// and its index, not on which other replicates are drawn with it (a chunk)
// nor on the thread. With a buffer (`buf` not null) a candidate passes when
// it is admissible and its buffered criterion (`buf_crit`, whose thresholds
// are the rule's) passes; without, when the scorer's criterion passes.
// Writes assignments (n x R), values (n_values x R), candidates drawn and
// the best total criterion seen per replicate, and found (0/1). Returns
// false when interrupted.
template <class Sc, class Poll>
bool search_each(const Sc& sc, const BufferSpec* buf, const CriterionSpec* buf_crit,
                 uint64_t seed, const double* replicates, int64_t R, int64_t budget,
                 int threads, Poll& poll, int* assign, double* values, double* candidates,
                 double* best, int* found) {
  threads = std::max(1, threads);
  const int nv = buf ? (buf_crit->type == 0 ? buf_crit->n_blocks() : 1) : sc.n_values();
  std::vector<DrawState> states;
  std::vector<BufferScratch> bufs;
  for (int t = 0; t < threads; ++t) {
    states.push_back(sc.new_state());
    if (buf) bufs.emplace_back(*buf, sc.n);
  }
  const std::size_t stride = padded(sc.k + sc.n_values() + nv);
  std::vector<double> scratch(threads * stride);
  auto poll_replicates = [&](int64_t done) { return poll(static_cast<double>(done)); };
  ItemQueue<decltype(poll_replicates)> queue(R, poll_replicates);
  queue.run(threads, kWarmup, [&](int64_t r, int t) {
    DrawState& state = states[t];
    sc.reset_state(state);
    double* s = scratch.data() + t * stride;
    double* vals = s + sc.k;
    double* bvals = vals + sc.n_values();
    int* out = assign + static_cast<std::size_t>(r) * sc.n;
    double* vout = values + static_cast<std::size_t>(r) * nv;
    Xoshiro256pp rng(seed, static_cast<uint64_t>(replicates[r]));
    double lowest = std::numeric_limits<double>::infinity();
    found[r] = 0;
    int64_t i = 0;
    while (i < budget) {
      if ((i & (kTick - 1)) == kTick - 1) {
        if (queue.cancelled(r)) break;
        queue.tick(t);
      }
      sc.draw(rng, state, s, vals);
      ++i;
      bool ok;
      double tot;
      if (buf) {
        BufferScratch& bs = bufs[t];
        sc.assignment(state, bs.w.data());
        buffer_score(*buf, *buf_crit, bs.w.data(), bvals, bs.tau.data(), bs.kept.data(),
                     bs.sxt.data(), bs.sxc.data(), bs.u.data());
        // Inadmissible candidates score +Inf, which an open threshold
        // (+Inf) must not admit.
        ok = true;
        tot = 0.0;
        for (int v = 0; v < nv; ++v) {
          if (!std::isfinite(bvals[v]) || !(bvals[v] <= buf_crit->threshold[v])) ok = false;
          tot = buf_crit->type == 0 ? tot + bvals[v] : bvals[v];
        }
      } else {
        ok = sc.accepted(vals);
        tot = sc.total(vals);
      }
      if (tot < lowest) lowest = tot;
      if (ok) {
        if (buf) {
          std::copy(bufs[t].w.begin(), bufs[t].w.end(), out);
        } else {
          sc.assignment(state, out);
        }
        std::copy(buf ? bvals : vals, (buf ? bvals : vals) + nv, vout);
        found[r] = 1;
        break;
      }
    }
    candidates[r] = static_cast<double>(i);
    best[r] = lowest;
  });
  return !queue.interrupted();
}

// Every assignment of the base design, in lexicographic order within each
// stratum and an odometer across strata; keeps those the rule accepts. Runs
// on the calling thread, polling through `poll` every tenth of a second.
struct Enumeration {
  std::vector<int> assignments;
  std::vector<double> values;
  int64_t n_total = 0;
  int64_t n_found = 0;
};

template <class Poll>
Enumeration enumerate(const Scorer& sc, const std::vector<int>& n_treated, Poll& poll,
                      bool& interrupted) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last = Clock::now();
  interrupted = false;
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
    if ((res.n_total & 4095) == 0 &&
        std::chrono::duration<double>(Clock::now() - last).count() >= 0.1) {
      last = Clock::now();
      if (poll(static_cast<double>(res.n_total))) {
        interrupted = true;
        break;
      }
    }
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

// Scores the R candidates in the columns of the n x R matrix `w`, with
// every thread's scratch allocated before the parallel region.
inline void buffer_score_many(const BufferSpec& b, const CriterionSpec& crit, const int* w,
                              int R, int threads, double* vals, double* tau, int* kept) {
  const int S = b.n_strata();
  const int nv = crit.type == 1 ? 1 : crit.n_blocks();
  threads = std::max(1, std::min(threads, R));
  std::vector<BufferScratch> scratch;
  for (int t = 0; t < threads; ++t) scratch.emplace_back(b, 0);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    int thread = 0;
#ifdef _OPENMP
    thread = omp_get_thread_num();
#endif
    BufferScratch& sc = scratch[thread];
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int r = 0; r < R; ++r) {
      buffer_score(b, crit, w + static_cast<std::size_t>(r) * b.n,
                   vals + static_cast<std::size_t>(r) * nv, tau + static_cast<std::size_t>(r) * b.k,
                   kept + static_cast<std::size_t>(r) * S, sc.sxt.data(), sc.sxc.data(),
                   sc.u.data());
    }
  }
}

// Lin summaries (src/lin_stats.h: A, B, P, Q, S; 5 x R into `out`) of the R
// assignments in the columns of `assign` (n x R), with y, v and the n x
// (p - 1) centred covariates x. Items are runs of 64 assignments. Returns
// false when interrupted.
template <class Poll>
bool lin_many(const double* y, const double* v, const double* x, int n, int p,
              const int* assign, int64_t R, int threads, Poll& poll, double* out) {
  threads = std::max(1, threads);
  std::vector<LinWork> work;
  for (int t = 0; t < threads; ++t) work.emplace_back(n, p);
  const int64_t per = 64;
  const int64_t n_items = (R + per - 1) / per;
  auto poll_fits = [&](int64_t items) {
    return poll(static_cast<double>(std::min<int64_t>(R, items * per)));
  };
  ItemQueue<decltype(poll_fits)> queue(n_items, poll_fits);
  queue.run(threads, kWarmup, [&](int64_t item, int t) {
    const int64_t hi = std::min<int64_t>(R, (item + 1) * per);
    for (int64_t r = item * per; r < hi; ++r) {
      lin_one(y, v, x, n, assign + static_cast<std::size_t>(r) * n, work[t],
              out + static_cast<std::size_t>(r) * 5);
    }
  });
  return !queue.interrupted();
}

}  // namespace mkt

#endif
