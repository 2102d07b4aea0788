"""What identifies the model a run used: run.json's `model`, which a rerun checks before it runs again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Files whose content decides the model's behaviour (hashed in full); weights are only sized,
# since hashing 140 GB per run would take minutes.
HASHED = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def model_fingerprint(model_dir: str | Path, *, quantization: str | None = None) -> dict[str, Any]:
    """sha256 of the config and tokenizer files and the weight index, size of every weight file, and the
    quantization (the checkpoint's own config and the engine's setting)."""
    root = Path(model_dir)
    files = {name: _sha256(root / name) for name in HASHED if (root / name).is_file()}
    weights = {
        path.name: path.stat().st_size
        for path in sorted(root.iterdir())
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES
    }
    try:
        config = json.loads((root / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        config = {}
    return {
        "path": str(root.resolve()),
        "files_sha256": files,
        "weight_bytes": weights,
        "quantization_config": config.get("quantization_config"),
        "engine_quantization": quantization,
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one phrase each."""
    changes = []
    for name in sorted(set(recorded["files_sha256"]) | set(now["files_sha256"])):
        before, after = recorded["files_sha256"].get(name), now["files_sha256"].get(name)
        if before != after:
            changes.append(f"{name} {'is gone' if after is None else 'is new' if before is None else 'changed'}")
    if recorded["weight_bytes"] != now["weight_bytes"]:
        changes.append("the weight files differ (names or sizes)")
    if recorded["quantization_config"] != now["quantization_config"]:
        changes.append("the checkpoint's quantization_config changed")
    return changes
