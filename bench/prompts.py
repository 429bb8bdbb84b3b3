"""Prompts rendered once, in this process, to token ids that every engine receives unchanged.

vLLM gets the ids; Seseragi gets the rendered text as a raw `prompt`, which it encodes back to
the very same ids (checked here, and by the usage count every Seseragi call returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.workload import PROMPTS

PROMPT_TOKENS = 48
# Appended to a short question and cut at a token boundary, so every prompt reaches its length.
FILLER = (
    " Please answer in a few clear sentences, give one concrete example from everyday life,"
    " and keep the words simple enough for a general reader who is new to the subject."
)
# Plain sentences that long prompts (a long system prompt, documents to summarize) are built from.
SENTENCES: tuple[str, ...] = (
    "Answer the question that the user asks, and say so plainly when you do not know.",
    "Keep every answer short unless the user asks for detail.",
    "Prefer concrete examples from daily life over abstract definitions.",
    "When the user asks for steps, give them as a numbered list.",
    "Never invent quotations, numbers or sources.",
    "If a request is ambiguous, state the reading you chose before you answer.",
    "Use metric units and give the imperial equivalent in brackets.",
    "Write dates as day, month name and year.",
    "Do not repeat the question back to the user.",
    "Avoid jargon; when a technical term is needed, explain it in one sentence.",
    "Stay polite and calm even when the user is not.",
    "For cooking questions, mention food safety where it matters.",
    "For health questions, suggest seeing a professional for anything serious.",
    "For money questions, explain the risk as well as the benefit.",
    "When you compare two things, name one way they are alike and one way they differ.",
    "End with a one-line summary when the answer is longer than a paragraph.",
)


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """`text` is what Seseragi receives as a raw prompt; `token_ids` is what vLLM receives."""

    text: str
    token_ids: tuple[int, ...]


def load_tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    """Ids of already rendered text; the template holds the special tokens."""
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def render(tokenizer: Any, messages: Sequence[dict[str, str]]) -> RenderedPrompt:
    """Render chat turns (plus the assistant's turn) and check that the text encodes stably."""
    text: str = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=False
    )
    ids = encode(tokenizer, text)
    # Seseragi encodes a raw prompt with add_special_tokens=True: it must add nothing here.
    served = tuple(tokenizer(text, add_special_tokens=True)["input_ids"])
    if served != ids:
        raise ValueError("the tokenizer adds special tokens to a rendered prompt")
    return RenderedPrompt(text, ids)


def exact_chat(tokenizer: Any, question: str, length: int = PROMPT_TOKENS) -> RenderedPrompt:
    """A one-question chat whose rendered form is exactly `length` tokens.

    The question plus FILLER is cut after k of its own tokens, for the smallest k that makes the
    whole rendered prompt `length` tokens long; cutting between tokens can merge across the cut,
    so each candidate is re-rendered and counted rather than computed.
    """
    content_ids = encode(tokenizer, question + FILLER)
    for k in range(1, len(content_ids) + 1):
        content = tokenizer.decode(list(content_ids[:k])).strip()
        rendered = render(tokenizer, [{"role": "user", "content": content}])
        if len(rendered.token_ids) == length:
            return rendered
        if len(rendered.token_ids) > length:
            break
    raise ValueError(f"cannot render {question!r} to exactly {length} tokens")


def workload_prompts(
    tokenizer: Any, count: int, length: int = PROMPT_TOKENS
) -> list[RenderedPrompt]:
    """The first `count` benchmark questions, each rendered to exactly `length` tokens."""
    if not 1 <= count <= len(PROMPTS):
        raise ValueError(f"count must be between 1 and {len(PROMPTS)}, got {count}")
    return [exact_chat(tokenizer, PROMPTS[i], length) for i in range(count)]


def long_text(tokenizer: Any, tokens: int, offset: int = 0) -> str:
    """About `tokens` tokens of plain sentences, starting at sentence `offset` (so texts differ)."""
    parts: list[str] = []
    index = offset
    while len(encode(tokenizer, " ".join(parts))) < tokens:
        sentence = SENTENCES[index % len(SENTENCES)]
        parts.append(f"{index + 1}. {sentence}")
        index += 1
    ids = encode(tokenizer, " ".join(parts))[:tokens]
    text: str = tokenizer.decode(list(ids))
    return text


def long_prompts(tokenizer: Any, count: int, tokens: int) -> list[RenderedPrompt]:
    """`count` distinct requests to summarize about `tokens` tokens of notes each."""
    return [
        render(
            tokenizer,
            [
                {
                    "role": "user",
                    "content": "Summarize these notes:\n" + long_text(tokenizer, tokens, i),
                }
            ],
        )
        for i in range(count)
    ]


def conversation(tokenizer: Any, system_tokens: int, turns: int) -> list[RenderedPrompt]:
    """`turns` requests sharing one long system prompt, each with a different user question."""
    system = long_text(tokenizer, system_tokens)
    return [
        render(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": q}])
        for q in PROMPTS[:turns]
    ]
