"""llama3.1-8b, the second benchmark, through the same registry: its rules, its data set in each form, and
its scoring held to a plain transcription of the reference evaluation.py.

Its runs on the real engine are in tests/test_remote_replicas.py (real vLLM servers) and
tests/test_engine_runs.py (an in-process engine)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accuracy.reference import cnndm_reference_metrics
from accuracy.scoring import evaluate
from mlperf_llm_sut.benchmarks import BENCHMARKS, get_benchmark
from mlperf_llm_sut.benchmarks.__main__ import README_END, README_START, markdown
from mlperf_llm_sut.benchmarks.llama3_1_8b import CNN_DAILYMAIL, PROMPT
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import ROOT

SAMPLE = embedded.ROOT / get_benchmark("llama3.1-8b").demo_dataset


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(embedded.MODEL_DIR, use_fast=False)


# -- the rules --------------------------------------------------------------------------------------------
def test_the_datacenter_and_edge_benchmarks_carry_the_rounds_numbers():
    datacenter, edge = BENCHMARKS["llama3.1-8b"], BENCHMARKS["llama3.1-8b-edge"]
    assert list(datacenter.scenarios) == ["Offline", "Server", "Interactive"]
    assert list(edge.scenarios) == ["Offline", "SingleStream"]
    assert (datacenter.dataset_size, edge.dataset_size) == (13368, 5000)
    assert datacenter.scenarios["Offline"].min_query_count == 13368
    assert edge.scenarios["Offline"].min_query_count == 5000
    server, interactive = datacenter.scenarios["Server"], datacenter.scenarios["Interactive"]
    assert (server.conf_model, server.ttft_ms, server.tpot_ms) == ("llama3_1-8b", 2000, 100)
    assert (interactive.conf_model, interactive.ttft_ms, interactive.tpot_ms) == ("llama3_1-8b-interactive", 500, 30)
    single = edge.scenarios["SingleStream"]
    assert (single.conf_model, single.loadgen_scenario, single.streams) == ("llama3_1-8b-edge", "SingleStream", True)
    assert [t.name for t in datacenter.compliance] == ["TEST06"] and edge.compliance == ()
    assert datacenter.generation == {"max_new_tokens": 128, "min_new_tokens": 1}
    assert (datacenter.category, edge.category) == ("datacenter", "edge")


def test_accuracy_gates_rouge_at_99_percent_and_gen_len_within_10_percent():
    targets = BENCHMARKS["llama3.1-8b"].accuracy
    passing = {"rouge1": 38.40, "rouge2": 15.75, "rougeL": 24.26, "rougeLsum": 35.44, "gen_len": 8_167_644 * 1.09}
    assert all(row["passed"] for row in targets.check({**passing, "gen_num": 13368}))
    failed = {
        row["metric"]
        for row in targets.check({**passing, "rougeLsum": 35.4, "gen_len": 8_167_644 * 0.89, "gen_num": 13368})
        if not row["passed"]
    }
    assert failed == {"rougeLsum", "gen_len"}


def test_a_run_over_part_of_the_data_set_is_held_to_its_share_of_gen_len():
    targets = BENCHMARKS["llama3.1-8b-edge"].accuracy
    rows = targets.check({"rouge1": 40, "rouge2": 17, "rougeL": 25, "rougeLsum": 37, "gen_len": 61_000, "gen_num": 100})
    (gen_len,) = [row for row in rows if row["metric"] == "gen_len"]
    assert gen_len["scaled_to"] == 100 and gen_len["passed"]
    assert gen_len["min"] == pytest.approx(3_051_113 / 50 * 0.9)


def test_the_readmes_benchmark_table_is_the_registrys():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index(README_START) + len(README_START) : readme.index(README_END)]
    stale = "README's table is stale: paste the output of python -m mlperf_llm_sut.benchmarks"
    assert table.strip() == markdown().strip(), stale


# -- the data set ------------------------------------------------------------------------------------------
def test_the_shipped_sample_is_synthetic_in_cnn_evals_schema_and_made_by_its_script(rows, tmp_path):
    assert len(rows) == 300 and all(row["id"].startswith("synthetic.") for row in rows)
    assert {"input", "tok_input", "output"} <= set(rows[0])
    made = tmp_path / "again.jsonl"
    script = ROOT / "scripts" / "make_sample_dataset.py"
    subprocess.run([sys.executable, script, "--benchmark", "llama3.1-8b", "--out", made], check=True, cwd=ROOT)
    assert made.read_bytes() == SAMPLE.read_bytes()


def test_raw_cnn_dailymail_rows_become_the_references_prompts(rows, tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps({"article": r["input"], "highlights": r["output"]}) + "\n" for r in rows[:40]))
    data = load_dataset(path, prompt_format=CNN_DAILYMAIL, tokenizer_dir=embedded.MODEL_DIR)
    assert data.schema == "raw"
    assert data.prompts == [r["tok_input"] for r in rows[:40]]
    assert data.references == [r["output"] for r in rows[:40]]
    # download_cnndm.py: the template around the article, then tokenizer.encode (with its BOS).
    tokenizer = load_tokenizer(embedded.MODEL_DIR)
    assert data.prompts[0] == tokenizer.encode(PROMPT.format(input=rows[0]["input"]))
    assert data.prompts[0][0] == tokenizer.bos_token_id


def test_cnn_eval_json_as_the_reference_writes_it_loads(rows, tmp_path):
    """download_cnndm.py writes one JSON array (indent 4) with an `instruction` object in each row."""
    path = tmp_path / "cnn_eval.json"
    path.write_text(json.dumps([{"instruction": {"llama": PROMPT}, **r} for r in rows], indent=4))
    data = load_dataset(path, prompt_format=CNN_DAILYMAIL)
    assert data.file_format == "json" and data.schema == "processed"
    assert data.prompts == [r["tok_input"] for r in rows]


def test_a_saved_hugging_face_dataset_loads_as_its_rows_do(rows, tmp_path):
    import datasets

    datasets.Dataset.from_list(rows[:30]).save_to_disk(tmp_path / "processed")
    processed = load_dataset(tmp_path / "processed", prompt_format=CNN_DAILYMAIL)
    assert processed.file_format == "hf-disk" and processed.prompts == [r["tok_input"] for r in rows[:30]]
    # The raw public data set as datasets holds it: splits, the validation one is MLPerf's.
    raw = {"article": [r["input"] for r in rows[:30]], "highlights": [r["output"] for r in rows[:30]]}
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({k: v[:2] for k, v in raw.items()}),
            "validation": datasets.Dataset.from_dict(raw),
        }
    )
    splits.save_to_disk(tmp_path / "raw")
    data = load_dataset(tmp_path / "raw", prompt_format=CNN_DAILYMAIL, tokenizer_dir=embedded.MODEL_DIR)
    assert data.prompts == processed.prompts and data.references == processed.references
    assert data.sha256 != processed.sha256 and len(data.sha256) == 64  # a folder's files, hashed


def test_a_saved_dataset_without_a_validation_split_is_one_error(rows, tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3])}).save_to_disk(tmp_path / "train-only")
    with pytest.raises(HarnessError, match=r"has the splits \['train'\], not 'validation'"):
        load_dataset(tmp_path / "train-only", prompt_format=CNN_DAILYMAIL)


def test_a_folder_that_is_no_saved_dataset_is_one_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(HarnessError, match="not one written by Hugging Face datasets' save_to_disk"):
        load_dataset(tmp_path, prompt_format=CNN_DAILYMAIL)


def test_the_other_benchmarks_raw_rows_name_the_columns_this_one_needs(tmp_path):
    path = tmp_path / "orca.jsonl"
    path.write_text('{"question": "hi", "response": "yo"}\n')
    with pytest.raises(HarnessError, match=r"or 'article' \(raw CNN-DailyMail.*Is it the data set of the benchmark"):
        load_dataset(path, prompt_format=CNN_DAILYMAIL, tokenizer_dir=embedded.MODEL_DIR)


def test_a_hub_id_out_of_reach_is_one_error_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = ["--benchmark", "llama3.1-8b", "--dataset", "hf:abisee/cnn_dailymail:3.0.0", "--output-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot load it from the Hugging Face hub" in errors[0] and "save_to_disk" in errors[0]


# -- the scoring -------------------------------------------------------------------------------------------
def _accuracy_log(path: Path, outputs: list[tuple[int, list[int]]]) -> Path:
    entries = [
        {
            "seq_id": n,
            "qsl_idx": index,
            "data": np.asarray(ids, np.int32).tobytes().hex().upper(),
            "token_count": len(ids),
        }
        for n, (index, ids) in enumerate(outputs)
    ]
    path.write_text(json.dumps(entries))
    return path


def _predictions(kind: str, rows: list[dict], tokenizer) -> list[tuple[int, list[int]]]:
    """Outputs for every sample: the reference itself, another sample's, or the first half of its own."""
    answers = [tokenizer.encode(row["output"], add_special_tokens=False) for row in rows]
    if kind == "shuffled":
        answers = random.Random(3).sample(answers, len(answers))
    elif kind == "truncated":
        answers = [ids[: max(1, len(ids) // 2)] for ids in answers]
    order = list(range(len(rows)))
    random.Random(4).shuffle(order)
    outputs = [(index, [*answers[index], tokenizer.eos_token_id]) for index in order]
    return outputs + outputs[:5]  # LoadGen may log a sample twice; the first entry counts


@pytest.mark.parametrize("kind", ["references", "shuffled", "truncated"])
def test_scoring_is_the_reference_evaluation_to_the_last_digit(rows, tokenizer, tmp_path, kind):
    log = _accuracy_log(tmp_path / "mlperf_log_accuracy.json", _predictions(kind, rows, tokenizer))
    references = [row["output"] for row in rows]
    expected, expected_per_sample = cnndm_reference_metrics(log, references, tokenizer)

    outputs = {}
    for entry in json.loads(log.read_text()):
        outputs.setdefault(entry["qsl_idx"], np.frombuffer(bytes.fromhex(entry["data"]), np.int32))
    result = evaluate(outputs, references, tokenizer, workers=2)

    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert f"{result.metrics[key]}" == expected[key]
        assert [getattr(s, key) for s in result.samples] == expected_per_sample[key]
    assert (
        (result.metrics["gen_len"], result.metrics["gen_num"])
        == (expected["gen_len"], expected["gen_num"])
        == (
            expected["gen_len"],
            300,
        )
    )
    if kind == "references":
        assert result.metrics["rouge1"] == 100.0
