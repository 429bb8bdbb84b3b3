"""Failed calls as one exception carrying the gRPC code and the decoded `google.rpc` details."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# The detail types the service sends (see service/seseragi/api/errors.py); others are skipped.
DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.RequestInfo,
)
D = TypeVar("D", bound=Message)


class SeseragiError(Exception):
    """A failed call: `code` (grpc.StatusCode), `message`, and the decoded details."""

    def __init__(
        self, code: grpc.StatusCode, message: str, details: list[Message] | None = None
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details: list[Message] = details or []

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SeseragiError:
        """Decode a failed call; works for sync calls and `grpc.aio.AioRpcError` alike."""
        code = error.code() if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None
        if code is None:
            return cls(grpc.StatusCode.UNKNOWN, str(error))
        status = _status_of(error)
        details = decode_details(status) if status is not None else []
        return cls(code, error.details() or "", details)

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> SeseragiError:
        """Decode a `google.rpc.Status`, as sent in the `grpc-status-details-bin` trailer."""
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), None)
        return cls(code or grpc.StatusCode.UNKNOWN, status.message, decode_details(status))

    def detail(self, detail_type: type[D]) -> D | None:
        """The first detail of `detail_type`, e.g. `error.detail(ErrorInfo)`."""
        return next((d for d in self.details if isinstance(d, detail_type)), None)

    def field_violations(self) -> dict[str, str]:
        """Bad fields and why, from a BadRequest detail."""
        bad = self.detail(error_details_pb2.BadRequest)
        return {v.field: v.description for v in bad.field_violations} if bad else {}

    @property
    def reason(self) -> str:
        """ErrorInfo's machine-readable reason (e.g. "NOT_SERVING"), or ""."""
        info = self.detail(error_details_pb2.ErrorInfo)
        return info.reason if info else ""

    @property
    def retry_delay(self) -> timedelta | None:
        """How long RetryInfo asks the caller to wait before trying again, if it was sent."""
        info = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        delay: timedelta = info.retry_delay.ToTimedelta()
        return delay


def decode_details(status: status_pb2.Status) -> list[Message]:
    details: list[Message] = []
    for packed in status.details:
        for detail_type in DETAIL_TYPES:
            if packed.Is(detail_type.DESCRIPTOR):
                detail = detail_type()
                packed.Unpack(detail)
                details.append(detail)
    return details


def _status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The rich status from the trailers; `rpc_status.from_call` reads sync and aio calls alike."""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except ValueError:  # the trailer disagrees with the call's code: trust the call
        return None
    return status
