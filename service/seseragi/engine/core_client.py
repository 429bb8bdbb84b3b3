"""The front end of an engine core in another process, with the same face as `AsyncEngine`.

Admission stays here and answers at once; the core gets commands over ZeroMQ and sends back one
message per step. The front end keeps its own copy of each sequence, brought up to date from the
core's snapshots, so observers (metrics) and handles (`is_queued`) read what they always read.
A core that dies is noticed through its pidfd the moment it exits: every open call fails
UNAVAILABLE (EngineStopped) and the failure callbacks mark the replica NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from seseragi.engine import ipc
from seseragi.engine.core_spawn import CoreProcess, CoreStartFailed, describe_exit
from seseragi.engine.detokenizer import Decoder
from seseragi.engine.errors import EngineStopped
from seseragi.engine.handle import EngineStats, RequestHandle, queue_position
from seseragi.engine.observer import EngineObserver, NullObserver
from seseragi.engine.sequence import Sequence, make_sequence
from seseragi.engine.types import Failed, Finished, Request, StructuredOutput
from seseragi.settings import WorkerSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0  # a clean stop finishes the current step; past this the core is killed
__all__ = ["CoreClient", "CoreProcess", "CoreStartFailed"]


class CoreClient:
    def __init__(self, settings: WorkerSettings, decoder: Decoder, core: CoreProcess) -> None:
        self._decoder = decoder
        self._core = core
        self.info = core.info
        self._max_running = settings.max_running_requests
        self._capacity = settings.max_running_requests + settings.max_queued_requests
        self._handles: dict[int, RequestHandle] = {}
        self._seqs: dict[int, Sequence] = {}  # our copies, until the core reports their end
        self._checks: dict[int, asyncio.Future[str | None]] = {}  # grammar checks, by id
        self._ids = itertools.count(1)
        self._observer: EngineObserver = NullObserver()
        # running, waiting, steps, cache tokens, cache capacity, prefix-cache queries and hits
        self._stats: list[int] = [0] * 7
        self._accepting = False
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._failure_callbacks: list[Callable[[], None]] = []
        core.exited.add_done_callback(lambda _: self._core_exited())

    @classmethod
    async def launch(cls, settings: WorkerSettings, decoder: Decoder) -> CoreClient:
        """Start a core, wait until its model is loaded; raise CoreStartFailed if it cannot."""
        return cls(settings, decoder, await CoreProcess.start(settings))

    @property
    def pid(self) -> int:
        """The core process's id (what an operator or a test signals)."""
        return self._core.process.pid

    def start(self) -> None:
        self._accepting = True
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Fail whatever is still queued or running, let the core exit, release the wire."""
        self._accepting = False
        self._stopping = True
        core = self._core
        if not core.exited.done():
            core.send(ipc.encode([ipc.STOP]))
            waits: set[asyncio.Future[Any]] = {core.exited}
            if self._reader is not None:
                waits.add(self._reader)  # it ends at the core's bye, after the last events
            _, pending = await asyncio.wait(waits, timeout=STOP_TIMEOUT_S)
            if core.exited in pending:
                log.warning("the engine core did not stop in time; killing it")
                core.process.kill()
                await core.exited
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self._fail_everything(EngineStopped("the server is shutting down"))
        core.close()

    def stats(self) -> EngineStats:
        running, waiting, steps, cache, capacity, queries, hits = self._stats
        return EngineStats(
            running, waiting, len(self._handles), steps, cache, capacity, queries, hits
        )

    def cache_tokens(self) -> int:
        return self._stats[3]

    def observe(self, observer: EngineObserver) -> None:
        """Replay the core's engine events into `observer` from the next step on."""
        self._observer = observer

    def on_failure(self, callback: Callable[[], None]) -> None:
        self._failure_callbacks.append(callback)

    async def grammar_error(self, spec: StructuredOutput) -> str | None:
        """Asked of the core, which holds the grammars (and the torch and xgrammar they need)."""
        if not self._accepting:
            raise EngineStopped("the engine is not accepting requests")
        check_id = next(self._ids)
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._checks[check_id] = answer
        self._core.send(ipc.encode([ipc.CHECK, check_id, spec.kind, spec.spec]))
        try:
            return await answer
        finally:
            self._checks.pop(check_id, None)

    def submit(self, request: Request) -> RequestHandle:
        """Admit a request at once, or raise EngineFull / EngineStopped: never an unbounded wait."""
        if not self._accepting:
            raise EngineStopped("the engine is not accepting requests")
        position = queue_position(len(self._handles), self._capacity, self._max_running)
        seq = make_sequence(
            next(self._ids), request, self._decoder, time.monotonic(), lambda event: None
        )
        handle = RequestHandle(self, seq, position)
        self._handles[seq.seq_id] = handle
        self._seqs[seq.seq_id] = seq
        self._core.send(ipc.add_command(seq.seq_id, seq.arrival_time, request))
        return handle

    def abort(self, handle: RequestHandle) -> None:
        if self._handles.pop(handle.seq.seq_id, None) is not None:
            self._core.send(ipc.encode([ipc.ABORT, handle.seq.seq_id]))

    async def _read(self) -> None:
        try:
            while True:
                message = ipc.decode(await self._core.events.recv())
                if message[0] == ipc.BYE:
                    return
                if message[0] == ipc.CHECKED:
                    self._answer_check(message[1], message[2])
                else:
                    self._apply_step(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unreadable message from the engine core; killing it")
            self._core.process.kill()

    def _answer_check(self, check_id: int, error: str | None) -> None:
        answer = self._checks.get(check_id)
        if answer is not None and not answer.done():
            answer.set_result(error)

    def _apply_step(self, message: ipc.Wire) -> None:
        """Replay observer calls first, then hand events to handles, as the engine thread does."""
        _, events, records, self._stats = message
        decoded = [ipc.event_from_wire(item) for item in events]
        finished = {w.seq_id: w.event for w in decoded if isinstance(w.event, Finished)}
        ended: list[int] = []
        for record in records:
            self._replay(record, finished, ended)
        for wire in decoded:
            seq = self._seqs.get(wire.seq_id)
            if seq is not None and wire.output_token_ids is not None:
                seq.output_token_ids = wire.output_token_ids
            if isinstance(wire.event, Finished | Failed):
                ended.append(wire.seq_id)
                handle = self._handles.pop(wire.seq_id, None)
            else:
                handle = self._handles.get(wire.seq_id)
            if handle is not None:
                handle.deliver(wire.event)
        for seq_id in ended:
            self._seqs.pop(seq_id, None)

    def _replay(self, record: ipc.Wire, finished: dict[int, Finished], ended: list[int]) -> None:
        kind, observer = record[0], self._observer
        if kind == ipc.OBS_FORWARD:
            batch = [ipc.apply_snapshot(self._seqs, snap) for snap in record[2]]
            observer.forward_done(record[1], [s for s in batch if s is not None], record[3])
            return
        seq = ipc.apply_snapshot(self._seqs, record[1])
        if seq is None:
            return
        if kind == ipc.OBS_TOKEN:
            observer.token(seq, record[2])
        elif kind == ipc.OBS_FINISHED:
            observer.finished(seq, finished[seq.seq_id])
        elif kind == ipc.OBS_FAILED:
            observer.failed(seq, ipc.error_from_wire(record[2], record[3]))
        elif kind == ipc.OBS_CANCELLED:
            observer.cancelled(seq)
            ended.append(seq.seq_id)

    def _core_exited(self) -> None:
        if self._stopping or self._core.exited.cancelled():
            return
        self._accepting = False
        code = self._core.process.wait()
        log.error("the engine core exited unexpectedly", extra={"exit": describe_exit(code)})
        if self._reader is not None:
            self._reader.cancel()
        for data in self._core.pending_events():  # what it sent before it died still counts
            message = ipc.decode(data)
            if message[0] == ipc.STEP:
                self._apply_step(message)
            elif message[0] == ipc.CHECKED:
                self._answer_check(message[1], message[2])
        self._fail_everything(
            EngineStopped(f"the engine core exited unexpectedly ({describe_exit(code)})")
        )
        for callback in self._failure_callbacks:
            callback()

    def _fail_everything(self, error: Exception) -> None:
        for seq in self._seqs.values():
            self._observer.failed(seq, error)
        for answer in self._checks.values():
            if not answer.done():
                answer.set_exception(error)
        handles = list(self._handles.values())
        self._handles.clear()
        self._seqs.clear()
        self._stats = [0, 0, self._stats[2], 0, *self._stats[4:]]
        for handle in handles:
            handle.deliver(Failed(error))
