r"""Deterministic generator of a SYNTHETIC gpt-oss-120b-style sample.

Nothing here comes from AIME 2025, GPQA diamond or LiveCodeBench: the questions are those of
scripts/synthetic_deepseek.py (templates over a small invented world, and its eight small programming problems),
made into prompts the way MLCommons made gpt-oss-120b's: a conversation in OpenAI's harmony chat format,
rendered for the assistant to complete. The rows have the columns of the reference's files that the harness
reads (`text_input`, `ground_truth`, `dataset`, plus the `question` and an `id`), and their `dataset` names are
those the real data uses, so that each row is graded by the kind its name selects (eval_accuracy.py's
`get_evaluator` takes the first of its keys that the name contains):

* aime25: integers 0 to 999, asked for in `\boxed{}` by the developer message;
* gpqa_diamond: multiple choice A-D, the answer on a line `Answer: X`, after the reference's two worked examples;
* livecodebench_v6: the ground truth is the `question_id` of a problem of a synthetic code_generation_lite
  test.jsonl (`problems`, `write_problems`).

The prompts follow MLCommons' language/gpt-oss-120b/preprocess/harmonize_inputs.py, removed from
mlcommons/inference in 02206f71 ("rm harmonize script + fix score calculation"; read it with
`git show 02206f71^:language/gpt-oss-120b/preprocess/harmonize_inputs.py`): a system message with the reasoning
effort, the conversation start date 2025-09-30 and the required channels; a developer message with the data
set's instructions; the few-shot turns of the data sets that have them; the question; then `<|start|>assistant`.

`correct_output` and `wrong_output` write answers as gpt-oss writes them (an analysis message, then the final
one) that the reference scorer (language/gpt-oss-120b/eval_accuracy.py) judges right and wrong: for tests, and
for demos (a "perfect" accuracy log).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic_deepseek
from synthetic_deepseek import AIME_TEMPLATES, GPQA_TEMPLATES, TASKS, code_prompt, multiple_choice, task_of

from accuracy.answers import GPQA_OPTIONS

__all__ = [
    "REASONING_EFFORTS",
    "SOURCES",
    "correct_output",
    "harmony_answer",
    "harmony_prompt",
    "problems",
    "render_harmony",
    "rows",
    "write_problems",
    "wrong_output",
]

SOURCES: Final = ("aime25", "gpqa_diamond", "livecodebench_v6")
"""The names of the real files' `dataset` column; row i is from SOURCES[i % 3], so any three consecutive rows hold
every kind of grading."""

REASONING_EFFORTS: Final = ("low", "medium", "high")
"""openai_harmony's ReasoningEffort values, as the system message writes them (harmony src/encoding.rs). MLCommons'
accuracy and TEST07 files were made with "high", the performance and TEST09 ones with "low"."""

# ---------------------------------------------------------------------------------------------------------------
# The harmony format
# ---------------------------------------------------------------------------------------------------------------

# The system message as openai_harmony renders `SystemContent.new().with_reasoning_effort(effort)
# .with_conversation_start_date("2025-09-30").with_required_channels(["analysis", "commentary", "final"])`
# (harmonize_inputs.py's `_create_base_messages`): openai/harmony src/chat.rs `SystemContent::default` gives the
# model identity and the knowledge cutoff 2024-06; src/encoding.rs `Render<SystemContent>` joins the identity,
# cutoff and date lines with "\n", then that block, "Reasoning: <effort>" and the channels line with "\n\n";
# test-data/test_reasoning_system_message_with_dates.txt and test_simple_convo_high_effort.txt are renderings of it.
_SYSTEM = (
    "You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: 2025-09-30\n"
    "\n"
    "Reasoning: {effort}\n"
    "\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)


def _message(role: str, content: str, channel: str | None = None) -> str:
    """One message as harmony renders it (src/encoding.rs `render_into`): `<|start|>`, the role, the channel where
    there is one, `<|message|>`, the content, `<|end|>` (a message in a prompt ends with `<|end|>`, never with the
    `<|return|>` the model stops on: docs/format.md)."""
    header = role if channel is None else f"{role}<|channel|>{channel}"
    return f"<|start|>{header}<|message|>{content}<|end|>"


def render_harmony(
    instructions: str,
    user: str,
    *,
    reasoning_effort: str = "high",
    examples: Sequence[tuple[str, str]] = (),
) -> str:
    """The prompt text of a conversation as `render_conversation_for_completion(convo, Role.ASSISTANT)` renders it:
    the system message, the developer message (`# Instructions\\n\\n<instructions>`: src/encoding.rs
    `Render<DeveloperContent>`), each example as a user turn and an assistant turn on the final channel
    (harmonize_inputs.py's `_add_multishot_examples`), the user's question, and `<|start|>assistant` for the model
    to go on from. The reference's text_input is this text (its tokens decoded)."""
    if reasoning_effort not in REASONING_EFFORTS:
        raise ValueError(f"reasoning effort {reasoning_effort!r} is not one of {', '.join(REASONING_EFFORTS)}")
    parts = [
        _message("system", _SYSTEM.format(effort=reasoning_effort)),
        _message("developer", f"# Instructions\n\n{instructions}"),
    ]
    for asked, answered in examples:
        parts += [_message("user", asked), _message("assistant", answered, channel="final")]
    parts += [_message("user", user), "<|start|>assistant"]
    return "".join(parts)


# The developer instructions, transcribed from harmonize_inputs.py (the f-string pieces joined as Python joins
# them: the LiveCodeBench ones have no space between "problem." and MOD_PROMPT there either).
MOD_PROMPT: Final = (
    "Do not repeat steps and output the final answer immediately once you have it. Once you have a candidate "
    "answer, do not spend more than ~100 tokens to verify it - instead, do a quick check and answer immediately. "
    "Avoid thinking for a long time. It is important to answer in as few tokens as possible."
)
# create_aime1983_prompt: the script's map sends "aime1983" and "aime2025" to it; zero-shot.
AIME_INSTRUCTIONS: Final = (
    "You are a math expert that solves problems step-by-step. "
    f"{MOD_PROMPT} "
    "The final line of your response should contain the final answer as an integer enclosed in \\boxed{answer}."
)
# create_gpqa_prompt: two worked examples, below.
GPQA_INSTRUCTIONS: Final = (
    "You are an expert in Biology, Physics and Chemistry who answers scientific questions accurately. "
    f"{MOD_PROMPT} "
    "After your reasoning, provide your final answer on a new line in the format: 'Answer: X' where X is the "
    "letter choice."
)
# create_livecodebench_prompt: zero-shot.
LIVECODEBENCH_INSTRUCTIONS: Final = (
    "You are a python coding expert that solves problems step-by-step. "
    "You must provide the reasoning to arriving at your solution and the code to solve the problem."
    f"{MOD_PROMPT} "
    "The code should be enclosed within ```python delimiters."
)
# create_gpqa_prompt's examples, verbatim (a molecular biology and a stereochemistry question of GPQA's own).
GPQA_EXAMPLES: Final = (
    (
        "A large gene has dozens of exons, of which the central ones code for folded triple helical repeats that "
        "connect the cytoskeleton with sarcolemma and extracellular space. Each exon usually codes for one folded "
        "triple alpha helix. The most common mutations of the gene are central exon deletions that create "
        "out-of-frame peptides and progressive degenerative organ waste. A solution is to deliver a Morpholino "
        "that recognizes the 5' end of the out-of-frame exon in pre-mRNA. The molecule prevents binding of the "
        "spliceosome and creates exon skipping and in-frame joining. Several missing exons are well tolerated by "
        "an organism. Which structure below is not involved in the proposed therapy?\nA) polyA tail\nB) lariat\n"
        "C) antisense\nD) R-loops",
        "The text describes the dystrophin gene and the FDA-approved oligonucleotide therapy that causes exon "
        "skipping by creating a functional, albeit shorter, dystrophin protein. Morpholino is bound to the "
        "pre-mRNA in an antisense orientation. Every splicing mechanism creates the lariat molecule that is "
        "circular with a 3' tail and soon degraded. The spliced RNA is polyadenylated at the 3' end. R-loops are "
        "triple helix of DNA and the pre-mRNA and a consequence of the RNA transcription, not splicing and RNA "
        "maturation.\n\nAnswer: D",
    ),
    (
        "How many of the following compounds exhibit optical activity?\n1-methyl-4-(prop-1-en-2-yl)cyclohex-1-ene"
        "\n2,3,3,3-tetrafluoroprop-1-ene\ndi(cyclohex-2-en-1-ylidene)methane\n"
        "5-(5-methylhexan-2-ylidene)cyclopenta-1,3-diene\n3-(2-methylbut-1-en-1-ylidene)cyclohex-1-ene\n"
        "[1,1'-biphenyl]-3,3'-diol\n8,8-dichlorobicyclo[4.2.0]octan-7-one\ncyclopent-2-en-1-one\nA) 6\nB) 5\nC) 4\n"
        "D) 3",
        "The compounds 1-methyl-4-(prop-1-en-2-yl)cyclohex-1-ene, 3-(2-methylbut-1-en-1-ylidene)cyclohex-1-ene, "
        "di(cyclohex-2-en-1-ylidene)methane, and 8,8-dichlorobicyclo[4.2.0]octan-7-one are chiral molecules and "
        "thus will be optically active.\n\nAnswer: C",
    ),
)

# The script's map is keyed by the names its input used ("aime2025", "gpqa", "livecodebench"); the shipped files
# name the sets aime25, gpqa_diamond and livecodebench_v6. Each is matched here by the key its name contains, as
# eval_accuracy.py's get_evaluator matches them.
_PROMPTS: Final[dict[str, tuple[str, tuple[tuple[str, str], ...]]]] = {
    "aime": (AIME_INSTRUCTIONS, ()),
    "gpqa": (GPQA_INSTRUCTIONS, GPQA_EXAMPLES),
    "livecodebench": (LIVECODEBENCH_INSTRUCTIONS, ()),
}


def _kind(dataset: str) -> str:
    kind = next((key for key in _PROMPTS if key in dataset.lower()), None)
    if kind is None:
        raise ValueError(f"data set {dataset!r} is none of gpt-oss-120b's (aime, gpqa, livecodebench)")
    return kind


def harmony_prompt(dataset: str, question: str, *, reasoning_effort: str = "high") -> str:
    """The prompt harmonize_inputs.py makes of `question` (the row's `question`, its user message) for `dataset`."""
    instructions, examples = _PROMPTS[_kind(dataset)]
    return render_harmony(instructions, question, reasoning_effort=reasoning_effort, examples=examples)


# ---------------------------------------------------------------------------------------------------------------
# livecodebench_v6: a synthetic code_generation_lite test.jsonl
# ---------------------------------------------------------------------------------------------------------------

V6_CONTEST_DATE: Final = "2025-01-01T00:00:00"
"""LiveCodeBench's release_v6 adds the problems of January to April 2025 (LiveCodeBench's README); the synthetic
problems are dated inside that window."""


def problems(seed: int = 0) -> list[dict[str, str]]:
    """The test.jsonl rows (code_generation_lite's fields, every value text) of every problem the code rows can
    name: synthetic_deepseek's problems (the statement's sample the public test, 1 to 3 private tests drawn with
    `seed`, half of them pickled), dated in release_v6's window. The same seed always gives the same rows."""
    return [{**problem, "contest_date": V6_CONTEST_DATE} for problem in synthetic_deepseek.problems(seed)]


def write_problems(path: Path, seed: int = 0) -> None:
    """`problems(seed)` as a test.jsonl that `accuracy.livecodebench.load_problems` reads: one JSON object a line,
    keys sorted, "\\n" endings, so that the same seed gives the same bytes."""
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in problems(seed))
    path.write_bytes(text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------------------------------------------


def rows(
    count: int, *, seed: int, reasoning_effort: str = "high", prefix: str = "synthetic"
) -> Iterator[dict[str, str]]:
    """`count` rows in gpt-oss-120b's schema, the sources cycling through `SOURCES`, each prompt in harmony with
    `reasoning_effort`; the code rows go through every problem of `problems` (in an order drawn with `seed`)
    before naming one again. The same arguments always give the same rows."""
    if reasoning_effort not in REASONING_EFFORTS:
        raise ValueError(f"reasoning effort {reasoning_effort!r} is not one of {', '.join(REASONING_EFFORTS)}")
    rng = random.Random(seed)
    order = list(TASKS)
    rng.shuffle(order)
    for i in range(count):
        dataset = SOURCES[i % len(SOURCES)]
        if dataset == "aime25":
            question, truth = AIME_TEMPLATES[rng.choice(sorted(AIME_TEMPLATES))](rng)
        elif dataset == "gpqa_diamond":
            full, _, truth = multiple_choice(rng, GPQA_TEMPLATES, GPQA_OPTIONS)
            # The options on the lines right after the question, as the reference's GPQA examples have them.
            question = full.replace("\n\n", "\n", 1)
        else:
            task = TASKS[order[(i // len(SOURCES)) % len(order)]]
            question, truth = code_prompt(task), task.question_id
        yield {
            "id": f"{prefix}.{dataset}.{i}",
            "text_input": harmony_prompt(dataset, question, reasoning_effort=reasoning_effort),
            "ground_truth": truth,
            "dataset": dataset,
            "question": question,
        }


# ---------------------------------------------------------------------------------------------------------------
# Model-style answers
# ---------------------------------------------------------------------------------------------------------------


def harmony_answer(analysis: str, final: str) -> str:
    """A completion of a harmony prompt as gpt-oss writes it: its reasoning on the analysis channel, then the
    answer on the final channel, ending with `<|return|>` (docs/format.md's example output). The reference
    scorer reads answers from the final message (eval_accuracy.py's extract_final_section)."""
    return (
        f"<|channel|>analysis<|message|>{analysis}<|end|><|start|>assistant<|channel|>final<|message|>{final}<|return|>"
    )


# No analysis text below holds "\boxed", "Answer" or a code fence: parse_aime_answer reads the whole text, and
# parse_multiple_choice and parse_code fall back to it.


def correct_output(row: Mapping[str, str], problems_by_id: Mapping[str, object] | None = None) -> str:
    """A gpt-oss-style answer that the reference scorer judges right for `row` (one of `rows`), in one of several
    forms its parsers accept, chosen by the row's id. `problems_by_id` (the problems by question id, as
    `problems` or `accuracy.livecodebench.load_problems` gives them), where given, must hold a code row's
    problem."""
    form = random.Random(row["id"])  # seeded by text: the same choice in every process
    truth, kind = row["ground_truth"], _kind(row["dataset"])
    if kind == "gpqa":
        # parse_multiple_choice: a letter alone at the start of the final message (markdown bold stripped), else
        # the last "Answer: X" in it.
        final = form.choice([f"Answer: {truth}", f"**{truth}**", f"Checked each option.\n\nAnswer: {truth}"])
        return harmony_answer("The user wants the one option that fits. Work it out, compare the options.", final)
    if kind == "aime":
        # parse_aime_answer: the last \boxed{digits}, else the last "Answer: digits".
        final = form.choice([f"The result is {int(truth)}.\n\n\\boxed{{{truth}}}", f"Answer: {truth}"])
        return harmony_answer("Compute the value step by step, then check it quickly.", final)
    task = task_of(row, problems_by_id)
    return harmony_answer(
        "Work out the algorithm, then write it as the problem asks.",
        f"Here is the solution.\n\n```python\n{task.solution}\n```",
    )


def wrong_output(row: Mapping[str, str], problems_by_id: Mapping[str, object] | None = None) -> str:
    """A gpt-oss-style answer from which the reference scorer reads an answer, and judges it wrong: another
    letter, another number, or a program that runs and fails every test."""
    truth, kind = row["ground_truth"], _kind(row["dataset"])
    if kind == "gpqa":
        other = GPQA_OPTIONS[(GPQA_OPTIONS.index(truth) + 1) % len(GPQA_OPTIONS)]
        return harmony_answer("One option stands out.", f"Answer: {other}")
    if kind == "aime":
        return harmony_answer("A quick estimate.", f"\\boxed{{{(int(truth) + 1) % 1000}}}")
    program = synthetic_deepseek.wrong_program(task_of(row, problems_by_id))
    return harmony_answer("Not sure; try this.", f"```python\n{program}\n```")
