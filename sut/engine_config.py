"""vLLM engine settings: the common ones typed, every other `EngineArgs` field passed through.

vLLM is imported only when the arguments are built, so that configuration,
`--help` and input validation stay fast and work without vLLM installed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from mlperf_llm_sut.common.errors import HarnessError, setting

# On CPU, vLLM reserves gpu_memory_utilization x RAM for the KV cache; its GPU
# default (0.9) would take nearly all of this machine's memory.
CPU_DEFAULT_MEMORY_UTILIZATION = 0.2


@dataclass
class EngineConfig:
    """Arguments for one vLLM engine (one replica).

    Fields left at None keep vLLM's own default. `extra` holds any other
    `vllm.EngineArgs` field, exactly as the user gave it (`--engine-arg key=value`).
    """

    model: str
    tokenizer: str | None = None
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    enable_chunked_prefill: bool | None = None
    enforce_eager: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_vllm_args(cls, model: str, **arguments: Any) -> EngineConfig:
        """`vllm.EngineArgs` fields as one configuration: those typed here go to their fields, the rest to
        `extra`."""
        typed = {f.name for f in dataclasses.fields(cls)} - {"model", "extra"}
        return cls(
            model,
            **{k: v for k, v in arguments.items() if k in typed},
            extra={k: v for k, v in arguments.items() if k not in typed},
        )

    def check(self) -> None:
        """Out-of-range sizes as one clear error, before any process starts."""
        for name in ("tensor_parallel_size", "max_model_len", "max_num_seqs", "max_num_batched_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HarnessError(f"{setting(name)} must be at least 1, got {value}.")
        share = self.gpu_memory_utilization
        if share is not None and not 0 < share <= 1:
            raise HarnessError(
                f"{setting('gpu_memory_utilization')} is a share of memory: above 0 and at most 1, got {share}."
            )

    def engine_kwargs(self, *, on_cpu: bool) -> dict[str, Any]:
        """The keyword arguments for `vllm.EngineArgs`, with platform defaults filled in."""
        typed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if typed["gpu_memory_utilization"] is None and on_cpu:
            typed["gpu_memory_utilization"] = CPU_DEFAULT_MEMORY_UTILIZATION
        clash = sorted(set(self.extra) & set(typed))
        if clash:
            raise HarnessError(
                f"{setting('engine_extra')} {clash[0]}=... repeats a typed engine setting: use {setting(clash[0])}."
            )
        kwargs = {k: v for k, v in typed.items() if v is not None}
        kwargs.update(self.extra)
        return kwargs

    def to_engine_args(self, *, on_cpu: bool) -> Any:
        from vllm import EngineArgs

        kwargs = self.engine_kwargs(on_cpu=on_cpu)
        check_engine_arg_names(kwargs, {f.name for f in dataclasses.fields(EngineArgs)})
        try:
            return EngineArgs(**kwargs)
        except (TypeError, ValueError) as exc:
            raise HarnessError(f"invalid vLLM engine arguments: {exc}") from None


def check_engine_arg_names(kwargs: dict[str, Any], known: set[str]) -> None:
    for name in kwargs:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise HarnessError(f"{setting('engine_extra')} {name}: vLLM's EngineArgs has no field {name!r}.{hint}")


def parse_engine_arg(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, value); the value is read as JSON when it is JSON, else kept as text.

    Dashes in the key are accepted (`max-loras=2`), as in vLLM's own CLI.
    """
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise HarnessError(f"--engine-arg {text!r} is not key=value (for example --engine-arg swap_space=4).")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value
