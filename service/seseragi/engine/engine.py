"""The synchronous engine: each `step()` is schedule -> run the model -> postprocess.

It is driven by one thread (see `async_engine`); nothing here is thread-safe on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from seseragi.engine.errors import DeadlineExpired, ModelFailure
from seseragi.engine.model_runner import ModelRunner, TokenOutput
from seseragi.engine.observer import EngineObserver, NullObserver
from seseragi.engine.output_processor import OutputProcessor
from seseragi.engine.scheduler import Scheduler
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Failed, Finished

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_running: int
    max_waiting: int
    max_prefill_tokens: int
    context_length: int
    eos_token_ids: tuple[int, ...]


class Engine:
    def __init__(
        self,
        runner: ModelRunner,
        config: EngineConfig,
        clock: Callable[[], float] = time.monotonic,
        observer: EngineObserver | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.scheduler = Scheduler(config.max_running, config.max_prefill_tokens)
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
        batch = plan.admitted or list(self.scheduler.running.values())
        if not batch:
            return
        started = self._clock()
        try:
            if plan.admitted:
                outputs = self.runner.prefill([s.seq_id for s in batch], [s.request for s in batch])
            else:
                outputs = self.runner.decode()
        except Exception as exc:  # noqa: BLE001 - one bad batch must not take the server down
            log.exception("forward pass failed; failing %d sequences", len(self.scheduler.running))
            self._fail_running(ModelFailure(f"forward pass failed: {exc}"))
            return
        self.steps += 1
        phase = "prefill" if plan.admitted else "decode"
        self.observer.forward_done(phase, batch, self._clock() - started)
        self._postprocess(outputs)

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
