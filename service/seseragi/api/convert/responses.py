"""From engine events and model facts to protobuf messages."""

from __future__ import annotations

from google.protobuf import duration_pb2

from seseragi.api import identity
from seseragi.engine.types import Finished, Request, StopReason, TextDelta, TokenLogprob
from seseragi.model.loader import ModelInfo
from seseragi.model.tokenizer import TextTokenizer
from seseragi.settings import ServeSettings
from seseragi_contract.v1 import generation_pb2 as pb

STOP_REASONS = {
    StopReason.MAX_TOKENS: pb.STOP_REASON_MAX_TOKENS,
    StopReason.END_OF_SEQUENCE: pb.STOP_REASON_END_OF_SEQUENCE,
    StopReason.STOP_SEQUENCE: pb.STOP_REASON_STOP_SEQUENCE,
    StopReason.TIME_LIMIT: pb.STOP_REASON_TIME_LIMIT,
    StopReason.CONTEXT_LENGTH: pb.STOP_REASON_CONTEXT_LENGTH,
    StopReason.STOP_TOKEN: pb.STOP_REASON_STOP_TOKEN,
}


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return value


def logprobs(items: list[TokenLogprob], tokenizer: TextTokenizer) -> list[pb.TokenLogprob]:
    return [
        pb.TokenLogprob(
            token_id=item.token_id,
            token=tokenizer.token_text(item.token_id),
            logprob=item.logprob,
            top_logprobs=[
                pb.TopLogprob(token_id=tid, token=tokenizer.token_text(tid), logprob=lp)
                for tid, lp in item.top
            ],
        )
        for item in items
    ]


def delta(event: TextDelta, tokenizer: TextTokenizer) -> pb.Delta:
    return pb.Delta(
        text=event.text,
        token_ids=event.token_ids,
        generated_token_count=event.generated_token_count,
        logprobs=logprobs(event.logprobs, tokenizer),
    )


def final(event: Finished, request_id: str, seed: int) -> pb.Final:
    return pb.Final(
        request_id=request_id,
        stop_reason=STOP_REASONS[event.stop_reason],
        stop_sequence=event.stop_sequence,
        usage=pb.Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens),
        timings=pb.Timings(
            queue=_duration(event.timings.queue_s),
            time_to_first_token=_duration(event.timings.time_to_first_token_s),
            decode=_duration(event.timings.decode_s),
            total=_duration(event.timings.total_s),
        ),
        seed=seed,
    )


def generate_response(
    last: pb.Final, text: str, token_ids: list[int], token_logprobs: list[pb.TokenLogprob]
) -> pb.GenerateResponse:
    """The unary result: the joined deltas plus every field of the stream's Final."""
    return pb.GenerateResponse(
        request_id=last.request_id,
        text=text,
        token_ids=token_ids,
        stop_reason=last.stop_reason,
        stop_sequence=last.stop_sequence,
        usage=last.usage,
        timings=last.timings,
        seed=last.seed,
        logprobs=token_logprobs,
        cached=last.cached,
    )


def usage_metadata(event: Finished) -> tuple[tuple[str, str], ...]:
    """Trailing metadata so a proxy can meter calls without parsing messages."""
    return (
        ("x-usage-input-tokens", str(event.input_tokens)),
        ("x-usage-output-tokens", str(event.output_tokens)),
        ("x-stop-reason", event.stop_reason.value),
    )


def response_metadata(response: pb.GenerateResponse) -> tuple[tuple[str, str], ...]:
    """The same trailing metadata as `usage_metadata`, for a result that did not run now."""
    reason = next(ours for ours, theirs in STOP_REASONS.items() if theirs == response.stop_reason)
    return (
        ("x-usage-input-tokens", str(response.usage.input_tokens)),
        ("x-usage-output-tokens", str(response.usage.output_tokens)),
        ("x-stop-reason", reason.value),
    )


def model_info(info: ModelInfo, settings: ServeSettings, *, chat: bool) -> pb.GetModelInfoResponse:
    return pb.GetModelInfoResponse(
        model_id=info.model_id,
        revision=info.revision,
        dtype=info.dtype,
        device=info.device,
        quantization=pb.Quantization(method=info.quantization, bits=info.quantization_bits),
        context_length=info.context_length,
        limits=pb.ServerLimits(
            max_input_tokens=min(settings.max_input_tokens, info.context_length - 1),
            max_new_tokens=settings.max_new_tokens,
            default_max_new_tokens=settings.default_max_new_tokens,
            default_temperature=settings.default_temperature,
            max_stop_sequences=settings.max_stop_sequences,
            max_stop_sequence_length=settings.max_stop_sequence_length,
            max_top_logprobs=settings.max_top_logprobs,
            max_running_requests=settings.max_running_requests,
            max_queued_requests=settings.max_queued_requests,
            max_request_bytes=settings.max_request_bytes,
            max_response_bytes=settings.max_response_bytes,
            heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        ),
        capabilities=pb.Capabilities(
            chat=chat,
            logprobs=True,
            seeded_sampling=True,
            stop_sequences=True,
            structured_output=True,
        ),
        identity_enforced=identity.enforced(settings.edge_secret),
    )


class Collected:
    """The deltas of one generation, gathered into the whole `GenerateResponse`."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: list[pb.TokenLogprob] = []

    def add(self, piece: pb.Delta) -> None:
        self.text.append(piece.text)
        self.token_ids.extend(piece.token_ids)
        self.logprobs.extend(piece.logprobs)

    def response(self, last: pb.Final) -> pb.GenerateResponse:
        return generate_response(last, "".join(self.text), self.token_ids, self.logprobs)


def from_cache(
    kept: pb.GenerateResponse, request_id: str, seed: int, elapsed_s: float
) -> pb.GenerateResponse:
    """A cached result as this call's answer: its own id and seed, no queue, marked cached."""
    response = pb.GenerateResponse()
    response.CopyFrom(kept)
    response.request_id = request_id
    response.seed = seed
    response.cached = True
    response.timings.CopyFrom(
        pb.Timings(
            queue=_duration(0),
            time_to_first_token=_duration(elapsed_s),
            decode=_duration(0),
            total=_duration(elapsed_s),
        )
    )
    return response


def started(request: Request, queue_position: int = 0) -> pb.Started:
    """What a stream (or a job) says first: the request's id, input size, seed and queue place."""
    return pb.Started(
        request_id=request.request_id,
        input_token_count=len(request.prompt_token_ids),
        seed=request.sampling.seed,
        queue_position=queue_position,
    )


def replay(response: pb.GenerateResponse) -> list[pb.GenerateStreamResponse]:
    """A whole result as the events of a stream: started, one delta, final."""
    started = pb.Started(
        request_id=response.request_id,
        input_token_count=response.usage.input_tokens,
        seed=response.seed,
    )  # a replay's facts come from the stored response, not from an engine request
    piece = pb.Delta(
        text=response.text,
        token_ids=response.token_ids,
        generated_token_count=response.usage.output_tokens,
        logprobs=response.logprobs,
    )
    last = pb.Final(
        request_id=response.request_id,
        stop_reason=response.stop_reason,
        stop_sequence=response.stop_sequence,
        usage=response.usage,
        timings=response.timings,
        seed=response.seed,
        cached=response.cached,
    )
    events = [pb.GenerateStreamResponse(started=started)]
    if response.token_ids:
        events.append(pb.GenerateStreamResponse(delta=piece))
    return [*events, pb.GenerateStreamResponse(final=last)]
