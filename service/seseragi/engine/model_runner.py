"""The only code that runs the model: batched prefill and decode over one left-padded KV cache.

Rows join and leave at token boundaries (TGI's padded-batch scheme): a new request is prefilled
with others that arrive together, then its cache is left-padded and concatenated into the running
batch; finished rows are dropped with an index select, and padding every row shares is trimmed.
Works with any Hugging Face causal LM that takes `position_ids` and a `DynamicCache`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, cast

import torch
import torch.nn.functional as F  # noqa: N812
from transformers import DynamicCache, PreTrainedModel

from seseragi.engine.grammar import Grammars
from seseragi.engine.kv_cache import new_cache
from seseragi.engine.sampling import RowSampler, sample_rows
from seseragi.engine.types import Request, TokenLogprob

if TYPE_CHECKING:
    from seseragi.engine.scheduler import SchedulerPlan
    from seseragi.engine.sequence import Sequence


@dataclass(frozen=True, slots=True)
class TokenOutput:
    """The token one row produced in one step."""

    seq_id: int
    token_id: int
    logprob: TokenLogprob | None


@dataclass(slots=True)
class _Batch:
    """The running batch. cache: [B, heads, L, head_dim] per layer; attention_mask: [B, L]."""

    seq_ids: list[int]
    samplers: list[RowSampler]
    cache: DynamicCache
    attention_mask: torch.Tensor  # [B, L] int64, 0 on left padding
    positions: torch.Tensor  # [B] int64: position of each row's next input token
    last_tokens: torch.Tensor  # [B] int64: each row's newest token, the next decode input


class ModelRunner:
    def __init__(
        self,
        model: PreTrainedModel,
        eos_token_ids: tuple[int, ...],
        pad_token_id: int,
        grammars: Grammars | None = None,
    ) -> None:
        self._model = model
        self._grammars = grammars
        self._device = model.device
        self._eos_token_ids = eos_token_ids
        self._pad_token_id = pad_token_id
        self._batch: _Batch | None = None

    @property
    def size(self) -> int:
        return 0 if self._batch is None else len(self._batch.seq_ids)

    @property
    def cache_tokens(self) -> int:
        """Cache slots in use (rows x padded length), for metrics and admission."""
        batch = self._batch
        return 0 if batch is None else int(batch.attention_mask.numel())

    replays_whole_batch = True  # a failed step may leave the padded batch half-updated

    def replay(self, seq: Sequence, part: SchedulerPlan) -> list[TokenOutput]:
        """Prefill `seq` alone from its prompt and output so far (after `reset`)."""
        return self.prefill([seq.seq_id], [_replay_request(seq)], [tuple(seq.output_token_ids)])

    def run(self, plan: SchedulerPlan) -> list[TokenOutput]:
        """A step of whole prompts, or of one decode for every row (never both: no chunks)."""
        if plan.prefill:
            seqs = [chunk.seq for chunk in plan.prefill]
            return self.prefill([s.seq_id for s in seqs], [s.request for s in seqs])
        return self.decode()

    @torch.inference_mode()
    def prefill(
        self,
        seq_ids: list[int],
        requests: list[Request],
        generated: list[tuple[int, ...]] | None = None,
    ) -> list[TokenOutput]:
        """Run new prompts in one padded forward pass and join them to the batch; `generated`:
        each replayed row's output so far, which its grammar has already matched."""
        prompts = [r.prompt_token_ids for r in requests]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        input_ids, attention_mask = input_ids.to(self._device), attention_mask.to(self._device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache(self._model.config)
        logits = self._forward(input_ids, attention_mask, position_ids, cache)
        done = generated or [()] * len(requests)
        samplers = [self._sampler_for(r, g) for r, g in zip(requests, done, strict=True)]
        picks = sample_rows(logits, samplers, self._eos_token_ids)
        tokens = torch.tensor([token for token, _ in picks], dtype=torch.long, device=self._device)
        lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=self._device)
        self._join(_Batch(seq_ids, samplers, cache, attention_mask, lengths, tokens))
        return [TokenOutput(s, t, lp) for s, (t, lp) in zip(seq_ids, picks, strict=True)]

    @torch.inference_mode()
    def decode(self) -> list[TokenOutput]:
        """One forward pass for every running row: each gets its next token."""
        batch = self._batch
        if batch is None:
            return []
        ones = torch.ones((len(batch.seq_ids), 1), dtype=torch.long, device=self._device)
        batch.attention_mask = torch.cat([batch.attention_mask, ones], dim=1)
        logits = self._forward(
            batch.last_tokens[:, None], batch.attention_mask, batch.positions[:, None], batch.cache
        )
        picks = sample_rows(logits, batch.samplers, self._eos_token_ids)
        batch.positions += 1
        batch.last_tokens = torch.tensor(
            [t for t, _ in picks], dtype=torch.long, device=self._device
        )
        return [TokenOutput(s, t, lp) for s, (t, lp) in zip(batch.seq_ids, picks, strict=True)]

    def release(self, seq_ids: set[int]) -> None:
        """Drop finished or cancelled rows now, freeing their share of the cache."""
        batch = self._batch
        if batch is None or not seq_ids.intersection(batch.seq_ids):
            return
        keep = [i for i, s in enumerate(batch.seq_ids) if s not in seq_ids]
        if not keep:
            self._batch = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self._device)
        batch.cache.batch_select_indices(index)
        batch.seq_ids = [batch.seq_ids[i] for i in keep]
        batch.samplers = [batch.samplers[i] for i in keep]
        batch.attention_mask = batch.attention_mask[index]
        batch.positions = batch.positions[index]
        batch.last_tokens = batch.last_tokens[index]
        self._trim_shared_padding(batch)

    def reset(self) -> None:
        """Forget the whole batch (after a failed forward pass)."""
        self._batch = None

    def _sampler_for(self, request: Request, generated: tuple[int, ...] = ()) -> RowSampler:
        return RowSampler.for_request(request, self._device, self._grammars, generated)

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        """Returns the last position's logits: [B, V]."""
        out = self._model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def _join(self, new: _Batch) -> None:
        old = self._batch
        if old is None:
            self._batch = new
            return
        width = max(old.attention_mask.shape[1], new.attention_mask.shape[1])
        for old_layer, new_layer in zip(_kv_layers(old.cache), _kv_layers(new.cache), strict=True):
            old_layer.keys = torch.cat(
                [_pad_left(old_layer.keys, width), _pad_left(new_layer.keys, width)]
            )
            old_layer.values = torch.cat(
                [_pad_left(old_layer.values, width), _pad_left(new_layer.values, width)]
            )
        old.attention_mask = torch.cat(
            [_pad_left(old.attention_mask, width), _pad_left(new.attention_mask, width)]
        )
        old.seq_ids += new.seq_ids
        old.samplers += new.samplers
        old.positions = torch.cat([old.positions, new.positions])
        old.last_tokens = torch.cat([old.last_tokens, new.last_tokens])

    @staticmethod
    def _trim_shared_padding(batch: _Batch) -> None:
        used_columns = batch.attention_mask.any(dim=0).nonzero()
        first = int(used_columns[0]) if used_columns.numel() else 0
        if first == 0:
            return
        batch.attention_mask = batch.attention_mask[:, first:]
        for layer in _kv_layers(batch.cache):
            layer.keys = layer.keys[:, :, first:, :]
            layer.values = layer.values[:, :, first:, :]


def _kv_layers(cache: DynamicCache) -> list[_KeyValueLayer]:
    """The cache's layers as plain key/value holders (DynamicLayer for every attention model)."""
    return cast(list[_KeyValueLayer], cache.layers)


class _KeyValueLayer(Protocol):
    keys: torch.Tensor  # [B, kv_heads, L, head_dim]
    values: torch.Tensor


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad the sequence axis (dim 2 of a cache [B, H, L, D], dim 1 of a mask [B, L])."""
    seq_dim = 2 if tensor.dim() == 4 else 1
    missing = width - tensor.shape[seq_dim]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - seq_dim - 1) + [missing, 0]
    return F.pad(tensor, pad)


def _replay_request(seq: Sequence) -> Request:
    """The request that resumes `seq`: its prompt and output so far as the new prompt (which the
    repetition penalty also sees), with the tokens still owed before end-of-sequence may stop it.
    A seeded sequence's RNG restarts from its seed, so its sampled text after a replay differs."""
    request = seq.request
    owed = max(0, request.stopping.min_new_tokens - len(seq.output_token_ids))
    return replace(
        request,
        prompt_token_ids=request.prompt_token_ids + tuple(seq.output_token_ids),
        stopping=replace(request.stopping, min_new_tokens=owed),
    )
