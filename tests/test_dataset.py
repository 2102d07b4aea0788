"""Data set loading: every accepted format, the pickle trust rule, and every bad input."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from harness.dataset import main
from mlperf_llm_sut.benchmarks.llama2_70b import OPENORCA, RESPONSE_INIT_TOKEN, format_prompt, tokenize_prompts
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import convert, load_dataset, load_tokenizer, write_rows
from mlperf_llm_sut.common.errors import HarnessError


def test_bundled_sample_is_labelled_synthetic_and_has_the_processed_schema(embedded_rows):
    assert len(embedded_rows) >= 500
    assert all(row["id"].startswith("synthetic.") for row in embedded_rows)
    expected = {"input", "output", "tok_input", "tok_output", "tok_input_length", "tok_output_length"}
    assert expected <= set(embedded_rows[0])
    assert all(row["tok_input_length"] == len(row["tok_input"]) for row in embedded_rows)


def test_processed_jsonl_loads_prompts_and_references(embedded_rows):
    data = load_dataset(embedded.DATASET)
    assert data.schema == "processed" and data.file_format == "jsonl"
    assert data.prompts[5] == embedded_rows[5]["tok_input"]
    assert data.references[5] == embedded_rows[5]["output"]
    assert data.sha256 == hashlib.sha256(embedded.DATASET.read_bytes()).hexdigest()


def test_parquet_gives_the_same_data_as_jsonl(tmp_path, embedded_rows):
    write_rows(embedded_rows, tmp_path / "orca.parquet")
    data = load_dataset(tmp_path / "orca.parquet")
    assert data.file_format == "parquet"
    assert data.prompts == load_dataset(embedded.DATASET).prompts


def _pickle(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "orca.pkl"
    pd.DataFrame(rows).to_pickle(path)
    return path


def test_pickle_is_refused_unless_trusted(tmp_path, embedded_rows):
    path = _pickle(tmp_path, embedded_rows[:10])
    with pytest.raises(HarnessError, match="--trust-pickle") as err:
        load_dataset(path)
    assert "python -m harness.dataset convert" in str(err.value)


def test_pickle_loads_with_the_trust_flag(tmp_path, embedded_rows):
    data = load_dataset(_pickle(tmp_path, embedded_rows[:10]), trust_pickle=True)
    assert data.file_format == "pickle" and data.prompts[3] == embedded_rows[3]["tok_input"]


def test_pickle_with_the_expected_checksum_is_trusted(tmp_path, embedded_rows):
    path = _pickle(tmp_path, embedded_rows[:10])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(load_dataset(path, expected_sha256=digest)) == 10


def test_checksum_mismatch_is_an_error(tmp_path, embedded_rows):
    path = _pickle(tmp_path, embedded_rows[:10])
    with pytest.raises(HarnessError, match="not the expected"):
        load_dataset(path, expected_sha256="0" * 64)


def test_untrusted_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(HarnessError):
        load_dataset(path)
    assert not marker.exists()


def test_raw_openorca_rows_are_formatted_and_tokenized_like_the_reference(tmp_path, embedded_rows):
    raw = [
        {"id": r["id"], "system_prompt": r["system_prompt"], "question": r["question"], "response": r["output"]}
        for r in embedded_rows[:50]
    ]
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in raw))
    data = load_dataset(path, prompt_format=OPENORCA, tokenizer_dir=embedded.MODEL_DIR)
    assert data.schema == "raw"
    assert data.prompts == [r["tok_input"] for r in embedded_rows[:50]]
    assert data.references == [r["output"] for r in embedded_rows[:50]]


def test_llama2_template_matches_processorca():
    assert format_prompt("Be brief.", "Hi?") == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi? [/INST]"
    assert format_prompt("", "Hi?") == "<s>[INST] Hi? [/INST]"


class _Llama2Vocabulary:
    """Stands in for Llama-2's tokenizer (not downloadable here) in the one respect that matters."""

    def __len__(self) -> int:
        return 32000

    def convert_ids_to_tokens(self, index: int) -> str:
        return "▁" if index == 29871 else "x"

    def __call__(self, texts: list[str]) -> dict:
        return {"input_ids": [[1, 2, 3] for _ in texts]}


def test_llama2_prompts_get_the_reference_response_init_token():
    assert tokenize_prompts(["a"], _Llama2Vocabulary()) == [[1, 2, 3, RESPONSE_INIT_TOKEN]]


def test_other_tokenizers_get_no_extra_token():
    tokenizer = load_tokenizer(embedded.MODEL_DIR)
    ids = tokenize_prompts(["<s>[INST] hi [/INST]"], tokenizer)[0]
    assert ids == tokenizer("<s>[INST] hi [/INST]")["input_ids"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"foo": 1}\n', "needs either 'tok_input'"),
        ('{"tok_input": []}\n', "row 0: tok_input must be a non-empty list"),
        ('{"tok_input": ["a", "b"]}\n', "row 0: tok_input must be"),
        ('{"tok_input": [1, -5]}\n', "non-negative"),
        ("not json at all\n", "could not be read as jsonl"),
    ],
)
def test_bad_dataset_content_gets_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message):
        load_dataset(path)


def test_missing_dataset_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_dataset(tmp_path / "nope.parquet")


def test_unknown_suffix_is_an_error(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(HarnessError, match="unknown suffix"):
        load_dataset(tmp_path / "data.csv")


def test_raw_rows_without_a_tokenizer_are_an_error(tmp_path):
    (tmp_path / "raw.jsonl").write_text('{"question": "hi", "response": "yo"}\n')
    with pytest.raises(HarnessError, match="need the model's tokenizer"):
        load_dataset(tmp_path / "raw.jsonl", prompt_format=OPENORCA)


def test_convert_turns_a_trusted_pickle_into_parquet(tmp_path, embedded_rows):
    src = _pickle(tmp_path, embedded_rows[:20])
    with pytest.raises(HarnessError, match="--trust-pickle"):
        convert(src, tmp_path / "out.parquet", trust_pickle=False)
    assert main(["convert", str(src), str(tmp_path / "out.parquet"), "--trust-pickle"]) == 0
    assert load_dataset(tmp_path / "out.parquet").prompts == [r["tok_input"] for r in embedded_rows[:20]]


def test_raw_rows_without_a_prompt_format_are_an_error(tmp_path):
    (tmp_path / "raw.jsonl").write_text('{"question": "hi", "response": "yo"}\n')
    with pytest.raises(HarnessError, match="raw rows, which load only with their benchmark's prompt format"):
        load_dataset(tmp_path / "raw.jsonl", tokenizer_dir=embedded.MODEL_DIR)


def test_convert_takes_raw_rows_of_any_benchmark_and_refuses_other_tables(tmp_path, capsys):
    (tmp_path / "raw.jsonl").write_text('{"question": "hi", "response": "yo"}\n')
    (tmp_path / "other.jsonl").write_text('{"foo": 1}\n')
    assert main(["convert", str(tmp_path / "raw.jsonl"), str(tmp_path / "raw.parquet")]) == 0
    assert main(["convert", str(tmp_path / "other.jsonl"), str(tmp_path / "other.parquet")]) != 0
    assert "nor 'article' or 'question' or 'text_input' (raw rows)" in capsys.readouterr().err
