"""Request messages from keyword arguments, so callers need not build protobufs by hand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2

Turn = tuple[str, str]  # (role, content), e.g. ("user", "Hello")


class GenerateParams(TypedDict, total=False):
    """The optional arguments of `generate()` and `stream()`; unset ones keep server defaults."""

    messages: Sequence[Turn]
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int
    max_new_tokens: int
    min_new_tokens: int
    stop: Sequence[str]
    include_stop_sequence: bool
    time_limit_ms: int
    logprobs: bool
    top_logprobs: int
    request_id: str


def build_request(
    prompt: str | None = None,
    messages: Sequence[Turn] = (),
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    max_new_tokens: int | None = None,
    min_new_tokens: int | None = None,
    stop: Sequence[str] = (),
    include_stop_sequence: bool = False,
    time_limit_ms: int | None = None,
    logprobs: bool = False,
    top_logprobs: int = 0,
    request_id: str = "",
) -> pb.GenerateRequest:
    """A GenerateRequest; give a `prompt` for raw text or `messages` for the chat template."""
    sampling = pb.SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        seed=seed,
    )
    stopping = pb.StoppingCriteria(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        stop_sequences=list(stop),
        include_stop_sequence=include_stop_sequence,
        time_limit_ms=time_limit_ms,
    )
    return pb.GenerateRequest(
        prompt=prompt,
        messages=chat_messages(messages),
        sampling=sampling,
        stopping=stopping,
        options=pb.OutputOptions(logprobs=logprobs, top_logprobs=top_logprobs),
        request_id=request_id,
    )


def generate_request(
    request: pb.GenerateRequest | str | None, params: GenerateParams
) -> pb.GenerateRequest:
    """What `generate(...)` was given: a ready request, or a prompt and keyword arguments."""
    if isinstance(request, pb.GenerateRequest):
        if params:
            raise TypeError("pass either a GenerateRequest or keyword arguments, not both")
        return request
    return build_request(request, **params)


def stream_request(request: pb.GenerateRequest) -> pb.GenerateStreamRequest:
    """The two request messages share every field number, so the bytes of one parse as the other."""
    return pb.GenerateStreamRequest.FromString(request.SerializeToString())


def tokenize_request(prompt: str | None, messages: Sequence[Turn]) -> pb.TokenizeRequest:
    return pb.TokenizeRequest(prompt=prompt, messages=chat_messages(messages))


def chat_messages(messages: Sequence[Turn]) -> list[pb.ChatMessage]:
    return [pb.ChatMessage(role=role, content=content) for role, content in messages]


@dataclass(slots=True)
class WatchCursor:
    """Where a watched job's stream stands, so a reconnect resumes without repeating tokens."""

    job_id: str
    from_index: int = 0
    started_seen: bool = False

    def request(self) -> jobs_pb2.WatchJobRequest:
        return jobs_pb2.WatchJobRequest(job_id=self.job_id, from_index=self.from_index)

    def accept(self, response: jobs_pb2.WatchJobResponse) -> pb.GenerateStreamResponse | None:
        """The event to hand on, or None for the `started` a resumed stream sends again."""
        event = response.event
        if event.HasField("started"):
            if self.started_seen:
                return None
            self.started_seen = True
        elif event.HasField("delta"):
            self.from_index = event.delta.generated_token_count
        return event
