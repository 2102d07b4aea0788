"""Offline: LoadGen issues every sample in one query; all of it goes to the engine at once.

The engine's continuous batching keeps it full until the last sample; each
sample is answered the moment it finishes, with no per-token traffic.
"""

from __future__ import annotations

from scenarios.base import ScenarioDriver


class OfflineDriver(ScenarioDriver):
    name = "Offline"
    stream = False
