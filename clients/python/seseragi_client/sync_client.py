"""The blocking client: generation, tokenizing, model info and jobs, with deadlines and retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from seseragi_client import retry
from seseragi_client.connection import Connection, Metadata
from seseragi_client.errors import SeseragiError
from seseragi_client.requests import (
    GenerateParams,
    Turn,
    WatchCursor,
    generate_request,
    stream_request,
    tokenize_request,
)
from seseragi_client.retry import RetryHook, RetryPolicy
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc

R = TypeVar("R")
DEFAULT_TIMEOUT_S = 300.0


class Client:
    """A channel to one Seseragi target (a server, or Envoy in front of several).

    `timeout` is each call's deadline in seconds, retries included (None: no deadline); every
    method takes its own `timeout` to override it. Failures raise `SeseragiError`.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        metadata: Metadata = (),
        timeout: float | None = DEFAULT_TIMEOUT_S,
        retry_policy: RetryPolicy | None = None,
        on_retry: RetryHook | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.connection = Connection(target, token, tls, root_certificates, metadata, options)
        self._channel = self.connection.channel()
        self._generation = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._metadata = self.connection.call_metadata()
        self._timeout = timeout
        self._retry = retry_policy or RetryPolicy()
        self._on_retry = on_retry

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def generate(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> pb.GenerateResponse:
        """The whole generation at once: `generate("Hi", max_new_tokens=8)` or a GenerateRequest."""
        message = generate_request(request, params)
        response: pb.GenerateResponse = self._unary(self._generation.Generate, message, timeout)
        return response

    def stream(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> Iterator[pb.GenerateStreamResponse]:
        """Yield every event (`started`, `delta`s, `heartbeat`s, `final`) as it arrives."""
        message = stream_request(generate_request(request, params))
        return self._stream(self._generation.GenerateStream, lambda: message, timeout)

    def tokenize(
        self,
        prompt: str | None = None,
        messages: Sequence[Turn] = (),
        *,
        timeout: float | None = None,
    ) -> pb.TokenizeResponse:
        request = tokenize_request(prompt, messages)
        response: pb.TokenizeResponse = self._unary(self._generation.Tokenize, request, timeout)
        return response

    def model_info(self, *, timeout: float | None = None) -> pb.GetModelInfoResponse:
        request = pb.GetModelInfoRequest()
        response: pb.GetModelInfoResponse = self._unary(
            self._generation.GetModelInfo, request, timeout
        )
        return response

    def submit_job(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        idempotency_key: str = "",
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> jobs_pb2.SubmitJobResponse:
        """Queue a generation as a durable job; retried on UNAVAILABLE only with a key."""
        message = jobs_pb2.SubmitJobRequest(
            request=generate_request(request, params), idempotency_key=idempotency_key
        )
        policy = self._retry if idempotency_key else retry.NO_RETRY
        response: jobs_pb2.SubmitJobResponse = self._unary(
            self._jobs.SubmitJob, message, timeout, policy
        )
        return response

    def get_job(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.GetJobRequest(job_id=job_id)
        response: jobs_pb2.GetJobResponse = self._unary(self._jobs.GetJob, request, timeout)
        return response.job

    def watch_job(
        self, job_id: str, from_index: int = 0, *, timeout: float | None = None
    ) -> Iterator[pb.GenerateStreamResponse]:
        """A job's events as `stream()` yields them, resumed from `from_index` after a reconnect."""
        cursor = WatchCursor(job_id, from_index)
        responses = self._stream(self._jobs.WatchJob, cursor.request, timeout, resumable=True)
        return (event for r in responses if (event := cursor.accept(r)) is not None)

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.CancelJobRequest(job_id=job_id)
        response: jobs_pb2.CancelJobResponse = self._unary(self._jobs.CancelJob, request, timeout)
        return response.job

    def list_jobs(
        self, page_size: int = 0, page_token: str = "", *, timeout: float | None = None
    ) -> jobs_pb2.ListJobsResponse:
        """One page of the caller's jobs, newest first; pass `next_page_token` for the next."""
        request = jobs_pb2.ListJobsRequest(page_size=page_size, page_token=page_token)
        response: jobs_pb2.ListJobsResponse = self._unary(self._jobs.ListJobs, request, timeout)
        return response

    def _unary(
        self,
        method: Callable[..., R],
        request: Message,
        timeout: float | None,
        policy: RetryPolicy | None = None,
    ) -> R:
        def attempt(seconds_left: float | None) -> R:
            try:
                return method(request, timeout=seconds_left, metadata=self._metadata)
            except grpc.RpcError as error:
                raise SeseragiError.from_rpc_error(error) from None

        return retry.call(attempt, policy or self._retry, self._deadline(timeout), self._on_retry)

    def _stream(
        self,
        method: Callable[..., Any],
        request: Callable[[], Message],
        timeout: float | None,
        resumable: bool = False,
    ) -> Iterator[Any]:
        def attempt(seconds_left: float | None) -> Iterator[Any]:
            call = method(request(), timeout=seconds_left, metadata=self._metadata)
            try:
                yield from call
            except grpc.RpcError as error:
                raise SeseragiError.from_rpc_error(error) from None
            finally:
                call.cancel()

        deadline = self._deadline(timeout)
        return retry.stream(attempt, self._retry, deadline, self._on_retry, resumable)

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout
