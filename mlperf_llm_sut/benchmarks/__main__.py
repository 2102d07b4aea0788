"""`python -m mlperf_llm_sut.benchmarks`: the README's table of the benchmarks, made from the registry so it
cannot drift."""

from __future__ import annotations

from mlperf_llm_sut.benchmarks import BENCHMARKS, ROUND, Benchmark, ScenarioRules

README_START = "<!-- benchmarks table: python -m mlperf_llm_sut.benchmarks -->"
README_END = "<!-- end of benchmarks table -->"


def _scenario(name: str, rules: ScenarioRules) -> str:
    limits = f" (TTFT {rules.ttft_ms:g} ms, TPOT {rules.tpot_ms:g} ms)" if rules.ttft_ms is not None else ""
    return f"{name}{limits}"


def _targets(benchmark: Benchmark) -> str:
    targets = benchmark.accuracy
    rouge = ", ".join(f"{key} {value:g}" for key, value in targets.reference.items())
    if not targets.lengths_floor:
        lengths = ", ".join(
            f"{key} at most {1 + targets.tolerance:.0%} of {value:,.10g}" for key, value in targets.lengths.items()
        )
        return f"{targets.factor * 100:g}% of {rouge}; {lengths}"
    lengths = ", ".join(f"{key} {value:,.10g}" for key, value in targets.lengths.items())
    return f"{targets.factor * 100:g}% of {rouge}; {lengths} ±{targets.tolerance:.0%}"


def markdown() -> str:
    """The table, one row per benchmark."""
    lines = [
        "| benchmark | category | data set | scenarios (p99 limits) | accuracy targets | new tokens | audits "
        f"| in {ROUND} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in BENCHMARKS.values():
        scenarios = "<br>".join(_scenario(name, rules) for name, rules in b.scenarios.items())
        audits = ", ".join(test.name for test in b.compliance) or "-"
        new_tokens = f"{b.generation.get('min_new_tokens', 1)}-{b.generation.get('max_new_tokens')}"
        if "max_new_tokens" in b.accuracy_generation:
            new_tokens += f" (accuracy: {b.accuracy_generation['max_new_tokens']})"
        samples = f"{b.dataset_size:,}"
        if b.accuracy_sample_count is not None:
            samples += f" ({b.accuracy_sample_count:,} for accuracy)"
        lines.append(
            f"| `{b.name}` | {b.category} | {b.dataset}: {samples} | {scenarios} | {_targets(b)} "
            f"| {new_tokens} | {audits} | {'yes' if b.current_round else 'earlier rounds'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(README_START)
    print(markdown(), end="")
    print(README_END)
