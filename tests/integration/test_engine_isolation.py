"""One request's fault fails that request alone: its neighbours' greedy text equals a solo run.

The real model and runner; faults come from a prompt the model cannot embed, a detokenizer that
raises, and a runner whose next decode (or one row's sampling) is made to fail once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence as Seq

import pytest

from seseragi.engine.detokenizer import Decoder, IncrementalDetokenizer
from seseragi.engine.engine import Engine, EngineConfig
from seseragi.engine.errors import ModelFailure
from seseragi.engine.model_runner import ModelRunner, TokenOutput
from seseragi.engine.sampling import ROW_FAILED
from seseragi.engine.sequence import Sequence
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import Event, Failed, Finished, Request, SamplingParams, StoppingParams
from seseragi.model.loader import LoadedModel

pytestmark = pytest.mark.integration
QUESTIONS = ["What is the capital of France?", "Name three rivers in Japan.", "Count to ten."]


class FaultyRunner(ModelRunner):
    """The real runner, with one injected fault: a failing decode, or one row's failed sample."""

    fail_next_decode = False
    fail_row_of: int | None = None  # seq_id whose next sampled token becomes ROW_FAILED

    def decode(self) -> list[TokenOutput]:
        if self.fail_next_decode:
            self.fail_next_decode = False
            super().decode()  # the real step runs and leaves its state half-advanced, then:
            raise RuntimeError("injected: the device failed mid-step")
        outputs = super().decode()
        if self.fail_row_of is None:
            return outputs
        failing, self.fail_row_of = self.fail_row_of, None
        return [
            TokenOutput(o.seq_id, ROW_FAILED, None) if o.seq_id == failing else o for o in outputs
        ]


class BrokenDecoder:
    def decode(self, token_ids: Seq[int]) -> str:
        raise UnicodeError("injected: the detokenizer failed")


class Run:
    def __init__(self, loaded: LoadedModel) -> None:
        info = loaded.info
        self.loaded = loaded
        self.runner = FaultyRunner(loaded.model, info.eos_token_ids, info.pad_token_id)
        config = EngineConfig(8, 8, 4096, info.context_length, info.eos_token_ids)
        self.engine = Engine(self.runner, config)
        self.events: dict[int, list[Event]] = {}

    def add(self, seq_id: int, token_ids: tuple[int, ...], decoder: Decoder | None = None) -> None:
        request = Request(str(seq_id), token_ids, SamplingParams(), StoppingParams(40))
        self.events[seq_id] = []
        self.engine.add(
            Sequence(
                seq_id,
                request,
                IncrementalDetokenizer(decoder or self.loaded.tokenizer, token_ids),
                StopSequenceMatcher((), include_stop_sequence=False),
                self.events[seq_id].append,
                time.monotonic(),
            )
        )

    def until_done(self) -> None:
        for _ in range(200):
            if not self.engine.has_work:
                return
            self.engine.step()
        raise AssertionError("the engine did not finish")

    def text(self, seq_id: int) -> str:
        events = self.events[seq_id]
        assert isinstance(events[-1], Finished), events[-1]
        return "".join(getattr(e, "text", "") for e in events)

    def failure(self, seq_id: int) -> Exception:
        last = self.events[seq_id][-1]
        assert isinstance(last, Failed)
        return last.error


@pytest.fixture(scope="module")
def prompts(loaded_model: LoadedModel) -> list[tuple[int, ...]]:
    encode = loaded_model.tokenizer.encode_chat
    return [tuple(encode([("user", q)])[1]) for q in QUESTIONS]


@pytest.fixture(scope="module")
def solo(loaded_model: LoadedModel, prompts: list[tuple[int, ...]]) -> list[str]:
    texts = []
    for prompt in prompts:
        run = Run(loaded_model)
        run.add(1, prompt)
        run.until_done()
        texts.append(run.text(1))
    return texts


def test_a_prompt_the_model_cannot_run_fails_alone(
    loaded_model: LoadedModel, prompts: list[tuple[int, ...]], solo: list[str]
) -> None:
    run = Run(loaded_model)
    run.add(1, prompts[0])
    run.add(2, (1, 2, loaded_model.model.config.vocab_size + 7))  # no such embedding row
    run.add(3, prompts[1])
    run.until_done()
    assert [run.text(1), run.text(3)] == solo[:2]
    error = run.failure(2)
    assert isinstance(error, ModelFailure) and "request 2:" in str(error)


def test_a_failed_decode_is_replayed_and_changes_no_text(
    loaded_model: LoadedModel, prompts: list[tuple[int, ...]], solo: list[str]
) -> None:
    run = Run(loaded_model)
    for seq_id, prompt in enumerate(prompts, start=1):
        run.add(seq_id, prompt)
    for _ in range(5):
        run.engine.step()
    run.runner.fail_next_decode = True
    run.until_done()
    assert [run.text(i) for i in (1, 2, 3)] == solo


def test_a_row_that_cannot_be_sampled_or_detokenized_fails_alone(
    loaded_model: LoadedModel, prompts: list[tuple[int, ...]], solo: list[str]
) -> None:
    run = Run(loaded_model)
    run.add(1, prompts[0])
    run.add(2, prompts[1])
    run.add(3, prompts[2], decoder=BrokenDecoder())
    run.engine.step()  # prefill: the broken detokenizer fails row 3 on its first token
    run.runner.fail_row_of = 2
    run.until_done()
    assert run.text(1) == solo[0]
    assert "sampling" in str(run.failure(2)) and "request 2:" in str(run.failure(2))
    assert "text" in str(run.failure(3))
    assert run.runner.size == 0
