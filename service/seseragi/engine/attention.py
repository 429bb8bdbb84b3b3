"""Attention over the paged KV cache for a flat batch of decode rows and prefill chunks.

The batch's first `num_decode` tokens are one new token each of running sequences, attended in
one batched call with a length mask; each prefill chunk after them attends causally over its own
sequence's cache. Both read keys through the sequence's block table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812

from seseragi.engine.kv_pool import KVPool


@dataclass(frozen=True, slots=True)
class PrefillSpan:
    """One sequence's chunk: rows [start, start + length) of the batch, at cache positions
    [context - length, context)."""

    start: int
    length: int
    table: torch.Tensor  # [blocks] int64, enough blocks to cover `context`
    context: int
    mask: torch.Tensor | None  # [length, context] bool, None when the chunk is the whole context


@dataclass(frozen=True, slots=True)
class AttentionBatch:
    input_ids: torch.Tensor  # [T] int64
    positions: torch.Tensor  # [T] int64
    slots: torch.Tensor  # [T] int64: where each token's key/value is written
    logits_rows: torch.Tensor  # [N] int64: rows whose next token is sampled
    num_decode: int = 0
    decode_tables: torch.Tensor | None = None  # [num_decode, blocks] int64
    decode_mask: torch.Tensor | None = None  # [num_decode, 1, 1, blocks * block_size] bool
    prefills: list[PrefillSpan] = field(default_factory=list)


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pool: KVPool,
    layer: int,
    batch: AttentionBatch,
) -> torch.Tensor:
    """q: [T, heads, D]; k, v: [T, kv_heads, D], written to the pool first. -> [T, heads * D]."""
    pool.write(layer, batch.slots, k, v)
    out = torch.empty_like(q)
    decode = batch.num_decode
    if decode:
        assert batch.decode_tables is not None
        keys, values = pool.gather(layer, batch.decode_tables)  # [B, L, kv_heads, D]
        attended = F.scaled_dot_product_attention(
            q[:decode, :, None, :],  # [B, heads, 1, D]
            keys.transpose(1, 2),
            values.transpose(1, 2),
            attn_mask=batch.decode_mask,
            enable_gqa=True,
        )
        out[:decode] = attended[:, :, 0, :]
    for span in batch.prefills:
        keys, values = pool.gather(layer, span.table)  # [L, kv_heads, D]
        rows = slice(span.start, span.start + span.length)
        attended = F.scaled_dot_product_attention(
            q[rows].transpose(0, 1)[None],  # [1, heads, C, D]
            keys[: span.context].transpose(0, 1)[None],
            values[: span.context].transpose(0, 1)[None],
            attn_mask=span.mask,
            is_causal=span.mask is None,
            enable_gqa=True,
        )
        out[rows] = attended[0].transpose(0, 1)
    return out.flatten(1)
