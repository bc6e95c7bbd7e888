// Rcpp shim for the interactive fixed effects kernels of ife.h: copies R
// matrices into Eigen, turns C++ exceptions into R errors (Rcpp does this for
// std::exception) and polls for interrupts between iterations.
#include <Rcpp.h>
#include <RcppEigen.h>

#include "ife.h"

namespace {

std::vector<Eigen::MatrixXd> to_mats(const Rcpp::List& X) {
  std::vector<Eigen::MatrixXd> out;
  out.reserve(X.size());
  for (R_xlen_t k = 0; k < X.size(); ++k) {
    out.push_back(Rcpp::as<Eigen::MatrixXd>(X[k]));
  }
  return out;
}

// Eigen's own OpenMP products cost more than they give on these matrix
// sizes and would make timing depend on the machine's load: one thread
// inside the fit, restored afterwards.
struct EigenSingleThread {
  int saved;
  EigenSingleThread() : saved(Eigen::nbThreads()) { Eigen::setNbThreads(1); }
  ~EigenSingleThread() { Eigen::setNbThreads(saved); }
};

struct Poll {
  void operator()() const { Rcpp::checkUserInterrupt(); }
};

}  // namespace

// [[Rcpp::export]]
Rcpp::List cpp_ife_fit(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& mask,
                       const Rcpp::List& X, int r, int force, double tol, int max_iter,
                       bool soft, double lambda, const Eigen::MatrixXd& F0,
                       const Eigen::VectorXd& beta0, const Eigen::MatrixXd& fill0) {
  const EigenSingleThread one_thread;
  mkt::ife::Control ctl;
  ctl.r = r;
  ctl.force = force;
  ctl.tol = tol;
  ctl.max_iter = max_iter;
  ctl.soft = soft;
  ctl.lambda = lambda;
  const mkt::ife::Fit f = mkt::ife::fit(Y, mask, to_mats(X), ctl, F0, beta0, fill0, Poll());
  return Rcpp::List::create(
      Rcpp::_["beta"] = f.beta, Rcpp::_["mu"] = f.mu, Rcpp::_["alpha"] = f.alpha,
      Rcpp::_["xi"] = f.xi, Rcpp::_["F"] = f.F, Rcpp::_["L"] = f.L, Rcpp::_["fit"] = f.fit,
      Rcpp::_["sv"] = f.sv, Rcpp::_["iter"] = f.iter, Rcpp::_["converged"] = f.converged,
      Rcpp::_["ssr"] = f.ssr, Rcpp::_["nobs"] = f.nobs);
}

// [[Rcpp::export]]
Rcpp::List cpp_ife_project(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& pre,
                           const Rcpp::List& X, const Eigen::VectorXd& beta, double mu,
                           const Eigen::VectorXd& xi, const Eigen::MatrixXd& F, int force) {
  Eigen::MatrixXd coefs;
  std::vector<int> status;
  const Eigen::MatrixXd y0 =
      mkt::ife::project(Y, pre, to_mats(X), beta, mu, xi, F, force, coefs, status);
  return Rcpp::List::create(Rcpp::_["y0"] = y0, Rcpp::_["coef"] = coefs,
                            Rcpp::_["status"] = Rcpp::wrap(status));
}
