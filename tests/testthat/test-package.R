# The package's own metadata: what an installed moegate promises its users.

test_that("rate_study()'s parallel backend is a hard dependency", {
  # rate_study() is the headline study driver: it must not stop for want of
  # future.apply, so the package is in Imports (installed with moegate).
  imports <- utils::packageDescription("moegate")$Imports
  imports <- trimws(sub("\\(.*", "", strsplit(imports, ",")[[1]]))
  expect_true("future.apply" %in% imports)
  expect_true(requireNamespace("future.apply", quietly = TRUE))
})

test_that("DESCRIPTION names exactly one maintainer with an address", {
  authors <- eval(parse(text = utils::packageDescription("moegate")$`Authors@R`))
  cre <- Filter(function(p) "cre" %in% p$role, as.list(authors))
  expect_length(cre, 1)
  expect_match(cre[[1]]$email, "^[^@ ]+@[^@ ]+\\.[a-z]+$")
  expect_false(is.null(cre[[1]]$given))
})
