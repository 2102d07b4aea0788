"""Build the embedded tiny Llama model and tokenizer (mlperf_llm_sut/common/embedded/tiny-llama).

Deterministic: fixed seeds, fixed thread count, deterministic torch kernels. It
trains a 1,024-token BPE tokenizer and a 4-layer Llama (hidden 256, 4 heads of
head_dim 64, 2 KV heads) on SYNTHETIC OpenOrca-style rows (scripts/
synthetic_openorca.py, seed 1) that are disjoint from the bundled sample data
set (seed 0), with the loss on the response tokens only. Training takes about
9 minutes on 2 CPU cores; the result (~6 MB) is committed, so nobody has to
run this unless they change the recipe.

    python scripts/make_tiny_model.py [--out DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic_openorca

from mlperf_llm_sut.benchmarks.llama2_70b import format_prompt, tokenize_prompts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "mlperf_llm_sut" / "common" / "embedded" / "tiny-llama"
TRAIN_SEED = 1
TRAIN_ROWS = 24_000
VOCAB_SIZE = 1024
MAX_POSITIONS = 2048


def train_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=list(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()[]{}<>/\\-_=+*&%$#@\n"
        ),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_POSITIONS,
    )


def build_examples(rows: list[dict[str, str]], tokenizer: PreTrainedTokenizerFast) -> list[tuple[list[int], int]]:
    """(prompt + response + eos, prompt length): the loss covers what follows the prompt."""
    prompts = tokenize_prompts([format_prompt(r["system_prompt"], r["question"]) for r in rows], tokenizer)
    answers = tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]
    return [(p + a + [tokenizer.eos_token_id], len(p)) for p, a in zip(prompts, answers, strict=True)]


def batches(examples: list[tuple[list[int], int]], size: int, rng: random.Random):
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1, size):
            chunk = [examples[i] for i in order[start : start + size]]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.zeros((size, width), dtype=torch.long)
            labels = torch.full((size, width), -100, dtype=torch.long)
            mask = torch.zeros((size, width), dtype=torch.long)
            for row, (ids, prompt_len) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
                mask[row, : len(ids)] = 1
            yield input_ids, labels, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    rows = list(synthetic_openorca.rows(TRAIN_ROWS, seed=TRAIN_SEED, prefix="train"))
    corpus = [format_prompt(r["system_prompt"], r["question"]) + " " + r["response"] for r in rows]
    tokenizer = train_tokenizer(corpus)
    examples = build_examples(rows, tokenizer)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = 50

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    started = time.time()
    stream = batches(examples, args.batch_size, random.Random(0))
    for step in range(args.steps):
        input_ids, labels, mask = next(stream)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.time() - started:6.0f}s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config.do_sample = False
    # bf16 halves the file; vLLM runs the model in bf16 on CPU anyway.
    model.to(torch.bfloat16)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    (args.out / "recipe.json").write_text(
        json.dumps(
            {
                "script": "scripts/make_tiny_model.py",
                "train_rows": TRAIN_ROWS,
                "train_seed": TRAIN_SEED,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "final_loss": round(loss.item(), 4),
                "parameters": sum(p.numel() for p in model.parameters()),
                "synthetic": True,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
