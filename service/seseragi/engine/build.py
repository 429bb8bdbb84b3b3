"""Build the engine and its sequences the same way in the server thread and the core process."""

from __future__ import annotations

from seseragi.config import Settings
from seseragi.engine.detokenizer import Decoder, IncrementalDetokenizer
from seseragi.engine.engine import Engine, EngineConfig
from seseragi.engine.model_runner import ModelRunner
from seseragi.engine.sequence import EventSink, Sequence
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import Request
from seseragi.model.loader import LoadedModel


def make_engine(loaded: LoadedModel, settings: Settings) -> Engine:
    info = loaded.info
    config = EngineConfig(
        max_running=settings.max_running_requests,
        max_waiting=settings.max_queued_requests,
        max_prefill_tokens=settings.max_prefill_tokens,
        context_length=info.context_length,
        eos_token_ids=info.eos_token_ids,
    )
    runner = ModelRunner(loaded.model, info.eos_token_ids, info.pad_token_id)
    return Engine(runner, config)


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
