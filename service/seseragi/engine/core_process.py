"""The engine core as its own process: load the model, step the batch, stream events over ZeroMQ.

Run by `CoreClient` as `python -m seseragi.engine.core_process`; the settings arrive as JSON on
stdin. Nothing here serves calls: the process has one job, so the model never shares a GIL with
the gRPC event loop. It exits when told to stop, and dies with its parent.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
from concurrent.futures import Future
from typing import Any, TypeVar

import zmq

from seseragi import logs
from seseragi.engine import ipc
from seseragi.engine.build import make_engine
from seseragi.engine.detokenizer import Decoder
from seseragi.engine.engine import Engine
from seseragi.engine.errors import EngineStopped, GrammarError, ModelFailure
from seseragi.engine.grammar import Grammars, grammars_for
from seseragi.engine.sequence import EventSink, Sequence, make_sequence
from seseragi.engine.types import Failed, Finished, StructuredOutput
from seseragi.settings import WorkerSettings

log = logging.getLogger(__name__)
IDLE_POLL_MS = 500  # how often an idle core checks that its parent still lives
COMPILE_POLL_MS = 2  # how often a core with nothing else to do checks its grammar compiles
_PR_SET_PDEATHSIG = 1
_Key = TypeVar("_Key")
Compiling = list[tuple[_Key, Future[Any]]]  # what waits for a grammar (sequence or check id)


class ObservationRecorder:
    """Implements `EngineObserver` by writing each call down for the front end to replay."""

    def __init__(self) -> None:
        self.records: list[ipc.Wire] = []

    def forward_done(self, phase: str, batch: list[Sequence], seconds: float) -> None:
        self.records.append([ipc.OBS_FORWARD, phase, [ipc.snapshot(s) for s in batch], seconds])

    def token(self, seq: Sequence, now: float) -> None:
        self.records.append([ipc.OBS_TOKEN, ipc.snapshot(seq), now])

    def finished(self, seq: Sequence, event: Finished) -> None:
        self.records.append([ipc.OBS_FINISHED, ipc.snapshot(seq)])

    def failed(self, seq: Sequence, error: Exception) -> None:
        self.records.append([ipc.OBS_FAILED, ipc.snapshot(seq), *ipc.error_to_wire(error)])

    def cancelled(self, seq: Sequence) -> None:
        self.records.append([ipc.OBS_CANCELLED, ipc.snapshot(seq)])


class Core:
    """The step loop: apply commands, step, send that turn's events and observations as one."""

    def __init__(
        self,
        engine: Engine,
        decoder: Decoder,
        commands: zmq.Socket[Any],
        events: zmq.Socket[Any],
        grammars: Grammars | None = None,
    ) -> None:
        self._engine = engine
        self._grammars = grammars
        self._compiling: Compiling[Sequence] = []  # added once compiled
        self._checking: Compiling[int] = []  # answered once compiled
        self._decoder = decoder
        self._commands = commands
        self._events = events
        self._recorder = ObservationRecorder()
        engine.observer = self._recorder
        self._outbox: list[ipc.Wire] = []
        self._last_stats: ipc.Wire = []

    def run(self, parent_pid: int) -> None:
        engine = self._engine
        while True:
            if os.getppid() != parent_pid:
                log.error("the front end is gone; the engine core exits")
                return
            if not self._apply_commands(block=not engine.has_work):
                self._compiling.clear()
                engine.fail_all(EngineStopped("the server is shutting down"))
                self._flush()
                self._events.send(ipc.encode([ipc.BYE]))
                return
            self._admit_compiled()
            self._answer_checks()
            if engine.has_work:
                engine.step()
            self._flush()

    def _apply_commands(self, *, block: bool) -> bool:
        """Apply every pending command; returns False once asked to stop."""
        wait_ms = COMPILE_POLL_MS if self._compiling or self._checking else IDLE_POLL_MS
        if block and not self._commands.poll(wait_ms):
            return True
        while True:
            try:
                command = ipc.decode(self._commands.recv(zmq.NOBLOCK))
            except zmq.Again:
                return True
            if command[0] == ipc.STOP:
                return False
            if command[0] == ipc.ADD:
                seq_id, arrival, request = ipc.request_from_wire(command)
                seq = make_sequence(seq_id, request, self._decoder, arrival, lambda event: None)
                seq.sink = self._sink_of(seq)
                self._add(seq)
            elif command[0] == ipc.CHECK:
                self._check(command[1], StructuredOutput(command[2], command[3]))
            elif command[0] == ipc.ABORT:
                self._compiling = [(s, f) for s, f in self._compiling if s.seq_id != command[1]]
                self._engine.abort(command[1])

    def _add(self, seq: Sequence) -> None:
        """Into the engine now, or once its grammar is compiled (never on this thread)."""
        spec = seq.request.structured
        if spec is None or self._grammars is None or self._grammars.cached(spec) is not None:
            self._engine.add(seq)
        else:
            self._compiling.append((seq, self._grammars.compile_later(spec)))

    def _check(self, check_id: int, spec: StructuredOutput) -> None:
        """Compile for the front end's validation; the grammar stays cached for its admission."""
        if self._grammars is None:
            self._events.send(ipc.encode([ipc.CHECKED, check_id, "no structured output here"]))
        else:
            self._checking.append((check_id, self._grammars.compile_later(spec)))

    def _answer_checks(self) -> None:
        done, self._checking = _split_done(self._checking)
        for check_id, compiling in done:
            error = compiling.exception()
            if error is not None and not isinstance(error, GrammarError):
                log.error("a grammar check failed", exc_info=error)
                error = GrammarError("the grammar could not be compiled")
            reason = None if error is None else str(error)
            self._events.send(ipc.encode([ipc.CHECKED, check_id, reason]))

    def _admit_compiled(self) -> None:
        done, self._compiling = _split_done(self._compiling)
        for seq, compiling in done:
            if compiling.exception() is not None:
                failure = ModelFailure(f"its grammar did not compile: {compiling.exception()}")
                seq.sink(Failed(failure))
            else:
                self._engine.add(seq)

    def _sink_of(self, seq: Sequence) -> EventSink:
        return lambda event: self._outbox.append(ipc.event_to_wire(seq, event))

    def _flush(self) -> None:
        engine = self._engine
        scheduler = engine.scheduler
        blocks = scheduler.blocks
        stats = [len(scheduler.running), len(scheduler.waiting), engine.steps, engine.cache_tokens]
        stats += [blocks.num_blocks * blocks.block_size, blocks.stats.queries, blocks.stats.hits]
        records = self._recorder.records
        if not self._outbox and not records and stats == self._last_stats:
            return
        self._events.send(ipc.encode([ipc.STEP, self._outbox, records, stats]))
        self._outbox, self._recorder.records, self._last_stats = [], [], stats


def _split_done(pending: Compiling[_Key]) -> tuple[Compiling[_Key], Compiling[_Key]]:
    """The compiles that have finished (in order) and those still running; each future is asked
    once, so one finishing meanwhile lands in exactly one list."""
    done: Compiling[_Key] = []
    running: Compiling[_Key] = []
    for item in pending:
        (done if item[1].done() else running).append(item)
    return done, running


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux); the step loop also checks the pid."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", required=True, help="ZeroMQ address to pull commands from")
    parser.add_argument("--events", required=True, help="ZeroMQ address to push events to")
    parser.add_argument("--parent", type=int, required=True, help="pid of the front end")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    # The front end decides when the core ends (a stop command, or its own death): a Ctrl-C to
    # the terminal's process group or a SIGTERM to the whole cgroup must not cut its drain short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = WorkerSettings.model_validate_json(sys.stdin.read())
    logs.configure(settings.log_level)
    context = zmq.Context()
    commands = context.socket(zmq.PULL)
    commands.connect(args.commands)
    events = context.socket(zmq.PUSH)
    events.connect(args.events)
    try:
        from seseragi.model.loader import load

        loaded = load(settings)
        engine = make_engine(loaded, settings)
    except Exception as exc:
        log.exception("the engine core could not load the model")
        events.send(ipc.encode([ipc.FATAL, f"{type(exc).__name__}: {exc}"]))
        events.close(linger=5000)
        return 1
    events.send(ipc.encode([ipc.READY, ipc.info_to_wire(loaded.info)]))
    grammars = grammars_for(loaded.tokenizer)
    Core(engine, loaded.tokenizer, commands, events, grammars).run(args.parent)
    events.close(linger=5000)
    commands.close(linger=0)
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
