"""Accuracy scoring: identical to the MLCommons reference algorithm, and every bad input."""

from __future__ import annotations

import ast
import json
import random
import re

import numpy as np
import pytest
from rouge_score import rouge_scorer

from accuracy import rouge, scoring
from accuracy.cli import main as accuracy_main
from accuracy.log import read_accuracy_log
from accuracy.reference import reference_metrics
from accuracy.sample_deltas import compare
from accuracy.scored_log import score_log
from accuracy.scoring import check_punkt, evaluate, score_texts, sentences_per_line
from accuracy.targets import resolve_targets
from mlperf_llm_sut.benchmarks import BENCHMARKS
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.errors import HarnessError

EOS = 2
WORDS = (
    "the a cat cats dog dogs running runs ran quickly quick and of to in is was were be being been 42 7 "
    "Hello world's sentence. Another! what? yes no maybe naïve café Straße 東京 emoji🙂 e.g. Mr. Smith"
).split()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(embedded.MODEL_DIR, use_fast=False)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(embedded.DATASET)


def _random_text(rng: random.Random, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(rng.choice(WORDS))
        if rng.random() < 0.1:
            out.append(rng.choice(["\n", ". ", "! "]))
    return " ".join(out)


def write_log(path, entries, dtype="int32"):
    path.write_text(
        json.dumps(
            [
                {"seq_id": n, "qsl_idx": idx, "data": np.asarray(ids, dtype=dtype).tobytes().hex().upper()}
                for n, (idx, ids) in enumerate(entries)
            ]
        )
    )
    return path


def _perturbed_outputs(dataset, tokenizer, count: int, seed: int = 0) -> list[tuple[int, list[int]]]:
    """Outputs that partly match their references, with a trailing EOS, like a real model's."""
    rng = random.Random(seed)
    entries = []
    for index in rng.sample(range(len(dataset)), count):
        words = dataset.references[index].split()
        for _ in range(rng.randint(0, 4)):
            words[rng.randrange(len(words))] = rng.choice(WORDS[:20])
        entries.append((index, tokenizer(" ".join(words), add_special_tokens=False)["input_ids"] + [EOS]))
    return entries


# --- the metric itself --------------------------------------------------------------------------------------


def test_hand_checked_scores():
    assert rouge.score("the cat sat", "the cat sat") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rougeLsum": 1.0}
    half = rouge.score("the cat", "the dog")
    assert half["rouge1"] == 0.5 and half["rouge2"] == 0.0 and half["rougeL"] == 0.5
    # LCS of "a b c d" and "a c b d" has 3 tokens: precision = recall = 3/4.
    assert rouge.score("a b c d", "a c b d")["rougeL"] == 0.75
    # Stemming: "running" and "runs" both stem to "run".
    assert rouge.score("dogs running", "dog runs")["rouge1"] == 1.0
    assert rouge.score("", "something") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rougeLsum": 0.0}


def test_scores_equal_rouge_score_on_random_texts():
    scorer = rouge_scorer.RougeScorer(list(rouge.METRICS), use_stemmer=True)
    rng = random.Random(1234)
    for _ in range(1500):
        reference, prediction = _random_text(rng, rng.randint(0, 50)), _random_text(rng, rng.randint(0, 50))
        expected = scorer.score(reference, prediction)
        assert rouge.score(reference, prediction) == {k: expected[k].fmeasure for k in rouge.METRICS}


def test_lcs_read_out_is_the_one_rouge_score_picks():
    rng = random.Random(7)
    for n in range(4000):
        # Tokens each side lacks, too: the read-out passes those ref tokens by.
        ref = [rng.choice("abcd" if n % 2 else "abcdef") for _ in range(rng.randint(0, 14))]
        can = [rng.choice("abcd" if n % 2 else "abcdgh") for _ in range(rng.randint(0, 14))]
        assert rouge.lcs_indices(ref, can) == rouge_scorer.lcs_ind(ref, can)
        assert rouge.lcs_length(ref, can) == rouge_scorer._lcs_table(ref, can)[-1][-1]


def test_unicode_texts_score_as_rouge_score_does():
    scorer = rouge_scorer.RougeScorer(list(rouge.METRICS), use_stemmer=True)
    pairs = [("Café naïve Straße.", "cafe naive strasse"), ("東京は大きい。", "東京"), ("emoji🙂 fun", "fun 🙂")]
    for reference, prediction in pairs:
        expected = scorer.score(reference, prediction)
        assert rouge.score(reference, prediction) == {k: expected[k].fmeasure for k in rouge.METRICS}


def test_sentence_splitting_is_nltks_on_both_shipped_samples_and_on_texts_whose_contexts_repeat():
    import nltk

    texts = [json.loads(line)["output"] for line in embedded.DATASET.read_text().splitlines()]
    texts += [
        json.loads(line)["output"] for line in (embedded.ROOT / "cnndm-synthetic-300.jsonl").read_text().splitlines()
    ]
    rng = random.Random(3)
    texts += [
        _random_text(rng, rng.randint(0, 80)) + " Dr. Smith arrived at 5 p.m. on Jan. 3. He left." for _ in range(300)
    ]
    for text in texts:
        assert sentences_per_line(text) == "\n".join(nltk.sent_tokenize(text.strip()))


def test_scores_equal_rouge_score_on_adversarial_texts():
    """Empty and one-token texts, repeated tokens, lines of punctuation only, blank lines, words whose stems
    repeat: the cases where the union LCS, its hits and the n-gram counts could go wrong."""
    scorer = rouge_scorer.RougeScorer(list(rouge.METRICS), use_stemmer=True)
    rng = random.Random(99)
    pieces = ["a", "b", "a a", "run", "runs", "running", "ran", "...", "!?", "--", "\n", "\n\n", " ", "42", "x9"]
    texts = ["", " ", "\n", "...", "a", "a a a a", "!!\n??\n..", "a\n\nb", "b a\na b\nb a"]
    texts += [
        "".join(rng.choice(pieces) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(1, 40))) for _ in range(600)
    ]
    for reference in texts[:40]:
        for prediction in texts[:40]:
            expected = scorer.score(reference, prediction)
            assert rouge.score(reference, prediction) == {k: expected[k].fmeasure for k in rouge.METRICS}
    for reference, prediction in zip(texts, reversed(texts), strict=True):
        expected = scorer.score(reference, prediction)
        assert rouge.score(reference, prediction) == {k: expected[k].fmeasure for k in rouge.METRICS}


def test_rouge_lsum_equals_rouge_score_when_many_lines_share_one_bit_vector():
    """Prediction lines of one repeated token carry out of their top bit at each match: the guard bit between
    lines must stop that carry, or a line's LCS leaks into the next one's."""
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    rng = random.Random(21)
    for _ in range(400):
        alphabet = rng.choice(["a", "ab", "abc", "abcdefgh"])

        def text(lines: int, alphabet: str = alphabet) -> str:
            return "\n".join(" ".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(lines))

        reference, prediction = text(rng.randint(1, 12)), text(rng.randint(1, 30))
        expected = scorer.score(reference, prediction)["rougeLsum"].fmeasure
        assert rouge.score(reference, prediction)["rougeLsum"] == expected


def test_tokenizer_equals_rouge_score_with_its_word_cache_cold_and_warm():
    from nltk.stem import porter
    from rouge_score import tokenize as rouge_tokenize

    stemmer = porter.PorterStemmer()
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-'\n\tİKé"
    texts = ["".join(rng.choice(letters) for _ in range(rng.randint(0, 120))) for _ in range(500)]
    texts += [_random_text(rng, rng.randint(0, 60)) for _ in range(500)]
    for _ in range(2):  # first with words the cache has not seen, then with all of them known
        for text in texts:
            assert rouge.tokenize(text) == rouge_tokenize.tokenize(text, stemmer)


def test_lcs_read_out_on_long_and_repetitive_sequences():
    rng = random.Random(11)
    for _ in range(300):
        alphabet = rng.choice(["ab", "abc", "abcdefghij"])
        ref = [rng.choice(alphabet) for _ in range(rng.randint(0, 80))]
        can = [rng.choice(alphabet) for _ in range(rng.randint(0, 80))]
        assert rouge.lcs_indices(ref, can) == rouge_scorer.lcs_ind(ref, can)
        assert rouge.lcs_length(ref, can) == rouge_scorer._lcs_table(ref, can)[-1][-1]


def test_plain_sentence_break_contexts_are_decided_as_nltk_decides_them():
    from nltk.tokenize.punkt import PunktTokenizer

    nltk_punkt = PunktTokenizer("english")
    params = nltk_punkt._params
    words = ["the", "The", "ka", "Lo", "a", "J", "He", "end", "END", "mr", "Mr", "Dr", "etc", "jan", "No", "U"]
    words += sorted(params.abbrev_types)[:60] + sorted(params.sent_starters)
    pairs = [(a, b) for a in words for b in words]
    pairs += [(a, b) for a, b in params.collocations] + [
        (a.capitalize(), b.capitalize()) for a, b in params.collocations
    ]
    contexts = [f"{a}. {b}" for a, b in pairs]
    contexts += [f"{a}.  {b}" for a, b in pairs[:200]] + [f"{a}.\n{b}" for a, b in pairs[:200]]
    contexts += [f"{a}. {b}," for a, b in pairs[:200]] + [f"{a}! {b}" for a, b in pairs[:200]]
    contexts += ["5. The", "e.g. The", "U.S. The", "naïve. The", "end.) The", "end. 'The"]
    ours = scoring._SentenceSplitter()  # a splitter of its own, with its own parameters
    # English Punkt knows no collocation of two plain words: add some, so that the rule that undoes a break is seen.
    for punkt in (nltk_punkt, ours.punkt):
        punkt._params.collocations.update({("kalo", "mira"), ("end", "the")})
    contexts += ["Kalo. Mira", "kalo. mira", "END. The", "end. the", "end. they"]
    for context in contexts:
        assert ours.is_break(context) == nltk_punkt.text_contains_sentbreak(context), context
    assert not ours.is_break("Kalo. Mira") and ours.is_break("Kalo. Miro")


def test_sentence_splitting_is_nltks_around_quotes_brackets_ellipses_and_any_whitespace():
    """The cases where NLTK's candidate breaks overlap ("!!!", "..."), a break is realigned past closing quotes
    and brackets, or the word before a break starts after a tab, a line break or no whitespace at all."""
    import nltk

    rng = random.Random(17)
    pieces = ["Word", "end", "Dr", "e.g", "U.S", "5", "3.14", "...", "!!!", "?!", ".", "!", "?", "'", '"', ")", "(",
              "]", "}", "\u201d", "\u2019", "\xbb", "--", " ", "  ", "\n", "\t", "\r\n", "\xa0", "\u2003", "Mr",
              "p.m", ";", ":", ",", "*", "x.y.z", "caf\xe9"]  # fmt: skip
    texts = ["", " ", ".", ". A", "A. ", '"Hi." (Yes.) No.', "End.) Next. [Done.] 'Quote.' \u201cCurly.\u201d Go."]
    texts += [
        "".join(rng.choice(pieces) + rng.choice(["", " ", ". ", ".", "\n"]) for _ in range(rng.randint(1, 40)))
        for _ in range(3000)
    ]
    splitter = scoring._punkt()
    for text in texts:
        assert splitter.split(text) == nltk.sent_tokenize(text), repr(text)


def test_sentence_splitting_is_nltks_around_abbreviations_collocations_and_initials():
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer

    params = PunktTokenizer("english")._params
    rng = random.Random(8)
    words = ["Kalo", "mira", "The", "he", "J", "a", "Mr", "dr", "etc", "No", "42", "U.S", "e.g", "Loriton"]
    words += [a for a, _ in params.collocations] + [b for _, b in params.collocations]
    texts = []
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(1, 30)):
            parts.append(rng.choice(words) + rng.choice([".", ". ", " ", "! ", "? ", ".\n", ".  ", '." ', ".) "]))
        texts.append(" ".join(parts))
    for text in texts:
        assert sentences_per_line(text) == "\n".join(nltk.sent_tokenize(text.strip()))


# --- the whole pipeline against the reference algorithm --------------------------------------------------------


def test_pipeline_equals_the_reference_evaluator(tmp_path, dataset, tokenizer):
    entries = _perturbed_outputs(dataset, tokenizer, 200)
    entries.insert(5, (entries[0][0], [7, 8, 9]))  # a repeated qsl_idx: the first entry must win
    entries.append((599 if entries[0][0] != 599 else 598, []))  # an empty output
    entries[2] = (entries[2][0], [*entries[2][1], EOS, EOS])  # more trailing EOS tokens
    log = write_log(tmp_path / "mlperf_log_accuracy.json", entries)
    expected, _ = reference_metrics(log, dataset.references, tokenizer)
    result = evaluate(read_accuracy_log(log), dataset.references, tokenizer, workers=1)
    assert result.metrics == {k: (float(v) if isinstance(v, float) else int(v)) for k, v in expected.items()}
    assert result.metrics["gen_num"] == len({index for index, _ in entries})
    first = next(s for s in result.samples if s.qsl_idx == entries[0][0])
    assert first.n_tokens == len(entries[0][1])


def test_parallel_workers_give_the_single_process_result(tmp_path, dataset, tokenizer):
    outputs = read_accuracy_log(write_log(tmp_path / "log.json", _perturbed_outputs(dataset, tokenizer, 300, seed=3)))
    one = evaluate(outputs, dataset.references, tokenizer, workers=1)
    two = evaluate(outputs, dataset.references, tokenizer, workers=2)
    assert one.metrics == two.metrics
    assert one.samples == two.samples


def test_empty_predictions_score_zero():
    ((pred, scores),) = score_texts([""], ["The capital is Loriton."], workers=1)
    assert pred == "" and set(scores.values()) == {0.0}


# --- bad input ------------------------------------------------------------------------------------------------


def test_log_bytes_that_do_not_fit_the_dtype_are_an_error(tmp_path):
    (tmp_path / "log.json").write_text(json.dumps([{"seq_id": 0, "qsl_idx": 0, "data": "0102030405"}]))
    with pytest.raises(HarnessError, match="5 bytes, not a whole number of int32"):
        read_accuracy_log(tmp_path / "log.json")


def test_qsl_idx_beyond_the_dataset_is_an_error(tmp_path, dataset, tokenizer):
    log = write_log(tmp_path / "log.json", [(0, [5, 6]), (9999, [5, 6])])
    with pytest.raises(HarnessError, match="qsl_idx 9999, but the data set has only 600 rows"):
        evaluate(read_accuracy_log(log), dataset.references, tokenizer, workers=1)


def test_missing_or_broken_log_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        read_accuracy_log(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(HarnessError, match="not valid JSON"):
        read_accuracy_log(tmp_path / "bad.json")


def test_missing_punkt_data_says_how_to_install_it(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(HarnessError, match=r"python -m nltk.downloader punkt_tab"):
        check_punkt()


# --- targets and reports --------------------------------------------------------------------------------------


def test_llama2_targets_are_the_submission_checkers():
    rows = {
        r["metric"]: r
        for r in BENCHMARKS["llama2-70b-99.9"].accuracy.check(
            {"rouge1": 44.39, "rouge2": 22.02, "rougeL": 28.59, "tokens_per_sample": 294.0}
        )
    }
    assert rows["rouge1"]["min"] == pytest.approx(44.4312 * 0.999)
    assert rows["rouge1"]["passed"] and rows["rouge2"]["passed"] and rows["rougeL"]["passed"]
    assert rows["tokens_per_sample"]["min"] == pytest.approx(294.45 * 0.9)
    assert not BENCHMARKS["llama2-70b-99"].accuracy.check(
        {"rouge1": 43.0, "rouge2": 30, "rougeL": 30, "tokens_per_sample": 294}
    )[0]["passed"]
    too_long = BENCHMARKS["llama2-70b-99"].accuracy.check(
        {"rouge1": 50, "rouge2": 30, "rougeL": 30, "tokens_per_sample": 330}
    )
    assert not too_long[-1]["passed"]


def test_custom_targets_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"name": "mine", "rouge1": 50.0, "factor": 0.9}))
    targets = resolve_targets(path)
    assert targets.name == "mine" and targets.check({"rouge1": 45.5})[0]["passed"]
    path.write_text('{"bleu": 3}')
    with pytest.raises(HarnessError, match="at least one of rouge1"):
        resolve_targets(path)
    with pytest.raises(HarnessError, match="Did you mean llama2-70b-99"):
        resolve_targets("llama2-70b-98")


def test_accuracy_txt_is_what_the_submission_checker_parses(tmp_path, dataset, tokenizer):
    log = write_log(tmp_path / "mlperf_log_accuracy.json", _perturbed_outputs(dataset, tokenizer, 80))
    report = score_log(log, dataset, embedded.MODEL_DIR, BENCHMARKS["llama2-70b-99"].accuracy, workers=1)
    text = (tmp_path / "accuracy.txt").read_text()
    line = next(line for line in text.splitlines() if line.startswith("{"))
    assert "np." not in line
    parsed = ast.literal_eval(line)
    assert parsed == report.metrics and all(type(v) in (int, float) for v in parsed.values())
    assert re.match(r".*'rouge1':\s+'?([\d.]+)'?.*", line).group(1) == str(report.metrics["rouge1"])
    assert re.match(r".*'tokens_per_sample':\s([\d.]+).*", line)
    assert f"hash={report.accuracy_log_sha256}" in text
    assert "accuracy: FAIL" in text  # tokens_per_sample is far from llama2-70b's 294
    rows = [json.loads(r) for r in (tmp_path / "accuracy_samples.jsonl").read_text().splitlines()]
    assert len(rows) == 80 and {"qsl_idx", "rouge1", "prediction", "n_tokens"} <= set(rows[0])


def test_cli_scores_a_log_and_compare_shows_the_drops(tmp_path, dataset, tokenizer, capsys):
    good, bad = tmp_path / "a", tmp_path / "b"
    good.mkdir()
    bad.mkdir()
    entries = _perturbed_outputs(dataset, tokenizer, 100)
    write_log(good / "mlperf_log_accuracy.json", entries)
    worse = [
        (index, [*ids[: len(ids) // 3], EOS]) if n % 10 == 0 else (index, ids) for n, (index, ids) in enumerate(entries)
    ]
    write_log(bad / "mlperf_log_accuracy.json", worse)
    for run in (good, bad):
        code = accuracy_main(
            [
                "--accuracy-log",
                str(run / "mlperf_log_accuracy.json"),
                "--dataset",
                str(embedded.DATASET),
                "--model",
                str(embedded.MODEL_DIR),
                "--targets",
                str(embedded.ACCURACY_TARGETS),
                "--workers",
                "1",
            ]
        )
        assert code == 1  # perturbed outputs miss the tiny model's 98.5 ROUGE-1 target
        assert (run / "accuracy.json").is_file()
    comparison = compare(good, bad, top=3)
    assert comparison.deltas["rougeL"][2] < 0
    assert len(comparison.drops) == 3 and all(d.delta < 0 for d in comparison.drops)
    assert comparison.drops[0].reference == dataset.references[comparison.drops[0].qsl_idx]
    capsys.readouterr()
    assert accuracy_main(["compare", str(good), str(bad), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "largest rougeL drops" in out and "reference:" in out
    assert (bad / "accuracy_vs_a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_without_a_tokenizer_is_one_clear_error(tmp_path, capsys):
    log = write_log(tmp_path / "log.json", [(0, [5])])
    assert accuracy_main(["--accuracy-log", str(log), "--dataset", str(embedded.DATASET)]) == 2
    assert "pass --model or --tokenizer" in capsys.readouterr().err
