"""What every engine worker on a CPU host imports, loaded once, in the forkserver the workers are forked from.

Importing vLLM (and torch under it) is about half of a CPU engine's start: some 11 s of 20 on the embedded
model here, paid again by every replica of every run. `sut.engine_replica` forks CPU workers from a
forkserver that has imported this module, so each worker starts with vLLM loaded. GPU workers are still
spawned fresh: there, importing vLLM probes the devices, which a process meant to see other devices (its
own `CUDA_VISIBLE_DEVICES`) must not inherit.

The import's own messages (vLLM names the platform it found) would land on the harness's terminal: the
forkserver has no engine log to send them to, so they are dropped.
"""

from __future__ import annotations

import os

_kept = (os.dup(1), os.dup(2))
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 1)
os.dup2(_null, 2)
try:
    import vllm.v1.engine.llm_engine
    import vllm.v1.metrics.loggers  # noqa: F401
    from vllm.platforms import current_platform

    current_platform.is_cpu()  # the platform is found on first use: once, here
finally:
    os.dup2(_kept[0], 1)
    os.dup2(_kept[1], 2)
    for _fd in (*_kept, _null):
        os.close(_fd)
