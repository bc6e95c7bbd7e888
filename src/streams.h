// Random-number streams for R-level replicate loops: the L'Ecuyer-CMRG
// (MRG32k3a) state that R's own generator uses, jumped ahead so that
// replicate i gets the substream of stream i counted from a base state. The
// base comes from the caller's seed, so a replicate's numbers depend only on
// set.seed() and its index, never on how replicates are grouped into chunks
// or sent to workers. Stream i is the state parallel::nextRNGStream() reaches
// after i - 1 steps from the base, and the replicate's state is
// parallel::nextRNGSubStream() of it: the seed future.apply gives to element
// i of a loop with future.seed = TRUE. Knows nothing of R.
#ifndef MKTCAUSAL_STREAMS_H
#define MKTCAUSAL_STREAMS_H

#include <array>
#include <cstdint>

namespace mkt {
namespace streams {

using Mat = std::array<std::array<uint64_t, 3>, 3>;
using Vec = std::array<uint64_t, 3>;

const uint64_t m1 = 4294967087ULL;
const uint64_t m2 = 4294944443ULL;

// Jump matrices of MRG32k3a (L'Ecuyer, Simard, Chen and Kelton 2002): 2^127
// steps (the next stream) and 2^76 steps (the next substream), for the two
// components.
const Mat A1p127 = {{{2427906178ULL, 3580155704ULL, 949770784ULL},
                     {226153695ULL, 1230515664ULL, 3580155704ULL},
                     {1988835001ULL, 986791581ULL, 1230515664ULL}}};
const Mat A2p127 = {{{1464411153ULL, 277697599ULL, 1610723613ULL},
                     {32183930ULL, 1464411153ULL, 1022607788ULL},
                     {2824425944ULL, 32183930ULL, 2093834863ULL}}};
const Mat A1p76 = {{{82758667ULL, 1871391091ULL, 4127413238ULL},
                    {3672831523ULL, 69195019ULL, 1871391091ULL},
                    {3672091415ULL, 3528743235ULL, 69195019ULL}}};
const Mat A2p76 = {{{1511326704ULL, 3759209742ULL, 1610795712ULL},
                    {4292754251ULL, 1511326704ULL, 3889917532ULL},
                    {3859662829ULL, 4292754251ULL, 3708466080ULL}}};

// Entries are below the modulus (< 2^32), so a product fits in 64 bits and
// is reduced before the next is added.
inline Vec mul(const Mat& A, const Vec& s, uint64_t m) {
  Vec out{};
  for (int i = 0; i < 3; ++i) {
    uint64_t t = 0;
    for (int j = 0; j < 3; ++j) t = (t + (A[i][j] * s[j]) % m) % m;
    out[i] = t;
  }
  return out;
}

inline Mat mul(const Mat& A, const Mat& B, uint64_t m) {
  Mat out{};
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 3; ++k) {
      uint64_t t = 0;
      for (int j = 0; j < 3; ++j) t = (t + (A[i][j] * B[j][k]) % m) % m;
      out[i][k] = t;
    }
  }
  return out;
}

// A state is the six numbers of R's .Random.seed after its kind code.
struct State {
  Vec s1, s2;
};

inline State step(const State& s, const Mat& A1, const Mat& A2) {
  return State{mul(A1, s.s1, m1), mul(A2, s.s2, m2)};
}

// The base state moved ahead by `n` streams, by squaring the jump matrix.
inline State jump_streams(State s, uint64_t n) {
  Mat P1 = A1p127, P2 = A2p127;
  while (n > 0) {
    if (n & 1ULL) s = step(s, P1, P2);
    n >>= 1;
    if (n > 0) {
      P1 = mul(P1, P1, m1);
      P2 = mul(P2, P2, m2);
    }
  }
  return s;
}

// The states of replicates first, first + 1, ..., first + count - 1 (first
// counts from 1), written as six numbers each into `out`.
inline void replicate_states(const State& base, uint64_t first, int count, uint64_t* out) {
  State stream = jump_streams(base, first - 1);
  for (int r = 0; r < count; ++r) {
    const State sub = step(stream, A1p76, A2p76);
    for (int k = 0; k < 3; ++k) {
      out[6 * r + k] = sub.s1[k];
      out[6 * r + 3 + k] = sub.s2[k];
    }
    stream = step(stream, A1p127, A2p127);
  }
}

}  // namespace streams
}  // namespace mkt

#endif
