"""One streamed choice whose text may hold tool calls ("auto"), as OpenAI's chunks.

Text goes out as content deltas as soon as the parser knows it is no call; a call goes out as one
`tool_calls` delta (index, id, type, name and all its arguments) once it is complete. Like a plain
stream, the last chunk waits for the choice's end so it can carry `finish_reason`, which is
"tool_calls" when the model called anything.
"""

from __future__ import annotations

from seseragi.api.http import formatting, schemas, tool_calls
from seseragi_contract.v1 import generation_pb2 as pb

Chunk = schemas.ChatCompletionChunk | schemas.Completion


class ToolChoiceStream:
    def __init__(self, env: formatting.Envelope, index: int, parser: tool_calls.Parser) -> None:
        self._env = env
        self._index = index
        self._calls = parser.stream()
        self._held: tool_calls.Event | None = None  # the latest event, kept for the finish
        self._logprobs: list[pb.TokenLogprob] = []  # ride on the next chunk that goes out
        self._called = 0

    def add(self, delta: pb.Delta) -> list[Chunk]:
        """The chunks this delta's text lets go out."""
        self._logprobs.extend(delta.logprobs)
        return self._send(self._calls.feed(delta.text), None)

    def end(self, finish: str) -> list[Chunk]:
        """The rest, the last chunk carrying the finish reason."""
        chunks = self._send(self._calls.end(), finish)
        return chunks or [self._chunk(None, finish)]

    def _send(self, events: list[tool_calls.Event], finish: str | None) -> list[Chunk]:
        if self._held is not None:
            events.insert(0, self._held)
        self._held = None if finish is not None or not events else events.pop()
        last = len(events) - 1
        called = any(isinstance(e, tool_calls.Call) for e in events)
        if finish is not None and (self._called or called):
            finish = "tool_calls"
        return [self._chunk(e, finish if i == last else None) for i, e in enumerate(events)]

    def _chunk(self, event: tool_calls.Event | None, finish: str | None) -> Chunk:
        logprobs, self._logprobs = self._logprobs, []
        if isinstance(event, tool_calls.Call):
            self._called += 1
            return formatting.tool_call_chunk(
                self._env,
                self._index,
                formatting.openai_calls([event]),
                finish,
                first=self._called - 1,
                logprobs=logprobs,
            )
        piece = None if event is None else pb.Delta(text=event, logprobs=logprobs)
        return formatting.chunk(self._env, self._index, piece, finish)
