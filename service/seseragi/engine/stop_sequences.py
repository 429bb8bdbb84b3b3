"""Stop-sequence matching on decoded text, across token boundaries, leaking nothing.

Text that could still turn out to be the start of a stop sequence is held back until it is known
not to match; a match cuts the output exactly at its start.
"""

from __future__ import annotations


class StopSequenceMatcher:
    def __init__(self, stop_sequences: tuple[str, ...], *, include_stop_sequence: bool) -> None:
        self._stops = tuple(s for s in stop_sequences if s)
        self._include = include_stop_sequence
        self._pending = ""

    def push(self, text: str) -> tuple[str, str | None]:
        """Add new text; return (text safe to emit, the stop sequence that matched or None)."""
        if not self._stops:
            return text, None
        self._pending += text
        match = self._earliest_match()
        if match is not None:
            start, stop = match
            emitted = self._pending[:start] + (stop if self._include else "")
            self._pending = ""
            return emitted, stop
        held = self._longest_partial_suffix()
        cut = len(self._pending) - held
        emitted, self._pending = self._pending[:cut], self._pending[cut:]
        return emitted, None

    def flush(self) -> str:
        """Release held text when the generation ends for another reason."""
        text, self._pending = self._pending, ""
        return text

    def _earliest_match(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for stop in self._stops:
            index = self._pending.find(stop)
            if index >= 0 and (best is None or index < best[0]):
                best = (index, stop)
        return best

    def _longest_partial_suffix(self) -> int:
        """Length of the longest end of the pending text that begins some stop sequence."""
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:length]):
                    longest = length
                    break
        return longest
