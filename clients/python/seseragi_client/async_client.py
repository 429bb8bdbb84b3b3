"""The asyncio client (grpc.aio): the calls of `Client`, awaited; streams are async iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
from seseragi_client.sync_client import DEFAULT_TIMEOUT_S
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc

R = TypeVar("R")


class AsyncClient:
    """`Client` for asyncio; create it inside the running event loop and `await close()`."""

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
        self._channel = self.connection.aio_channel()
        self._generation = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._metadata = self.connection.call_metadata()
        self._timeout = timeout
        self._retry = retry_policy or RetryPolicy()
        self._on_retry = on_retry

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def generate(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> pb.GenerateResponse:
        message = generate_request(request, params)
        return await self._unary(self._generation.Generate, message, timeout)

    def stream(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """`async for event in client.stream(...)`: started, deltas, heartbeats, final."""
        message = stream_request(generate_request(request, params))
        return self._stream(self._generation.GenerateStream, lambda: message, timeout)

    async def tokenize(
        self,
        prompt: str | None = None,
        messages: Sequence[Turn] = (),
        *,
        timeout: float | None = None,
    ) -> pb.TokenizeResponse:
        request = tokenize_request(prompt, messages)
        return await self._unary(self._generation.Tokenize, request, timeout)

    async def model_info(self, *, timeout: float | None = None) -> pb.GetModelInfoResponse:
        return await self._unary(self._generation.GetModelInfo, pb.GetModelInfoRequest(), timeout)

    async def submit_job(
        self,
        request: pb.GenerateRequest | str | None = None,
        *,
        idempotency_key: str = "",
        timeout: float | None = None,
        **params: Unpack[GenerateParams],
    ) -> jobs_pb2.SubmitJobResponse:
        message = jobs_pb2.SubmitJobRequest(
            request=generate_request(request, params), idempotency_key=idempotency_key
        )
        policy = self._retry if idempotency_key else retry.NO_RETRY
        return await self._unary(self._jobs.SubmitJob, message, timeout, policy)

    async def get_job(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.GetJobRequest(job_id=job_id)
        response: jobs_pb2.GetJobResponse = await self._unary(self._jobs.GetJob, request, timeout)
        return response.job

    async def watch_job(
        self, job_id: str, from_index: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        cursor = WatchCursor(job_id, from_index)
        async for response in self._stream(
            self._jobs.WatchJob, cursor.request, timeout, resumable=True
        ):
            event = cursor.accept(response)
            if event is not None:
                yield event

    async def cancel_job(self, job_id: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.CancelJobRequest(job_id=job_id)
        response: jobs_pb2.CancelJobResponse = await self._unary(
            self._jobs.CancelJob, request, timeout
        )
        return response.job

    async def list_jobs(
        self, page_size: int = 0, page_token: str = "", *, timeout: float | None = None
    ) -> jobs_pb2.ListJobsResponse:
        request = jobs_pb2.ListJobsRequest(page_size=page_size, page_token=page_token)
        return await self._unary(self._jobs.ListJobs, request, timeout)

    async def _unary(
        self,
        method: Callable[..., Awaitable[R]],
        request: Message,
        timeout: float | None,
        policy: RetryPolicy | None = None,
    ) -> R:
        async def attempt(seconds_left: float | None) -> R:
            try:
                return await method(request, timeout=seconds_left, metadata=self._metadata)
            except grpc.RpcError as error:
                raise SeseragiError.from_rpc_error(error) from None

        deadline = self._deadline(timeout)
        return await retry.acall(attempt, policy or self._retry, deadline, self._on_retry)

    def _stream(
        self,
        method: Callable[..., Any],
        request: Callable[[], Message],
        timeout: float | None,
        resumable: bool = False,
    ) -> AsyncIterator[Any]:
        async def attempt(seconds_left: float | None) -> AsyncIterator[Any]:
            call = method(request(), timeout=seconds_left, metadata=self._metadata)
            try:
                async for response in call:
                    yield response
            except grpc.RpcError as error:
                raise SeseragiError.from_rpc_error(error) from None
            finally:
                call.cancel()

        deadline = self._deadline(timeout)
        return retry.astream(attempt, self._retry, deadline, self._on_retry, resumable)

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout
