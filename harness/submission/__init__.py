"""Runs made into the round's submission tree (`tree`, with `system_info`), and a run rerun on the same model
and data to show it reproduces (`rerun`); built on `harness.single`."""
