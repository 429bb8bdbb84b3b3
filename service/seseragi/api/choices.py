"""The n choices of one request, run and reported as protobuf events for every face.

Each choice is its own engine request (`Generations.expand`); this module relays their events
(runtime/relay.py) as `Delta`/`Final` messages carrying the choice index, whether they come live
or from the result cache, and gathers them into one `GenerateResponse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from seseragi.api.convert import responses
from seseragi.api.generations import CacheLookup, Generations
from seseragi.cache.result_cache import CACHE_HEADER
from seseragi.engine.handle import RequestHandle
from seseragi.engine.types import Request, TextDelta
from seseragi.runtime import relay
from seseragi.runtime.backend import Backend
from seseragi_contract.v1 import generation_pb2 as pb

Piece = pb.Delta | pb.Final


@dataclass(slots=True)
class Run:
    """Admitted choices (or a cache hit, with no handles) of one request."""

    generations: Generations
    backend: Backend
    requests: list[Request]
    cache: CacheLookup
    handles: list[RequestHandle] = field(default_factory=list)

    def admit(self) -> None:
        """Admit every choice or none: a refusal aborts the ones already admitted."""
        try:
            for request in self.requests:
                self.handles.append(self.generations.admit(self.backend, request))
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop whatever still runs (harmless for ended ones); the slots free at the next step."""
        for handle in self.handles:
            handle.abort()

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The response headers: whether the answer came from the result cache."""
        return ((CACHE_HEADER, self.cache.outcome),)

    @property
    def queued(self) -> bool:
        return any(handle.is_queued for handle in self.handles)


async def events(run: Run, idle_s: float | None = None) -> AsyncIterator[Piece | None]:
    """Every choice's deltas and Final, live or from the cache; `None` after `idle_s` of silence."""
    if run.cache.response is not None:
        for cached in responses.replay(run.cache.response)[1:]:
            yield cached.delta if cached.HasField("delta") else cached.final
        return
    collected = responses.Collected()
    async for item in relay.merged(run.handles, idle_s):
        if item is None:
            yield None
            continue
        index, event = item
        if isinstance(event, TextDelta):
            piece = responses.delta(event, run.backend.tokenizer)
            piece.choice_index = index
            collected.add(piece)
            yield piece
            continue
        run.generations.finished(run.backend, run.handles[index], event)
        request = run.requests[index]
        last = responses.final(event, request.request_id, request.sampling.seed)
        last.choice_index = index
        if len(run.requests) == 1:
            await run.generations.remember(run.cache.key, collected.response(last))
        yield last


class Gathered:
    """The pieces of every choice, as one `GenerateResponse` (choice 0 on top, all in `choices`)."""

    def __init__(self, count: int) -> None:
        self._collected = [responses.Collected() for _ in range(count)]
        self._finals: list[pb.Final | None] = [None] * count

    def add(self, piece: Piece) -> None:
        if isinstance(piece, pb.Delta):
            self._collected[piece.choice_index].add(piece)
        else:
            self._finals[piece.choice_index] = piece

    @property
    def complete(self) -> bool:
        return all(last is not None for last in self._finals)

    def response(self) -> pb.GenerateResponse:
        responses = [
            collected.response(last)
            for collected, last in zip(self._collected, self._finals, strict=True)
            if last is not None
        ]
        top = responses[0]
        if len(responses) > 1:
            top.choices.extend(
                pb.Choice(
                    index=i,
                    text=r.text,
                    token_ids=r.token_ids,
                    stop_reason=r.stop_reason,
                    stop_sequence=r.stop_sequence,
                    usage=r.usage,
                    seed=r.seed,
                    logprobs=r.logprobs,
                )
                for i, r in enumerate(responses)
            )
        return top

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Trailing usage metadata over all choices (output tokens summed)."""
        finals = [last for last in self._finals if last is not None]
        reason = dict(responses.response_metadata(self.response()))["x-stop-reason"]
        return (
            ("x-usage-input-tokens", str(finals[0].usage.input_tokens)),
            ("x-usage-output-tokens", str(sum(f.usage.output_tokens for f in finals))),
            ("x-stop-reason", reason),
        )
