"""The paged engine against the real model: same logits as transformers, same text with and
without the prefix cache, choices of one prompt sharing its prefill, prompts chunked between
running decodes, and the padded fallback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from seseragi.engine import builder
from seseragi.engine.attention import AttentionBatch, PrefillSpan
from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.engine.engine import Engine, EngineConfig
from seseragi.engine.kernels import KernelChoice, kernels_for
from seseragi.engine.kv_pool import KVPool
from seseragi.engine.llama import LlamaForward
from seseragi.engine.sequence import Sequence
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import (
    Event,
    Finished,
    Request,
    SamplingParams,
    StoppingParams,
    TextDelta,
)
from seseragi.model.loader import LoadedModel
from seseragi.settings import EngineSettings

pytestmark = pytest.mark.integration

SYSTEM = "You are a careful assistant who answers in one short sentence. " * 6


def make_engine(
    loaded: LoadedModel,
    runner: str = "paged",
    kernels: KernelChoice = "native",
    **config: object,
) -> Engine:
    info = loaded.info
    base: dict[str, object] = {
        "max_running": 8,
        "max_waiting": 16,
        "max_prefill_tokens": 512,
        "context_length": 1024,
        "eos_token_ids": info.eos_token_ids,
        "prefix_caching": True,
    }
    base.update(config)
    return builder.build_engine(
        loaded.model,
        EngineConfig(**base),  # type: ignore[arg-type]
        runner=runner,
        kv_cache_bytes=64 << 20,
        pad_token_id=info.pad_token_id,
        kernels=kernels,
        cache_dir=EngineSettings().cache_dir,
    )


def chat_prompt(loaded: LoadedModel, question: str) -> tuple[int, ...]:
    _, ids = loaded.tokenizer.encode_chat([("system", SYSTEM), ("user", question)])
    return tuple(ids)


class Collector:
    def __init__(self) -> None:
        self.events: dict[int, list[Event]] = {}

    def sink(self, seq_id: int) -> Callable[[Event], None]:
        self.events[seq_id] = []
        return self.events[seq_id].append

    def tokens(self, seq_id: int) -> list[int]:
        return [t for e in self.events[seq_id] if isinstance(e, TextDelta) for t in e.token_ids]

    def finished(self, seq_id: int) -> Finished:
        last = self.events[seq_id][-1]
        assert isinstance(last, Finished), last
        return last


def add(
    engine: Engine,
    loaded: LoadedModel,
    seq_id: int,
    prompt: tuple[int, ...],
    out: Collector,
    max_new_tokens: int = 12,
    min_new_tokens: int = 0,
    sampling: SamplingParams | None = None,
) -> Sequence:
    stopping = StoppingParams(max_new_tokens, min_new_tokens=min_new_tokens)
    request = Request(f"r{seq_id}", prompt, sampling or SamplingParams(), stopping)
    seq = Sequence(
        seq_id,
        request,
        IncrementalDetokenizer(loaded.tokenizer, prompt),
        StopSequenceMatcher((), include_stop_sequence=False),
        out.sink(seq_id),
        0.0,
    )
    engine.add(seq)
    return seq


def run_until_idle(engine: Engine, limit: int = 500) -> None:
    for _ in range(limit):
        if not engine.has_work:
            return
        engine.step()
    raise AssertionError("the engine did not finish")


@pytest.mark.parametrize("kernels", ["torch", "native"])
@torch.inference_mode()
def test_chunked_prefill_and_decode_match_transformers_logits(
    loaded_model: LoadedModel, kernels: KernelChoice
) -> None:
    model = loaded_model.model
    forward = LlamaForward(model)
    chosen = kernels_for(kernels, forward.dtype, forward.device, EngineSettings().cache_dir)
    assert chosen.name == kernels
    shape = forward.shape
    pool = KVPool(
        shape.layers, 8, 16, shape.kv_heads, shape.head_dim, forward.dtype, forward.device
    )
    prompt = torch.tensor(chat_prompt(loaded_model, "What is the capital of France?")[:40])
    expected = model(input_ids=prompt[None]).logits[0]
    table = torch.tensor([5, 2, 7])  # deliberately out of order
    got = []
    for start, length in ((0, 25), (25, 15)):
        positions = torch.arange(start, start + length)
        slots = table[positions // 16] * 16 + positions % 16
        mask = None if start == 0 else torch.arange(start + length)[None, :] <= positions[:, None]
        span = PrefillSpan(0, length, table, start + length, mask)
        batch = AttentionBatch(
            prompt[start : start + length], positions, slots, torch.arange(length), prefills=[span]
        )
        got.append(forward.forward(batch, pool, chosen))
    assert torch.allclose(torch.cat(got), expected, atol=1e-3, rtol=1e-4)
    following = int(expected[-1].argmax())
    full = torch.cat([prompt, torch.tensor([following])])
    expected_next = model(input_ids=full[None]).logits[0, -1]
    position = torch.tensor([40])
    keys = torch.arange(48)[None, None, None, :] <= 40
    decode = AttentionBatch(
        torch.tensor([following]),
        position,
        table[position // 16] * 16 + 8,
        torch.arange(1),
        num_decode=1,
        decode_tables=table[None],
        decode_mask=keys,
        decode_lengths=torch.tensor([41]),
    )
    got_next = forward.forward(decode, pool, chosen)[0]
    assert torch.allclose(got_next, expected_next, atol=1e-3, rtol=1e-4)


def test_the_prefix_cache_serves_a_repeated_system_prompt_with_identical_output(
    loaded_model: LoadedModel,
) -> None:
    questions = ["What is the capital of France?", "Name a primary colour."]
    solo: dict[str, list[int]] = {}
    for question in questions:  # each on a fresh engine with an empty cache
        engine, out = make_engine(loaded_model), Collector()
        add(engine, loaded_model, 1, chat_prompt(loaded_model, question), out)
        run_until_idle(engine)
        solo[question] = out.tokens(1)
    engine, out = make_engine(loaded_model), Collector()
    seqs = []
    for seq_id, question in enumerate([*questions, *questions], start=1):
        seqs.append(add(engine, loaded_model, seq_id, chat_prompt(loaded_model, question), out))
        run_until_idle(engine)
    assert seqs[0].cached_tokens == 0
    assert seqs[1].cached_tokens >= 64  # the system prompt's full blocks
    # A repeated prompt finds every full block but the one holding its last token.
    assert seqs[2].cached_tokens == (seqs[2].prompt_len - 1) // 16 * 16
    assert seqs[3].cached_tokens == (seqs[3].prompt_len - 1) // 16 * 16
    for seq_id, question in enumerate([*questions, *questions], start=1):
        assert out.tokens(seq_id) == solo[question], question
    stats = engine.scheduler.blocks.stats
    assert 0 < stats.hits < stats.queries


def test_choices_of_one_prompt_share_its_prefill_and_sample_as_if_alone(
    loaded_model: LoadedModel,
) -> None:
    prompt = chat_prompt(loaded_model, "Name an animal.")
    choices = [SamplingParams(temperature=1.0, seed=seed) for seed in (77, 78, 79)]
    choices += [SamplingParams(), SamplingParams()]  # greedy twice
    alone = []
    for sampling in choices[:4]:
        engine, out = make_engine(loaded_model), Collector()
        add(engine, loaded_model, 1, prompt, out, sampling=sampling)
        run_until_idle(engine)
        alone.append(out.tokens(1))
    engine, out = make_engine(loaded_model), Collector()
    seqs = [
        add(engine, loaded_model, seq_id, prompt, out, sampling=sampling)
        for seq_id, sampling in enumerate(choices, start=1)
    ]
    run_until_idle(engine)
    # The first computes the prompt; the others find all of it but the block of its last token.
    assert [seq.cached_tokens for seq in seqs] == [0] + [(len(prompt) - 1) // 16 * 16] * 4
    together = [out.tokens(seq.seq_id) for seq in seqs]
    assert together[:4] == alone
    assert together[4] == together[3]
    assert len({tuple(tokens) for tokens in together[:3]}) > 1


def test_a_long_prompt_is_chunked_while_a_running_stream_gets_a_token_every_step(
    loaded_model: LoadedModel,
) -> None:
    engine, out = make_engine(loaded_model, max_prefill_tokens=32), Collector()
    short = chat_prompt(loaded_model, "Count from one to twenty.")
    runner = add(engine, loaded_model, 1, short, out, max_new_tokens=40, min_new_tokens=40)
    while runner.computed < len(short):
        engine.step()
    long_prompt = chat_prompt(loaded_model, "Summarise this. " + "The river runs. " * 40)
    assert len(long_prompt) > 4 * 32
    late = add(engine, loaded_model, 2, long_prompt, out, max_new_tokens=4)
    steps_while_prefilling = 0
    while late.computed < len(long_prompt):
        before = len(runner.output_token_ids)
        engine.step()
        assert len(runner.output_token_ids) == before + 1  # never stalled by the prefill
        steps_while_prefilling += 1
    assert steps_while_prefilling >= (len(long_prompt) - late.cached_tokens) // 32 >= 4
    run_until_idle(engine)
    alone, alone_out = make_engine(loaded_model), Collector()
    add(alone, loaded_model, 2, long_prompt, alone_out, max_new_tokens=4)
    run_until_idle(alone)
    assert out.tokens(2) == alone_out.tokens(2)


def test_the_padded_runner_and_both_kernels_give_the_same_greedy_text(
    loaded_model: LoadedModel,
) -> None:
    prompt = chat_prompt(loaded_model, "What is the capital of France?")
    texts = []
    for runner, kernels in (("paged", "native"), ("paged", "torch"), ("padded", "torch")):
        engine, out = make_engine(loaded_model, runner, kernels), Collector()
        add(engine, loaded_model, 1, prompt, out)
        run_until_idle(engine)
        texts.append(out.tokens(1))
        assert out.finished(1).output_tokens == len(out.tokens(1))
    assert texts[0] == texts[1] == texts[2]
    assert "Paris" in loaded_model.tokenizer.decode(texts[0])


def test_a_cancelled_sequence_returns_its_blocks_at_once(loaded_model: LoadedModel) -> None:
    engine, out = make_engine(loaded_model), Collector()
    blocks = engine.scheduler.blocks
    free_before = blocks.free_blocks
    seq = add(engine, loaded_model, 1, chat_prompt(loaded_model, "Hello"), out, max_new_tokens=64)
    engine.step()
    assert blocks.free_blocks < free_before
    engine.abort(seq.seq_id)
    assert blocks.free_blocks == free_before
    assert not engine.has_work
