"""Write the bundled SYNTHETIC sample data set (common/embedded/openorca-synthetic-600.jsonl).

600 rows in the MLPerf processed OpenOrca schema (the reference's processorca.py
columns), built by scripts/synthetic_openorca.py with seed 0 and tokenized with
the embedded tiny model's tokenizer through the harness's own raw-OpenOrca
code path. Deterministic: the same tokenizer gives the same file, byte for byte.

    python scripts/make_sample_dataset.py [--rows N] [--out FILE] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic_openorca

from common import embedded
from common.dataset import load_tokenizer, processed_rows, write_rows

SAMPLE_SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--out", type=Path, default=embedded.DATASET)
    parser.add_argument("--tokenizer", type=Path, default=embedded.MODEL_DIR)
    args = parser.parse_args()
    raw = synthetic_openorca.rows(args.rows, seed=SAMPLE_SEED, prefix="synthetic")
    rows = processed_rows(raw, load_tokenizer(args.tokenizer))
    write_rows(rows, args.out)
    print(f"wrote {len(rows)} synthetic rows to {args.out}")


if __name__ == "__main__":
    main()
