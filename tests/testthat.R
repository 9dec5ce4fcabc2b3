library(testthat)
library(moegate)

test_check("moegate")
