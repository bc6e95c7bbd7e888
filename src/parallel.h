// The share of a range that each thread of an OpenMP parallel region owns:
// contiguous, equal-sized parts [lo, hi) of [0, n), in thread order. Outside
// a parallel region (or without OpenMP) the one thread owns the whole range.
// Shared by every kernel that splits units, clusters or draws over threads,
// so that the split, and hence the order of accumulation, is the same
// everywhere.
#ifndef MKTCAUSAL_PARALLEL_H
#define MKTCAUSAL_PARALLEL_H

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mkt {

struct ThreadShare {
  int lo;       // first index owned
  int hi;       // one past the last index owned (lo == hi: nothing)
  int thread;   // this thread's number
  int threads;  // threads in the region
};

inline ThreadShare thread_share(int n) {
  int tid = 0, nth = 1;
#ifdef _OPENMP
  tid = omp_get_thread_num();
  nth = omp_get_num_threads();
#endif
  const int per = (n + nth - 1) / nth;
  const int lo = std::min(n, tid * per);
  return ThreadShare{lo, std::min(n, lo + per), tid, nth};
}

}  // namespace mkt

#endif
