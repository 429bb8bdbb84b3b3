"""At most N running or queued generations per verified caller, so no one holds every slot."""

from __future__ import annotations

from collections import Counter

from seseragi.subjects import ANONYMOUS


class CallerLimitReached(Exception):
    """The caller already has as many generations (or watches) in flight as it may."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # the ErrorInfo reason, e.g. CALLER_LIMIT


class CallerSlots:
    """Counts calls in flight per caller; anonymous callers (no edge) are not capped."""

    def __init__(
        self, limit: int, what: str = "generations running or queued", reason: str = "CALLER_LIMIT"
    ) -> None:
        self._limit = limit
        self._what = what
        self._reason = reason
        self._in_flight: Counter[str] = Counter()

    def acquire(self, who: str) -> None:
        if who == ANONYMOUS or self._limit == 0:
            return
        if self._in_flight[who] >= self._limit:
            raise CallerLimitReached(
                f"caller {who!r} already has {self._limit} {self._what}", self._reason
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
