"""Turning a batch of logits into next tokens, each row with its own parameters and RNG.

Every operation here is row-wise, so a row's result never depends on which other rows share
the batch: that is what makes seeded and greedy outputs batch-invariant. For the same reason a
row that cannot be sampled fails alone: it gets `ROW_FAILED` and its neighbours go on unchanged.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from seseragi.engine.grammar import GrammarError, Grammars, RowGrammar, apply_bitmask, new_bitmask
from seseragi.engine.types import Request, SamplingParams, TokenLogprob

log = logging.getLogger(__name__)

# A token id no vocabulary has. It marks a row whose sampling failed; the engine fails that
# request and releases its row before the next forward pass, so the id never reaches the model.
ROW_FAILED = -1
# Finite logits are clamped to this: large enough never to touch a real model's logits, small
# enough that dividing by the smallest temperature or repetition penalty we accept stays finite.
LOGIT_BOUND = 1e4


@dataclass(slots=True)
class RowSampler:
    """Per-sequence sampling state: parameters, its own RNG, and what it has seen."""

    params: SamplingParams
    generator: torch.Generator | None
    seen_token_ids: torch.Tensor  # [n] int64: prompt and output, for the repetition penalty
    min_new_tokens: int
    generated: int = 0
    logprobs: bool = False
    top_logprobs: int = 0
    stop_token_ids: tuple[int, ...] = ()  # banned, like end-of-sequence, until min_new_tokens
    output_counts: Counter[int] = field(default_factory=Counter)  # for presence/frequency
    grammar: RowGrammar | None = None  # structured output: only tokens it allows are picked

    @classmethod
    def create(
        cls,
        params: SamplingParams,
        prompt_token_ids: tuple[int, ...],
        *,
        min_new_tokens: int,
        logprobs: bool,
        top_logprobs: int,
        device: torch.device,
        stop_token_ids: tuple[int, ...] = (),
    ) -> RowSampler:
        generator = None
        if not params.greedy:
            generator = torch.Generator(device=device)
            generator.manual_seed(params.seed)
        seen = torch.tensor(prompt_token_ids, dtype=torch.long, device=device)
        return cls(
            params, generator, seen, min_new_tokens, 0, logprobs, top_logprobs, stop_token_ids
        )

    @classmethod
    def for_request(
        cls,
        request: Request,
        device: torch.device,
        grammars: Grammars | None = None,
        generated: tuple[int, ...] = (),
    ) -> RowSampler:
        """The sampler of one request, as every model runner creates it; a structured request's
        grammar is advanced past `generated` (the output so far, when a sequence is replayed)."""
        sampler = cls.create(
            request.sampling,
            request.prompt_token_ids,
            min_new_tokens=request.stopping.min_new_tokens,
            logprobs=request.logprobs,
            top_logprobs=request.top_logprobs,
            device=device,
            stop_token_ids=request.stopping.stop_token_ids,
        )
        if request.structured is not None:
            if grammars is None:
                raise GrammarError("this engine was built without grammars")
            sampler.grammar = grammars.matcher(request.structured)
            for token_id in generated:
                sampler.grammar.accept(token_id)
        return sampler

    def record(self, token_id: int) -> None:
        if self.grammar is not None:
            self.grammar.accept(token_id)
        self.generated += 1
        if self.params.penalizes_output:
            self.output_counts[token_id] += 1
        if self.params.repetition_penalty != 1.0:
            token = torch.tensor([token_id], dtype=torch.long, device=self.seen_token_ids.device)
            self.seen_token_ids = torch.cat([self.seen_token_ids, token])


def sanitize(logits: torch.Tensor) -> torch.Tensor:
    """NaN becomes -inf (never picked); +inf and huge values are clamped to LOGIT_BOUND."""
    minus_inf = float("-inf")
    cleaned = torch.nan_to_num(logits, nan=minus_inf, posinf=LOGIT_BOUND, neginf=minus_inf)
    return cleaned.clamp_(max=LOGIT_BOUND)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> None:
    """CTRL-style penalty, in place on one row [V]: shrink positive logits, grow negative ones."""
    scores = logits.gather(0, seen)
    scores = torch.where(scores > 0, scores / penalty, scores * penalty)
    logits.scatter_(0, seen, scores)


def apply_output_penalties(
    logits: torch.Tensor, counts: Counter[int], presence: float, frequency: float
) -> None:
    """OpenAI's presence and frequency penalties, in place on one row [V], over output tokens."""
    if not counts:
        return
    ids = torch.tensor(list(counts), dtype=torch.long, device=logits.device)
    times = torch.tensor(list(counts.values()), dtype=logits.dtype, device=logits.device)
    logits.index_add_(0, ids, -(presence + frequency * times))


def apply_logit_bias(logits: torch.Tensor, bias: tuple[tuple[int, float], ...]) -> None:
    """Add each (token, bias) to one row [V] in place."""
    ids = torch.tensor([token for token, _ in bias], dtype=torch.long, device=logits.device)
    values = torch.tensor([value for _, value in bias], dtype=logits.dtype, device=logits.device)
    logits.index_add_(0, ids, values)


def apply_openai_adjustments(logits: torch.Tensor, row: RowSampler) -> None:
    """Presence/frequency penalties and logit bias on one row [V], greedy rows included."""
    params = row.params
    if params.penalizes_output:
        apply_output_penalties(
            logits, row.output_counts, params.presence_penalty, params.frequency_penalty
        )
    if params.logit_bias:
        apply_logit_bias(logits, params.logit_bias)


def apply_min_p(probs: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens below min_p times the top probability of one row [V], renormalized."""
    kept = probs.masked_fill(probs < min_p * probs.max(), 0.0)
    return kept / kept.sum()


def logits_to_probs(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> torch.Tensor:
    """One row [V] of logits to a probability vector [V] after temperature, top-k and top-p."""
    logits = sanitize(logits / temperature)
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Drop a token when the mass before it already reaches top_p; the first is always kept.
        drop = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        probs = probs / probs.sum()
    return probs


def sample_rows(
    logits: torch.Tensor, rows: list[RowSampler], eos_token_ids: tuple[int, ...]
) -> list[tuple[int, TokenLogprob | None]]:
    """Pick the next token of every row. logits: [B, V]; returns (token, logprob) per row.

    A row that raises, or whose logits hold no finite value, gets (ROW_FAILED, None).
    """
    raw = logits.float()
    # One pass finds each row's greedy token; NaN propagates into a row's maximum, so when every
    # maximum is finite and within bounds, sanitizing would change no pick and is skipped.
    peak, greedy = raw.max(dim=-1)
    if not bool(torch.isfinite(peak).logical_and_(peak <= LOGIT_BOUND).all()):
        raw = sanitize(raw)
        peak, greedy = raw.max(dim=-1)
    # Sanitized logits hold no NaN or +inf: "no finite value" is "the maximum is -inf".
    usable = (peak > float("-inf")).tolist()
    adjusting = [_adjusts(row, eos_token_ids) for row in rows]
    adjusted = raw.clone() if any(adjusting) else raw  # a batch of plain rows copies nothing
    for index, row in enumerate(rows):
        if not adjusting[index]:
            continue
        try:
            _adjust(adjusted[index], row, eos_token_ids)
        except Exception:  # noqa: BLE001 - one bad row must not fail its neighbours
            log.exception("adjusting logits failed for one row; failing that row only")
            usable[index] = False
    _constrain(raw, adjusted, rows, usable)
    if adjusted is not raw:
        # A row the adjustments left with nothing (only end-of-sequence was finite, and it is
        # not yet allowed) takes the model's own choice rather than an arbitrary -inf token.
        has_choice = adjusted.amax(dim=-1) > float("-inf")
        greedy = torch.where(has_choice, adjusted.argmax(dim=-1), greedy)
    greedy_choice = greedy.tolist()
    results: list[tuple[int, TokenLogprob | None]] = []
    for index, row in enumerate(rows):
        if not usable[index]:
            results.append((ROW_FAILED, None))
            continue
        try:
            results.append(_pick(raw[index], adjusted[index], int(greedy_choice[index]), row))
        except Exception:  # noqa: BLE001 - as above
            log.exception("sampling failed for one row; failing that row only")
            results.append((ROW_FAILED, None))
    return results


def _constrain(
    raw: torch.Tensor, adjusted: torch.Tensor, rows: list[RowSampler], usable: list[bool]
) -> None:
    """Mask the rows that follow a grammar (in place on adjusted [B, V]); free rows cost nothing.

    A grammar row the other adjustments left with no token (min_tokens banning the end its
    grammar requires, a logit bias) starts again from the model's logits: the grammar wins.
    """
    indices = [i for i, row in enumerate(rows) if row.grammar is not None and usable[i]]
    if not indices:
        return
    first = rows[indices[0]].grammar
    assert first is not None
    bitmask = new_bitmask(len(rows), first.vocab_size)
    for index in list(indices):
        try:
            grammar = rows[index].grammar
            assert grammar is not None
            grammar.fill(bitmask, index)
        except Exception:  # noqa: BLE001 - one bad row must not fail its neighbours
            log.exception("filling a grammar mask failed for one row; failing that row only")
            usable[index] = False
            indices.remove(index)
    apply_bitmask(adjusted, bitmask, indices, first.vocab_size)
    # Sanitized logits hold no NaN or +inf, so "no finite value" is "the maximum is -inf".
    best = adjusted[indices].amax(dim=-1).tolist()
    emptied = [i for i, top in zip(indices, best, strict=True) if top == float("-inf")]
    if emptied:
        adjusted[emptied] = raw[emptied]
        apply_bitmask(adjusted, bitmask, emptied, first.vocab_size)


def _adjusts(row: RowSampler, eos_token_ids: tuple[int, ...]) -> bool:
    """Whether `_adjust` or a grammar changes this row's logits at this step."""
    params = row.params
    return (
        row.grammar is not None
        or params.repetition_penalty != 1.0
        or params.penalizes_output
        or bool(params.logit_bias)
        or (row.generated < row.min_new_tokens and bool(eos_token_ids or row.stop_token_ids))
    )


def _adjust(logits: torch.Tensor, row: RowSampler, eos_token_ids: tuple[int, ...]) -> None:
    """In place on one row [V]: penalties and logit bias, and no end-of-sequence or stop token
    before the minimum."""
    if row.params.repetition_penalty != 1.0:
        apply_repetition_penalty(logits, row.seen_token_ids, row.params.repetition_penalty)
    apply_openai_adjustments(logits, row)
    if row.generated < row.min_new_tokens and (eos_token_ids or row.stop_token_ids):
        logits[[*eos_token_ids, *row.stop_token_ids]] = float("-inf")


def _pick(
    raw: torch.Tensor, adjusted: torch.Tensor, greedy_choice: int, row: RowSampler
) -> tuple[int, TokenLogprob | None]:
    """One row's token: greedy, or sampled; a distribution with no mass falls back to greedy."""
    token_id = greedy_choice
    if not row.params.greedy:
        probs = logits_to_probs(
            adjusted, row.params.temperature, row.params.top_k, row.params.top_p
        )
        if row.params.min_p > 0.0:
            probs = apply_min_p(probs, row.params.min_p)
        total = float(probs.sum())  # NaN when any probability is
        if math.isfinite(total) and total > 0:
            token_id = int(torch.multinomial(probs, 1, generator=row.generator).item())
    logprob = _token_logprob(raw, token_id, row.top_logprobs) if row.logprobs else None
    row.record(token_id)
    return token_id, logprob


def _token_logprob(logits: torch.Tensor, token_id: int, top_n: int) -> TokenLogprob:
    """Log-probabilities under the model itself, before any sampling parameter."""
    logprobs = torch.log_softmax(logits, dim=-1)
    top: tuple[tuple[int, float], ...] = ()
    if top_n > 0:
        values, ids = torch.topk(logprobs, top_n)
        top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token_id, float(logprobs[token_id]), top)
