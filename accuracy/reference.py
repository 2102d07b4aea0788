"""The yardsticks: the MLCommons evaluators (llama2-70b's evaluate-accuracy.py, llama3.1-8b's
evaluation.py), plainly, in one process.

Direct transcriptions of the references, except that `evaluate.load("rouge")`
(which needs the network) is replaced by what it wraps: `rouge_score`'s
`RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)`.
Tests and scripts/bench_accuracy.py hold `accuracy.scoring` to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nltk
import numpy as np
from rouge_score import rouge_scorer


def reference_metrics(
    accuracy_log: Path, targets: Sequence[str], tokenizer: Any, dtype: str = "int32"
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """(the reference's printed dict, its per-sample F-measures in log order)."""
    results = json.loads(Path(accuracy_log).read_text())
    seen: set[int] = set()
    target_required, preds_token_ids, gen_tok_len = [], [], 0
    for pred in results:
        qsl_idx = pred["qsl_idx"]
        if qsl_idx in seen:
            continue
        seen.add(qsl_idx)
        target_required.append(targets[qsl_idx])
        ids = np.frombuffer(bytes.fromhex(pred["data"]), dtype)
        gen_tok_len += len(ids)
        preds_token_ids.append(ids)
    decoded = tokenizer.batch_decode(preds_token_ids, skip_special_tokens=True)
    preds = ["\n".join(nltk.sent_tokenize(p.strip())) for p in decoded]
    refs = ["\n".join(nltk.sent_tokenize(t.strip())) for t in target_required]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    per_sample: dict[str, list[float]] = {k: [] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    for ref, pred in zip(refs, preds, strict=True):
        scores = scorer.score(ref, pred)
        for key, values in per_sample.items():
            values.append(scores[key].fmeasure)
    final: dict[str, Any] = {k: round(np.mean(v) * 100, 4) for k, v in per_sample.items()}
    final.update(
        {
            "gen_len": np.sum([len(p) for p in preds]),
            "gen_num": len(preds),
            "gen_tok_len": gen_tok_len,
            "tokens_per_sample": round(gen_tok_len / len(preds), 1),
        }
    )
    return final, per_sample


def cnndm_reference_metrics(
    accuracy_log: Path, targets: Sequence[str], tokenizer: Any, dtype: str = "int32"
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The MLCommons llama3.1-8b evaluation.py, plainly: (its printed dict, per-sample F-measures in log order).

    `metric.compute(predictions, references, use_stemmer=True, use_aggregator=False)` of evaluate's
    rouge is, as that metric's code does it, a `RougeScorer` over its four default types scoring each
    (reference, prediction) pair, keeping each F-measure."""
    results = json.loads(Path(accuracy_log).read_text())
    dedup_results = []
    seen: set[int] = set()
    for entry in results:
        if entry["qsl_idx"] not in seen:
            seen.add(entry["qsl_idx"])
            dedup_results.append(entry)
    target_required = [targets[pred["qsl_idx"]] for pred in dedup_results]
    preds_token_ids = [np.frombuffer(bytes.fromhex(pred["data"]), dtype) for pred in dedup_results]
    decoded = tokenizer.batch_decode(preds_token_ids, skip_special_tokens=True)
    preds = ["\n".join(nltk.sent_tokenize(pred)) for pred in (p.strip() for p in decoded)]
    refs = ["\n".join(nltk.sent_tokenize(target)) for target in (t.strip() for t in target_required)]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(ref, pred) for ref, pred in zip(refs, preds, strict=True)]
    per_sample = {key: [score[key].fmeasure for score in scores] for key in scores[0]}
    result: dict[str, Any] = {k: f"{round(np.mean(v) * 100, 4)}" for k, v in per_sample.items()}
    result["gen_len"] = np.sum([len(pred) for pred in preds])
    result["gen_num"] = len(preds)
    return result, per_sample
