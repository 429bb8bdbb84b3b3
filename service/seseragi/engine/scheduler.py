"""Which sequences run next: pure bookkeeping over the waiting queue and the running set."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from seseragi.engine.sequence import Sequence, SequenceStatus


@dataclass(slots=True)
class SchedulerPlan:
    """What one step does: prefill `admitted`, fail `expired`, else decode the running set."""

    admitted: list[Sequence] = field(default_factory=list)
    expired: list[Sequence] = field(default_factory=list)


class Scheduler:
    def __init__(self, max_running: int, max_prefill_tokens: int) -> None:
        self.max_running = max_running
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: dict[int, Sequence] = {}

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def schedule(self, now: float) -> SchedulerPlan:
        """Admit waiting sequences (FIFO) while slots and the prefill token budget allow."""
        plan = SchedulerPlan()
        self._drop_expired(now, plan)
        padded_width = 0
        while self.waiting and len(self.running) < self.max_running:
            seq = self.waiting[0]
            width = max(padded_width, seq.prompt_len)
            # A padded prefill costs rows x widest prompt; always admit at least one.
            if plan.admitted and width * (len(plan.admitted) + 1) > self.max_prefill_tokens:
                break
            padded_width = width
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            seq.scheduled_time = now
            self.running[seq.seq_id] = seq
            plan.admitted.append(seq)
        return plan

    def remove(self, seq_id: int) -> Sequence | None:
        """Forget a sequence wherever it is; returns it, or None when it was already gone."""
        seq = self.running.pop(seq_id, None)
        if seq is None:
            for candidate in self.waiting:
                if candidate.seq_id == seq_id:
                    self.waiting.remove(candidate)
                    seq = candidate
                    break
        if seq is not None:
            seq.status = SequenceStatus.FINISHED
        return seq

    def _drop_expired(self, now: float, plan: SchedulerPlan) -> None:
        """Requests past their deadline leave at once: queued ones are never prefilled."""
        for seq in [*self.waiting, *self.running.values()]:
            if seq.request.deadline is not None and seq.request.deadline <= now:
                self.remove(seq.seq_id)
                plan.expired.append(seq)
