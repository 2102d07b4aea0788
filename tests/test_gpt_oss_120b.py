"""gpt-oss-120b in the registry: its numbers, its pre-tokenized harmony prompts, its generation limits per
mode, and its way of completing a streamed answer (the tokens after the first), checked in LoadGen's logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.runner import run
from harness.single.settings import build_settings
from mlperf_llm_sut.benchmarks import BENCHMARKS, get_benchmark
from mlperf_llm_sut.common.dataset import load_dataset
from mlperf_llm_sut.common.errors import HarnessError
from tests.scripted_replica import ScriptedReplica, tokens_for

BENCHMARK = get_benchmark("gpt-oss-120b")


def test_the_registry_carries_the_rounds_gpt_oss_numbers():
    assert BENCHMARKS["gpt-oss-120b"] is BENCHMARK and BENCHMARK.current_round
    assert BENCHMARK.dataset_size == BENCHMARK.performance_sample_count == 6396
    assert BENCHMARK.accuracy_sample_count == 4395
    assert (BENCHMARK.rules("Server").ttft_ms, BENCHMARK.rules("Server").tpot_ms) == (3000, 80)
    interactive = BENCHMARK.rules("Interactive")
    assert (interactive.conf_model, interactive.ttft_ms, interactive.tpot_ms) == ("gpt-oss-120b-interactive", 2000, 15)
    assert BENCHMARK.accuracy.reference == {"exact_match": 83.13} and BENCHMARK.accuracy.factor == 0.99
    assert BENCHMARK.accuracy.grading == "gpt-oss-120b"
    assert [test.name for test in BENCHMARK.compliance] == ["TEST07", "TEST09"]
    assert BENCHMARK.compliance_test("TEST07").accuracy_threshold == 60.698
    assert BENCHMARK.compliance_test("TEST09").output_tokens == (1150.38, 1406.02)
    assert not BENCHMARK.first_token_in_completion
    with pytest.raises(HarnessError, match="gpt-oss-120b has no such audit"):
        BENCHMARK.compliance_test("TEST06")


def test_its_token_ceiling_has_no_floor():
    """constants.py gives gpt-oss-120b an upper limit on TOKENS_PER_SAMPLE (1.1 x 9999) and no lower one."""
    rows = {row["metric"]: row for row in BENCHMARK.accuracy.check({"exact_match": 90.0, "tokens_per_sample": 5.0})}
    assert rows["tokens_per_sample"]["passed"] and rows["tokens_per_sample"]["min"] is None
    rows = {row["metric"]: row for row in BENCHMARK.accuracy.check({"exact_match": 90.0, "tokens_per_sample": 11_000})}
    assert not rows["tokens_per_sample"]["passed"]
    assert rows["tokens_per_sample"]["max"] == pytest.approx(1.1 * 9999)


def _tokenized(tmp_path: Path, count: int) -> Path:
    """A processed file as MLCommons ships it: `input_tokens`, `ground_truth`, `dataset`."""
    path = tmp_path / "gpt-oss.jsonl"
    rows = [
        {"input_tokens": [1, 200 + i, 300 + i], "ground_truth": "A", "dataset": "gpqa_diamond"} for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_prompts_are_the_files_input_tokens_and_the_answers_its_ground_truth(tmp_path):
    dataset = load_dataset(_tokenized(tmp_path, 3), prompt_format=BENCHMARK.prompt_format)
    assert dataset.schema == "processed"
    assert dataset.prompts == [[1, 200, 300], [1, 201, 301], [1, 202, 302]]
    assert dataset.references == ["A", "A", "A"] and dataset.sources == ["gpqa_diamond"] * 3


@pytest.mark.parametrize(
    ("mode", "model", "max_new_tokens"),
    [
        ("performance", "/models/gpt-oss-120b", 10_240),
        ("accuracy", "/models/gpt-oss-120b", 32_768),
        ("accuracy", None, 128),
    ],
)
def test_performance_and_accuracy_runs_generate_up_to_the_references_limits(tmp_path, mode, model, max_new_tokens):
    config = build_config(benchmark="gpt-oss-120b", mode=mode, model=model, dataset=_tokenized(tmp_path, 3))
    generation = config.generation
    assert generation.max_new_tokens == max_new_tokens
    assert (generation.temperature, generation.top_p, generation.top_k) == (1.0, 1.0, 0)


def _entries(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "mlperf_log_accuracy.json").read_text())


def _ids(hex_data: str) -> list[int]:
    return np.frombuffer(bytes.fromhex(hex_data), dtype=np.int32).tolist()


@pytest.mark.parametrize("scenario", ["Server", "Offline"])
def test_a_streamed_answer_is_completed_with_the_tokens_after_its_first(tmp_path, scenario):
    """server_sut.py: FirstTokenComplete gets token 0, QuerySamplesComplete the rest, and LoadGen counts the
    rest; an Offline answer is completed whole."""
    user_conf = tmp_path / "user.conf"
    user_conf.write_text("gpt-oss-120b.*.accuracy_log_sampling_target = 1000\n")  # every sample logged
    config = build_config(
        benchmark="gpt-oss-120b",
        scenario=scenario,
        dataset=_tokenized(tmp_path, 12),
        output_dir=tmp_path / "runs",
        user_conf=user_conf,
        target_qps=200.0 if scenario == "Server" else None,
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
    entries = _entries(report.run_dir)
    assert set(entry["qsl_idx"] for entry in entries) == set(range(12))
    for entry in entries:
        answer = tokens_for(entry["qsl_idx"])
        if scenario == "Server":
            assert _ids(entry["token_data"]) == answer[:1]
            assert _ids(entry["data"]) == answer[1:] and entry["token_count"] == len(answer) - 1
        else:
            assert _ids(entry["data"]) == answer
    assert report.record.samples.failed == 0


def test_an_accuracy_run_over_a_smaller_file_covers_the_whole_file(tmp_path):
    """mlperf.conf asks LoadGen for 4,395 accuracy samples; a file of 12 gets 12 (and the run's check of the
    effective count calls it short)."""
    config = build_config(
        benchmark="gpt-oss-120b", mode="accuracy", model="/models/gpt-oss-120b", dataset=_tokenized(tmp_path, 12)
    )
    built, _ = build_settings(config.loadgen, 12)
    assert built.settings.accuracy_sample_count_override == 12
    assert BENCHMARK.check_effective("Offline", "accuracy", {"accuracy_sample_count": 12}) == [
        "the accuracy run covers 12 samples; gpt-oss-120b needs the whole accuracy data set of 4395"
    ]
    full, _ = build_settings(config.loadgen, 4395)
    assert full.settings.accuracy_sample_count_override == 4395 and not full.non_compliant
    assert BENCHMARK.check_effective("Offline", "accuracy", {"accuracy_sample_count": 4395}) == []
    performance_file, _ = build_settings(config.loadgen, 6396)
    assert performance_file.non_compliant == [
        "the data set has 6396 samples, but gpt-oss-120b's accuracy data set has 4395: is it the performance data set?"
    ]


def test_prompts_a_context_would_cut_short_are_warned_of_before_the_run(tmp_path):
    """vLLM stops an answer at max_model_len without an error: a run that asks for more says so first."""
    console = io.StringIO()
    config = build_config(
        benchmark="gpt-oss-120b", engine={"max_model_len": 1024}, output_dir=tmp_path / "runs", min_duration_ms=0
    )
    run(config, console=Console(file=console, width=300), replica_factory=ScriptedReplica.factory())
    shown = " ".join(console.getvalue().split())
    assert "max_model_len 1024 leaves 20 of 60 prompts less room than max_new_tokens 128" in shown
    assert "Raise max_model_len to 2003" in shown


@pytest.mark.engine
def test_gpt_oss_runs_from_accuracy_to_a_dry_run_tree_on_the_real_engine(tmp_path, system_file):
    """What a submitter does, on the real engine and the embedded sample: Offline performance, TEST07 and
    TEST09 runs, an accuracy run through the command line that scores itself as `python -m accuracy` scores
    its log, then the tree; and TEST09 in Server and Interactive, whose answers stream: there LoadGen logs the
    first token apart and the rest as the answer, as the reference's server SUT reports them."""
    from accuracy.cli import main as accuracy_main
    from mlperf_llm_sut.common import embedded
    from tests.conftest import dry_run_tree, run_cli

    console = Console(file=io.StringIO())
    runs, streamed = tmp_path / "runs", tmp_path / "streamed"
    performance = run(build_config(benchmark="gpt-oss-120b", output_dir=runs), console=console)
    assert performance.result.valid and performance.record.samples.failed == 0, performance.result.invalid_reasons

    test07 = run(build_config(benchmark="gpt-oss-120b", compliance="TEST07", output_dir=runs), console=console)
    verdict = test07.record.compliance
    # The tiny model answers nothing right: the audit runs, scores all 60 samples and fails on the threshold.
    assert verdict is not None and not verdict.passed and test07.record.samples.completed == 60
    verify = (test07.run_dir / "verify_accuracy.txt").read_text()
    assert "'exact_match': 0.0" in verify and "Accuracy threshold: 60.698" in verify and "TEST FAIL" in verify

    for scenario, folder in (("Offline", runs), ("Server", streamed), ("Interactive", streamed)):
        qps = {} if scenario == "Offline" else {"target_qps": 20.0}
        config = build_config(
            benchmark="gpt-oss-120b", scenario=scenario, compliance="TEST09", output_dir=folder, **qps
        )
        audit = run(config, console=console)
        entries = _entries(audit.run_dir)
        assert len(entries) == 60 and audit.record.compliance is not None
        lengths = [len(_ids(entry["data"])) for entry in entries]
        assert all(entry["token_count"] == length for entry, length in zip(entries, lengths, strict=True))
        text = (audit.run_dir / "verify_output_len.txt").read_text()
        assert f"Mean output tokens: {sum(lengths) / len(lengths):.2f}" in text and "TEST FAIL" in text
        if scenario != "Offline":  # the first token went to FirstTokenComplete, the rest to the completion
            assert sum(lengths) == audit.record.samples.output_tokens - 60
            assert all(len(_ids(entry["token_data"])) == 1 for entry in entries)

    code, _, err = run_cli("--benchmark", "gpt-oss-120b", "--mode", "accuracy", "--output-dir", str(runs))
    assert code == 0, err[-2000:]
    (accuracy_run,) = runs.glob("*-accuracy-*")
    scored = json.loads((accuracy_run / "run.json").read_text())["accuracy"]
    assert scored["passed"] and scored["metrics"]["num-samples"] == 60
    assert set(scored["metrics"]["per_dataset"]) == {"aime25", "gpqa_diamond", "livecodebench_v6"}
    again = tmp_path / "again"
    again.mkdir()
    arguments = ["--benchmark", "gpt-oss-120b", "--accuracy-log", str(accuracy_run / "mlperf_log_accuracy.json")]
    arguments += ["--dataset", str(embedded.ROOT / BENCHMARK.demo_dataset), "--model", str(embedded.MODEL_DIR)]
    arguments += ["--livecodebench", str(embedded.ROOT / str(BENCHMARK.demo_problems)), "--output-dir", str(again)]
    assert accuracy_main([*arguments, "--targets", str(embedded.ROOT / BENCHMARK.demo_targets)]) == 0
    assert json.loads((again / "accuracy.json").read_text())["metrics"] == scored["metrics"]

    proc = dry_run_tree(runs, tree := tmp_path / "tree", system_file)
    assert proc.returncode == 1 and "DRY RUN" in proc.stdout, proc.stderr
    out = tree / "closed" / "Acme" / "results" / "cpu" / "gpt-oss-120b" / "Offline"
    assert "'exact_match': " in (out / "accuracy" / "accuracy.txt").read_text()
    assert (out / "TEST07" / "verify_accuracy.txt").is_file() and (out / "TEST09" / "verify_output_len.txt").is_file()
    assert (out / "TEST09" / "accuracy" / "mlperf_log_accuracy.json").is_file()


def test_harmony_text_rows_are_encoded_as_they_are_into_the_files_tokens(tmp_path):
    """A file of harmony text (`text_input`) without its tokens gives the prompts the tokenized file has: the text
    encoded with nothing added."""
    from mlperf_llm_sut.common import embedded

    sample = embedded.ROOT / BENCHMARK.demo_dataset
    rows = [json.loads(line) for line in sample.read_text().splitlines()][:6]
    text_only = tmp_path / "harmony.jsonl"
    text_only.write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k != "input_tokens"}) + "\n" for row in rows)
    )
    raw = load_dataset(text_only, prompt_format=BENCHMARK.prompt_format, tokenizer_dir=embedded.MODEL_DIR)
    assert raw.schema == "raw" and raw.prompts == [row["input_tokens"] for row in rows]
    assert raw.references == [row["ground_truth"] for row in rows] and raw.sources == [row["dataset"] for row in rows]


def test_seeded_sampling_on_cpu_is_refused_before_an_engine_starts():
    """vLLM's CPU sampler has no per-request generators: a seed with sampling would fail on the first token."""
    from sut.generation import GenerationConfig

    with pytest.raises(HarnessError, match=r"seed 0 with temperature 1: vLLM on CPU cannot sample from per-request"):
        GenerationConfig(temperature=1.0, seed=0).check_engine(on_cpu=True)
    GenerationConfig(temperature=1.0, seed=0).check_engine(on_cpu=False)
    GenerationConfig(temperature=0.0, seed=42).check_engine(on_cpu=True)  # greedy: the seed is never used
