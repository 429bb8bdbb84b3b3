"""OpenAI's error JSON, derived from the same table as the gRPC statuses (api/errors.py).

`to_status` decides the code, message, reason and retry delay; this module only turns the gRPC
code into the HTTP status OpenAI's clients expect and names the parameter in OpenAI's words.
"""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse
from google.rpc import code_pb2, error_details_pb2, status_pb2

from seseragi.api.errors import LEAVE_ROTATION, NotReady, to_status
from seseragi.api.http.convert import param_name
from seseragi.api.http.schemas import ErrorBody, ErrorDetail

HTTP_STATUS = {
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.NOT_FOUND: 404,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DEADLINE_EXCEEDED: 504,
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(
        message=message, type=ERROR_TYPES.get(status, "server_error"), param=param, code=code
    )
    return JSONResponse(ErrorBody(error=detail).model_dump(), status, headers=headers)


def from_exception(exc: BaseException, request_id: str) -> JSONResponse:
    """The HTTP answer for any error the gRPC face would map to a status."""
    status = to_status(exc, request_id)
    http_status = HTTP_STATUS.get(status.code, 500)
    reason, field = _error_info(status)
    headers = {}
    retry_after = _retry_after(status)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if isinstance(exc, NotReady):
        headers[LEAVE_ROTATION[0]] = LEAVE_ROTATION[1]  # Envoy stops routing here at once
    if reason == "INPUT_TOO_LONG":
        http_status = 413
    message = status.message
    param = None
    if field is not None:
        param = param_name(field)
        message = message.replace(field, param)
    code = reason.lower() if reason else None
    return error_response(http_status, message, param=param, code=code, headers=headers)


def _error_info(status: status_pb2.Status) -> tuple[str, str | None]:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, info.metadata.get("field")
    return "", None


def _retry_after(status: status_pb2.Status) -> int | None:
    """Whole seconds, rounded up, as Retry-After wants; 1 for any RESOURCE_EXHAUSTED without."""
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            seconds = float(retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9)
            return max(1, math.ceil(seconds))
    return 1 if status.code == code_pb2.RESOURCE_EXHAUSTED else None
