"""xgrammar vs llguidance on this machine with the served tokenizer: schema compile time and
per-token mask time at batch 1 and 16 (the figures behind docs/structured-output.md)."""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
from transformers import AutoTokenizer

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}, "zip": {"type": "string"}},
            "required": ["city", "zip"],
        },
    },
    "required": ["name", "age", "role", "tags", "address"],
}
TEXT = (
    '{"name": "Ann", "age": 31, "role": "user", "tags": ["a", "bb"],'
    ' "address": {"city": "Kyoto", "zip": "600"}}'
)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def tokens_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def bench_xgrammar(tok, ids: list[int]) -> None:
    import xgrammar as xgr

    started = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
    compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
    print("xgrammar tokenizer info + compiler:", ms(time.perf_counter() - started))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        compiled = compiler.compile_json_schema(json.dumps(SCHEMA))
        times.append(time.perf_counter() - started)
    print("xgrammar compile schema (median of 3):", ms(statistics.median(times)))
    for batch in (1, 16):
        matchers = [xgr.GrammarMatcher(compiled) for _ in range(batch)]
        bitmask = xgr.allocate_token_bitmask(batch, info.vocab_size)
        logits = torch.randn(batch, info.vocab_size)
        xgr.apply_token_bitmask_inplace(logits, bitmask)  # the first call sets the kernel up
        fill, apply = [], []
        for token in ids:
            started = time.perf_counter()
            for row, matcher in enumerate(matchers):
                matcher.fill_next_token_bitmask(bitmask, row)
            fill.append(time.perf_counter() - started)
            started = time.perf_counter()
            xgr.apply_token_bitmask_inplace(logits, bitmask)
            apply.append(time.perf_counter() - started)
            for matcher in matchers:
                assert matcher.accept_token(token)
        print(
            f"xgrammar batch {batch}: fill {ms(statistics.mean(fill))}/step (mean), "
            f"p95 {ms(sorted(fill)[int(len(fill) * 0.95)])}, apply {ms(statistics.mean(apply))}"
        )


def bench_llguidance(tok, ids: list[int]) -> None:
    import llguidance
    import llguidance.hf
    import llguidance.torch as llt

    started = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok)
    print("llguidance tokenizer:", ms(time.perf_counter() - started))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(SCHEMA))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        matcher = llguidance.LLMatcher(lltok, grammar)
        assert not matcher.is_error(), matcher.get_error()
        times.append(time.perf_counter() - started)
    print("llguidance matcher from schema (median of 3):", ms(statistics.median(times)))
    for batch in (1, 16):
        matchers = [llguidance.LLMatcher(lltok, grammar) for _ in range(batch)]
        bitmask = llt.allocate_token_bitmask(batch, lltok.vocab_size)
        logits = torch.randn(batch, lltok.vocab_size)
        llt.apply_token_bitmask_inplace(logits, bitmask)  # the first call sets the kernel up
        fill, apply = [], []
        for token in ids:
            started = time.perf_counter()
            for row, matcher in enumerate(matchers):
                llt.fill_next_token_bitmask(matcher, bitmask, row)
            fill.append(time.perf_counter() - started)
            started = time.perf_counter()
            llt.apply_token_bitmask_inplace(logits, bitmask)
            apply.append(time.perf_counter() - started)
            for matcher in matchers:
                assert matcher.consume_token(token), matcher.get_error()
        print(
            f"llguidance batch {batch}: fill {ms(statistics.mean(fill))}/step (mean), "
            f"p95 {ms(sorted(fill)[int(len(fill) * 0.95)])}, apply {ms(statistics.mean(apply))}"
        )


def main() -> None:
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    ids = tokens_of(tok, TEXT)
    print(f"vocab {len(tok)}, {len(ids)} tokens of JSON, torch threads {torch.get_num_threads()}")
    bench_xgrammar(tok, ids)
    bench_llguidance(tok, ids)


if __name__ == "__main__":
    main()
