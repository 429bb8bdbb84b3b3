"""What the engine reports while it works, as plain calls: metrics live outside the engine.

The engine thread calls these on its hot path, so an observer must be cheap and must not block.
"""

from __future__ import annotations

from typing import Protocol

from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Finished


class EngineObserver(Protocol):
    def forward_done(self, phase: str, batch: list[Sequence], seconds: float) -> None:
        """One forward pass ("prefill" or "decode") over `batch` took `seconds`."""

    def token(self, seq: Sequence, now: float) -> None:
        """`seq` produced a token at `now`; called before the token is recorded on it."""

    def finished(self, seq: Sequence, event: Finished) -> None: ...

    def failed(self, seq: Sequence, error: Exception) -> None: ...

    def cancelled(self, seq: Sequence) -> None:
        """The caller went away; `seq` still says how far it got (queued, prefill, decode)."""


class NullObserver:
    """The default: observes nothing."""

    def forward_done(self, phase: str, batch: list[Sequence], seconds: float) -> None:
        pass

    def token(self, seq: Sequence, now: float) -> None:
        pass

    def finished(self, seq: Sequence, event: Finished) -> None:
        pass

    def failed(self, seq: Sequence, error: Exception) -> None:
        pass

    def cancelled(self, seq: Sequence) -> None:
        pass
