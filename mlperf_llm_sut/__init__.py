"""The ground the system under test stands on, under the distribution's own name so that it never clashes with
another package in site-packages: `mlperf_llm_sut.common` (errors, files, data sets, stopping, the embedded
model and samples), `mlperf_llm_sut.telemetry` (sampling engines, servers and hardware during a run) and
`mlperf_llm_sut.benchmarks` (each MLPerf benchmark's rules, one module each).
`sut`, `scenarios`, `accuracy` and `harness` build on it."""
