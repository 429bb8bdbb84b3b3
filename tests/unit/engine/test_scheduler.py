"""Admission is FIFO and bounded by slots and KV blocks; prompts are chunked within a token
budget next to running decodes; expired requests are dropped before prefill."""

from __future__ import annotations

import pytest

from seseragi.engine.block_manager import BlockManager
from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.engine.scheduler import Scheduler, SchedulerConfig
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
) -> Scheduler:
    config = SchedulerConfig(max_running, max_prefill_tokens, context_length=4096, mixed=mixed)
    return Scheduler(config, BlockManager(blocks, block_size, prefix_caching=False))


def make_seq(
    seq_id: int, prompt_len: int = 4, deadline: float | None = None, max_new_tokens: int = 8
) -> Sequence:
    request = Request(
        f"r{seq_id}",
        tuple(range(prompt_len)),
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
