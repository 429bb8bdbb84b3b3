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
from dataclasses import dataclass, replace

from seseragi.engine.errors import DeadlineExpired, ModelFailure
from seseragi.engine.model_runner import ModelRunner, TokenOutput
from seseragi.engine.observer import EngineObserver, NullObserver
from seseragi.engine.output_processor import OutputProcessor
from seseragi.engine.sampling import ROW_FAILED
from seseragi.engine.scheduler import Scheduler
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Failed, Finished, Request

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
        phase = "prefill" if plan.admitted else "decode"
        try:
            if plan.admitted:
                outputs = self.runner.prefill([s.seq_id for s in batch], [s.request for s in batch])
            else:
                outputs = self.runner.decode()
        except Exception:  # noqa: BLE001 - one bad batch must not take the server down
            log.exception("%s forward pass over %d sequences failed", phase, len(batch))
            outputs = self._replay_each_alone()
        else:
            self.observer.forward_done(phase, batch, self._clock() - started)
        self.steps += 1
        self._postprocess(outputs)

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

    def _replay_each_alone(self) -> list[TokenOutput]:
        """After a failed forward pass the runner's batch may be half-updated: drop it and prefill
        every running sequence again, one at a time, from its prompt and the tokens it has so far.
        A greedy sequence's next token is the one the failed step would have given."""
        self.runner.reset()
        outputs: list[TokenOutput] = []
        for seq in list(self.scheduler.running.values()):
            try:
                outputs += self.runner.prefill([seq.seq_id], [_replay_request(seq)])
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


def _replay_request(seq: Sequence) -> Request:
    """The request that resumes `seq`: its prompt and output so far as the new prompt (which the
    repetition penalty also sees), with the tokens still owed before end-of-sequence may stop it.
    A seeded sequence's RNG restarts from its seed, so its sampled text after a replay differs."""
    request = seq.request
    owed = max(0, request.stopping.min_new_tokens - len(seq.output_token_ids))
    return replace(
        request,
        prompt_token_ids=request.prompt_token_ids + tuple(seq.output_token_ids),
        stopping=replace(request.stopping, min_new_tokens=owed),
    )
