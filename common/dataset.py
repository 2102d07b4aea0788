"""OpenOrca in the MLPerf llama2-70b schema: loading, validation and conversion.

Accepted inputs, recognised by file suffix:

* the reference's processed pandas DataFrame (``tok_input``, ``input``, ``output``,
  ``tok_input_length``, ...) as a pickle (only when trusted), parquet or jsonl;
* raw OpenOrca rows (``system_prompt``, ``question``, ``response``) in the same
  formats: they are formatted with the Llama-2 chat template the reference uses
  and tokenized with the model's tokenizer.

``python -m harness.dataset convert SRC DST`` turns any of them into parquet or
jsonl, so a pickle has to be trusted once only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import HarnessError

if TYPE_CHECKING:
    import pandas as pd

PICKLE_SUFFIXES = (".pkl", ".pickle")
PARQUET_SUFFIXES = (".parquet",)
JSONL_SUFFIXES = (".jsonl", ".json")

# The reference's processorca.py templates, byte for byte.
LLAMA2_PROMPT_SYSTEM = "<s>[INST] <<SYS>>\n{}\n<</SYS>>\n\n{} [/INST]"
LLAMA2_PROMPT_NO_SYSTEM = "<s>[INST] {} [/INST]"
# processorca.py appends Llama-2's "▁" token to every prompt (its first-token cheat guard).
LLAMA2_RESPONSE_INIT_TOKEN = 29871


@dataclass(frozen=True)
class Dataset:
    """Prompts as token ids, plus the reference answers when the file has them."""

    path: Path
    sha256: str
    file_format: str
    schema: str
    prompts: list[list[int]]
    references: list[str] | None

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
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def format_llama2_prompt(system_prompt: str | None, question: str) -> str:
    if system_prompt:
        return LLAMA2_PROMPT_SYSTEM.format(system_prompt, question)
    return LLAMA2_PROMPT_NO_SYSTEM.format(question)


def load_tokenizer(tokenizer_dir: str | Path, **options: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(tokenizer_dir), **options)
    except (OSError, ValueError) as exc:
        raise HarnessError(
            f"cannot load a tokenizer from {tokenizer_dir}: {_first_line(exc)}. "
            "Point --model (or --tokenizer) at a directory with tokenizer.json or "
            "tokenizer.model."
        ) from None


def response_init_token(tokenizer: Any) -> int | None:
    """Llama-2's "▁" id when the tokenizer is Llama-2's, so prompts match the reference."""
    if len(tokenizer) == 32000 and tokenizer.convert_ids_to_tokens(29871) == "▁":
        return LLAMA2_RESPONSE_INIT_TOKEN
    return None


def tokenize_prompts(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Tokenize formatted prompts exactly as processorca.py does."""
    extra = response_init_token(tokenizer)
    encoded = tokenizer(list(texts))["input_ids"]
    if extra is not None:
        encoded = [[*ids, extra] for ids in encoded]
    return [list(map(int, ids)) for ids in encoded]


def load_dataset(
    path: str | Path,
    *,
    tokenizer_dir: str | Path | None = None,
    trust_pickle: bool = False,
    expected_sha256: str | None = None,
) -> Dataset:
    """Load and validate a data set; every problem is one `HarnessError`."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(
            f"dataset {path} does not exist. Pass --dataset with the processed OpenOrca "
            "file (parquet, jsonl, or a trusted pickle), or leave it out to use the "
            "bundled synthetic sample."
        )
    digest = sha256_of(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise HarnessError(
            f"dataset {path} has sha256 {digest}, not the expected {expected_sha256}. "
            "Check that it is the file you meant, or drop --dataset-sha256."
        )
    frame, file_format = _read_frame(path, trusted=trust_pickle or bool(expected_sha256))
    if "tok_input" in frame.columns:
        schema = "processed"
        prompts = [_token_ids(value, path, row) for row, value in enumerate(frame["tok_input"])]
        references = _texts(frame["output"]) if "output" in frame.columns else None
    elif "question" in frame.columns:
        schema = "raw-openorca"
        if tokenizer_dir is None:
            raise HarnessError(
                f"dataset {path} holds raw OpenOrca rows, which need the model's "
                "tokenizer: pass --model or --tokenizer."
            )
        system = frame["system_prompt"] if "system_prompt" in frame.columns else [""] * len(frame)
        texts = [format_llama2_prompt(s, q) for s, q in zip(_texts(system), _texts(frame["question"]), strict=True)]
        prompts = tokenize_prompts(texts, load_tokenizer(tokenizer_dir))
        references = _texts(frame["response"]) if "response" in frame.columns else None
    else:
        raise HarnessError(
            f"dataset {path} has columns {sorted(map(str, frame.columns))}, but needs "
            "either 'tok_input' (the MLPerf processed OpenOrca schema) or 'question' "
            "(raw OpenOrca rows with 'system_prompt' and 'response')."
        )
    if not prompts:
        raise HarnessError(f"dataset {path} has no rows.")
    return Dataset(path, digest, file_format, schema, prompts, references)


def _read_frame(path: Path, *, trusted: bool) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in PICKLE_SUFFIXES:
            if not trusted:
                raise HarnessError(
                    f"dataset {path} is a pickle, and loading a pickle can run any code "
                    "it contains. If you trust this file, pass --trust-pickle (or "
                    "--dataset-sha256 with its checksum); better, convert it once with "
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
                f"dataset {path} has an unknown suffix {suffix!r}: use .parquet, .jsonl, .json, or a trusted .pkl."
            )
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(f"dataset {path} could not be read as {suffix.lstrip('.')}: {_first_line(exc)}") from None
    if not isinstance(frame, pd.DataFrame):
        raise HarnessError(
            f"dataset {path} holds a {type(frame).__name__}, not a table of rows "
            "(a pandas DataFrame in the MLPerf OpenOrca schema)."
        )
    return frame, file_format


def _token_ids(value: Any, path: Path, row: int) -> list[int]:
    try:
        ids = np.asarray(value)
    except (TypeError, ValueError):
        ids = np.asarray([])
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0:
        raise HarnessError(
            f"dataset {path} row {row}: tok_input must be a non-empty list of "
            f"non-negative token ids, got {str(value)[:60]!r}."
        )
    return ids.astype(np.int64).tolist()


def _texts(values: Iterable[Any]) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def processed_rows(raw_rows: Iterable[dict[str, str]], tokenizer: Any) -> list[dict[str, Any]]:
    """Raw OpenOrca rows -> the reference's processed columns (processorca.py)."""
    rows = list(raw_rows)
    inputs = [format_llama2_prompt(r.get("system_prompt"), r["question"]) for r in rows]
    tok_inputs = tokenize_prompts(inputs, tokenizer)
    tok_outputs = [list(map(int, ids)) for ids in tokenizer([r["response"] for r in rows])["input_ids"]]
    return [
        {
            "id": r.get("id", str(i)),
            "origin": str(r.get("id", "")).split(".")[0],
            "system_prompt": r.get("system_prompt", ""),
            "question": r["question"],
            "input": text,
            "output": r["response"],
            "tok_input": ti,
            "tok_output": to,
            "tok_input_length": len(ti),
            "tok_output_length": len(to),
        }
        for i, (r, text, ti, to) in enumerate(zip(rows, inputs, tok_inputs, tok_outputs, strict=True))
    ]


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


def convert(src: Path, dst: Path, *, trust_pickle: bool) -> int:
    """Re-save a data set (typically the reference pickle) in a safe format."""
    frame, _ = _read_frame(src, trusted=trust_pickle)
    if "tok_input" not in frame.columns and "question" not in frame.columns:
        raise HarnessError(f"dataset {src} has neither 'tok_input' nor 'question' columns: not OpenOrca.")
    rows = frame.to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.ndarray):
                row[key] = value.tolist()
    write_rows(rows, dst)
    return len(rows)
