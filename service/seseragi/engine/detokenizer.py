"""Incremental detokenization: text appears as soon as it is complete, never as U+FFFD halves.

The prefix/read-offset scheme of TGI and vLLM: decode a small window of recent tokens twice
(with and without the newest ones) and emit only the difference, once it ends in whole characters.
Decoding with the window keeps the spacing that tokenizers derive from neighbouring tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_CONTEXT_TOKENS = 5  # prompt tokens kept as left context for the first decode
_REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    def decode(self, token_ids: Sequence[int]) -> str: ...


class IncrementalDetokenizer:
    def __init__(self, decoder: Decoder, prompt_token_ids: Sequence[int]) -> None:
        self._decoder = decoder
        self._ids = list(prompt_token_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (often all of it, sometimes nothing yet)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Return whatever is still held back, even an incomplete character."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        prefix_text = self._decoder.decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decoder.decode(self._ids[self._prefix_offset :])
        if len(full_text) <= len(prefix_text) and not final:
            return ""
        if full_text.endswith(_REPLACEMENT) and not final:
            return ""
        delta = full_text[len(prefix_text) :]
        # Slide the window: what was read becomes the new prefix; drop what no decode needs.
        del self._ids[: self._read_offset]
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        return delta
