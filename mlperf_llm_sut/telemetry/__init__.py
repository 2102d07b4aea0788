"""Telemetry: what the engines, the servers and the hardware did during a run, sampled on the harness's clock."""
