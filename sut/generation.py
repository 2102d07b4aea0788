"""Generation settings: greedy, 1 to 1024 new tokens unless the benchmark says otherwise
(`Benchmark.generation`, which `harness.single.config.build_config` applies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class GenerationConfig:
    max_new_tokens: int = 1024
    min_new_tokens: int = 1
    temperature: float = 0.0
    """0 is greedy decoding, as the MLPerf reference (do_sample=False, num_beams=1)."""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    seed: int | None = None

    @classmethod
    def of_benchmark(cls, name: str) -> GenerationConfig:
        """The MLCommons reference's generation settings of benchmark `name` (`benchmarks.Benchmark.generation`)."""
        from mlperf_llm_sut.benchmarks import get_benchmark

        return cls(**get_benchmark(name).generation)

    def check(self) -> None:
        """Every out-of-range setting as one clear error, before an engine starts and rejects it."""
        from mlperf_llm_sut.common.errors import HarnessError, setting

        problems = [
            (self.max_new_tokens < 1, f"{setting('max_new_tokens')} must be at least 1"),
            (
                not 0 <= self.min_new_tokens <= self.max_new_tokens,
                f"{setting('min_new_tokens')} must be between 0 and {setting('max_new_tokens')} "
                f"({self.max_new_tokens})",
            ),
            (self.temperature < 0, f"{setting('temperature')} must be 0 (greedy) or more"),
            (not 0 < self.top_p <= 1, f"{setting('top_p')} must be above 0 and at most 1"),
            (self.top_k < 0, f"{setting('top_k')} must be 0 (off) or more"),
            (self.seed is not None and self.seed < 0, f"{setting('seed')} must be 0 or more"),
        ]
        for bad, message in problems:
            if bad:
                raise HarnessError(f"{message}.")

    def check_engine(self, *, on_cpu: bool) -> None:
        """What the engine's platform cannot do, as one clear error before an engine starts and fails on it."""
        from mlperf_llm_sut.common.errors import HarnessError, setting

        if on_cpu and self.seed is not None and self.temperature > 0:
            # vLLM's seeded sampling keeps a torch generator per request and advances it by offsets, which the
            # CPU generator refuses ("CPU Generator does not use offset") on the first sampled token.
            raise HarnessError(
                f"{setting('seed')} {self.seed} with {setting('temperature')} {self.temperature:g}: vLLM on CPU "
                f"cannot sample from per-request seeds. Leave out {setting('seed')} on CPU, or decode greedily "
                f"({setting('temperature')} 0)."
            )

    def sampling_params(self, *, stream: bool, max_new_tokens: int | None = None) -> Any:
        """vLLM `SamplingParams`; token ids only, no detokenization on the hot path.

        Streams get one delta per engine step (the first token as soon as it
        exists); non-streaming requests get a single final output.
        """
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            max_tokens=max_new_tokens or self.max_new_tokens,
            min_tokens=min(self.min_new_tokens, max_new_tokens or self.max_new_tokens),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        )

    def request_fields(self, max_tokens: int) -> dict[str, Any]:
        """The same settings for a server's HTTP API, under vLLM's names.

        vLLM's extensions (`min_tokens`, `top_k`, `seed`) go only when they are not
        the defaults: servers that hold to the OpenAI schema reject unknown fields.
        """
        fields: dict[str, Any] = {"max_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        if self.min_new_tokens > 1:
            fields["min_tokens"] = min(self.min_new_tokens, max_tokens)
        if self.top_k > 0:
            fields["top_k"] = self.top_k
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields
