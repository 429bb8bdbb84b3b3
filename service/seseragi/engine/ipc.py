"""The wire between the front end and the engine core: msgpack arrays over ZeroMQ.

Front end -> core: one message per command (add, abort, stop, check a grammar). Core -> front
end: `ready` once, then one `step` message per loop turn carrying every event and observer call of
that turn, `checked` when a grammar asked about has compiled (or not), and `bye` after a clean
stop. Arrays rather than maps: a 16-stream step stays a few hundred bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import msgspec

from seseragi.engine import errors
from seseragi.engine.sequence import Sequence, SequenceStatus
from seseragi.engine.types import (
    Event,
    Failed,
    Finished,
    Request,
    StopReason,
    TextDelta,
    Timings,
    TokenLogprob,
)
from seseragi.model.loader import ModelInfo

ADD, ABORT, STOP, CHECK = 0, 1, 2, 3  # commands
READY, STEP, FATAL, BYE, CHECKED = 0, 1, 2, 3, 4  # core messages
DELTA, FINISHED, FAILED = 0, 1, 2  # events
OBS_FORWARD, OBS_TOKEN, OBS_FINISHED, OBS_FAILED, OBS_CANCELLED = range(5)  # observer calls
STATUSES = tuple(SequenceStatus)
# Errors that cross the wire as themselves, so the server's error table maps them unchanged.
ERROR_KINDS: dict[str, type[Exception]] = {
    kind.__name__: kind
    for kind in (errors.DeadlineExpired, errors.ModelFailure, errors.EngineStopped)
}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()
Wire = list[Any]


class CoreError(Exception):
    """An error of a kind the server has no special status for (INTERNAL, as in-process)."""


def encode(message: Wire) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Wire:
    message: Wire = _decoder.decode(data)
    return message


def add_command(seq_id: int, arrival_time: float, request: Request) -> bytes:
    """The whole request, every field as msgspec encodes a dataclass (so a new field travels)."""
    return encode([ADD, seq_id, arrival_time, msgspec.to_builtins(request)])


def request_from_wire(command: Wire) -> tuple[int, float, Request]:
    """(seq_id, arrival_time, request) of an add command."""
    _, seq_id, arrival, fields = command
    return seq_id, arrival, msgspec.convert(fields, Request)


def error_to_wire(error: Exception) -> Wire:
    return [type(error).__name__, str(error)]


def error_from_wire(kind: str, message: str) -> Exception:
    return ERROR_KINDS.get(kind, CoreError)(message)


def event_to_wire(seq: Sequence, event: Event) -> Wire:
    if isinstance(event, TextDelta):
        logprobs = [[lp.token_id, lp.logprob, lp.top] for lp in event.logprobs]
        count = event.generated_token_count
        return [seq.seq_id, DELTA, event.text, event.token_ids, count, logprobs]
    if isinstance(event, Finished):
        t = event.timings
        timings = [t.queue_s, t.time_to_first_token_s, t.decode_s, t.total_s]
        return [
            seq.seq_id,
            FINISHED,
            event.stop_reason.value,
            event.stop_sequence,
            event.input_tokens,
            event.output_tokens,
            timings,
            seq.output_token_ids,
        ]
    return [seq.seq_id, FAILED, *error_to_wire(event.error)]


@dataclass(slots=True)
class WireEvent:
    seq_id: int
    event: Event
    output_token_ids: list[int] | None = None  # on Finished: every token the sequence produced


def event_from_wire(item: Wire) -> WireEvent:
    seq_id, kind = item[0], item[1]
    if kind == DELTA:
        text, token_ids, count, logprobs = item[2:]
        lps = [TokenLogprob(tid, lp, tuple((a, b) for a, b in top)) for tid, lp, top in logprobs]
        return WireEvent(seq_id, TextDelta(text, token_ids, count, lps))
    if kind == FINISHED:
        reason, stop_sequence, input_tokens, output_tokens, timings, output_ids = item[2:]
        finished = Finished(
            StopReason(reason), stop_sequence, input_tokens, output_tokens, Timings(*timings)
        )
        return WireEvent(seq_id, finished, output_ids)
    return WireEvent(seq_id, Failed(error_from_wire(item[2], item[3])))


def snapshot(seq: Sequence) -> Wire:
    """The sequence fields observers read, as they are at the moment of the call."""
    return [
        seq.seq_id,
        STATUSES.index(seq.status),
        seq.scheduled_time,
        seq.first_token_time,
        seq.last_token_time,
    ]


def apply_snapshot(seqs: dict[int, Sequence], snap: Wire) -> Sequence | None:
    """Bring the front end's copy of a sequence up to the core's; None if it is unknown here."""
    seq = seqs.get(snap[0])
    if seq is not None:
        seq.status = STATUSES[snap[1]]
        seq.scheduled_time, seq.first_token_time, seq.last_token_time = snap[2:]
    return seq


def info_to_wire(info: ModelInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


def info_from_wire(fields: dict[str, Any]) -> ModelInfo:
    return msgspec.convert(fields, ModelInfo)
