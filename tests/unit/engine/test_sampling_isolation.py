"""No accepted sampling value makes the sampler raise or pick a non-token, and a row that still
fails takes no neighbour with it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seseragi.api.convert.requests import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MIN_REPETITION_PENALTY,
    as_float32,
)
from seseragi.engine.sampling import ROW_FAILED, RowSampler, logits_to_probs, sample_rows
from seseragi.engine.types import SamplingParams

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")
VOCAB = 64

accepted_params = st.builds(
    SamplingParams,
    temperature=st.floats(0.0, MAX_TEMPERATURE, allow_subnormal=True, width=32),
    top_p=st.floats(0.0, 1.0, exclude_min=True, allow_subnormal=True, width=32),
    top_k=st.integers(0, 2**31 - 1),
    repetition_penalty=st.floats(
        as_float32(MIN_REPETITION_PENALTY), MAX_REPETITION_PENALTY, width=32
    ),
    seed=st.integers(0, 2**64 - 1),
)
# Logits as a misbehaving model might give them: huge, tiny, infinite, NaN.
logit_values = st.one_of(
    st.floats(width=32),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 0.0, 3.4e38, -3.4e38]),
)


def row(params: SamplingParams, prompt: tuple[int, ...], min_new_tokens: int = 0) -> RowSampler:
    return RowSampler.create(
        params, prompt, min_new_tokens=min_new_tokens, logprobs=True, top_logprobs=3, device=CPU
    )


@settings(max_examples=300, deadline=None)
@given(
    params=st.lists(accepted_params, min_size=1, max_size=4),
    values=st.lists(logit_values, min_size=VOCAB, max_size=VOCAB),
    min_new_tokens=st.integers(0, 2),
)
def test_any_accepted_parameters_give_a_real_token(
    params: list[SamplingParams], values: list[float], min_new_tokens: int
) -> None:
    logits = torch.tensor([values] * len(params), dtype=torch.float32)
    rows = [row(p, (1, 2, 3), min_new_tokens) for p in params]
    finite_somewhere = any(v == v and v != float("-inf") for v in values)
    for token, logprob in sample_rows(logits, rows, eos_token_ids=(0,)):
        if not finite_somewhere:
            assert token == ROW_FAILED  # nothing to pick from: the row fails, nothing raises
            continue
        assert 0 <= token < VOCAB
        assert logprob is not None and logprob.logprob == logprob.logprob  # never NaN


@settings(max_examples=300, deadline=None)
@given(
    params=accepted_params, values=st.lists(st.floats(-50, 50, width=32), min_size=8, max_size=8)
)
def test_probabilities_are_finite_for_real_logits(
    params: SamplingParams, values: list[float]
) -> None:
    if params.greedy:
        return
    probs = logits_to_probs(torch.tensor(values), params.temperature, params.top_k, params.top_p)
    assert torch.isfinite(probs).all()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-4)


def test_a_subnormal_temperature_is_greedy() -> None:
    params = SamplingParams(temperature=1e-40, seed=1)
    assert params.greedy
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert sample_rows(logits, [row(params, (0,))], (9,))[0][0] == 1


def test_a_row_that_raises_fails_alone() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, VOCAB)
    sampled = SamplingParams(temperature=0.8, top_p=0.9, seed=7, repetition_penalty=1.2)
    # A seen token outside the vocabulary makes the repetition penalty's gather raise.
    broken = row(SamplingParams(repetition_penalty=1.3), (VOCAB + 5,))
    alone = [
        sample_rows(logits[0:1], [row(SamplingParams(), (1,))], (0,))[0][0],
        sample_rows(logits[2:3], [row(sampled, (1,))], (0,))[0][0],
    ]
    together = sample_rows(logits, [row(SamplingParams(), (1,)), broken, row(sampled, (1,))], (0,))
    assert [token for token, _ in together] == [alone[0], ROW_FAILED, alone[1]]


def test_a_row_of_nan_logits_fails_alone() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [float("nan")] * 3])
    picks = sample_rows(logits, [row(SamplingParams(), (0,)), row(SamplingParams(), (0,))], (9,))
    assert [token for token, _ in picks] == [1, ROW_FAILED]


def test_a_row_left_with_nothing_takes_the_models_own_choice() -> None:
    # Only end-of-sequence (token 0) is finite, and min_new_tokens forbids it: rather than an
    # arbitrary -inf token, greedy and sampled rows alike take the model's choice.
    logits = torch.tensor([[5.0, float("-inf"), float("-inf")]] * 2)
    rows = [row(SamplingParams(), (2,), 1), row(SamplingParams(temperature=1.0, seed=3), (2,), 1)]
    assert [token for token, _ in sample_rows(logits, rows, eos_token_ids=(0,))] == [0, 0]
