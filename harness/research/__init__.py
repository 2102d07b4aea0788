"""Commands over many runs, built on `harness.single`: sweeps over settings (`sweep`, from a `plans` file),
the Server peak (`peak`), several runs at once (`multi`), one report of many runs (`report`) and the
regression gate between two runs or sweeps (`regression`, `python -m harness compare`)."""
