"""Per-request state inside the engine: what was generated, what is held back, and when."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from seseragi.engine.detokenizer import Decoder, IncrementalDetokenizer
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import Event, Request, TokenLogprob


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


EventSink = Callable[[Event], None]


@dataclass(slots=True)
class Sequence:
    seq_id: int
    request: Request
    detokenizer: IncrementalDetokenizer
    stop_matcher: StopSequenceMatcher
    sink: EventSink
    arrival_time: float
    status: SequenceStatus = SequenceStatus.WAITING
    output_token_ids: list[int] = field(default_factory=list)
    unsent_token_ids: list[int] = field(default_factory=list)
    unsent_logprobs: list[TokenLogprob] = field(default_factory=list)
    block_table: list[int] = field(default_factory=list)  # KV blocks, in token order
    computed: int = 0  # leading tokens whose keys/values are in the cache
    registered_blocks: int = 0  # leading blocks keyed in the prefix cache
    cached_tokens: int = 0  # prompt tokens found in the prefix cache at admission
    scheduled_time: float | None = None
    first_token_time: float | None = None
    last_token_time: float | None = None

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_token_ids)

    @property
    def total_len(self) -> int:
        return self.prompt_len + len(self.output_token_ids)

    @property
    def uncomputed(self) -> int:
        """Known tokens not yet in the cache: the prompt's rest, or 1 (the newest output)."""
        return self.total_len - self.computed

    def token_ids(self, start: int = 0, stop: int | None = None) -> list[int]:
        """Prompt and output tokens [start, stop) as one list."""
        stop = self.total_len if stop is None else stop
        prompt = self.request.prompt_token_ids
        head = list(prompt[start:stop])
        if stop > len(prompt):
            head += self.output_token_ids[max(start - len(prompt), 0) : stop - len(prompt)]
        return head


def make_sequence(
    seq_id: int, request: Request, decoder: Decoder, arrival_time: float, sink: EventSink
) -> Sequence:
    return Sequence(
        seq_id=seq_id,
        request=request,
        detokenizer=IncrementalDetokenizer(decoder, request.prompt_token_ids),
        stop_matcher=StopSequenceMatcher(
            request.stopping.stop_sequences,
            include_stop_sequence=request.stopping.include_stop_sequence,
        ),
        sink=sink,
        arrival_time=arrival_time,
    )
