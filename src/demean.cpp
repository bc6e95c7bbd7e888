// Rcpp shim for the kernels of demean.h: maps R matrices, group codes and
// weights onto Eigen and plain pointers, and polls for interrupts on the main
// thread (without a long jump: the kernel stops and the shim raises R's
// interrupt once it has returned).
#include <Rcpp.h>
#include <chrono>
#include <RcppEigen.h>

#include "demean.h"

namespace {

void check_interrupt_fn(void*) { R_CheckUserInterrupt(); }

// TRUE when the user pressed Ctrl-C; never jumps out of C++. The kernels
// call it often (between the factors of a sweep, every iteration), so R is
// asked at most every 50 ms. Asking R consumes the interrupt: the shim
// raises it again once the kernel has returned.
struct InterruptPending {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(50)) return false;
    last = now;
    return R_ToplevelExec(check_interrupt_fn, nullptr) == FALSE;
  }
};

// R's interrupt, raised after a kernel that stopped for one (the check
// above cleared R's pending flag, so Rcpp::checkUserInterrupt() would not).
[[noreturn]] void raise_interrupt() { throw Rcpp::internal::InterruptedException(); }

std::vector<const double*> column_pointers(const Rcpp::List& cols, R_xlen_t len) {
  std::vector<const double*> out;
  for (R_xlen_t k = 0; k < cols.size(); ++k) {
    SEXP x = cols[k];
    if (TYPEOF(x) != REALSXP || Rf_xlength(x) != len) {
      Rcpp::stop("column %d is not a double vector of length %d", static_cast<int>(k + 1),
                 static_cast<int>(len));
    }
    out.push_back(REAL(x));
  }
  return out;
}

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_demean(Rcpp::NumericMatrix x, const Rcpp::List& codes,
                      const Rcpp::IntegerVector& n_groups, const Rcpp::NumericVector& weights,
                      double tol, int max_iter, int threads) {
  Rcpp::NumericMatrix out = Rcpp::clone(x);
  Eigen::Map<Eigen::MatrixXd> X(out.begin(), out.nrow(), out.ncol());
  std::vector<Rcpp::IntegerVector> keep;
  std::vector<mkt::FactorCodes> fe;
  for (R_xlen_t k = 0; k < codes.size(); ++k) {
    keep.push_back(Rcpp::as<Rcpp::IntegerVector>(codes[k]));
  }
  for (R_xlen_t k = 0; k < codes.size(); ++k) {
    fe.push_back(mkt::FactorCodes{keep[k].begin(), n_groups[k]});
  }
  const double* w = weights.size() ? weights.begin() : nullptr;
  const mkt::DemeanStatus st =
      mkt::demean_columns(X, fe, w, tol, max_iter, threads, InterruptPending());
  if (st.interrupted) raise_interrupt();
  return Rcpp::List::create(Rcpp::Named("x") = out,
                            Rcpp::Named("iterations") = st.iterations,
                            Rcpp::Named("converged") = st.converged);
}

// Unit and time effects removed from panel columns held as N x T matrices.
// observed: N x T logical; cols: list of N*T double vectors; weights: N*T or
// empty; cluster: N*T integer codes (1-based) or empty for the unit. Returns
// the demeaned used cells (n x m), the unit, period and cluster codes of
// those cells (1-based), the number of units and periods with used cells,
// whether the units and the periods nest in the clusters, and the status.
// [[Rcpp::export]]
Rcpp::List cpp_demean_grid(const Rcpp::LogicalMatrix& observed, const Rcpp::List& cols,
                           const Rcpp::NumericVector& weights, const Rcpp::IntegerVector& cluster,
                           bool scale_sqrt_w, double tol, int max_iter, int threads) {
  const int N = observed.nrow(), T = observed.ncol();
  const R_xlen_t NT = static_cast<R_xlen_t>(N) * T;
  const std::vector<const double*> ptr = column_pointers(cols, NT);
  const double* w = weights.size() ? weights.begin() : nullptr;
  if (w && weights.size() != NT) Rcpp::stop("weights must have one value per cell");
  if (cluster.size() && cluster.size() != NT) Rcpp::stop("cluster must have one code per cell");
  const mkt::GridLayout g = mkt::grid_layout(N, T, observed.begin(), ptr, w, threads);
  const int m = static_cast<int>(ptr.size());
  Rcpp::NumericMatrix out(static_cast<int>(g.n), m);
  const mkt::DemeanStatus st = mkt::demean_grid(g, ptr, out.begin(), scale_sqrt_w && w, tol,
                                                max_iter, threads, InterruptPending());
  if (st.interrupted) raise_interrupt();
  Rcpp::IntegerVector unit(g.n), time(g.n), cl(g.n);
  std::vector<int> unit_first(N, 0), time_first(T, 0);
  bool unit_nested = true, time_nested = true;
  for (int t = 0; t < T; ++t) {
    for (int64_t k = g.offset[t]; k < g.offset[t + 1]; ++k) {
      const int i = g.unit[k];
      const int code = cluster.size() ? cluster[static_cast<R_xlen_t>(t) * N + i] : i + 1;
      unit[k] = i + 1;
      time[k] = t + 1;
      cl[k] = code;
      if (unit_first[i] == 0) unit_first[i] = code; else if (unit_first[i] != code) unit_nested = false;
      if (time_first[t] == 0) time_first[t] = code; else if (time_first[t] != code) time_nested = false;
    }
  }
  int n_units = 0, n_periods = 0;
  for (int i = 0; i < N; ++i) n_units += g.W[i] > 0.0;
  for (int t = 0; t < T; ++t) n_periods += g.V[t] > 0.0;
  return Rcpp::List::create(
      Rcpp::Named("x") = out, Rcpp::Named("unit") = unit, Rcpp::Named("time") = time,
      Rcpp::Named("cluster") = cl, Rcpp::Named("n_units") = n_units,
      Rcpp::Named("n_periods") = n_periods, Rcpp::Named("unit_nested") = unit_nested,
      Rcpp::Named("time_nested") = time_nested, Rcpp::Named("iterations") = st.iterations,
      Rcpp::Named("converged") = st.converged);
}

// Per-cluster cross-products of the columns of A (see demean.h); code holds
// 1-based cluster codes up to G.
// [[Rcpp::export]]
Rcpp::List cpp_cluster_gram(const Rcpp::NumericMatrix& A, const Rcpp::IntegerVector& code,
                            int G, int threads) {
  const R_xlen_t n = A.nrow();
  const int m = A.ncol();
  if (code.size() != n) Rcpp::stop("one cluster code per row is needed");
  std::vector<int> zero_based(n);
  for (R_xlen_t i = 0; i < n; ++i) {
    if (code[i] < 1 || code[i] > G) Rcpp::stop("cluster codes must lie in 1..G");
    zero_based[i] = code[i] - 1;
  }
  Rcpp::NumericMatrix C(G * m, m);
  Rcpp::IntegerVector count(G);
  mkt::cluster_gram(A.begin(), n, m, zero_based.data(), G, C.begin(), count.begin(), threads);
  return Rcpp::List::create(Rcpp::Named("gram") = C, Rcpp::Named("count") = count);
}
