"""Scenario drivers: how LoadGen's queries become replica requests."""

from __future__ import annotations

from scenarios.base import ScenarioDriver
from scenarios.offline import OfflineDriver
from scenarios.server import ServerDriver
from scenarios.single_stream import SingleStreamDriver

DRIVERS: dict[str, type[ScenarioDriver]] = {d.name: d for d in (OfflineDriver, ServerDriver, SingleStreamDriver)}

__all__ = ["DRIVERS", "OfflineDriver", "ScenarioDriver", "ServerDriver", "SingleStreamDriver"]
