"""Systems under test: replicas that turn token-id prompts into token ids, and the classes a LoadGen script
drives them through.

- `LocalVLLM`, `RayActors`, `RemoteServers`: systems under test for `lg.StartTest`, built from
  `EnginesConfig` (vLLM's `EngineConfig` and the replicas' `ReplicaLayout`) or `ServersConfig` (the endpoints'
  `RemoteConfig`), with `SampleLibrary` as their query sample library (`sut.systems`).
- `sut.build`: how a configuration becomes replicas; `sut.replica`: what a replica and a group of
  replicas are.
"""

from scenarios.qsl import SampleLibrary
from scenarios.responder import Accounts
from sut.build import EnginesConfig, ReplicaLayout, ServersConfig
from sut.engine_config import EngineConfig
from sut.generation import GenerationConfig
from sut.remote_config import RemoteConfig
from sut.replica import ReplicaStats
from sut.systems import SCENARIOS, LocalVLLM, RayActors, RemoteServers, SystemUnderTest

__all__ = [
    "SCENARIOS",
    "Accounts",
    "EngineConfig",
    "EnginesConfig",
    "GenerationConfig",
    "LocalVLLM",
    "RayActors",
    "RemoteConfig",
    "RemoteServers",
    "ReplicaLayout",
    "ReplicaStats",
    "SampleLibrary",
    "ServersConfig",
    "SystemUnderTest",
]
