"""What a request handler holds, whichever front end drives the engine (thread or core process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from seseragi.engine.errors import EngineFull
from seseragi.engine.observer import EngineObserver
from seseragi.engine.sequence import Sequence, SequenceStatus
from seseragi.engine.types import Event, Failed, Finished, Request, StructuredOutput


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int
    waiting: int
    in_flight: int
    steps: int
    cache_tokens: int = 0  # KV cache slots in use (by sequences or kept for the prefix cache)
    cache_capacity_tokens: int = 0
    prefix_cache_queries: int = 0  # prompt tokens looked up in the prefix cache, ever
    prefix_cache_hits: int = 0  # of those, tokens found cached


def queue_position(in_flight: int, capacity: int, max_running: int) -> int:
    """Admission, the same for every engine front end: raise EngineFull when running and waiting
    are both full, else the request's place (0: straight into the batch; else 1-based in the
    waiting queue)."""
    if in_flight >= capacity:
        raise EngineFull(min(in_flight, max_running), in_flight - max_running, 1.0)
    return max(0, in_flight - max_running + 1)


class _Aborter(Protocol):
    def abort(self, handle: RequestHandle) -> None: ...


class RequestHandle:
    """A submitted request as its handler sees it: events arrive on its own queue."""

    def __init__(self, owner: _Aborter, seq: Sequence, queue_position: int) -> None:
        self.seq = seq
        self.queue_position = queue_position
        self._owner = owner
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.done = False

    @property
    def request_id(self) -> str:
        return self.seq.request.request_id

    @property
    def is_queued(self) -> bool:
        return self.seq.status is SequenceStatus.WAITING

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when `timeout` seconds pass without one."""
        try:
            event = await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(event, Finished | Failed):
            self.done = True
        return event

    def abort(self) -> None:
        """Stop the generation at the next step and free its slot; harmless once done."""
        if not self.done:
            self.done = True
            self._owner.abort(self)

    def deliver(self, event: Event) -> None:
        self._events.put_nowait(event)


class EngineClient(Protocol):
    """The engine as the server uses it: `AsyncEngine` (a thread) or `CoreClient` (a process)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def stats(self) -> EngineStats: ...

    def cache_tokens(self) -> int: ...

    def observe(self, observer: EngineObserver) -> None: ...

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) once the engine died and fails every call."""

    async def grammar_error(self, spec: StructuredOutput) -> str | None:
        """Compile `spec` where the engine's grammars live (so admission finds it cached): why
        it does not compile, or None."""

    def submit(self, request: Request) -> RequestHandle: ...

    def abort(self, handle: RequestHandle) -> None: ...
