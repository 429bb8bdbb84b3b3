"""Do free rows pay for a constrained neighbour? 16 free streams decode beside a 17th stream that
is free or follows a JSON schema, in the real engine (interleaved rounds); and the sampler alone
on real-vocabulary logits [17, V]. The 17th row is there both times, so the difference is the
grammar's own cost.

Run: python -m bench.structured_mix [rounds]. Prints medians; the figures are in
docs/structured-output.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from seseragi.config import Settings
from seseragi.engine.build import make_engine
from seseragi.engine.engine import Engine
from seseragi.engine.grammar import grammars_for
from seseragi.engine.sampling import RowSampler, sample_rows
from seseragi.engine.sampling import _constrain as constrain
from seseragi.engine.sequence import make_sequence
from seseragi.engine.types import (
    Request,
    SamplingParams,
    StoppingParams,
    StructuredOutput,
    TextDelta,
)
from seseragi.model.loader import LoadedModel, load

FREE_ROWS, NEW_TOKENS = 16, 48
SCHEMA = StructuredOutput(
    "json_schema",
    json.dumps(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
            },
            "required": ["name", "tags"],
        }
    ),
)


def _request(index: int, prompt: tuple[int, ...], structured: StructuredOutput | None) -> Request:
    sampling = SamplingParams(temperature=1.0, seed=index)
    stopping = StoppingParams(max_new_tokens=NEW_TOKENS, ignore_eos=structured is None)
    return Request(f"r{index}", prompt, sampling, stopping, structured=structured)


def engine_round(engine: Engine, loaded: LoadedModel, constrained: bool) -> float:
    """Seconds per free-row token while 16 free rows decode beside a 17th (constrained or not)."""
    prompt = tuple(loaded.tokenizer.encode("Write a list of names as JSON:"))
    free_tokens = [0]

    def counting(event: object) -> None:
        if isinstance(event, TextDelta):
            free_tokens[0] += len(event.token_ids)

    for i in range(FREE_ROWS):
        engine.add(make_sequence(i, _request(i, prompt, None), loaded.tokenizer, 0.0, counting))
    last = _request(99, prompt, SCHEMA if constrained else None)
    engine.add(make_sequence(99, last, loaded.tokenizer, 0.0, print_none))
    started = time.perf_counter()
    while engine.has_work:
        engine.step()
    return (time.perf_counter() - started) / free_tokens[0]


def print_none(event: object) -> None:
    """The 17th row's events are not counted: only the free rows' pace is measured."""


def sampler_round(loaded: LoadedModel, constrained: bool, steps: int = 30) -> float:
    """Seconds per sample_rows call: 16 free rows and a 17th, free or JSON (the grammar stays at
    its first position: the mask is recomputed every step, not cached per step)."""
    grammars = grammars_for(loaded.tokenizer)
    vocab = loaded.tokenizer.vocab_size
    rows = [
        RowSampler.for_request(_request(i, (1,), None), torch.device("cpu"))
        for i in range(FREE_ROWS)
    ]
    last = _request(99, (1,), SCHEMA if constrained else None)
    rows.append(RowSampler.for_request(last, torch.device("cpu"), grammars))
    logits = torch.randn(len(rows), vocab)
    took = []
    for _ in range(steps):
        if rows[-1].grammar is not None:
            rows[-1] = RowSampler.for_request(last, torch.device("cpu"), grammars)
        started = time.perf_counter()
        sample_rows(logits, rows, loaded.info.eos_token_ids)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def mask_cost(loaded: LoadedModel) -> float:
    """Median seconds of the grammar step alone (fill, apply, empty check) for one JSON row among
    17, walking a real JSON text so the matcher moves through its states."""
    grammars = grammars_for(loaded.tokenizer)
    text = '{"name": "Ann", "tags": ["a", "bb", "ccc"]}'
    rows = [RowSampler.for_request(_request(i, (1,), None), torch.device("cpu")) for i in range(16)]
    rows.append(RowSampler.for_request(_request(99, (1,), SCHEMA), torch.device("cpu"), grammars))
    took = []
    for token_id in loaded.tokenizer.encode(text, add_special_tokens=False):
        raw = torch.randn(len(rows), loaded.tokenizer.vocab_size)
        adjusted = raw.clone()
        started = time.perf_counter()
        constrain(raw, adjusted, rows, [True] * len(rows))
        took.append(time.perf_counter() - started)
        grammar = rows[-1].grammar
        assert grammar is not None
        grammar.accept(token_id)
    return statistics.median(took)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    settings = Settings()
    loaded = load(settings)
    engine = make_engine(loaded, settings)
    grammars_for(loaded.tokenizer).compile(SCHEMA)  # as request parsing does, before admission
    engine_round(engine, loaded, False)  # warm-up
    results: dict[bool, list[float]] = {False: [], True: []}
    samplers: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for constrained in (False, True):
            results[constrained].append(engine_round(engine, loaded, constrained))
            samplers[constrained].append(sampler_round(loaded, constrained))
    print(f"grammar step for 1 JSON row of 17: {mask_cost(loaded) * 1e3:.3f} ms median")
    for constrained in (False, True):
        label = "16 free + 1 JSON" if constrained else "16 free + 1 free"
        per_token = statistics.median(results[constrained])
        print(
            f"{label}: {per_token * 1e3:.2f} ms per free-row token "
            f"({1 / per_token:.1f} free tok/s), sample_rows "
            f"{statistics.median(samplers[constrained]) * 1e3:.2f} ms/step "
            f"(rounds: {[round(r * 1e3, 2) for r in results[constrained]]})"
        )


if __name__ == "__main__":
    main()
