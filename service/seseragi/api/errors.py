"""One table from every error to its gRPC status and `google.rpc` details. No stack trace leaves."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from seseragi.api.limits import CallerLimitReached
from seseragi.engine.errors import DeadlineExpired, EngineFull, EngineStopped, ModelFailure
from seseragi.jobs.store import (
    CallerJobLimit,
    JobEnded,
    JobNotFound,
    JobQueueFull,
    SubmitOutcomeUnknown,
)
from seseragi.telemetry.trace_context import current_trace_id

log = logging.getLogger(__name__)
DOMAIN = "seseragi.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str
    reason: str


class InvalidRequest(Exception):
    """The request breaks one or more rules; every broken rule is named."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


class NotReady(Exception):
    """The model is still loading or the server is draining."""


def to_status(exc: BaseException, request_id: str) -> status_pb2.Status:
    if isinstance(exc, InvalidRequest):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason
                )
                for v in exc.violations
            ]
        )
        info = _error_info(exc.violations[0].reason, field=exc.violations[0].field)
        return _status(code_pb2.INVALID_ARGUMENT, str(exc), bad, info)
    if isinstance(exc, EngineFull):
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(
                nanos=int(exc.retry_after_s % 1 * 1e9), seconds=int(exc.retry_after_s)
            )
        )
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(exc), retry, _error_info("ENGINE_FULL"))
    if isinstance(exc, CallerLimitReached):
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(exc), _error_info(exc.reason))
    if isinstance(exc, DeadlineExpired):
        return _status(code_pb2.DEADLINE_EXCEEDED, str(exc), _error_info("QUEUE_DEADLINE_EXCEEDED"))
    if isinstance(exc, EngineStopped | NotReady):
        return _status(code_pb2.UNAVAILABLE, str(exc) or "not ready", _error_info("NOT_SERVING"))
    job_status = _job_status(exc)
    if job_status is not None:
        return job_status
    reason = "MODEL_FAILURE" if isinstance(exc, ModelFailure) else "INTERNAL"
    log.error("request failed", exc_info=exc, extra={"request_id": request_id, "reason": reason})
    if not request_id:
        return _status(code_pb2.INTERNAL, "internal error", _error_info(reason))
    return _status(
        code_pb2.INTERNAL,
        f"internal error; request id {request_id}",
        error_details_pb2.RequestInfo(request_id=request_id),
        _error_info(reason),
    )


# What Envoy answers a gRPC call beyond what every replica takes at once (its circuit breaker).
EDGE_FULL_MESSAGE = "every replica is full; retry in 1s"


def edge_full_status() -> status_pb2.Status:
    """The status of a call the edge refuses before any replica sees it: RESOURCE_EXHAUSTED, as
    a replica's own refusal, with reason EDGE_FULL and a retry delay."""
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1))
    return _status(code_pb2.RESOURCE_EXHAUSTED, EDGE_FULL_MESSAGE, retry, _error_info("EDGE_FULL"))


# Envoy takes a replica out of rotation at once when a response carries this header, instead of
# after its next failed health checks; its retry of the refused call then goes elsewhere.
LEAVE_ROTATION = ("x-envoy-immediate-health-check-fail", "true")


async def abort(context: grpc.aio.ServicerContext, exc: BaseException, request_id: str) -> NoReturn:
    status = to_status(exc, request_id)
    metadata: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", status.SerializeToString()),
    )
    if isinstance(exc, NotReady):
        metadata += (LEAVE_ROTATION,)  # grpc wants a tuple here; a list fails the call
    await context.abort(
        grpc.StatusCode[code_pb2.Code.Name(status.code)], status.message, trailing_metadata=metadata
    )
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def _job_status(exc: BaseException) -> status_pb2.Status | None:
    if isinstance(exc, JobNotFound):
        return _status(code_pb2.NOT_FOUND, str(exc), _error_info("JOB_NOT_FOUND"))
    if isinstance(exc, JobQueueFull):
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1))
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(exc), retry, _error_info("JOB_QUEUE_FULL"))
    if isinstance(exc, CallerJobLimit):
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(exc), _error_info("CALLER_JOB_LIMIT"))
    if isinstance(exc, JobEnded):
        return _status(code_pb2.Code.Value(exc.code), str(exc), _error_info(exc.reason))
    if isinstance(exc, SubmitOutcomeUnknown):  # not UNAVAILABLE: Envoy and clients retry that
        log.warning("job submission unconfirmed", extra={"error": repr(exc.__cause__)})
        return _status(code_pb2.ABORTED, str(exc), _error_info("SUBMIT_OUTCOME_UNKNOWN"))
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        log.warning("job store unreachable", extra={"error": repr(exc)})
        return _status(
            code_pb2.UNAVAILABLE, "the job store is unreachable", _error_info("STORE_DOWN")
        )
    return None


def _error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    trace_id = current_trace_id()
    if trace_id:
        metadata["trace_id"] = trace_id
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)


def _status(code: int, message: str, *details: Message) -> status_pb2.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code, message=message, details=packed)


@contextlib.asynccontextmanager
async def error_boundary(context: grpc.aio.ServicerContext, request_id: str) -> AsyncIterator[None]:
    """Any unexpected exception becomes INTERNAL with the request id; aborts pass through."""
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as exc:  # noqa: BLE001 - the whole point: no stack trace reaches the client
        await abort(context, exc, request_id)
