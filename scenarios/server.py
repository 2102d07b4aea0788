"""Server: Poisson arrivals; every sample streams so its first token reaches LoadGen at once.

LoadGen measures time to first token from the `FirstTokenComplete` call and
time per output token from the final response's `n_tokens`.
"""

from __future__ import annotations

from scenarios.base import ScenarioDriver


class ServerDriver(ScenarioDriver):
    name = "Server"
    stream = True
