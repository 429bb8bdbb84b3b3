"""A model's own tool calls found in its text, for `tool_choice` "auto" (vLLM's tool parsers).

Which text is a call depends on the chat template: one that mentions `<tool_call>` (Hermes,
Qwen) teaches `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, anywhere and
several; any other gets Seseragi's tool listing and answers with the call's JSON object (or a list
of them) as its whole text, as vLLM's `llama3_json` parser reads it. A call must name one of the
request's tools and carry an object of arguments (`parameters` is read as `arguments`; a string
holding a JSON object is read as that object); anything else stays content.

`CallStream` reads the text as it streams and holds back only what could still become a call, so
non-streaming answers are the same reading run over the whole text at once.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
CALL_KEYS = ({"name", "arguments"}, {"name", "parameters"})


class Format(enum.Enum):
    TAGGED = "tagged"  # <tool_call>{...}</tool_call> blocks (vLLM's `hermes`)
    JSON = "json"  # the whole answer is the call's JSON (vLLM's `llama3_json`)


def format_for(chat_template: str) -> Format:
    """The call format a chat template teaches its model."""
    return Format.TAGGED if OPEN in chat_template else Format.JSON


@dataclass(frozen=True, slots=True)
class Call:
    """One call: the function's name and its arguments as JSON text (OpenAI's shape)."""

    name: str
    arguments: str


Event = str | Call  # a piece of content, or a call


@dataclass(frozen=True, slots=True)
class Reading:
    """A whole answer read: its content (None when it was only calls) and its calls."""

    content: str | None
    calls: list[Call]


@dataclass(frozen=True, slots=True)
class Parser:
    """How one request's answers are read: its template's format and its tools' names."""

    fmt: Format
    names: frozenset[str]

    def stream(self) -> CallStream:
        return CallStream(self.fmt, self.names)

    def read(self, text: str) -> Reading:
        return read(text, self.fmt, self.names)


def read(text: str, fmt: Format, names: Collection[str]) -> Reading:
    """The whole answer's content and calls, exactly as streaming it would give them."""
    stream = CallStream(fmt, names)
    events = stream.feed(text) + stream.end()
    calls = [e for e in events if isinstance(e, Call)]
    content = "".join(e for e in events if isinstance(e, str))
    return Reading(content if content or not calls else None, calls)


def calls_in(text: str, names: Collection[str]) -> list[Call] | None:
    """The calls a JSON text is (an object or a list of them), or None when it is not only calls
    to the named functions."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call(item, names) for item in items]
    if not items or None in calls:
        return None
    return [c for c in calls if c is not None]


@dataclass(slots=True)
class CallStream:
    """Text in, content and calls out, holding back only what may still turn out to be a call.

    Whitespace next to a call is dropped (held until the next content shows it is inside text); an
    answer without calls comes out exactly as it went in."""

    fmt: Format
    names: Collection[str]
    _buffer: str = ""
    _in_call: bool = False
    _deciding: bool = True  # JSON: no visible character yet, so it may still be a call
    _plain: bool = False  # JSON: the answer is text; everything passes through
    _space: str = ""  # trailing whitespace of the content so far, held
    _called: bool = False
    _after_call: bool = False  # whitespace between leading calls and the text is dropped
    _shown: bool = False  # some content went out
    _events: list[Event] = field(default_factory=list)

    def feed(self, text: str) -> list[Event]:
        self._buffer += text
        if self.fmt is Format.TAGGED:
            self._tagged()
        else:
            self._json()
        return self._take()

    def end(self) -> list[Event]:
        """What was still held, once the answer is over."""
        if self._in_call:
            self._block(self._buffer, self._buffer.removeprefix(OPEN))
        elif self.fmt is Format.JSON and not self._plain:
            calls = calls_in(self._buffer, self.names) if self._buffer.strip() else None
            for call in calls or []:
                self._add_call(call)
            if calls is None:
                self._add_text(self._buffer)
        else:
            self._add_text(self._buffer)
        self._buffer = ""
        if not self._called and self._space:
            self._events.append(self._space)
            self._space = ""
        return self._take()

    def _tagged(self) -> None:
        while True:
            if self._in_call:
                close = self._buffer.find(CLOSE)
                if close < 0:
                    return
                block, self._buffer = (
                    self._buffer[: close + len(CLOSE)],
                    self._buffer[close + len(CLOSE) :],
                )
                self._block(block, block[len(OPEN) : close])
                self._in_call = False
                continue
            start = self._buffer.find(OPEN)
            if start < 0:
                keep = _partial_tag(self._buffer)
                self._add_text(self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return
            self._add_text(self._buffer[:start])
            self._buffer = self._buffer[start:]
            self._in_call = True

    def _block(self, block: str, inside: str) -> None:
        """One `<tool_call>` block: a call when it holds exactly one, else its text as content."""
        calls = calls_in(inside, self.names)
        if calls is not None and len(calls) == 1:
            self._add_call(calls[0])
        else:
            self._add_text(block)

    def _json(self) -> None:
        if self._deciding and self._buffer.strip():
            self._deciding = False
            self._plain = self._buffer.lstrip()[0] not in "{["
        if self._plain:
            self._add_text(self._buffer)
            self._buffer = ""

    def _add_text(self, text: str) -> None:
        if self._after_call:
            text = text.lstrip()
        visible = text.rstrip()
        if not visible:
            self._space += text
            return
        self._events.append(self._space + visible)
        self._space = text[len(visible) :]
        self._after_call, self._shown = False, True

    def _add_call(self, call: Call) -> None:
        self._events.append(call)
        self._space = ""
        self._called = True
        self._after_call = not self._shown

    def _take(self) -> list[Event]:
        taken, self._events = self._events, []
        return taken


def _partial_tag(text: str) -> int:
    """How many of the text's last characters could be the start of `<tool_call>`."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


def _call(item: Any, names: Collection[str]) -> Call | None:
    """A call object: `name` and exactly one of `arguments`/`parameters`, and nothing else (an
    object that also has a `description` is a model repeating a function's definition)."""
    if not isinstance(item, dict) or set(item) not in (
        {"name", "arguments"},
        {"name", "parameters"},
    ):
        return None
    name = item["name"]
    arguments = item.get("arguments", item.get("parameters"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, parse_constant=_not_json)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(arguments, dict):
        return None
    return Call(name, json.dumps(arguments, ensure_ascii=False))


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")
