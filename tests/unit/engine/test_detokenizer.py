"""Incremental decoding with the real tokenizer: whole characters only, never U+FFFD."""

from __future__ import annotations

import pytest

from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.model.loader import LoadedModel

pytestmark = pytest.mark.integration

TEXTS = [
    "Plain ASCII, with   spaces and\nnew lines.",
    "Emoji: 🌊🐟✨ and a family 👨‍👩‍👧 end",
    "日本語のテキスト、せせらぎ。中文字符也可以。",
    "Mixed: café — naïve — 한국어 — 🙂",
]


@pytest.mark.parametrize("text", TEXTS)
def test_token_by_token_decoding_reassembles_the_text(loaded_model: LoadedModel, text: str) -> None:
    tokenizer = loaded_model.tokenizer
    prompt = tokenizer.encode("Say something:")
    ids = tokenizer.encode(text, add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer, prompt)
    pieces = [detokenizer.push(token_id) for token_id in ids] + [detokenizer.flush()]
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == text
    assert sum(1 for p in pieces if p) > 3, "text should arrive in several pieces"
