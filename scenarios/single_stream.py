"""SingleStream: LoadGen issues one sample, and the next only once it is answered; it streams, so
LoadGen times its first token as well as the whole answer (the edge benchmarks' latency)."""

from __future__ import annotations

from scenarios.base import ScenarioDriver


class SingleStreamDriver(ScenarioDriver):
    name = "SingleStream"
    stream = True
