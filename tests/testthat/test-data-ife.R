test_that("gsynth_simdata rebuilds Y from its parts and has the documented truth", {
  d <- gsynth_simdata
  expect_equal(dim(d), c(1500L, 15L))
  rebuilt <- with(d, mu + alpha + xi + X1 + 3 * X2 + F1 * L1 + F2 * L2 + eff * D + error)
  expect_equal(d$Y, rebuilt, tolerance = 1e-12)
  expect_equal(mean(d$eff[d$D == 1]), 5.462032, tolerance = 1e-6)
  expect_equal(sort(unique(d$id[d$D == 1])), 101:105)
})

test_that("gsynth_turnout has 47 states x 24 elections and nine EDR adopters", {
  d <- gsynth_turnout
  expect_equal(dim(d), c(1128L, 6L))
  expect_equal(length(unique(d$abb)), 47L)
  expect_equal(sort(unique(d$abb[d$policy_edr == 1])),
               c("CT", "IA", "ID", "ME", "MN", "MT", "NH", "WI", "WY"))
  expect_equal(sum(d$policy_edr), 50L)
})
