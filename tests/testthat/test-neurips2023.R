# The NeurIPS 2023 reference protocol: the shipped runner and its data files.
# (The setting itself is tested in test-study.R, the loss conventions in test-voronoi.R.)

test_that("the protocol runner parses and keeps its one-command interface", {
  script <- system.file("studies", "neurips2023.R", package = "moegate")
  skip_if(!nzchar(script), "runner not installed")
  code <- parse(script)
  text <- paste(deparse(code), collapse = "\n")
  for (option in c("workers", "sizes", "reps", "out")) {
    expect_match(text, paste0('option("', option, '"'), fixed = TRUE)
  }
  # A reduced run never overwrites the full run's file
  expect_match(text, "neurips2023_k%d_reduced.rds", fixed = TRUE)
  expect_match(text, "neurips2023_k%d.rds", fixed = TRUE)
})

test_that("stored protocol runs carry their machine, timing, grid and slopes", {
  dir <- system.file("extdata", package = "moegate")
  files <- list.files(dir, pattern = "^neurips2023_k[234](_reduced)?\\.rds$", full.names = TRUE)
  skip_if(length(files) == 0, "no stored protocol runs")
  for (file in files) {
    study <- readRDS(file)
    expect_s3_class(study, "moe_rate_study")
    expect_true(all(c("loss", "loss_reference", "iterations", "stuck") %in% names(study)))
    run <- attr(study, "run")
    expect_type(run, "list")
    expect_true(all(c("wall_time", "workers", "machine", "date", "n_grid", "n_rep", "slopes",
                      "slopes_reference", "published_seconds") %in% names(run)))
    expect_true(all(c("nproc", "cpu", "r_version") %in% names(run$machine)))
    expect_setequal(run$n_grid, unique(study$n))
    # The translation-free loss never exceeds the public code's reference-convention loss
    ok <- !is.na(study$loss)
    expect_true(all(study$loss[ok] <= study$loss_reference[ok] + 1e-8))
  }
})
