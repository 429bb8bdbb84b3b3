"""Sampling is row-wise: a row's choice never depends on its neighbours in the batch."""

from __future__ import annotations

import pytest
import torch

from seseragi.engine.sampling import (
    RowSampler,
    apply_min_p,
    apply_openai_adjustments,
    logits_to_probs,
    sample_rows,
)
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


def test_presence_and_frequency_penalties_follow_openai() -> None:
    """logit - presence * [count > 0] - frequency * count, over output tokens only."""
    row = sampler(SamplingParams(presence_penalty=0.5, frequency_penalty=0.25))
    for token in (1, 1, 3):
        row.record(token)
    logits = torch.zeros(4)
    apply_openai_adjustments(logits, row)
    assert logits.tolist() == [0.0, -1.0, 0.0, -0.75]


def test_penalties_steer_greedy_away_from_repeats() -> None:
    params = SamplingParams(frequency_penalty=2.0)
    row = sampler(params)
    logits = torch.tensor([[0.0, 3.0, 2.0]])
    picks = [sample_rows(logits, [row], eos_token_ids=())[0][0] for _ in range(3)]
    assert picks == [1, 2, 1]  # 1, then 2 beats 3-2=1, then 1 (3-2) beats 2-2=0


def test_logit_bias_bans_and_forces_tokens() -> None:
    logits = torch.tensor([[5.0, 1.0, 0.0]])
    banned = sampler(SamplingParams(logit_bias=((0, -100.0),)))
    assert sample_rows(logits, [banned], eos_token_ids=())[0][0] == 1
    forced = sampler(SamplingParams(temperature=1.0, seed=3, logit_bias=((2, 100.0),)))
    assert sample_rows(logits, [forced], eos_token_ids=())[0][0] == 2


def test_min_p_drops_tokens_below_the_fraction_of_the_top() -> None:
    probs = apply_min_p(torch.tensor([0.5, 0.3, 0.15, 0.05]), min_p=0.4)
    assert probs.nonzero().flatten().tolist() == [0, 1]
    assert torch.isclose(probs.sum(), torch.tensor(1.0))


def test_stop_token_ids_are_banned_until_min_new_tokens() -> None:
    row = RowSampler.create(
        SamplingParams(),
        (1,),
        min_new_tokens=1,
        logprobs=False,
        top_logprobs=0,
        device=CPU,
        stop_token_ids=(1,),
    )
    assert sample_rows(torch.tensor([[0.0, 9.0, 1.0]]), [row], eos_token_ids=(0,))[0][0] == 2


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=1.0, seed=7, presence_penalty=1.5, frequency_penalty=-0.5),
        SamplingParams(temperature=0.9, seed=7, min_p=0.05),
        SamplingParams(temperature=1.0, seed=7, logit_bias=((3, 5.0), (4, -100.0))),
    ],
)
def test_new_parameters_are_seeded_and_batch_invariant(params: SamplingParams) -> None:
    """The same seed repeats the same tokens, alone or beside other rows, over many steps."""
    torch.manual_seed(1)
    steps = [torch.randn(3, 40) for _ in range(12)]
    alone, again, beside = sampler(params), sampler(params), sampler(params)
    others = [sampler(SamplingParams(temperature=1.0, seed=99)), sampler(SamplingParams())]
    picked = {"alone": [], "again": [], "beside": []}  # type: dict[str, list[int]]
    for logits in steps:
        picked["alone"].append(sample_rows(logits[1:2], [alone], (0,))[0][0])
        picked["again"].append(sample_rows(logits[1:2], [again], (0,))[0][0])
        batch = sample_rows(logits, [others[0], beside, others[1]], (0,))
        picked["beside"].append(batch[1][0])
    assert picked["alone"] == picked["again"] == picked["beside"]
