"""Which tokens the next step computes: pure bookkeeping over the waiting queue and running set.

Running sequences that need one token (decode) always get it; prompts get a token budget per
step, spent in chunks, oldest first, so a long or new prompt is prefilled a
piece at a time inside the same steps as running decodes instead of stalling them. A waiting
request is admitted (FIFO) when a running slot and KV blocks for its whole length are free, and
no running prompt is still computing blocks it begins with: the n choices of one request prefill
their prompt once and share its blocks through the prefix cache.

With `mixed=False` (a runner that cannot mix, see `padded_runner`) a step is either whole
prompts or decodes, as before chunking existed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from seseragi.engine.block_manager import BlockManager
from seseragi.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True, slots=True)
class Chunk:
    """Tokens [start, start + length) of `seq` computed this step."""

    seq: Sequence
    start: int
    length: int

    @property
    def completes(self) -> bool:
        """The chunk ends at the newest known token, so its last row samples the next one."""
        return self.start + self.length == self.seq.total_len


@dataclass(slots=True)
class SchedulerPlan:
    """One step: `decode` rows (one token each), prompt `prefill` chunks, and `expired` ones."""

    decode: list[Sequence] = field(default_factory=list)
    prefill: list[Chunk] = field(default_factory=list)
    expired: list[Sequence] = field(default_factory=list)
    admitted: list[Sequence] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.decode and not self.prefill

    @property
    def sequences(self) -> list[Sequence]:
        return [*self.decode, *(chunk.seq for chunk in self.prefill)]

    def part_of(self, seq: Sequence) -> SchedulerPlan:
        """`seq`'s share of this step as a step of its own (empty when it had none)."""
        return SchedulerPlan(
            decode=[s for s in self.decode if s is seq],
            prefill=[chunk for chunk in self.prefill if chunk.seq is seq],
        )


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_running: int
    max_prefill_tokens: int  # prompt tokens one step may compute
    context_length: int
    mixed: bool = True
    # A step's time grows with its prompt tokens; while sequences decode, a smaller budget keeps
    # their next token from waiting on a whole burst of arriving prompts (0: the same budget).
    max_prefill_tokens_while_decoding: int = 0


class Scheduler:
    def __init__(self, config: SchedulerConfig, blocks: BlockManager) -> None:
        self.config = config
        self.blocks = blocks
        self.waiting: deque[Sequence] = deque()
        self.running: dict[int, Sequence] = {}

    @property
    def max_running(self) -> int:
        return self.config.max_running

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def schedule(self, now: float) -> SchedulerPlan:
        plan = SchedulerPlan()
        self._drop_expired(now, plan)
        if self.config.mixed:
            self._schedule_mixed(now, plan)
        else:
            self._schedule_alternating(now, plan)
        return plan

    def advance(self, plan: SchedulerPlan) -> None:
        """Record what the step computed and key the blocks it filled."""
        for seq in plan.decode:
            seq.computed += 1
        for chunk in plan.prefill:
            chunk.seq.computed += chunk.length
        for seq in plan.sequences:
            if seq.computed // self.blocks.block_size > seq.registered_blocks:
                seq.registered_blocks = self.blocks.register(
                    seq.block_table, seq.token_ids(), seq.computed, seq.registered_blocks
                )

    def remove(self, seq_id: int) -> Sequence | None:
        """Forget a sequence wherever it is and free its blocks; None when it was already gone."""
        seq = self.running.pop(seq_id, None)
        if seq is None:
            for candidate in self.waiting:
                if candidate.seq_id == seq_id:
                    self.waiting.remove(candidate)
                    seq = candidate
                    break
        if seq is not None:
            seq.status = SequenceStatus.FINISHED
            self.blocks.free(seq.block_table)
            seq.block_table = []
        return seq

    def _schedule_mixed(self, now: float, plan: SchedulerPlan) -> None:
        plan.decode = [seq for seq in self.running.values() if seq.uncomputed == 1]
        budget = self._prefill_budget(decoding=bool(plan.decode))
        for seq in self.running.values():
            if budget <= 0:
                return
            if seq.uncomputed > 1:
                budget -= self._add_chunk(seq, budget, plan)
        while budget > 0 and self._admit_next(now, plan):
            seq = plan.admitted[-1]
            if seq.uncomputed == 1:
                plan.decode.append(seq)
            else:
                budget -= self._add_chunk(seq, budget, plan)

    def _schedule_alternating(self, now: float, plan: SchedulerPlan) -> None:
        """Whole prompts of newly admitted sequences, or else one decode of every running one."""
        padded_width = 0
        while self.waiting and len(self.running) < self.config.max_running:
            width = max(padded_width, self.waiting[0].prompt_len)
            # A padded prefill costs rows x widest prompt; always admit at least one.
            if plan.admitted and width * (len(plan.admitted) + 1) > self.config.max_prefill_tokens:
                break
            if not self._admit_next(now, plan):
                break
            padded_width = width
        if plan.admitted:
            plan.prefill = [Chunk(seq, 0, seq.prompt_len) for seq in plan.admitted]
        else:
            plan.decode = list(self.running.values())

    def _prefill_budget(self, *, decoding: bool) -> int:
        config = self.config
        if decoding and config.max_prefill_tokens_while_decoding:
            return min(config.max_prefill_tokens, config.max_prefill_tokens_while_decoding)
        return config.max_prefill_tokens

    def _add_chunk(self, seq: Sequence, budget: int, plan: SchedulerPlan) -> int:
        length = min(seq.uncomputed, budget)
        plan.prefill.append(Chunk(seq, seq.computed, length))
        return length

    def _admit_next(self, now: float, plan: SchedulerPlan) -> bool:
        """Move the oldest waiting sequence into the running set if a slot and blocks allow."""
        if not self.waiting or len(self.running) >= self.config.max_running:
            return False
        seq = self.waiting[0]
        if self._awaits_shared_prefill(seq):
            return False
        prompt = seq.request.prompt_token_ids
        total = min(seq.prompt_len + seq.request.stopping.max_new_tokens, self._context_cap())
        if not self.blocks.can_allocate(prompt, total):
            return False
        allocation = self.blocks.allocate(prompt, total)
        self.waiting.popleft()
        seq.block_table = allocation.table
        seq.computed = seq.cached_tokens = allocation.cached_tokens
        seq.registered_blocks = allocation.cached_tokens // self.blocks.block_size
        seq.status = SequenceStatus.RUNNING
        seq.scheduled_time = now
        self.running[seq.seq_id] = seq
        plan.admitted.append(seq)
        return True

    def _awaits_shared_prefill(self, seq: Sequence) -> bool:
        """Whether a running prompt is still computing full blocks `seq`'s prompt begins with.

        Admitted now, `seq` would compute them a second time; once computed they are in the
        prefix cache and `seq` takes them (vLLM v1 also runs n choices as n requests over its
        prefix cache). The wait ends when that prompt's chunks pass the shared blocks.
        """
        blocks = self.blocks
        if not blocks.prefix_caching:
            return False
        prompt = seq.request.prompt_token_ids
        for other in self.running.values():
            if other.computed >= other.prompt_len:
                continue  # its prompt's full blocks are registered already
            shared = blocks.shared_blocks(prompt, other.request.prompt_token_ids)
            if other.computed < shared * blocks.block_size:
                return True
        return False

    def _context_cap(self) -> int:
        return self.config.context_length

    def _drop_expired(self, now: float, plan: SchedulerPlan) -> None:
        """Requests past their deadline leave at once: queued ones are never prefilled."""
        for seq in [*self.waiting, *self.running.values()]:
            if seq.request.deadline is not None and seq.request.deadline <= now:
                self.remove(seq.seq_id)
                plan.expired.append(seq)
