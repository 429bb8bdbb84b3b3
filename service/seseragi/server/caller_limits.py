"""At most N running or queued generations per verified caller, so no one holds every slot."""

from __future__ import annotations

from collections import Counter

from seseragi.server.identity import ANONYMOUS


class CallerLimitReached(Exception):
    """The caller already has as many generations in flight as it may."""


class CallerSlots:
    """Counts generations in flight per caller; anonymous callers (no edge) are not capped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight: Counter[str] = Counter()

    def acquire(self, who: str) -> None:
        if who == ANONYMOUS or self._limit == 0:
            return
        if self._in_flight[who] >= self._limit:
            raise CallerLimitReached(
                f"caller {who!r} already has {self._limit} generations running or queued"
            )
        self._in_flight[who] += 1

    def release(self, who: str) -> None:
        if who == ANONYMOUS or self._limit == 0:
            return
        self._in_flight[who] -= 1
        if self._in_flight[who] <= 0:
            del self._in_flight[who]

    def in_flight(self, who: str) -> int:
        return self._in_flight[who]
