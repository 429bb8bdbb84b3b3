"""The tokenizer as the server needs it: render chat, encode, decode. Hides transformers' API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHAT_ROLES = ("system", "user", "assistant")


class TextTokenizer:
    def __init__(self, hf_tokenizer: Any) -> None:
        self._tok = hf_tokenizer
        self.has_chat_template = bool(getattr(hf_tokenizer, "chat_template", None))

    @property
    def hf_tokenizer(self) -> Any:
        """The transformers tokenizer, for libraries that index its vocabulary (grammars)."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Token ids below this are valid (the model's embedding may be larger)."""
        return len(self._tok)

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        """The text the model sees for a conversation, ending with the assistant's turn."""
        turns = [{"role": role, "content": content} for role, content in messages]
        text: str = self._tok.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return text

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        ids: list[int] = self._tok(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def encode_chat(self, messages: Sequence[tuple[str, str]]) -> tuple[str, list[int]]:
        """Rendered text and its ids; the template already holds any special tokens."""
        text = self.render_chat(messages)
        return text, self.encode(text, add_special_tokens=False)

    def decode(self, token_ids: Sequence[int]) -> str:
        text: str = self._tok.decode(list(token_ids), skip_special_tokens=True)
        return text

    def token_text(self, token_id: int) -> str:
        """One token's own text (may be part of a character), for logprob listings."""
        text: str = self._tok.decode([token_id], skip_special_tokens=False)
        return text
