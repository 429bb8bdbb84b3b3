"""Turning each new token into the events a caller sees: text deltas, then one Finished."""

from __future__ import annotations

from seseragi.engine.model_runner import TokenOutput
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Event, Finished, StopReason, TextDelta, Timings


class OutputProcessor:
    def __init__(self, eos_token_ids: tuple[int, ...], context_length: int) -> None:
        self._eos_token_ids = frozenset(eos_token_ids)
        self._context_length = context_length

    def process(self, seq: Sequence, output: TokenOutput, now: float) -> tuple[list[Event], bool]:
        """Record one token; return the events to send and whether the sequence is done."""
        if seq.first_token_time is None:
            seq.first_token_time = now
        seq.last_token_time = now
        token_id = output.token_id
        seq.output_token_ids.append(token_id)
        seq.unsent_token_ids.append(token_id)
        if output.logprob is not None:
            seq.unsent_logprobs.append(output.logprob)
        stopping = seq.request.stopping
        is_eos = token_id in self._eos_token_ids and not stopping.ignore_eos
        is_stop_token = token_id in stopping.stop_token_ids
        text = "" if is_eos or is_stop_token else seq.detokenizer.push(token_id)
        text, stop_sequence = seq.stop_matcher.push(text)
        reason = (
            StopReason.STOP_SEQUENCE
            if stop_sequence is not None
            else self._limit_reason(seq, now, is_eos, is_stop_token)
        )
        if reason is not None and reason is not StopReason.STOP_SEQUENCE:
            text += seq.stop_matcher.push(seq.detokenizer.flush())[0] + seq.stop_matcher.flush()
        events: list[Event] = []
        if text or (reason is not None and seq.unsent_token_ids):
            events.append(self._delta(seq, text))
        if reason is not None:
            events.append(self._finished(seq, reason, stop_sequence or "", now))
        return events, reason is not None

    def _limit_reason(
        self, seq: Sequence, now: float, is_eos: bool, is_stop_token: bool
    ) -> StopReason | None:
        stopping = seq.request.stopping
        if is_eos:
            return StopReason.END_OF_SEQUENCE
        if is_stop_token:
            return StopReason.STOP_TOKEN
        if len(seq.output_token_ids) >= stopping.max_new_tokens:
            return StopReason.MAX_TOKENS
        if seq.total_len >= self._context_length:
            return StopReason.CONTEXT_LENGTH
        if stopping.time_limit_s is not None and now - seq.arrival_time >= stopping.time_limit_s:
            return StopReason.TIME_LIMIT
        return None

    @staticmethod
    def _delta(seq: Sequence, text: str) -> TextDelta:
        delta = TextDelta(
            text, seq.unsent_token_ids, len(seq.output_token_ids), seq.unsent_logprobs
        )
        seq.unsent_token_ids, seq.unsent_logprobs = [], []
        return delta

    @staticmethod
    def _finished(seq: Sequence, reason: StopReason, stop_sequence: str, now: float) -> Finished:
        scheduled = seq.scheduled_time if seq.scheduled_time is not None else now
        first_token = seq.first_token_time if seq.first_token_time is not None else now
        timings = Timings(
            queue_s=scheduled - seq.arrival_time,
            time_to_first_token_s=first_token - seq.arrival_time,
            decode_s=now - first_token,
            total_s=now - seq.arrival_time,
        )
        return Finished(reason, stop_sequence, seq.prompt_len, len(seq.output_token_ids), timings)
