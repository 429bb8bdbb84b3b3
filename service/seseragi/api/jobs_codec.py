"""The job worker's messages: the api layer's side of `jobs.codec.JobCodec`.

A stored request is parsed as a live call's is, each delta and the end are logged as the
`GenerateStreamResponse` a watcher reads, and a failure gets its status from the one table.
"""

from __future__ import annotations

from google.rpc import code_pb2

from seseragi.api import generations
from seseragi.api.convert import responses
from seseragi.api.errors import InvalidRequest, to_status
from seseragi.engine.types import Finished, Request, TextDelta
from seseragi.jobs.codec import Rejected
from seseragi.runtime.backend import Backend
from seseragi.settings import GenerationSettings
from seseragi_contract.v1 import generation_pb2 as pb


class JobMessages:
    """`JobCodec` over the contract's messages, for the model `backend` holds."""

    def __init__(self, backend: Backend, settings: GenerationSettings) -> None:
        self._backend = backend
        self._settings = settings

    async def parse(self, request: bytes) -> Request:
        message = pb.GenerateRequest.FromString(request)
        try:
            return await generations.parse(self._backend, message, self._settings, None)
        except InvalidRequest as exc:
            raise Rejected(*self.failure(exc, "")) from exc

    def delta(self, event: TextDelta) -> bytes:
        piece = responses.delta(event, self._backend.tokenizer)
        return pb.GenerateStreamResponse(delta=piece).SerializeToString()

    def ending(self, deltas: list[bytes], event: Finished, request: Request) -> tuple[bytes, bytes]:
        """The Final entry, and the result the log holds: what watchers saw is what GetJob
        returns, even when earlier attempts wrote part of the log."""
        last = responses.final(event, request.request_id, request.sampling.seed)
        collected = responses.Collected()
        for entry in deltas:
            collected.add(pb.GenerateStreamResponse.FromString(entry).delta)
        final = pb.GenerateStreamResponse(final=last).SerializeToString()
        return final, collected.response(last).SerializeToString()

    def failure(self, exc: BaseException, request_id: str) -> tuple[str, str]:
        status = to_status(exc, request_id)
        return code_pb2.Code.Name(status.code), status.message
