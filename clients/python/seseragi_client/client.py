"""Synchronous client: generate, stream, tokenize, model info.

Errors carry the gRPC code and the decoded details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seseragi.v1 import generation_pb2 as pb
from seseragi.v1 import generation_pb2_grpc

_DETAIL_TYPES = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.RequestInfo,
)


class SeseragiError(Exception):
    """A failed call: the gRPC status code, its message, and the decoded `google.rpc` details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: list[Any]) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SeseragiError:
        assert isinstance(error, grpc.Call)
        details: list[Any] = []
        status = rpc_status.from_call(error)
        for packed in status.details if status is not None else ():
            for detail_type in _DETAIL_TYPES:
                if packed.Is(detail_type.DESCRIPTOR):
                    detail = detail_type()
                    packed.Unpack(detail)
                    details.append(detail)
        return cls(error.code(), error.details() or "", details)

    def field_violations(self) -> dict[str, str]:
        """Bad fields and why, from a BadRequest detail."""
        return {
            v.field: v.description
            for d in self.details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        }


def build_request(
    prompt: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    max_new_tokens: int | None = None,
    stop: Sequence[str] = (),
    request_id: str = "",
) -> pb.GenerateRequest:
    """A GenerateRequest from keyword arguments; unset ones keep the server defaults."""
    sampling = pb.SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
    stopping = pb.StoppingCriteria(max_new_tokens=max_new_tokens, stop_sequences=list(stop))
    return pb.GenerateRequest(
        prompt=prompt,
        messages=[pb.ChatMessage(role=role, content=content) for role, content in messages],
        sampling=sampling,
        stopping=stopping,
        request_id=request_id,
    )


class Client:
    def __init__(self, target: str = "127.0.0.1:50051", *, timeout: float | None = 300.0) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def generate(self, request: pb.GenerateRequest) -> pb.GenerateResponse:
        response: pb.GenerateResponse = self._unary(self._stub.Generate, request)
        return response

    def stream(self, request: pb.GenerateRequest) -> Iterator[pb.GenerateStreamResponse]:
        """Yield every event: started, deltas, heartbeats, final."""
        stream_request = pb.GenerateStreamRequest.FromString(request.SerializeToString())
        call = self._stub.GenerateStream(stream_request, timeout=self._timeout)
        try:
            yield from call
        except grpc.RpcError as error:
            raise SeseragiError.from_rpc_error(error) from None
        finally:
            call.cancel()

    def tokenize(
        self, prompt: str | None = None, messages: Sequence[tuple[str, str]] = ()
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(
            prompt=prompt, messages=[pb.ChatMessage(role=r, content=c) for r, c in messages]
        )
        response: pb.TokenizeResponse = self._unary(self._stub.Tokenize, request)
        return response

    def model_info(self) -> pb.GetModelInfoResponse:
        response: pb.GetModelInfoResponse = self._unary(
            self._stub.GetModelInfo, pb.GetModelInfoRequest()
        )
        return response

    def _unary(self, method: Callable[..., Any], request: Message) -> Any:
        """Call a unary RPC with the client's deadline; failures become SeseragiError."""
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise SeseragiError.from_rpc_error(error) from None
