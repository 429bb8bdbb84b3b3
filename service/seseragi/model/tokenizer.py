"""The tokenizer as the server needs it: render chat, encode, decode. Hides transformers' API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

CHAT_ROLES = ("system", "user", "assistant")
Tools = Sequence[dict[str, Any]]  # OpenAI's tool objects: {"type": "function", "function": {...}}
TOOLS_PREAMBLE = (
    "You can call these functions. To call one, answer with only"
    ' {"name": <function name>, "arguments": <JSON object of its arguments>}:'
)


class TextTokenizer:
    def __init__(self, hf_tokenizer: Any) -> None:
        self._tok = hf_tokenizer
        self.chat_template = str(getattr(hf_tokenizer, "chat_template", "") or "")
        self.has_chat_template = bool(self.chat_template)
        # A template that mentions tools renders them itself (transformers passes `tools`).
        self.renders_tools = "tools" in self.chat_template

    @property
    def hf_tokenizer(self) -> Any:
        """The transformers tokenizer, for libraries that index its vocabulary (grammars)."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Token ids below this are valid (the model's embedding may be larger)."""
        return len(self._tok)

    def render_chat(self, messages: Sequence[tuple[str, str]], tools: Tools = ()) -> str:
        """The text the model sees for a conversation, ending with the assistant's turn. Tools go
        through the template when it renders them, else into a system message of our own."""
        turns = [{"role": role, "content": content} for role, content in messages]
        extra: dict[str, Any] = {}
        if tools and self.renders_tools:
            extra["tools"] = list(tools)
        elif tools:
            turns = _with_tools_in_system(turns, tools)
        text: str = self._tok.apply_chat_template(
            turns, add_generation_prompt=True, tokenize=False, **extra
        )
        return text

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        ids: list[int] = self._tok(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def encode_chat(
        self, messages: Sequence[tuple[str, str]], tools: Tools = ()
    ) -> tuple[str, list[int]]:
        """Rendered text and its ids; the template already holds any special tokens."""
        text = self.render_chat(messages, tools)
        return text, self.encode(text, add_special_tokens=False)

    def decode(self, token_ids: Sequence[int]) -> str:
        text: str = self._tok.decode(list(token_ids), skip_special_tokens=True)
        return text

    def token_text(self, token_id: int) -> str:
        """One token's own text (may be part of a character), for logprob listings."""
        text: str = self._tok.decode([token_id], skip_special_tokens=False)
        return text


def _with_tools_in_system(turns: list[dict[str, str]], tools: Tools) -> list[dict[str, str]]:
    """The tools' JSON appended to the system message (one is added when there is none)."""
    listing = "\n".join(json.dumps(tool.get("function", tool)) for tool in tools)
    text = f"{TOOLS_PREAMBLE}\n{listing}"
    if turns and turns[0]["role"] == "system":
        return [{"role": "system", "content": f"{turns[0]['content']}\n\n{text}"}, *turns[1:]]
    return [{"role": "system", "content": text}, *turns]
