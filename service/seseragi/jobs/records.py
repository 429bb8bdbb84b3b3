"""What the job store reads back from Redis: job records, log entries, claims, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast


class JobNotFound(Exception):
    """No such job, or it belongs to another caller (the two are not told apart)."""


class JobQueueFull(Exception):
    """The job queue holds `max_queued_jobs` jobs."""


class SubmitOutcomeUnknown(Exception):
    """SubmitJob's write was sent but not confirmed: the job may or may not exist."""


class CallerJobLimit(Exception):
    """The caller already has `max_jobs_per_caller` jobs queued or running."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    owner: str
    state: str
    request: bytes
    started: bytes
    created_ms: int
    updated_ms: int
    tokens: int
    attempts: int
    idempotency_key: str
    result: bytes
    error_code: str
    error_message: str

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[bytes, bytes]) -> JobRecord:
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        return cls(
            job_id=job_id,
            owner=text("owner"),
            state=text("state"),
            request=fields.get(b"request", b""),
            started=fields.get(b"started", b""),
            created_ms=int(text("created_ms") or 0),
            updated_ms=int(text("updated_ms") or 0),
            tokens=int(text("tokens") or 0),
            attempts=int(text("attempts") or 0),
            idempotency_key=text("idempotency_key"),
            result=fields.get(b"result", b""),
            error_code=text("error_code"),
            error_message=text("error_message"),
        )


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event of a job's log; `tokens` is the generated-token count once it is applied."""

    entry_id: bytes
    tokens: int
    kind: str  # delta, final, failed or cancelled
    event: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    message_id: bytes
    job_id: str


def hash_reply(reply: Any) -> dict[bytes, bytes]:
    """redis-py types replies loosely; with decode_responses off a hash is bytes to bytes."""
    return cast(dict[bytes, bytes], reply)


def bytes_reply(reply: Any) -> bytes:
    return cast(bytes, reply)


def entries_reply(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREAD/XREADGROUP reply ([[stream, [(id, fields), ...]], ...])."""
    return [(entry[0], entry[1]) for _stream, items in reply or () for entry in items if entry[1]]


class JobEnded(Exception):
    """A watched job ended without a result: failed (with the code it failed with) or cancelled."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
