// Rcpp shim for the re-randomization kernels: maps R objects onto the plain
// C++ structures of rerandomize.h and lin_stats.h, polls for interrupts (and
// reports progress) on the main thread, and turns an interrupt into R's once
// the kernel's threads are done.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "lin_stats.h"
#include "rerandomize.h"

namespace {

mkt::StrataSpec make_strata(const Rcpp::IntegerVector& units, const Rcpp::IntegerVector& start,
                            const Rcpp::IntegerVector& n_small,
                            const Rcpp::IntegerVector& small_treated) {
  mkt::StrataSpec s;
  s.units.assign(units.begin(), units.end());
  s.start.assign(start.begin(), start.end());
  s.n_small.assign(n_small.begin(), n_small.end());
  s.small_treated.assign(small_treated.begin(), small_treated.end());
  return s;
}

mkt::CriterionSpec make_criterion(int type, const Rcpp::IntegerVector& block_start,
                                  const Rcpp::NumericVector& threshold) {
  mkt::CriterionSpec c;
  c.type = type;
  c.block_start.assign(block_start.begin(), block_start.end());
  c.threshold.assign(threshold.begin(), threshold.end());
  return c;
}

uint64_t make_seed(const Rcpp::IntegerVector& seed) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(seed[0])) << 32) |
         static_cast<uint64_t>(static_cast<uint32_t>(seed[1]));
}

void check_interrupt_fn(void*) { R_CheckUserInterrupt(); }

struct ProgressCall {
  SEXP fn;
  double done;
};

void call_progress_fn(void* data) {
  const ProgressCall* pc = static_cast<const ProgressCall*>(data);
  SEXP arg = PROTECT(Rf_ScalarReal(pc->done));
  SEXP call = PROTECT(Rf_lang2(pc->fn, arg));
  Rf_eval(call, R_GlobalEnv);
  UNPROTECT(2);
}

// Runs on R's main thread (thread 0 of the kernels' parallel regions), and
// never jumps out of C++: R_ToplevelExec catches the interrupt (or an error
// of the progress handler, which then stops the loop too). Returns true to
// stop; the shim turns that into an R interrupt once the threads are done.
struct RPoll {
  SEXP progress = R_NilValue;
  bool operator()(double done) {
    if (R_ToplevelExec(check_interrupt_fn, nullptr) == FALSE) return true;
    if (progress != R_NilValue) {
      ProgressCall pc{progress, done};
      if (R_ToplevelExec(call_progress_fn, &pc) == FALSE) return true;
    }
    return false;
  }
};

SEXP progress_sexp(const Rcpp::Nullable<Rcpp::Function>& progress) {
  return progress.isNotNull() ? static_cast<SEXP>(progress) : R_NilValue;
}

[[noreturn]] void interrupted() { throw Rcpp::internal::InterruptedException(); }

}  // namespace

// The first accepted candidate of the seed's stream (rerandomize()).
// [[Rcpp::export]]
Rcpp::List cpp_rerandomize_first(const Rcpp::NumericMatrix& z, const Rcpp::IntegerVector& units,
                                 const Rcpp::IntegerVector& start,
                                 const Rcpp::IntegerVector& n_small,
                                 const Rcpp::IntegerVector& small_treated, int crit_type,
                                 const Rcpp::IntegerVector& block_start,
                                 const Rcpp::NumericVector& threshold,
                                 const Rcpp::IntegerVector& seed, double max_candidates,
                                 int block_size, int threads,
                                 Rcpp::Nullable<Rcpp::Function> progress) {
  const mkt::StrataSpec strata = make_strata(units, start, n_small, small_treated);
  const mkt::CriterionSpec crit = make_criterion(crit_type, block_start, threshold);
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  RPoll poll{progress_sexp(progress)};
  const mkt::FirstResult res =
      mkt::search_first(sc, make_seed(seed), static_cast<int64_t>(max_candidates), block_size,
                        threads, poll);
  if (res.interrupted) interrupted();
  const int n_found = res.found ? 1 : 0;
  Rcpp::IntegerMatrix assign(sc.n, n_found);
  std::copy(res.assignment.begin(), res.assignment.end(), assign.begin());
  Rcpp::NumericMatrix values(sc.n_values(), n_found);
  std::copy(res.values.begin(), res.values.end(), values.begin());
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["candidates"] = res.candidates,
                            Rcpp::_["best"] = res.best,
                            Rcpp::_["coin_flips"] = sc.coin_flips);
}

// One accepted assignment per replicate index (each from its own stream),
// optionally under a buffer rule (a list from R/design-core.R's
// buffer_spec(), with L, crit thresholds in `threshold`).
// [[Rcpp::export]]
Rcpp::List cpp_rerandomize_each(const Rcpp::NumericMatrix& z, const Rcpp::IntegerVector& units,
                                const Rcpp::IntegerVector& start,
                                const Rcpp::IntegerVector& n_small,
                                const Rcpp::IntegerVector& small_treated, int crit_type,
                                const Rcpp::IntegerVector& block_start,
                                const Rcpp::NumericVector& threshold,
                                const Rcpp::IntegerVector& seed,
                                const Rcpp::NumericVector& replicates, double budget,
                                int threads, Rcpp::Nullable<Rcpp::List> buffer,
                                Rcpp::Nullable<Rcpp::Function> progress) {
  const mkt::StrataSpec strata = make_strata(units, start, n_small, small_treated);
  const bool buffered = buffer.isNotNull();
  const int nb = crit_type == 0 ? static_cast<int>(block_start.size()) - 1 : 1;
  // With a buffer the base draws are unrestricted and the rule's thresholds
  // apply to the buffered criterion.
  const mkt::CriterionSpec crit = make_criterion(
      crit_type, block_start, buffered ? Rcpp::NumericVector(nb, R_PosInf) : threshold);
  const mkt::CriterionSpec buf_crit = make_criterion(crit_type, block_start, threshold);
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  mkt::BufferSpec b;
  Rcpp::NumericMatrix bx, bL;
  if (buffered) {
    const Rcpp::List bl(buffer.get());
    bx = Rcpp::as<Rcpp::NumericMatrix>(bl["X"]);
    bL = Rcpp::as<Rcpp::NumericMatrix>(bl["L"]);
    const Rcpp::IntegerVector s_idx = bl["s_idx0"];
    const Rcpp::NumericVector n1 = bl["n1"];
    const Rcpp::NumericVector pi_s = bl["pi_s"];
    const Rcpp::IntegerVector nb_start = bl["nb_start"];
    const Rcpp::IntegerVector nb_idx = bl["nb_idx"];
    b.x = bx.begin();
    b.n = bx.nrow();
    b.k = bx.ncol();
    b.stratum.assign(s_idx.begin(), s_idx.end());
    b.n_treated.assign(n1.begin(), n1.end());
    b.weight.assign(pi_s.begin(), pi_s.end());
    b.nb_start.assign(nb_start.begin(), nb_start.end());
    b.nb_idx.assign(nb_idx.begin(), nb_idx.end());
    b.L = bL.begin();
    b.min_controls = Rcpp::as<int>(bl["min_controls"]);
  }
  const int64_t R = replicates.size();
  const int nv = buffered ? nb : sc.n_values();
  Rcpp::IntegerMatrix assign(sc.n, static_cast<int>(R));
  Rcpp::NumericMatrix values(nv, static_cast<int>(R));
  Rcpp::NumericVector candidates(R), best(R);
  Rcpp::IntegerVector found(R);
  RPoll poll{progress_sexp(progress)};
  const bool done = mkt::search_each(sc, buffered ? &b : nullptr, &buf_crit, make_seed(seed),
                                     replicates.begin(), R, static_cast<int64_t>(budget),
                                     threads, poll, assign.begin(), values.begin(),
                                     candidates.begin(), best.begin(), found.begin());
  if (!done) interrupted();
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["candidates"] = candidates, Rcpp::_["best"] = best,
                            Rcpp::_["found"] = found, Rcpp::_["coin_flips"] = sc.coin_flips);
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_rerandomize_score(const Rcpp::NumericMatrix& z,
                                          const Rcpp::IntegerVector& units,
                                          const Rcpp::IntegerVector& start,
                                          const Rcpp::IntegerVector& n_small,
                                          const Rcpp::IntegerVector& small_treated,
                                          int crit_type, const Rcpp::IntegerVector& block_start,
                                          const Rcpp::IntegerVector& seed, double n_draws,
                                          int block_size, int threads) {
  const mkt::StrataSpec strata = make_strata(units, start, n_small, small_treated);
  const int nb = crit_type == 0 ? static_cast<int>(block_start.size()) - 1 : 1;
  const mkt::CriterionSpec crit =
      make_criterion(crit_type, block_start, Rcpp::NumericVector(nb, R_PosInf));
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  Rcpp::NumericMatrix out(sc.n_values(), static_cast<int>(n_draws));
  RPoll poll;
  if (!mkt::score(sc, make_seed(seed), static_cast<int64_t>(n_draws), block_size, threads, poll,
                  out.begin())) {
    interrupted();
  }
  return out;
}

// [[Rcpp::export]]
Rcpp::List cpp_rerandomize_enumerate(const Rcpp::NumericMatrix& z,
                                     const Rcpp::IntegerVector& units,
                                     const Rcpp::IntegerVector& start,
                                     const Rcpp::IntegerVector& n_treated, int crit_type,
                                     const Rcpp::IntegerVector& block_start,
                                     const Rcpp::NumericVector& threshold) {
  const int S = static_cast<int>(start.size()) - 1;
  const mkt::StrataSpec strata =
      make_strata(units, start, Rcpp::IntegerVector(S), Rcpp::IntegerVector(S));
  const mkt::CriterionSpec crit = make_criterion(crit_type, block_start, threshold);
  const mkt::Scorer sc(z.begin(), z.nrow(), z.ncol(), strata, crit);
  const std::vector<int> nt(n_treated.begin(), n_treated.end());
  RPoll poll;
  bool stopped = false;
  const mkt::Enumeration res = mkt::enumerate(sc, nt, poll, stopped);
  if (stopped) interrupted();
  Rcpp::IntegerMatrix assign(sc.n, static_cast<int>(res.n_found));
  std::copy(res.assignments.begin(), res.assignments.end(), assign.begin());
  Rcpp::NumericMatrix values(sc.n_values(), static_cast<int>(res.n_found));
  std::copy(res.values.begin(), res.values.end(), values.begin());
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["total"] = static_cast<double>(res.n_total));
}

// [[Rcpp::export]]
Rcpp::NumericMatrix cpp_lin_stats(const Eigen::Map<Eigen::VectorXd> y,
                                  const Eigen::Map<Eigen::VectorXd> v,
                                  const Eigen::Map<Eigen::MatrixXd> x,
                                  const Rcpp::IntegerMatrix& assign, int threads) {
  const int n = assign.nrow();
  const int R = assign.ncol();
  if (y.size() != n || v.size() != n || x.rows() != n) {
    Rcpp::stop("cpp_lin_stats: y, v, x and the assignments need %d rows", n);
  }
  Rcpp::NumericMatrix out(5, R);
  RPoll poll;
  if (!mkt::lin_many(y.data(), v.data(), x.data(), n, static_cast<int>(x.cols()) + 1,
                     assign.begin(), R, threads, poll, out.begin())) {
    interrupted();
  }
  Rcpp::rownames(out) = Rcpp::CharacterVector::create("A", "B", "P", "Q", "S");
  return out;
}

// [[Rcpp::export]]
Rcpp::List cpp_buffer_values(const Rcpp::NumericMatrix& x, const Rcpp::IntegerVector& stratum,
                             const Rcpp::NumericVector& n_treated,
                             const Rcpp::NumericVector& weight,
                             const Rcpp::IntegerVector& nb_start,
                             const Rcpp::IntegerVector& nb_idx, const Rcpp::NumericMatrix& L,
                             int crit_type, const Rcpp::IntegerVector& block_start,
                             int min_controls, const Rcpp::IntegerMatrix& w, int threads) {
  mkt::BufferSpec b;
  b.x = x.begin();
  b.n = x.nrow();
  b.k = x.ncol();
  b.stratum.assign(stratum.begin(), stratum.end());
  b.n_treated.assign(n_treated.begin(), n_treated.end());
  b.weight.assign(weight.begin(), weight.end());
  b.nb_start.assign(nb_start.begin(), nb_start.end());
  b.nb_idx.assign(nb_idx.begin(), nb_idx.end());
  b.L = L.begin();
  b.min_controls = min_controls;
  const int nb = crit_type == 0 ? static_cast<int>(block_start.size()) - 1 : 1;
  const mkt::CriterionSpec crit =
      make_criterion(crit_type, block_start, Rcpp::NumericVector(nb, R_PosInf));
  const int R = w.ncol();
  Rcpp::NumericMatrix vals(nb, R);
  Rcpp::NumericMatrix tau(b.k, R);
  Rcpp::IntegerMatrix kept(b.n_strata(), R);
  mkt::buffer_score_many(b, crit, w.begin(), R, threads, vals.begin(), tau.begin(), kept.begin());
  return Rcpp::List::create(Rcpp::_["values"] = vals, Rcpp::_["tau"] = tau,
                            Rcpp::_["kept"] = kept);
}

// --- multi-cell designs (R/design-cells.R's cells_spec()) ----------------------

namespace {

mkt::CellSpec make_cells(const Rcpp::List& spec, const Rcpp::NumericMatrix& z,
                         double threshold) {
  mkt::CellSpec c;
  c.z = z.begin();
  c.D = z.nrow();
  c.C = Rcpp::as<int>(spec["n_cells"]);
  c.n = z.ncol() / c.C;
  const Rcpp::IntegerVector units = spec["units"], start = spec["start"],
                            draw_start = spec["draw_start"], draw_cell = spec["draw_cell"],
                            draw_count = spec["draw_count"], implicit = spec["implicit"],
                            sizes = spec["n_by_stratum"];
  c.units.assign(units.begin(), units.end());
  c.start.assign(start.begin(), start.end());
  c.draw_start.assign(draw_start.begin(), draw_start.end());
  c.draw_cell.assign(draw_cell.begin(), draw_cell.end());
  c.draw_count.assign(draw_count.begin(), draw_count.end());
  c.implicit.assign(implicit.begin(), implicit.end());
  c.sizes.assign(sizes.begin(), sizes.end());
  c.threshold = threshold;
  if (spec.containsElementNamed("force")) c.force = Rcpp::as<int>(spec["force"]);
  return c;
}

}  // namespace

// The first accepted multi-cell candidate of the seed's stream.
// [[Rcpp::export]]
Rcpp::List cpp_cells_first(const Rcpp::List& spec, double threshold,
                           const Rcpp::IntegerVector& seed, double max_candidates,
                           int block_size, int threads,
                           Rcpp::Nullable<Rcpp::Function> progress) {
  const Rcpp::NumericMatrix z = spec["z"];
  const mkt::CellSpec cs = make_cells(spec, z, threshold);
  const mkt::CellScorer sc(cs);
  RPoll poll{progress_sexp(progress)};
  const mkt::FirstResult res = mkt::search_first(
      sc, make_seed(seed), static_cast<int64_t>(max_candidates), block_size, threads, poll);
  if (res.interrupted) interrupted();
  const int n_found = res.found ? 1 : 0;
  Rcpp::IntegerMatrix assign(sc.n, n_found);
  std::copy(res.assignment.begin(), res.assignment.end(), assign.begin());
  Rcpp::NumericMatrix values(1, n_found);
  std::copy(res.values.begin(), res.values.end(), values.begin());
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["candidates"] = res.candidates,
                            Rcpp::_["best"] = res.best, Rcpp::_["masks"] = sc.masks);
}

// One accepted multi-cell assignment per replicate index, each from its own
// stream.
// [[Rcpp::export]]
Rcpp::List cpp_cells_each(const Rcpp::List& spec, double threshold,
                          const Rcpp::IntegerVector& seed,
                          const Rcpp::NumericVector& replicates, double budget, int threads,
                          Rcpp::Nullable<Rcpp::Function> progress) {
  const Rcpp::NumericMatrix z = spec["z"];
  const mkt::CellSpec cs = make_cells(spec, z, threshold);
  const mkt::CellScorer sc(cs);
  const int64_t R = replicates.size();
  Rcpp::IntegerMatrix assign(sc.n, static_cast<int>(R));
  Rcpp::NumericMatrix values(1, static_cast<int>(R));
  Rcpp::NumericVector candidates(R), best(R);
  Rcpp::IntegerVector found(R);
  RPoll poll{progress_sexp(progress)};
  const bool done = mkt::search_each(sc, nullptr, nullptr, make_seed(seed),
                                     replicates.begin(), R, static_cast<int64_t>(budget),
                                     threads, poll, assign.begin(), values.begin(),
                                     candidates.begin(), best.begin(), found.begin());
  if (!done) interrupted();
  return Rcpp::List::create(Rcpp::_["assignments"] = assign, Rcpp::_["values"] = values,
                            Rcpp::_["candidates"] = candidates, Rcpp::_["best"] = best,
                            Rcpp::_["found"] = found);
}

// Criterion values of `n_draws` multi-cell candidates of the base design.
// [[Rcpp::export]]
Rcpp::NumericVector cpp_cells_score(const Rcpp::List& spec, const Rcpp::IntegerVector& seed,
                                    double n_draws, int block_size, int threads) {
  const Rcpp::NumericMatrix z = spec["z"];
  const mkt::CellSpec cs = make_cells(spec, z, R_PosInf);
  const mkt::CellScorer sc(cs);
  Rcpp::NumericVector out(static_cast<R_xlen_t>(n_draws));
  RPoll poll;
  if (!mkt::score(sc, make_seed(seed), static_cast<int64_t>(n_draws), block_size, threads, poll,
                  out.begin())) {
    interrupted();
  }
  return out;
}
