"""Sampling is row-wise: a row's choice never depends on its neighbours in the batch."""

from __future__ import annotations

import pytest
import torch

from seseragi.engine.sampling import RowSampler, logits_to_probs, sample_rows
from seseragi.engine.types import SamplingParams

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")


def sampler(params: SamplingParams, min_new_tokens: int = 0, logprobs: bool = False) -> RowSampler:
    return RowSampler.create(
        params, (1, 2), min_new_tokens=min_new_tokens, logprobs=logprobs, top_logprobs=2, device=CPU
    )


def test_top_k_keeps_only_k_tokens() -> None:
    probs = logits_to_probs(torch.tensor([1.0, 3.0, 2.0, 0.0]), temperature=1.0, top_k=2, top_p=1.0)
    assert probs[0] == 0 and probs[3] == 0
    assert torch.isclose(probs.sum(), torch.tensor(1.0))


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = logits_to_probs(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 1.0, 0, top_p=0.7)
    assert probs.nonzero().flatten().tolist() == [0, 1]


def test_seeded_row_is_independent_of_batch_neighbours() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=42)
    alone = [sample_rows(logits[1:2], [sampler(params)], (0,))[0][0]]
    batched = sample_rows(
        logits, [sampler(SamplingParams()), sampler(params), sampler(params)], (0,)
    )
    assert batched[1][0] == alone[0]


def test_min_new_tokens_forbids_end_of_sequence() -> None:
    logits = torch.tensor([[10.0, 0.0, 1.0]])
    token, _ = sample_rows(
        logits, [sampler(SamplingParams(), min_new_tokens=1)], eos_token_ids=(0,)
    )[0]
    assert token == 2


def test_logprobs_come_from_the_raw_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    token, logprob = sample_rows(logits, [sampler(SamplingParams(), logprobs=True)], (9,))[0]
    assert token == 0 and logprob is not None
    expected = torch.log_softmax(logits[0], -1)
    assert logprob.logprob == pytest.approx(float(expected[0]))
    assert [tid for tid, _ in logprob.top] == [0, 1]


def test_repetition_penalty_discourages_seen_tokens() -> None:
    logits = torch.tensor([[0.0, 2.0, 0.0, 1.9]])  # tokens 1 and 2 are in the prompt (seen)
    token, _ = sample_rows(logits, [sampler(SamplingParams(repetition_penalty=1.5))], (9,))[0]
    assert token == 3
