"""The synthetic gpt-oss-120b sample (scripts/synthetic_gpt_oss.py): deterministic, its prompts in OpenAI's
harmony format as MLCommons made them, the embedded files exactly what the script writes, loadable by the
harness as the benchmark's processed file, and gradable: its right answers are read and judged right by the
gpt-oss reference's parsers (`accuracy.gpt_oss_answers`), its wrong ones judged wrong, code run in the sandbox."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from accuracy.answers import GPQA_OPTIONS, judge_aime, judge_multiple_choice
from accuracy.gpt_oss_answers import extract_final_section, kind_of, parse_answer
from accuracy.livecodebench import grade_many, load_problems
from mlperf_llm_sut.benchmarks import get_benchmark
from mlperf_llm_sut.benchmarks.gpt_oss_120b import DEMO_GENERATION
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import synthetic_gpt_oss

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = get_benchmark("gpt-oss-120b")
SAMPLE = embedded.ROOT / "gpt-oss-synthetic-60.jsonl"
PROBLEMS = embedded.ROOT / "livecodebench-v6-synthetic.jsonl"
ROWS = 60
"""The embedded sample's rows: twenty of each source, every code problem at least twice."""


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(synthetic_gpt_oss.rows(ROWS, seed=0))


def test_the_benchmark_names_the_files_the_script_writes():
    assert BENCHMARK.demo_dataset == SAMPLE.name and BENCHMARK.demo_problems == PROBLEMS.name


def test_the_same_seed_gives_the_same_rows_and_problems_and_another_seed_other_rows(tmp_path):
    assert list(synthetic_gpt_oss.rows(12, seed=3)) == list(synthetic_gpt_oss.rows(12, seed=3))
    assert list(synthetic_gpt_oss.rows(12, seed=3)) != list(synthetic_gpt_oss.rows(12, seed=4))
    first, again, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    synthetic_gpt_oss.write_problems(first, seed=5)
    synthetic_gpt_oss.write_problems(again, seed=5)
    synthetic_gpt_oss.write_problems(other, seed=6)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()


def test_render_harmony_writes_what_openai_harmony_renders():
    """openai/harmony's test-data/test_simple_convo_high_effort.txt (a system message with effort high, a
    developer message, a user message, rendered for completion), with the date line that
    test_reasoning_system_message_with_dates.txt shows, and one few-shot pair as its renderer writes assistant
    messages on the final channel (test_keep_analysis_between_finals.txt)."""
    expected = (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2025-09-30\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>developer<|message|># Instructions\n\nAnswer the user's questions like a robot.<|end|>"
        "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>4<|end|>"
        "<|start|>user<|message|>What is the capital of the largest country in the world?<|end|>"
        "<|start|>assistant"
    )
    rendered = synthetic_gpt_oss.render_harmony(
        "Answer the user's questions like a robot.",
        "What is the capital of the largest country in the world?",
        reasoning_effort="high",
        examples=[("What is 2 + 2?", "4")],
    )
    assert rendered == expected
    with pytest.raises(ValueError, match="reasoning effort 'max'"):
        synthetic_gpt_oss.render_harmony("x", "y", reasoning_effort="max")


_MESSAGE = re.compile(r"<\|start\|>(\w+)(?:<\|channel\|>(\w+))?<\|message\|>(.*?)<\|end\|>", re.DOTALL)


def _messages(prompt: str) -> list[tuple[str, str, str]]:
    """(role, channel, content) of each message of a prompt, which must be nothing but messages and the
    closing `<|start|>assistant`."""
    assert prompt.endswith("<|start|>assistant")
    body = prompt.removesuffix("<|start|>assistant")
    found = list(_MESSAGE.finditer(body))
    assert "".join(match[0] for match in found) == body
    return [(match[1], match[2] or "", match[3]) for match in found]


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_every_prompt_is_a_harmony_conversation_with_its_data_sets_instructions(rows, effort):
    chosen = rows if effort == "high" else list(synthetic_gpt_oss.rows(9, seed=0, reasoning_effort=effort))
    instructions = {
        "aime": (synthetic_gpt_oss.AIME_INSTRUCTIONS, 0),
        "gpqa": (synthetic_gpt_oss.GPQA_INSTRUCTIONS, 2),
        "livecodebench": (synthetic_gpt_oss.LIVECODEBENCH_INSTRUCTIONS, 0),
    }
    for row in chosen:
        prompt = row["text_input"]
        assert prompt.startswith("<|start|>system<|message|>") and prompt.endswith("<|start|>assistant")
        messages = _messages(prompt)
        system, developer, *examples, user = messages
        assert system[:2] == ("system", "") and f"\n\nReasoning: {effort}\n\n" in system[2]
        assert "Current date: 2025-09-30\n" in system[2]
        wanted, shots = instructions[kind_of(row["dataset"])]
        assert developer == ("developer", "", f"# Instructions\n\n{wanted}")
        assert [(role, channel) for role, channel, _ in examples] == [("user", ""), ("assistant", "final")] * shots
        assert user == ("user", "", row["question"])
    with pytest.raises(ValueError, match="reasoning effort"):
        next(synthetic_gpt_oss.rows(1, seed=0, reasoning_effort="HIGH"))


def test_rows_have_the_schema_a_mix_of_the_three_sets_and_answers_in_range(rows):
    for row in rows:
        assert set(row) == {"id", "text_input", "ground_truth", "dataset", "question"}
        assert row["id"].startswith("synthetic.") and all(isinstance(value, str) and value for value in row.values())
    assert len({row["id"] for row in rows}) == len(rows)
    assert [row["dataset"] for row in rows[:3]] == ["aime25", "gpqa_diamond", "livecodebench_v6"]
    assert Counter(row["dataset"] for row in rows) == Counter({name: ROWS // 3 for name in synthetic_gpt_oss.SOURCES})
    for row in rows:
        if row["dataset"] == "aime25":
            assert 0 <= int(row["ground_truth"]) <= 999
        elif row["dataset"] == "gpqa_diamond":
            assert row["ground_truth"] in GPQA_OPTIONS and "\nD) " in row["question"]
    assert all(row["id"].startswith("mine.") for row in synthetic_gpt_oss.rows(3, seed=0, prefix="mine"))


def test_the_code_rows_name_every_problem_of_the_problems_file(rows, tmp_path):
    path = tmp_path / "test.jsonl"
    synthetic_gpt_oss.write_problems(path, seed=0)
    loaded = load_problems(path)
    code_rows = [row for row in rows if row["dataset"] == "livecodebench_v6"]
    assert {row["ground_truth"] for row in code_rows} == set(loaded)
    assert all(problem["contest_date"].startswith("2025-") for problem in synthetic_gpt_oss.problems(seed=0))


def test_the_embedded_files_are_what_the_script_writes(tmp_path):
    """scripts/make_sample_dataset.py, run again, writes the embedded sample and problems byte for byte."""
    out = tmp_path / SAMPLE.name
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_dataset.py"), "--benchmark", "gpt-oss-120b", "--out", out],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert (tmp_path / PROBLEMS.name).read_bytes() == PROBLEMS.read_bytes()


def test_the_harness_loads_the_embedded_sample_with_its_tokens_answers_and_sources(rows):
    dataset = load_dataset(SAMPLE, prompt_format=BENCHMARK.prompt_format)
    lines = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert dataset.schema == "processed" and len(dataset) == ROWS
    assert dataset.prompts == [line["input_tokens"] for line in lines]
    assert dataset.references == [row["ground_truth"] for row in rows]
    assert dataset.sources == [row["dataset"] for row in rows]
    assert [line["text_input"] for line in lines] == [row["text_input"] for row in rows]
    # Every prompt leaves room for the demo's answers in the tiny model's context.
    config = json.loads((embedded.MODEL_DIR / "config.json").read_text())
    longest = max(map(len, dataset.prompts))
    assert longest + DEMO_GENERATION["max_new_tokens"] <= config["max_position_embeddings"], longest


def test_every_answer_is_a_harmony_completion_the_parsers_read(rows):
    for row in rows:
        for output in (synthetic_gpt_oss.correct_output(row), synthetic_gpt_oss.wrong_output(row)):
            assert output.startswith("<|channel|>analysis<|message|>") and output.endswith("<|return|>")
            assert "<|end|><|start|>assistant<|channel|>final<|message|>" in output
            assert parse_answer(kind_of(row["dataset"]), output) is not None, output


def _judged(rows: list[dict[str, str]], outputs: list[str]) -> list[bool]:
    """Each output judged as the gpt-oss reference judges it: parsed by its parser, compared by its evaluator,
    code run against the problem's tests."""
    problems = load_problems(PROBLEMS)
    verdicts: dict[int, bool] = {}
    code: list[tuple[int, str]] = []
    for index, (row, output) in enumerate(zip(rows, outputs, strict=True)):
        kind, truth = kind_of(row["dataset"]), row["ground_truth"]
        parsed = parse_answer(kind, output)
        if kind == "gpqa":
            assert isinstance(parsed, str)
            verdicts[index] = judge_multiple_choice(parsed, truth, GPQA_OPTIONS)
        elif kind == "aime":
            assert isinstance(parsed, int)
            verdicts[index] = judge_aime(parsed, truth)
        else:
            assert kind == "livecodebench" and isinstance(parsed, str)
            code.append((index, parsed))
    graded = grade_many(
        [(parsed, problems[rows[index]["ground_truth"]]) for index, parsed in code], workers=2, progress=False
    )
    verdicts.update({index: verdict.passed for (index, _), verdict in zip(code, graded, strict=True)})
    return [verdicts[index] for index in range(len(rows))]


def test_right_answers_are_judged_right_and_wrong_ones_wrong_by_the_reference_rules(rows):
    chosen = rows  # every answer form, every problem (stdin and functional) twice or more
    by_id = {problem["question_id"]: problem for problem in synthetic_gpt_oss.problems(seed=0)}
    right = _judged(chosen, [synthetic_gpt_oss.correct_output(row, by_id) for row in chosen])
    assert [row["id"] for row, ok in zip(chosen, right, strict=True) if not ok] == []
    wrong = _judged(chosen, [synthetic_gpt_oss.wrong_output(row, by_id) for row in chosen])
    assert [row["id"] for row, ok in zip(chosen, wrong, strict=True) if ok] == []


def test_right_multiple_choice_and_integer_answers_come_in_several_forms(rows):
    forms: dict[str, set[str]] = {"gpqa": set(), "aime": set()}
    for row in rows:
        kind, truth = kind_of(row["dataset"]), row["ground_truth"]
        if kind in forms:
            final = extract_final_section(synthetic_gpt_oss.correct_output(row))
            # The letter is the last one of the final section; the integer may be written twice.
            head, _, tail = final.rpartition(truth)
            forms[kind].add(head.replace(truth, "X") + "X" + tail if kind == "aime" else f"{head}X{tail}")
    assert forms == {
        "gpqa": {"Answer: X", "**X**", "Checked each option.\n\nAnswer: X"},
        "aime": {"The result is X.\n\n\\boxed{X}", "Answer: X"},
    }


def test_a_problem_missing_from_the_given_copy_is_an_error(rows):
    code_row = next(row for row in rows if row["dataset"] == "livecodebench_v6")
    with pytest.raises(KeyError, match=code_row["ground_truth"]):
        synthetic_gpt_oss.correct_output(code_row, {})


@pytest.mark.parametrize("reasoning_effort", ["high", "low"])
def test_every_prompt_is_what_openais_harmony_renderer_makes_of_the_conversation(reasoning_effort):
    """The removed harmonize_inputs.py rendered each conversation with openai-harmony (a vLLM dependency, so here
    too): every prompt of ours, encoded with gpt-oss's own o200k harmony encoding, is that rendering token for
    token, system message, developer instructions, few-shot turns and all."""
    harmony = pytest.importorskip("openai_harmony")
    encoding = harmony.load_harmony_encoding(harmony.HarmonyEncodingName.HARMONY_GPT_OSS)
    efforts = {"high": harmony.ReasoningEffort.HIGH, "low": harmony.ReasoningEffort.LOW}

    def rendered(dataset: str, question: str) -> list[int]:
        instructions, examples = synthetic_gpt_oss._PROMPTS[synthetic_gpt_oss._kind(dataset)]
        system = (
            harmony.SystemContent.new()
            .with_reasoning_effort(efforts[reasoning_effort])
            .with_conversation_start_date("2025-09-30")
            .with_required_channels(["analysis", "commentary", "final"])
        )
        messages = [
            harmony.Message.from_role_and_content(harmony.Role.SYSTEM, system),
            harmony.Message.from_role_and_content(
                harmony.Role.DEVELOPER, harmony.DeveloperContent.new().with_instructions(instructions)
            ),
        ]
        for user, assistant in examples:
            messages.append(harmony.Message.from_role_and_content(harmony.Role.USER, user))
            messages.append(
                harmony.Message.from_role_and_content(harmony.Role.ASSISTANT, assistant).with_channel("final")
            )
        messages.append(harmony.Message.from_role_and_content(harmony.Role.USER, question))
        conversation = harmony.Conversation.from_messages(messages)
        return list(encoding.render_conversation_for_completion(conversation, harmony.Role.ASSISTANT))

    rows = list(synthetic_gpt_oss.rows(9, seed=0, reasoning_effort=reasoning_effort))
    assert {row["dataset"] for row in rows} == {"aime25", "gpqa_diamond", "livecodebench_v6"}
    for row in rows:
        ours = encoding.encode(row["text_input"], allowed_special="all")
        assert ours == rendered(row["dataset"], row["question"]), row["id"]
