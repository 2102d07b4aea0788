"""A benchmark's data set: loading, validation and conversion.

Accepted inputs:

* the reference's processed file (``tok_input``, ``input``, ``output``, ...): a
  pandas pickle (only when trusted), parquet, jsonl, or a JSON array of rows
  (llama3.1-8b's ``cnn_eval.json``);
* the benchmark's raw public rows (OpenOrca's ``question``/``response``,
  CNN-DailyMail's ``article``/``highlights``) in the same formats: they become
  prompts as the reference's preprocessing makes them (the benchmark's
  `PromptFormat`), with the model's tokenizer;
* either kind as a Hugging Face dataset: a folder written by ``save_to_disk``,
  or ``hf:<id>[:<config>][@<split>]`` from the hub where it is reachable.

``python -m harness.dataset convert SRC DST`` turns any of them into parquet or
jsonl, so a pickle has to be trusted once only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_llm_sut.common.errors import HarnessError, setting

if TYPE_CHECKING:
    import pandas as pd

PICKLE_SUFFIXES = (".pkl", ".pickle")
PARQUET_SUFFIXES = (".parquet",)
JSONL_SUFFIXES = (".jsonl", ".json")
HUB_PREFIX = "hf:"
SAVED_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json")
"""What `save_to_disk` writes at the top of a Dataset's folder, and of a DatasetDict's."""
SOURCE_COLUMN = "dataset"
"""Where a data set that mixes several says which one each row is from (deepseek-r1's: aime, gpqa, ...)."""
DEFAULT_SPLIT = "validation"
TOKEN_COLUMNS = ("tok_input", "input_tokens")
"""Where a processed file has its prompts' token ids: `tok_input` in every reference, gpt-oss-120b's files
from v4.0 on `input_tokens` (language/gpt-oss-120b/utils/tokenization.py reads either)."""
REFERENCE_COLUMNS = ("output", "ground_truth")
"""Where a processed file has its reference answers: the llama files' `output`, the reasoning mixes'
`ground_truth`."""
"""The split MLPerf's LLM data sets are drawn from (CNN-DailyMail's validation split, for llama3.1-8b)."""


@dataclass(frozen=True)
class PromptFormat:
    """How the reference turns a row of the benchmark's public data set into a prompt: what a raw file needs."""

    source: str
    """The public data set, as a user would look for it."""
    prompt_columns: tuple[str, ...]
    """Columns every raw row needs."""
    reference_column: str
    """The column with the reference answer."""
    render: Callable[[Mapping[str, Any]], str]
    """One raw row -> the prompt text, as the reference's preprocessing writes it."""
    tokenize: Callable[[Sequence[str], Any], list[list[int]]]
    """Prompt texts and the model's tokenizer -> token ids, as the reference's preprocessing makes them."""
    processed: Callable[[Sequence[Mapping[str, Any]], Any], list[dict[str, Any]]]
    """Raw rows -> the rows of the reference's processed file (its columns), for `harness.dataset`."""


@dataclass(frozen=True)
class Dataset:
    """Prompts as token ids, plus the reference answers when the file has them."""

    path: Path
    sha256: str
    file_format: str
    schema: str
    prompts: list[list[int]]
    references: list[str] | None
    sources: list[str] | None = None
    """Each row's source data set (`SOURCE_COLUMN`), where the file has that column."""

    def __len__(self) -> int:
        return len(self.prompts)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "format": self.file_format,
            "schema": self.schema,
            "sample_count": len(self),
        }


def sha256_of(path: Path) -> str:
    """The file's sha256; for a folder (a saved Hugging Face dataset), that of its files' names and bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_tokenizer(tokenizer_dir: str | Path, **options: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(tokenizer_dir), **options)
    except (OSError, ValueError) as exc:
        raise HarnessError(
            f"cannot load a tokenizer from {tokenizer_dir}: {_first_line(exc)}. "
            f"Point {setting('model')} (or {setting('tokenizer')}) at a directory with tokenizer.json or "
            "tokenizer.model."
        ) from None


def load_dataset(
    path: str | Path,
    *,
    prompt_format: PromptFormat | None = None,
    tokenizer_dir: str | Path | None = None,
    trust_pickle: bool = False,
    expected_sha256: str | None = None,
) -> Dataset:
    """Load and validate a data set; every problem is one `HarnessError`. Raw rows need the benchmark's
    `prompt_format` (without one, only a processed file loads) and the model's tokenizer."""
    if str(path).startswith(HUB_PREFIX):
        frame, file_format, digest = _from_hub(str(path)), "hub", ""
        path = Path(str(path))
    else:
        path = Path(path)
        if not path.exists():
            raise HarnessError(
                f"dataset {path} does not exist. Pass {setting('dataset')} with the benchmark's processed file "
                "(parquet, "
                "jsonl, json, or a trusted pickle), a saved Hugging Face dataset folder, or hf:<id>; or leave "
                "it out to use the bundled synthetic sample."
            )
        if path.is_dir() and not any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS):
            raise HarnessError(
                f"dataset {path} is a folder, but not one written by Hugging Face datasets' save_to_disk (it has no "
                "dataset_info.json or dataset_dict.json). Pass that folder, or a data file."
            )
        digest = sha256_of(path)
        if expected_sha256 and digest != expected_sha256.lower():
            raise HarnessError(
                f"dataset {path} has sha256 {digest}, not the expected {expected_sha256}. "
                f"Check that it is the file you meant, or drop {setting('dataset_sha256')}."
            )
        if path.is_dir():
            frame, file_format = _from_disk(path), "hf-disk"
        else:
            frame, file_format = _read_frame(path, trusted=trust_pickle or bool(expected_sha256))
    token_column = next((c for c in TOKEN_COLUMNS if c in frame.columns), None)
    if token_column is not None:
        schema = "processed"
        prompts = [_token_ids(value, path, row, token_column) for row, value in enumerate(frame[token_column])]
        reference_column = next((c for c in REFERENCE_COLUMNS if c in frame.columns), None)
        references = _texts(frame[reference_column]) if reference_column else None
    elif prompt_format is not None and set(prompt_format.prompt_columns) <= set(frame.columns):
        schema = "raw"
        if tokenizer_dir is None:
            raise HarnessError(
                f"dataset {path} holds raw {prompt_format.source} rows, which need the model's "
                f"tokenizer: pass {setting('model')} or {setting('tokenizer')}."
            )
        rows = [{k: _text(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        prompts = prompt_format.tokenize([prompt_format.render(row) for row in rows], load_tokenizer(tokenizer_dir))
        column = prompt_format.reference_column
        references = _texts(frame[column]) if column in frame.columns else None
    else:
        raw = (
            f"{', '.join(map(repr, prompt_format.prompt_columns))} (raw {prompt_format.source} rows)"
            if prompt_format is not None
            else "raw rows, which load only with their benchmark's prompt format"
        )
        raise HarnessError(
            f"dataset {path} has columns {sorted(map(str, frame.columns))}, but needs either 'tok_input' or "
            f"'input_tokens' (the benchmark's processed schema) or {raw}. Is it the data set of the "
            f"{setting('benchmark')} you chose?"
        )
    if not prompts:
        raise HarnessError(f"dataset {path} has no rows.")
    sources = _texts(frame[SOURCE_COLUMN]) if SOURCE_COLUMN in frame.columns else None
    return Dataset(path, digest, file_format, schema, prompts, references, sources)


def _read_frame(path: Path, *, trusted: bool) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in PICKLE_SUFFIXES:
            if not trusted:
                raise HarnessError(
                    f"dataset {path} is a pickle, and loading a pickle can run any code "
                    f"it contains. If you trust this file, pass {setting('trust_pickle')} (or "
                    f"{setting('dataset_sha256')} with its checksum); better, convert it once with "
                    f"'python -m harness.dataset convert {path} {path.with_suffix('.parquet')} "
                    "--trust-pickle' and use the parquet file."
                )
            frame = pd.read_pickle(path)
            file_format = "pickle"
        elif suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
            file_format = "parquet"
        elif suffix in JSONL_SUFFIXES:
            frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
            file_format = "jsonl" if suffix == ".jsonl" else "json"
        else:
            raise HarnessError(
                f"dataset {path} has an unknown suffix {suffix!r}: use .parquet, .jsonl, .json, a trusted .pkl, "
                "or a saved Hugging Face dataset folder."
            )
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(f"dataset {path} could not be read as {suffix.lstrip('.')}: {_first_line(exc)}") from None
    if not isinstance(frame, pd.DataFrame):
        raise HarnessError(
            f"dataset {path} holds a {type(frame).__name__}, not a table of rows "
            "(a pandas DataFrame in the benchmark's processed schema)."
        )
    return frame, file_format


def _from_disk(path: Path) -> pd.DataFrame:
    """A folder written by `Dataset.save_to_disk` (or a `DatasetDict`'s, whose validation split is used)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise HarnessError(f"dataset {path}: Hugging Face datasets cannot load it: {_first_line(exc)}") from None
    return _one_split(loaded, DEFAULT_SPLIT, str(path))


def _from_hub(spec: str) -> pd.DataFrame:
    """`hf:<id>[:<config>][@<split>]`, e.g. hf:abisee/cnn_dailymail:3.0.0@validation."""
    import datasets

    name, _, split = spec[len(HUB_PREFIX) :].partition("@")
    repo, _, config = name.partition(":")
    if not repo:
        raise HarnessError(f"dataset {spec}: give a hub id, as hf:<id>[:<config>][@<split>].")
    try:
        loaded = datasets.load_dataset(repo, config or None, split=split or DEFAULT_SPLIT)
    except Exception as exc:
        raise HarnessError(
            f"dataset {spec}: cannot load it from the Hugging Face hub ({type(exc).__name__}: {_first_line(exc)}). "
            "Where the hub is out of reach, load it elsewhere, save it with save_to_disk, and pass that folder."
        ) from None
    return _one_split(loaded, split or DEFAULT_SPLIT, spec)


def _one_split(loaded: Any, split: str, where: str) -> pd.DataFrame:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise HarnessError(
                f"dataset {where} has the splits {sorted(loaded)}, not {split!r}: save the split you mean alone."
            )
        loaded = loaded[split]
    return loaded.to_pandas()


def _token_ids(value: Any, path: Path, row: int, column: str) -> list[int]:
    try:
        ids = np.asarray(value)
    except (TypeError, ValueError):
        ids = np.asarray([])
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0:
        raise HarnessError(
            f"dataset {path} row {row}: {column} must be a non-empty list of "
            f"non-negative token ids, got {str(value)[:60]!r}."
        )
    prompt: list[int] = ids.astype(np.int64).tolist()
    return prompt


def _texts(values: Iterable[Any]) -> list[str]:
    return [_text(v) for v in values]


def _text(value: Any) -> Any:
    """A missing text (None, NaN) as an empty one; anything else as it is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value) if isinstance(value, str | int | float) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as jsonl or parquet (by suffix): the safe formats."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, ".jsonl"):
        raise HarnessError(f"cannot write {path}: use a .parquet or .jsonl destination.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix in PARQUET_SUFFIXES:
            frame.to_parquet(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
    except OSError as exc:
        raise HarnessError(
            f"cannot write {path}: {exc.strerror or exc}. Pick a destination in a writable folder."
        ) from None


def convert(src: Path, dst: Path, *, trust_pickle: bool, raw_formats: Collection[PromptFormat] = ()) -> int:
    """Re-save a data set (typically the reference pickle) in a safe format: a processed file, or raw rows
    of one of `raw_formats` (the benchmarks' prompt formats)."""
    frame, _ = _read_frame(src, trusted=trust_pickle)
    raw = {f.prompt_columns for f in raw_formats}
    processed = any(column in frame.columns for column in TOKEN_COLUMNS)
    if not processed and not any(set(columns) <= set(frame.columns) for columns in raw):
        known = " or ".join(f"'{c[0]}'" for c in sorted(raw))
        raise HarnessError(
            f"dataset {src} has "
            + (
                f"neither 'tok_input' nor 'input_tokens' (a processed data set) nor {known} (raw rows)"
                if raw
                else "no 'tok_input' or 'input_tokens'"
            )
            + ": it is not a benchmark's data set."
        )
    rows = frame.to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.ndarray):
                row[key] = value.tolist()
    write_rows(rows, dst)
    return len(rows)
