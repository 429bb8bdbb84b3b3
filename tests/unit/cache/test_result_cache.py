"""The result-cache key: all that changes the output is in it; unrepeatable output has none."""

from __future__ import annotations

import dataclasses

import pytest

from seseragi.cache.result_cache import cache_key, decode_entry
from seseragi.engine.types import Request, SamplingParams, StoppingParams
from seseragi.model.loader import ModelInfo

pytestmark = pytest.mark.unit

INFO = ModelInfo("smollm2", "sha256:aaaa", "float32", "cpu", "none", 32, 8192, (2,), 2, 1.0)
GREEDY = Request("r1", (1, 2, 3), SamplingParams(temperature=0.0, seed=7), StoppingParams(16))


def key(
    request: Request = GREEDY, info: ModelInfo = INFO, *, seeded: bool = False, scope: str = "a"
) -> str | None:
    return cache_key(request, info, seeded=seeded, scope=scope)


def test_each_scope_has_its_own_key() -> None:
    assert key(scope="alice") != key(scope="bob")
    assert key(scope="") != key(scope="alice")
    assert key(scope="alice") == key(scope="alice")


def test_greedy_has_a_key_that_ignores_the_request_id_and_seed() -> None:
    other = dataclasses.replace(
        GREEDY, request_id="r2", sampling=dataclasses.replace(GREEDY.sampling, seed=8)
    )
    assert key() is not None
    assert key(other) == key()


def test_unseeded_sampling_has_no_key_and_seeded_sampling_has_one() -> None:
    sampled = dataclasses.replace(GREEDY, sampling=SamplingParams(temperature=0.7, seed=7))
    assert key(sampled, seeded=False) is None
    assert key(sampled, seeded=True) is not None
    reseeded = dataclasses.replace(sampled, sampling=SamplingParams(temperature=0.7, seed=9))
    assert key(reseeded, seeded=True) != key(sampled, seeded=True)


def test_a_soft_time_limit_makes_output_unrepeatable() -> None:
    limited = dataclasses.replace(GREEDY, stopping=StoppingParams(16, time_limit_s=1.0))
    assert key(limited) is None


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(GREEDY, prompt_token_ids=(1, 2, 4)),
        dataclasses.replace(GREEDY, stopping=StoppingParams(17)),
        dataclasses.replace(GREEDY, stopping=StoppingParams(16, min_new_tokens=2)),
        dataclasses.replace(GREEDY, stopping=StoppingParams(16, stop_sequences=("x",))),
        dataclasses.replace(
            GREEDY, stopping=StoppingParams(16, stop_sequences=("x",), include_stop_sequence=True)
        ),
        dataclasses.replace(GREEDY, sampling=SamplingParams(repetition_penalty=1.1)),
        dataclasses.replace(GREEDY, sampling=SamplingParams(top_k=5)),
        dataclasses.replace(GREEDY, logprobs=True),
        dataclasses.replace(GREEDY, logprobs=True, top_logprobs=3),
    ],
)
def test_every_output_parameter_changes_the_key(changed: Request) -> None:
    assert key(changed) != key()


@pytest.mark.parametrize(
    "info",
    [
        dataclasses.replace(INFO, revision="sha256:bbbb"),
        dataclasses.replace(INFO, model_id="other-model"),
        dataclasses.replace(INFO, quantization="int8"),
        dataclasses.replace(INFO, dtype="bfloat16"),
    ],
)
def test_another_model_never_shares_a_key(info: ModelInfo) -> None:
    assert key(info=info) != key()


def test_an_entry_that_does_not_parse_is_a_miss() -> None:
    assert decode_entry(b"\xff\xff\xff").response is None
    assert decode_entry(b"\xff\xff\xff").outcome == "miss"
