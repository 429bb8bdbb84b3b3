"""Structured output as token grammars: compile a spec once per tokenizer, match one row per use.

xgrammar does the work (chosen over llguidance by measurement, docs/structured-output.md). A
compile takes milliseconds to tens of them, so callers compile off the engine thread (request
parsing, or the core's compile pool) and the engine only looks the result up by the spec's hash.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import torch
import xgrammar as xgr

from seseragi.engine.errors import GrammarError
from seseragi.engine.types import StructuredOutput

__all__ = ["GrammarError", "Grammars", "RowGrammar", "grammars_for"]
CACHE_SIZE = 64  # compiled grammars kept per tokenizer, least recently used dropped


class HasHfTokenizer(Protocol):
    @property
    def hf_tokenizer(self) -> Any: ...


_by_tokenizer: weakref.WeakKeyDictionary[Any, Grammars] = weakref.WeakKeyDictionary()
_by_tokenizer_lock = threading.Lock()


def grammars_for(tokenizer: HasHfTokenizer) -> Grammars:
    """The one `Grammars` of a tokenizer, so request parsing and an in-process engine share one
    cache (built on first use: reading the vocabulary takes about half a second)."""
    with _by_tokenizer_lock:
        found = _by_tokenizer.get(tokenizer)
        if found is None:
            hf = tokenizer.hf_tokenizer
            info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=len(hf))
            found = _by_tokenizer[tokenizer] = Grammars(info)
        return found


class Grammars:
    """The grammars of one tokenizer: compiled on demand, cached by the spec's digest."""

    def __init__(self, info: xgr.TokenizerInfo) -> None:
        self._info = info
        self._compiler = xgr.GrammarCompiler(self._info, max_threads=1, cache_enabled=False)
        self._cache: OrderedDict[str, xgr.CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def vocab_size(self) -> int:
        return int(self._info.vocab_size)

    def compile(self, spec: StructuredOutput) -> xgr.CompiledGrammar:
        """The compiled grammar of `spec`, from the cache or compiled now; GrammarError if bad."""
        found = self.cached(spec)
        if found is not None:
            return found
        try:
            compiled = _compile(self._compiler, spec)
        except RuntimeError as exc:
            raise GrammarError(_reason(exc)) from None
        except UnicodeDecodeError:
            # xgrammar cuts a long message at a byte count, sometimes inside a multi-byte
            # character, and its binding then fails to decode the message (found by the fuzzer).
            raise GrammarError("the grammar does not parse") from None
        with self._lock:
            self._cache[spec.key] = compiled
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def cached(self, spec: StructuredOutput) -> xgr.CompiledGrammar | None:
        with self._lock:
            found = self._cache.get(spec.key)
            if found is not None:
                self._cache.move_to_end(spec.key)
            return found

    def compile_later(self, spec: StructuredOutput) -> Future[xgr.CompiledGrammar]:
        """Compile on a worker thread (for a loop that must not wait, like the engine core's)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="grammar")
        return self._pool.submit(self.compile, spec)

    def matcher(self, spec: StructuredOutput) -> RowGrammar:
        """A fresh matcher for one row; the grammar must be compiled already (never here)."""
        compiled = self.cached(spec)
        if compiled is None:
            raise GrammarError("the grammar was not compiled before admission")
        return RowGrammar(xgr.GrammarMatcher(compiled), self.vocab_size)


class RowGrammar:
    """One row's place in its grammar: which tokens may come next, advanced per accepted token."""

    def __init__(self, matcher: xgr.GrammarMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self.vocab_size = vocab_size

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        """Write this row's allowed tokens into `bitmask[row]` (int32 [B, ceil(V / 32)])."""
        self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token_id: int) -> None:
        if not self._matcher.accept_token(token_id):
            raise GrammarError(f"token {token_id} breaks the grammar")


def new_bitmask(rows: int, vocab_size: int) -> torch.Tensor:
    """int32 [rows, ceil(V / 32)], every token allowed."""
    return xgr.allocate_token_bitmask(rows, vocab_size)


def apply_bitmask(
    logits: torch.Tensor, bitmask: torch.Tensor, rows: list[int], vocab_size: int
) -> None:
    """Set disallowed tokens of `rows` of logits [B, V] to -inf in place; other rows untouched.
    Columns past the tokenizer's vocabulary (a padded embedding) are disallowed too."""
    if not rows:
        return
    xgr.apply_token_bitmask_inplace(
        logits, bitmask, vocab_size=min(vocab_size, logits.shape[1]), indices=rows
    )
    if logits.shape[1] > vocab_size:
        logits[rows, vocab_size:] = float("-inf")


def _compile(compiler: xgr.GrammarCompiler, spec: StructuredOutput) -> xgr.CompiledGrammar:
    # Compact JSON: free whitespace lets a small model wander in spaces until max_tokens.
    if spec.kind == "json_schema":
        return compiler.compile_json_schema(_json(spec.spec), any_whitespace=False)
    if spec.kind == "regex":
        return compiler.compile_regex(spec.spec)
    if spec.kind == "grammar":
        return compiler.compile_grammar(spec.spec)
    if spec.kind == "choice":
        return compiler.compile_grammar(_choice_grammar(json.loads(spec.spec)))
    raise GrammarError(f"unknown structured output kind {spec.kind!r}")


def _json(text: str) -> str:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrammarError(f"not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise GrammarError("a JSON schema must be an object")
    return text


def _choice_grammar(choices: list[str]) -> str:
    """EBNF for exactly one of `choices` (JSON string literals are valid EBNF strings)."""
    return "root ::= " + " | ".join(json.dumps(choice) for choice in choices)


def _reason(error: RuntimeError) -> str:
    """xgrammar's message without its C++ source location prefix."""
    text = str(error).strip()
    head, sep, rest = text.partition(": ")
    return rest if sep and ".cc:" in head else text
