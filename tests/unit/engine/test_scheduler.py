"""Admission is FIFO and bounded; expired queued requests are dropped before prefill."""

from __future__ import annotations

import pytest

from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.engine.scheduler import Scheduler
from seseragi.engine.sequence import Sequence, SequenceStatus
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import Request, SamplingParams, StoppingParams

pytestmark = pytest.mark.unit


class _NoDecoder:
    def decode(self, token_ids: object) -> str:
        return ""


def make_seq(seq_id: int, prompt_len: int = 4, deadline: float | None = None) -> Sequence:
    request = Request(
        f"r{seq_id}",
        tuple(range(prompt_len)),
        SamplingParams(),
        StoppingParams(8),
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
    scheduler = Scheduler(max_running=2, max_prefill_tokens=1000)
    for seq_id in (1, 2, 3):
        scheduler.add(make_seq(seq_id))
    plan = scheduler.schedule(now=1.0)
    assert [s.seq_id for s in plan.admitted] == [1, 2]
    assert [s.seq_id for s in scheduler.waiting] == [3]
    assert all(s.status is SequenceStatus.RUNNING for s in plan.admitted)


def test_prefill_budget_counts_padded_tokens_but_always_admits_one() -> None:
    scheduler = Scheduler(max_running=8, max_prefill_tokens=100)
    scheduler.add(make_seq(1, prompt_len=150))
    scheduler.add(make_seq(2, prompt_len=10))
    assert [s.seq_id for s in scheduler.schedule(now=1.0).admitted] == [1]
    assert [s.seq_id for s in scheduler.schedule(now=1.0).admitted] == [2]


def test_expired_waiting_requests_are_never_admitted() -> None:
    scheduler = Scheduler(max_running=4, max_prefill_tokens=1000)
    scheduler.add(make_seq(1, deadline=0.5))
    scheduler.add(make_seq(2, deadline=5.0))
    plan = scheduler.schedule(now=1.0)
    assert [s.seq_id for s in plan.expired] == [1]
    assert [s.seq_id for s in plan.admitted] == [2]


def test_remove_finds_waiting_and_running_sequences_once() -> None:
    scheduler = Scheduler(max_running=1, max_prefill_tokens=1000)
    scheduler.add(make_seq(1))
    scheduler.add(make_seq(2))
    scheduler.schedule(now=0.0)
    assert scheduler.remove(1) is not None
    assert scheduler.remove(2) is not None
    assert scheduler.remove(2) is None
    assert not scheduler.running and not scheduler.waiting


def test_running_requests_past_their_deadline_leave_the_batch() -> None:
    scheduler = Scheduler(max_running=4, max_prefill_tokens=1000)
    scheduler.add(make_seq(1, deadline=2.0))
    scheduler.schedule(now=1.0)
    plan = scheduler.schedule(now=3.0)
    assert [s.seq_id for s in plan.expired] == [1]
    assert not scheduler.running
