"""Admission is FIFO and bounded by slots and KV blocks; prompts are chunked within a token
budget next to running decodes; expired requests are dropped before prefill; a prompt whose
leading blocks another prompt is computing waits for them instead of computing them again."""

from __future__ import annotations

import pytest

from seseragi.engine.block_manager import BlockManager
from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.engine.scheduler import Scheduler, SchedulerConfig, SchedulerPlan
from seseragi.engine.sequence import Sequence, SequenceStatus
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import Request, SamplingParams, StoppingParams

pytestmark = pytest.mark.unit


class _NoDecoder:
    def decode(self, token_ids: object) -> str:
        return ""


def make_scheduler(
    max_running: int,
    max_prefill_tokens: int,
    *,
    mixed: bool = False,
    blocks: int = 1000,
    block_size: int = 4,
    prefix_caching: bool = False,
) -> Scheduler:
    config = SchedulerConfig(max_running, max_prefill_tokens, context_length=4096, mixed=mixed)
    return Scheduler(config, BlockManager(blocks, block_size, prefix_caching=prefix_caching))


def make_seq(
    seq_id: int,
    prompt_len: int = 4,
    deadline: float | None = None,
    max_new_tokens: int = 8,
    first_token: int = 0,
) -> Sequence:
    request = Request(
        f"r{seq_id}",
        tuple(range(first_token, first_token + prompt_len)),
        SamplingParams(),
        StoppingParams(max_new_tokens),
        deadline=deadline,
    )
    return Sequence(
        seq_id=seq_id,
        request=request,
        detokenizer=IncrementalDetokenizer(_NoDecoder(), request.prompt_token_ids),
        stop_matcher=StopSequenceMatcher((), include_stop_sequence=False),
        sink=lambda event: None,
        arrival_time=0.0,
    )


def test_admits_in_arrival_order_up_to_max_running() -> None:
    scheduler = make_scheduler(2, 1000)
    for seq_id in (1, 2, 3):
        scheduler.add(make_seq(seq_id))
    plan = scheduler.schedule(now=1.0)
    assert [s.seq_id for s in plan.admitted] == [1, 2]
    assert [s.seq_id for s in scheduler.waiting] == [3]
    assert all(s.status is SequenceStatus.RUNNING for s in plan.admitted)


def test_prefill_budget_counts_padded_tokens_but_always_admits_one() -> None:
    scheduler = make_scheduler(8, 100)
    scheduler.add(make_seq(1, prompt_len=150))
    scheduler.add(make_seq(2, prompt_len=10))
    assert [s.seq_id for s in scheduler.schedule(now=1.0).admitted] == [1]
    assert [s.seq_id for s in scheduler.schedule(now=1.0).admitted] == [2]


def test_expired_waiting_requests_are_never_admitted() -> None:
    scheduler = make_scheduler(4, 1000)
    scheduler.add(make_seq(1, deadline=0.5))
    scheduler.add(make_seq(2, deadline=5.0))
    plan = scheduler.schedule(now=1.0)
    assert [s.seq_id for s in plan.expired] == [1]
    assert [s.seq_id for s in plan.admitted] == [2]


def test_remove_finds_waiting_and_running_sequences_once() -> None:
    scheduler = make_scheduler(1, 1000)
    scheduler.add(make_seq(1))
    scheduler.add(make_seq(2))
    scheduler.schedule(now=0.0)
    assert scheduler.remove(1) is not None
    assert scheduler.remove(2) is not None
    assert scheduler.remove(2) is None
    assert not scheduler.running and not scheduler.waiting


def test_running_requests_past_their_deadline_leave_the_batch() -> None:
    scheduler = make_scheduler(4, 1000)
    scheduler.add(make_seq(1, deadline=2.0))
    scheduler.schedule(now=1.0)
    plan = scheduler.schedule(now=3.0)
    assert [s.seq_id for s in plan.expired] == [1]
    assert not scheduler.running


def test_mixed_steps_decode_running_rows_and_chunk_new_prompts_within_the_budget() -> None:
    scheduler = make_scheduler(4, 6, mixed=True)
    scheduler.add(make_seq(1, prompt_len=3))
    first = scheduler.schedule(now=0.0)
    assert [(c.seq.seq_id, c.start, c.length) for c in first.prefill] == [(1, 0, 3)]
    scheduler.advance(first)
    scheduler.running[1].output_token_ids.append(7)  # the token the step sampled
    scheduler.add(make_seq(2, prompt_len=10))
    second = scheduler.schedule(now=0.0)
    assert [s.seq_id for s in second.decode] == [1]
    assert [(c.seq.seq_id, c.start, c.length) for c in second.prefill] == [(2, 0, 6)]
    assert not second.prefill[0].completes
    scheduler.advance(second)
    scheduler.running[1].output_token_ids.append(8)
    third = scheduler.schedule(now=0.0)
    assert [s.seq_id for s in third.decode] == [1]
    assert [(c.seq.seq_id, c.start, c.length) for c in third.prefill] == [(2, 6, 4)]
    assert third.prefill[0].completes


def test_prompts_get_the_smaller_budget_only_while_other_sequences_decode() -> None:
    config = SchedulerConfig(
        4, 8, context_length=4096, mixed=True, max_prefill_tokens_while_decoding=3
    )
    scheduler = Scheduler(config, BlockManager(1000, 4, prefix_caching=False))
    scheduler.add(make_seq(1, prompt_len=20))
    first = scheduler.schedule(now=0.0)
    assert chunks(first) == [(1, 0, 8)]  # nothing decodes yet: the whole budget
    scheduler.advance(first)
    scheduler.add(make_seq(2, prompt_len=2))
    second = scheduler.schedule(now=0.0)
    assert chunks(second) == [(1, 8, 8)]  # still nothing decodes: all of the budget is 1's
    scheduler.advance(second)
    third = scheduler.schedule(now=0.0)
    assert chunks(third) == [(1, 16, 4), (2, 0, 2)]
    scheduler.advance(third)
    scheduler.running[1].output_token_ids.append(7)
    scheduler.running[2].output_token_ids.append(7)
    scheduler.add(make_seq(3, prompt_len=10))
    fourth = scheduler.schedule(now=0.0)
    assert [s.seq_id for s in fourth.decode] == [1, 2]
    assert chunks(fourth) == [(3, 0, 3)]  # 1 and 2 decode: the smaller budget


def test_admission_waits_for_kv_blocks_of_the_whole_sequence_and_frees_them_on_removal() -> None:
    scheduler = make_scheduler(8, 100, mixed=True, blocks=5, block_size=4)
    scheduler.add(make_seq(1, prompt_len=8, max_new_tokens=8))  # 16 tokens: 4 blocks
    scheduler.add(make_seq(2, prompt_len=4, max_new_tokens=4))  # 2 blocks: only 1 left
    plan = scheduler.schedule(now=0.0)
    assert [s.seq_id for s in plan.admitted] == [1]
    assert scheduler.blocks.free_blocks == 1
    scheduler.remove(1)
    assert scheduler.blocks.free_blocks == 5
    assert [s.seq_id for s in scheduler.schedule(now=0.0).admitted] == [2]


def chunks(plan: SchedulerPlan) -> list[tuple[int, int, int]]:
    return [(c.seq.seq_id, c.start, c.length) for c in plan.prefill]


def test_choices_of_one_prompt_prefill_it_once_and_compute_only_their_last_block() -> None:
    scheduler = make_scheduler(8, 100, mixed=True, prefix_caching=True)
    for seq_id in (1, 2, 3):
        scheduler.add(make_seq(seq_id, prompt_len=10))
    first = scheduler.schedule(now=0.0)
    assert chunks(first) == [(1, 0, 10)]  # 2 and 3 wait for its blocks
    assert [s.seq_id for s in scheduler.waiting] == [2, 3]
    scheduler.advance(first)
    scheduler.running[1].output_token_ids.append(7)
    second = scheduler.schedule(now=0.0)
    # Two full blocks are shared; the block with the last prompt token is each choice's own.
    assert [s.seq_id for s in second.decode] == [1]
    assert chunks(second) == [(2, 8, 2), (3, 8, 2)]
    assert scheduler.running[2].block_table[:2] == scheduler.running[1].block_table[:2]
    assert scheduler.running[2].block_table[2] != scheduler.running[1].block_table[2]


def test_a_shared_prefix_is_awaited_only_until_its_blocks_are_computed() -> None:
    scheduler = make_scheduler(8, 4, mixed=True, prefix_caching=True)
    scheduler.add(make_seq(1, prompt_len=10))
    scheduler.add(make_seq(2, prompt_len=10))
    plans = []
    for _ in range(3):
        plans.append(scheduler.schedule(now=0.0))
        scheduler.advance(plans[-1])
    assert [chunks(plan) for plan in plans] == [
        [(1, 0, 4)],
        [(1, 4, 4)],
        [(1, 8, 2), (2, 8, 2)],  # admitted as soon as the 8 shared tokens were computed
    ]
    assert scheduler.running[2].cached_tokens == 8


def test_other_prompts_and_a_disabled_prefix_cache_are_admitted_at_once() -> None:
    different = make_scheduler(8, 100, mixed=True, prefix_caching=True)
    different.add(make_seq(1, prompt_len=10))
    different.add(make_seq(2, prompt_len=10, first_token=50))
    assert chunks(different.schedule(now=0.0)) == [(1, 0, 10), (2, 0, 10)]
    uncached = make_scheduler(8, 100, mixed=True, prefix_caching=False)
    uncached.add(make_seq(1, prompt_len=10))
    uncached.add(make_seq(2, prompt_len=10))
    assert chunks(uncached.schedule(now=0.0)) == [(1, 0, 10), (2, 0, 10)]
