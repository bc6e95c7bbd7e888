library(testthat)
library(mktcausal)

test_check("mktcausal")
