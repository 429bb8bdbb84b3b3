"""Quality of a quantized weight format against fp32, on the engine's own forward.

`python -m bench.quality [--weights int8,int4]` prints and writes (docs/benchmark/quality.json):
- perplexity of `bench/data/quality.txt` (a plain English text shipped with the repo) under each
  format;
- top-1 agreement: the fp32 model greedily answers the benchmark's chat prompts, then each format
  reads the same tokens and we count the positions where its argmax equals fp32's;
- greedy continuations identical to fp32's, over 64 new tokens, per prompt.
Both formats run the same code (`LlamaForward` over the paged pool), so only the weights differ.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from bench.prompts import load_tokenizer, workload_prompts

TEXT = Path(__file__).parent / "data" / "quality.txt"
OUT = Path(__file__).parent.parent / "docs" / "benchmark" / "quality.json"
NEW_TOKENS = 64
BLOCK = 16


class Scorer:
    """One weight format of the model, run over a private KV pool one sequence at a time."""

    def __init__(self, model: Any, weights: str) -> None:
        from seseragi.engine.kv_pool import KVPool
        from seseragi.engine.llama import LlamaForward

        self.forward = LlamaForward(model, weights)
        shape = self.forward.shape
        self.pool = KVPool(
            shape.layers,
            128,
            BLOCK,
            shape.kv_heads,
            shape.head_dim,
            torch.float32,
            torch.device("cpu"),
        )

    @torch.inference_mode()
    def logits(self, ids: list[int]) -> torch.Tensor:
        """Logits [len(ids), vocab] of every position, as one causal prefill."""
        from seseragi.engine.attention import AttentionBatch, PrefillSpan

        count = len(ids)
        blocks = -(-count // BLOCK)
        table = torch.arange(blocks)
        positions = torch.arange(count)
        batch = AttentionBatch(
            input_ids=torch.tensor(ids),
            positions=positions,
            slots=positions,  # blocks 0.. in order: slot == position
            logits_rows=positions,
            prefills=[PrefillSpan(0, count, table, count, None)],
        )
        return self.forward.forward(batch, self.pool).float()

    def greedy(self, prompt: list[int], new_tokens: int) -> list[int]:
        ids = list(prompt)
        for _ in range(new_tokens):
            ids.append(int(self.logits(ids)[-1].argmax()))
        return ids[len(prompt) :]


def perplexity(scorer: Scorer, ids: list[int]) -> float:
    logits = scorer.logits(ids)[:-1]
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]))
    return math.exp(float(nll))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the built-in)")
    parser.add_argument(
        "--weights", default="int8,int4", help="comma-separated formats compared with fp32"
    )
    parser.add_argument("--prompts", type=int, default=16)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    from seseragi.config import Settings
    from seseragi.model.loader import resolve_model_dir

    model_dir = args.model or resolve_model_dir(Settings())
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = load_tokenizer(model_dir)
    reference = Scorer(model, "none")
    text_ids = tokenizer(TEXT.read_text(), add_special_tokens=False)["input_ids"]
    prompts = [list(prompt.token_ids) for prompt in workload_prompts(tokenizer, args.prompts)]
    answers = [reference.greedy(ids, NEW_TOKENS) for ids in prompts]
    result: dict[str, Any] = {
        "text_tokens": len(text_ids),
        "new_tokens": NEW_TOKENS,
        "fp32_perplexity": perplexity(reference, text_ids),
        "formats": {},
    }
    for weights in args.weights.split(","):
        candidate = Scorer(model, weights)
        figures = compare(reference, candidate, prompts, answers)
        result["formats"][weights] = {"perplexity": perplexity(candidate, text_ids), **figures}
    print(json.dumps(result, indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


def compare(
    reference: Scorer, candidate: Scorer, prompts: list[list[int]], answers: list[list[int]]
) -> dict[str, Any]:
    """Top-1 agreement on fp32's own answers, and answers identical to fp32's under greedy."""
    agree = total = identical = 0
    for ids, answer in zip(prompts, answers, strict=True):
        full = ids + answer
        want = reference.logits(full)[len(ids) - 1 : -1].argmax(-1)
        got = candidate.logits(full)[len(ids) - 1 : -1].argmax(-1)
        agree += int((want == got).sum())
        total += len(answer)
        identical += int(candidate.greedy(ids, NEW_TOKENS) == answer)
    return {
        "top1_agreement": agree / total,
        "identical_greedy_answers": f"{identical}/{len(prompts)}",
    }


if __name__ == "__main__":
    main()
