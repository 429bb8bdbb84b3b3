"""What the job worker needs from the API: its messages, as the bytes a job's log holds.

A job's request and log entries are the API's own messages (GetJob and WatchJob hand them out as
stored), which only the api layer knows. The program that starts a worker hands in the api's
`JobCodec` (`api/jobs_codec.py`), so the worker imports nothing above it.
"""

from __future__ import annotations

from typing import Protocol

from seseragi.engine.types import Finished, Request, TextDelta


class Rejected(Exception):
    """A stored request that breaks the API's rules: the job ends at once, never retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobCodec(Protocol):
    async def parse(self, request: bytes) -> Request:
        """The engine request a stored job request asks for; raises `Rejected` when invalid."""
        ...

    def delta(self, event: TextDelta) -> bytes:
        """The log entry of one delta."""
        ...

    def ending(self, deltas: list[bytes], event: Finished, request: Request) -> tuple[bytes, bytes]:
        """The last log entry and the whole result, from every logged delta and the end."""
        ...

    def failure(self, exc: BaseException, request_id: str) -> tuple[str, str]:
        """The status code name and message of a job attempt that failed with `exc`."""
        ...
