"""The synchronous engine: each `step()` is schedule -> run the model -> postprocess.

It is driven by one thread (see `async_engine`); nothing here is thread-safe on its own.
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


class StepRunner(Protocol):
    """What the engine needs of a model runner (`PagedModelRunner` or the padded one)."""

    @property
    def cache_tokens(self) -> int: ...

    def run(self, plan: SchedulerPlan) -> list[TokenOutput]: ...

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
        except Exception as exc:  # noqa: BLE001 - one bad batch must not take the server down
            log.exception("forward pass failed; failing %d sequences", len(self.scheduler.running))
            self._fail_running(ModelFailure(f"forward pass failed: {exc}"))
            return
        self.scheduler.advance(plan)
        self.steps += 1
        self._report_step(plan, self._clock() - started)
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
        finished: set[int] = set()
        for output in outputs:
            seq = self.scheduler.running[output.seq_id]
            self.observer.token(seq, now)
            events, done = self._outputs.process(seq, output, now)
            for event in events:
                seq.sink(event)
            if done:
                assert isinstance(events[-1], Finished)
                self.observer.finished(seq, events[-1])
                finished.add(seq.seq_id)
                self.scheduler.remove(seq.seq_id)
        self.runner.release(finished)

    def _fail_running(self, error: Exception) -> None:
        running = list(self.scheduler.running.values())
        for seq in running:
            self.scheduler.remove(seq.seq_id)
            self._fail(seq, error)
        self.runner.reset()

    def _fail(self, seq: Sequence, error: Exception) -> None:
        self.observer.failed(seq, error)
        seq.sink(Failed(error))
