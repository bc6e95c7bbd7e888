// Random streams for the compiled loops. R owns the seed: the R side draws
// one 64-bit seed from R's RNG, and every block of work derives its own
// xoshiro256++ stream from (seed, block index) through splitmix64. A block's
// numbers therefore never depend on which thread runs it.
#ifndef MKTCAUSAL_RNG_H
#define MKTCAUSAL_RNG_H

#include <cstdint>

namespace mkt {

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Xoshiro256pp {
 public:
  Xoshiro256pp(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (0xd1342543de82ef95ULL * (stream + 1));
    for (int i = 0; i < 4; ++i) s_[i] = splitmix64(x);
  }
  inline uint64_t next() {
    const uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // 32 random bits; each 64-bit output serves two calls.
  inline uint32_t next32() {
    if (have_half_) {
      have_half_ = false;
      return half_;
    }
    const uint64_t x = next();
    half_ = static_cast<uint32_t>(x);
    have_half_ = true;
    return static_cast<uint32_t>(x >> 32);
  }
  // Uniform integer in [0, range), 0 < range < 2^32, without modulo bias
  // (Lemire 2019, nearly divisionless).
  inline uint32_t below(uint32_t range) {
    uint64_t m = static_cast<uint64_t>(next32()) * static_cast<uint64_t>(range);
    uint32_t low = static_cast<uint32_t>(m);
    if (low < range) {
      const uint32_t floor = static_cast<uint32_t>(-range) % range;
      while (low < floor) {
        m = static_cast<uint64_t>(next32()) * static_cast<uint64_t>(range);
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }
  // Uniform double in [0, 1).
  inline double unif() { return (next() >> 11) * 0x1.0p-53; }

 private:
  static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  uint32_t half_ = 0;
  bool have_half_ = false;
};

}  // namespace mkt

#endif
