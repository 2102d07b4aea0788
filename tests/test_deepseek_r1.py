"""deepseek-r1 in the registry: its numbers, its prompts in the model's chat template, its bundled synthetic
sample, and accuracy logs scored by exact match as the reference's eval_accuracy.py does, LiveCodeBench
answers run against the problems' tests, from `python -m accuracy` and from a run."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from accuracy.cli import main as accuracy_main
from harness.single.config import build_config
from harness.single.runner import run
from mlperf_llm_sut.benchmarks import BENCHMARKS, get_benchmark
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import ROOT
from tests.scripted_replica import ScriptedReplica

sys.path.insert(0, str(ROOT / "scripts"))

import synthetic_deepseek

BENCHMARK = get_benchmark("deepseek-r1")
SAMPLE = embedded.ROOT / BENCHMARK.demo_dataset
PROBLEMS = embedded.ROOT / str(BENCHMARK.demo_problems)
# tools/submission/submission_checker/constants.py ACC_PATTERN: what the checker reads out of accuracy.txt.
CHECKER_PATTERNS = {
    "exact_match": r".*'exact_match':\s([\d.]+).*",
    "TOKENS_PER_SAMPLE": r".*'tokens_per_sample':\s([\d.]+).*",
}


def test_the_registry_carries_the_rounds_deepseek_r1_numbers():
    assert BENCHMARKS["deepseek-r1"] is BENCHMARK and BENCHMARK.current_round
    assert BENCHMARK.dataset_size == BENCHMARK.performance_sample_count == 4388
    assert BENCHMARK.rules("Offline").min_query_count == 4388
    assert (BENCHMARK.rules("Server").ttft_ms, BENCHMARK.rules("Server").tpot_ms) == (2000, 80)
    interactive = BENCHMARK.rules("Interactive")
    assert (interactive.conf_model, interactive.ttft_ms, interactive.tpot_ms) == ("deepseek-r1-interactive", 1500, 15)
    rows = {row["metric"]: row for row in BENCHMARK.accuracy.check({"exact_match": 80.6, "tokens_per_sample": 3600})}
    assert rows["exact_match"]["min"] == pytest.approx(0.99 * 81.3582) and rows["exact_match"]["passed"]
    assert rows["tokens_per_sample"]["min"] == pytest.approx(0.9 * 3886.2274)
    assert rows["tokens_per_sample"]["max"] == pytest.approx(1.1 * 3886.2274) and rows["tokens_per_sample"]["passed"]
    assert BENCHMARK.accuracy.scoring == "exact_match" and BENCHMARKS["llama3.1-8b"].accuracy.scoring == "rouge"
    (audit,) = BENCHMARK.compliance
    assert (audit.name, audit.eos_token_id) == ("TEST06", 1)
    assert BENCHMARK.generation == {"max_new_tokens": 20000, "min_new_tokens": 0, "seed": 42}


def test_the_shipped_sample_and_its_problems_are_synthetic_and_made_by_the_script(tmp_path):
    import subprocess

    out = tmp_path / "sample.jsonl"
    subprocess.run(
        [sys.executable, "scripts/make_sample_dataset.py", "--benchmark", "deepseek-r1", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert (tmp_path / PROBLEMS.name).read_bytes() == PROBLEMS.read_bytes()
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert len(rows) == 100 and all(row["id"].startswith("synthetic.") for row in rows)


def test_prompts_are_the_text_input_in_the_models_chat_template_and_each_row_keeps_its_source():
    dataset = load_dataset(SAMPLE, prompt_format=BENCHMARK.prompt_format, tokenizer_dir=embedded.MODEL_DIR)
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    tokenizer = load_tokenizer(embedded.MODEL_DIR)
    for row, prompt in zip(rows[:5], dataset.prompts[:5], strict=True):
        templated = tokenizer.apply_chat_template(
            [{"role": "user", "content": row["text_input"]}], add_generation_prompt=True
        )["input_ids"]
        assert prompt == list(templated)
        # The tiny model's 1,024 pieces lack some characters (^, `): those decode as <unk>.
        shown = tokenizer.decode(prompt)
        assert shown.startswith("<s>[INST] ") and shown.endswith(" [/INST]") and row["question"][:10] in shown
    assert dataset.schema == "raw" and dataset.references == [row["ground_truth"] for row in rows]
    assert dataset.sources == [row["dataset"] for row in rows]


def test_a_tokenizer_without_a_chat_template_is_one_error(tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(embedded.MODEL_DIR, plain)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError, match=r"chat template, and the tokenizer of .* has none"):
        load_dataset(SAMPLE, prompt_format=BENCHMARK.prompt_format, tokenizer_dir=plain)


@pytest.fixture(scope="module")
def byte_tokenizer(tmp_path_factory) -> Path:
    """A real byte-level BPE tokenizer (any text round-trips, unlike the tiny model's 1,024 pieces, which have
    no backtick) with a chat template, trained here on the sample and its answers."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    texts = [row["text_input"] for row in rows] + [synthetic_deepseek.correct_output(row) for row in rows]
    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(texts, vocab_size=600, special_tokens=["<s>", "</s>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=trained, bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}User: {{ m['content'] }}\n{% endfor %}Assistant:"
    folder = tmp_path_factory.mktemp("byte-tokenizer")
    tokenizer.save_pretrained(folder)
    return folder


def _accuracy_log(path: Path, outputs: dict[int, str], tokenizer_dir: Path, *, eos: bool = True) -> Path:
    """LoadGen's accuracy log of these outputs, as the SUT writes it: int32 token ids in hex, EOS at the end."""
    tokenizer = load_tokenizer(tokenizer_dir)
    entries = []
    for qsl_idx, text in outputs.items():
        ids = tokenizer.encode(text, add_special_tokens=False) + ([tokenizer.eos_token_id] if eos else [])
        entries.append({"seq_id": qsl_idx, "qsl_idx": qsl_idx, "data": np.asarray(ids, np.int32).tobytes().hex()})
    path.write_text(json.dumps(entries))
    return path


def _targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"name": "synthetic", "exact_match": 100.0}))
    return path


def _score(log: Path, tokenizer: Path, *options: str) -> tuple[int, str]:
    shown = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "accuracy.cli.Console",
            lambda stderr=False: Console(stderr=True, width=200) if stderr else Console(file=shown, width=200),
        )
        arguments = ["--benchmark", "deepseek-r1", "--accuracy-log", str(log), "--dataset", str(SAMPLE)]
        code = accuracy_main([*arguments, "--tokenizer", str(tokenizer), *options])
    return code, shown.getvalue()


def test_right_answers_of_every_kind_score_100_and_accuracy_txt_reads_as_the_checker_reads_it(byte_tokenizer, tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    log = _accuracy_log(
        tmp_path / "mlperf_log_accuracy.json",
        {i: synthetic_deepseek.correct_output(row) for i, row in enumerate(rows)},
        byte_tokenizer,
    )
    code, shown = _score(log, byte_tokenizer, "--livecodebench", str(PROBLEMS), "--targets", str(_targets(tmp_path)))
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["metrics"]["exact_match"] == 100.0 and report["metrics"]["num-samples"] == 100
    text = (tmp_path / "accuracy.txt").read_text()
    read = {key: float(re.findall(pattern, text, re.MULTILINE)[0]) for key, pattern in CHECKER_PATTERNS.items()}
    assert read["exact_match"] == 100.0 and read["TOKENS_PER_SAMPLE"] == pytest.approx(
        report["metrics"]["tokens_per_sample"]
    )
    samples = [json.loads(line) for line in (tmp_path / "accuracy_samples.jsonl").read_text().splitlines()]
    assert {s["source"] for s in samples if s["correct"]} >= {"math500", "gpqa", "mmlu_pro", "livecodebench"}
    assert code == 0 and "exact_match" in shown and "PASS" in shown


def test_wrong_answers_score_0_and_say_why(byte_tokenizer, tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()][:10]
    log = _accuracy_log(
        tmp_path / "mlperf_log_accuracy.json",
        {i: synthetic_deepseek.wrong_output(row) for i, row in enumerate(rows)},
        byte_tokenizer,
    )
    code, _ = _score(log, byte_tokenizer, "--livecodebench", str(PROBLEMS))
    samples = [json.loads(line) for line in (tmp_path / "accuracy_samples.jsonl").read_text().splitlines()]
    assert code == 1 and json.loads((tmp_path / "accuracy.json").read_text())["metrics"]["exact_match"] == 0.0
    code_sample = next(s for s in samples if s["source"] == "livecodebench")
    assert code_sample["detail"].startswith("wrong answer")


def test_without_livecodebench_problems_scoring_is_one_error_and_skip_code_scores_the_rest_as_a_fail(
    byte_tokenizer, tmp_path, capsys
):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    log = _accuracy_log(
        tmp_path / "mlperf_log_accuracy.json",
        {i: synthetic_deepseek.correct_output(row) for i, row in enumerate(rows)},
        byte_tokenizer,
    )
    code, _ = _score(log, byte_tokenizer)
    error = capsys.readouterr().err
    assert code == 2 and "pass --livecodebench with a local copy of code_generation_lite's test.jsonl" in error
    assert "or --skip-code" in error and "Traceback" not in error
    code, shown = _score(log, byte_tokenizer, "--skip-code", "--targets", str(_targets(tmp_path)))
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert code == 1 and not report["passed"]
    assert report["metrics"]["skipped"] == 20 and report["metrics"]["num-samples"] == 80
    graded = next(row for row in report["checks"] if row["metric"] == "samples graded")
    assert (graded["value"], graded["min"], graded["passed"]) == (80, 100, False)
    assert "20 LiveCodeBench samples not graded" in " ".join(shown.split())


def test_an_accuracy_run_that_could_not_grade_its_code_answers_stops_before_it_starts(tmp_path):
    copied = tmp_path / "deepseek.jsonl"  # not the bundled sample: no bundled problems come with it
    shutil.copy(SAMPLE, copied)
    options = {"benchmark": "deepseek-r1", "mode": "accuracy", "dataset": copied, "output_dir": tmp_path}
    with pytest.raises(HarnessError, match="8 LiveCodeBench problems are asked"):
        run(
            build_config(**options),
            console=Console(file=io.StringIO()),
            replica_factory=ScriptedReplica.factory(),
        )
    with pytest.raises(HarnessError, match=r"LiveCodeBench problems: .*nowhere does not exist"):
        run(
            build_config(**options, livecodebench=tmp_path / "nowhere"),
            console=Console(file=io.StringIO()),
            replica_factory=ScriptedReplica.factory(),
        )
    with pytest.raises(HarnessError, match=r"deepseek.jsonl line 1 is not from code_generation_lite's test.jsonl"):
        run(
            build_config(**options, livecodebench=copied),  # a data set, not the problems
            console=Console(file=io.StringIO()),
            replica_factory=ScriptedReplica.factory(),
        )


@pytest.mark.engine
def test_deepseek_r1_runs_from_accuracy_to_a_dry_run_tree_on_the_real_engine(tmp_path, system_file):
    """What a submitter does, on the real engine and the embedded sample: Offline performance and TEST06 runs
    (from the library, in this process), an accuracy run through the command line that scores itself by exact
    match (code answers in the sandbox) as `python -m accuracy` scores its log, then the tree; and TEST06 in
    Server and Interactive, whose answers stream."""
    from tests.conftest import dry_run_tree, run_cli

    runs, streamed = tmp_path / "runs", tmp_path / "streamed"
    performance = run(build_config(benchmark="deepseek-r1", output_dir=runs), console=Console(file=io.StringIO()))
    assert performance.result.valid and performance.record.samples.failed == 0, performance.result.invalid_reasons
    for scenario, folder in (("Offline", runs), ("Server", streamed), ("Interactive", streamed)):
        qps = {} if scenario == "Offline" else {"target_qps": 20.0}
        config = build_config(benchmark="deepseek-r1", scenario=scenario, compliance="TEST06", output_dir=folder, **qps)
        audit = run(config, console=Console(file=io.StringIO())).record.compliance
        # Each answer ends with one EOS at most, its token count is its length, its first token came first.
        assert audit is not None and audit.passed, (scenario, audit)
        assert audit.checks["first_token_pass"] is (None if scenario == "Offline" else True)  # Offline: nothing streams
    code, _, err = run_cli("--benchmark", "deepseek-r1", "--mode", "accuracy", "--output-dir", str(runs))
    assert code == 0, err[-2000:]
    (accuracy_run,) = runs.glob("*-accuracy-*")
    scored = json.loads((accuracy_run / "run.json").read_text())["accuracy"]
    assert scored["passed"] and scored["targets"]["name"].startswith("tiny-llama")
    assert scored["metrics"]["num-samples"] == 100 and "skipped" not in scored["metrics"]
    again = tmp_path / "again"
    again.mkdir()
    log = accuracy_run / "mlperf_log_accuracy.json"
    arguments = ["--benchmark", "deepseek-r1", "--accuracy-log", str(log), "--dataset", str(SAMPLE)]
    arguments += ["--model", str(embedded.MODEL_DIR), "--livecodebench", str(PROBLEMS), "--output-dir", str(again)]
    assert accuracy_main([*arguments, "--targets", str(embedded.ROOT / BENCHMARK.demo_targets)]) == 0
    assert json.loads((again / "accuracy.json").read_text())["metrics"] == scored["metrics"]

    proc = dry_run_tree(runs, tree := tmp_path / "tree", system_file)
    assert proc.returncode == 1 and "DRY RUN" in proc.stdout, proc.stderr
    out = tree / "closed" / "Acme" / "results" / "cpu" / "deepseek-r1" / "Offline"
    accuracy_txt = (out / "accuracy" / "accuracy.txt").read_text()
    assert re.findall(CHECKER_PATTERNS["exact_match"], accuracy_txt, re.MULTILINE)
    assert (out / "TEST06" / "verify_accuracy.txt").is_file() or any((out / "TEST06").rglob("verify_accuracy.txt"))
