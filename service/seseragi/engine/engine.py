"""The synchronous engine: each `step()` is schedule -> run the model -> postprocess.

It is driven by one thread (see `async_engine`); nothing here is thread-safe on its own.
A fault fails only the request it belongs to: a row the sampler could not sample, or whose
detokenizer or stop matcher raised, fails alone; a failed forward pass is replayed once per
sequence, alone, so only a sequence that fails by itself is failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from seseragi.engine.block_manager import BlockManager
from seseragi.engine.errors import DeadlineExpired, ModelFailure
from seseragi.engine.model_runner import TokenOutput
from seseragi.engine.observer import EngineObserver, NullObserver
from seseragi.engine.output_processor import OutputProcessor
from seseragi.engine.sampling import ROW_FAILED
from seseragi.engine.scheduler import Scheduler, SchedulerConfig, SchedulerPlan
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Failed, Finished

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_running: int
    max_waiting: int
    max_prefill_tokens: int  # prompt tokens one step may compute
    context_length: int
    eos_token_ids: tuple[int, ...]
    kv_cache_blocks: int = 0  # 0: enough for every running slot at full context (no paging)
    block_size: int = 16
    prefix_caching: bool = False
    mixed_batches: bool = False  # decode rows and prompt chunks in one step (paged runner)
    max_prefill_tokens_while_decoding: int = 0  # 0: max_prefill_tokens


class StepRunner(Protocol):
    """What the engine needs of a model runner (`PagedModelRunner` or the padded one)."""

    @property
    def cache_tokens(self) -> int: ...

    def run(self, plan: SchedulerPlan) -> list[TokenOutput]: ...

    @property
    def replays_whole_batch(self) -> bool:
        """After a failed step: True when every running sequence must be replayed."""

    def replay(self, seq: Sequence, part: SchedulerPlan) -> list[TokenOutput]:
        """Run `seq` alone after a failed step; `part` is its share of that step."""

    def release(self, seq_ids: set[int]) -> None: ...

    def reset(self) -> None: ...


def new_block_manager(config: EngineConfig) -> BlockManager:
    blocks = config.kv_cache_blocks or config.max_running * -(
        -config.context_length // config.block_size
    )
    return BlockManager(blocks, config.block_size, prefix_caching=config.prefix_caching)


class Engine:
    def __init__(
        self,
        runner: StepRunner,
        config: EngineConfig,
        clock: Callable[[], float] = time.monotonic,
        observer: EngineObserver | None = None,
        blocks: BlockManager | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        scheduler_config = SchedulerConfig(
            max_running=config.max_running,
            max_prefill_tokens=config.max_prefill_tokens,
            max_prefill_tokens_while_decoding=config.max_prefill_tokens_while_decoding,
            context_length=config.context_length,
            mixed=config.mixed_batches,
        )
        self.scheduler = Scheduler(scheduler_config, blocks or new_block_manager(config))
        self._outputs = OutputProcessor(config.eos_token_ids, config.context_length)
        self._clock = clock
        self.observer: EngineObserver = observer or NullObserver()
        self.steps = 0  # forward passes run so far; lets tests count steps

    @property
    def has_work(self) -> bool:
        return bool(self.scheduler.waiting or self.scheduler.running)

    def add(self, seq: Sequence) -> None:
        self.scheduler.add(seq)

    def abort(self, seq_id: int) -> None:
        """Drop a sequence wherever it is (queued or in the batch) and free its cache rows now."""
        seq = self.scheduler.remove(seq_id)
        if seq is not None:
            self.runner.release({seq_id})
            self.observer.cancelled(seq)

    def step(self) -> None:
        plan = self.scheduler.schedule(self._clock())
        for seq in plan.expired:
            where = "in the queue" if seq.scheduled_time is None else "while generating"
            waited = self._clock() - seq.arrival_time
            self._fail(seq, DeadlineExpired(f"deadline passed after {waited:.3f}s {where}"))
        self.runner.release({seq.seq_id for seq in plan.expired})
        if plan.empty:
            return
        started = self._clock()
        try:
            outputs = self.runner.run(plan)
        except Exception:  # noqa: BLE001 - one bad batch must not take the server down
            log.exception("forward pass over %d sequences failed", len(plan.sequences))
            outputs = self._replay_each_alone(plan)
        else:
            self._report_step(plan, self._clock() - started)
        self.scheduler.advance(plan)
        self.steps += 1
        self._postprocess(outputs)

    @property
    def cache_tokens(self) -> int:
        return self.runner.cache_tokens

    def _report_step(self, plan: SchedulerPlan, seconds: float) -> None:
        """Decode rows and prompts that finished prefilling, as the observer counts them."""
        if plan.decode:
            self.observer.forward_done("decode", plan.decode, seconds)
        prefilled = [chunk.seq for chunk in plan.prefill if chunk.completes]
        if prefilled:
            self.observer.forward_done("prefill", prefilled, seconds)

    def fail_all(self, error: Exception) -> None:
        """Fail every queued and running sequence (shutdown or a dead model)."""
        for seq in list(self.scheduler.waiting):
            self.scheduler.remove(seq.seq_id)
            self._fail(seq, error)
        self._fail_running(error)

    def _postprocess(self, outputs: list[TokenOutput]) -> None:
        now = self._clock()
        ended: set[int] = set()
        for output in outputs:
            seq = self.scheduler.running[output.seq_id]
            if output.token_id == ROW_FAILED:
                self._fail_one(seq, "sampling its next token failed")
                ended.add(seq.seq_id)
                continue
            self.observer.token(seq, now)
            try:
                events, done = self._outputs.process(seq, output, now)
            except Exception:  # noqa: BLE001 - a detokenizer or stop matcher fault is this row's
                log.exception(
                    "output processing failed", extra={"request_id": seq.request.request_id}
                )
                self._fail_one(seq, "turning its tokens into text failed")
                ended.add(seq.seq_id)
                continue
            for event in events:
                seq.sink(event)
            if done:
                assert isinstance(events[-1], Finished)
                self.observer.finished(seq, events[-1])
                ended.add(seq.seq_id)
                self.scheduler.remove(seq.seq_id)
        self.runner.release(ended)

    def _replay_each_alone(self, plan: SchedulerPlan) -> list[TokenOutput]:
        """After a failed forward pass, run each sequence's part of the step alone, so only a
        sequence that fails by itself is failed. A runner whose batch state the failure may have
        left half-updated (the padded one) starts over and replays every running sequence."""
        targets = plan.sequences
        if self.runner.replays_whole_batch:
            self.runner.reset()
            targets = list(self.scheduler.running.values())
        outputs: list[TokenOutput] = []
        for seq in targets:
            try:
                outputs += self.runner.replay(seq, plan.part_of(seq))
            except Exception:  # noqa: BLE001 - this sequence fails even alone: it alone is failed
                log.exception(
                    "forward pass failed alone", extra={"request_id": seq.request.request_id}
                )
                self.runner.release({seq.seq_id})
                self._fail_one(seq, "the forward pass failed, also when retried alone")
        return outputs

    def _fail_one(self, seq: Sequence, what: str) -> None:
        """Fail one sequence of the batch; the caller releases its runner row."""
        self.scheduler.remove(seq.seq_id)
        self._fail(seq, ModelFailure(f"request {seq.request.request_id}: {what}"))

    def _fail_running(self, error: Exception) -> None:
        running = list(self.scheduler.running.values())
        for seq in running:
            self.scheduler.remove(seq.seq_id)
            self._fail(seq, error)
        self.runner.reset()

    def _fail(self, seq: Sequence, error: Exception) -> None:
        self.observer.failed(seq, error)
        seq.sink(Failed(error))
