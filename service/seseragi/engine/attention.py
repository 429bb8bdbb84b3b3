"""Attention over the paged KV cache for a flat batch of decode rows and prefill chunks.

The batch's first `num_decode` tokens are one new token each of running sequences, attended in
one batched call by a `DecodeAttention`; each prefill chunk after them attends causally over its
own sequence's cache. Both read keys through the sequence's block table.

Decode attention comes in two forms. `torch_decode` gathers each row's blocks into one padded
tensor and runs `scaled_dot_product_attention` with a length mask; `native_decode` is a C++
kernel (`native/paged_decode.cpp`) that reads the blocks where they lie. In a 16-stream decode
step of ~180-token sequences on a 2-core AVX-512 CPU, a layer's decode attention took ~800 us
the first way and ~370 us the second (7 ms of a 60 ms step); the results agree to 1e-6.
`kernels` chooses.
"""

from __future__ import annotations

from collections.abc import Callable
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
    decode_lengths: torch.Tensor | None = None  # [num_decode] int64: keys per row, new one too
    prefills: list[PrefillSpan] = field(default_factory=list)


# q of the decode rows [B, heads, D], the pool, the layer, the batch -> [B, heads, D]
DecodeAttention = Callable[[torch.Tensor, KVPool, int, AttentionBatch], torch.Tensor]


def torch_decode(q: torch.Tensor, pool: KVPool, layer: int, batch: AttentionBatch) -> torch.Tensor:
    assert batch.decode_tables is not None
    keys, values = pool.gather(layer, batch.decode_tables)  # [B, L, kv_heads, D]
    attended = F.scaled_dot_product_attention(
        q[:, :, None, :],  # [B, heads, 1, D]
        keys.transpose(1, 2),
        values.transpose(1, 2),
        attn_mask=batch.decode_mask,
        enable_gqa=True,
    )
    return attended[:, :, 0, :]


def native_decode(q: torch.Tensor, pool: KVPool, layer: int, batch: AttentionBatch) -> torch.Tensor:
    assert batch.decode_tables is not None and batch.decode_lengths is not None
    out: torch.Tensor = torch.ops.seseragi.paged_decode_attention(
        q,
        pool.keys[layer],
        pool.values[layer],
        batch.decode_tables,
        batch.decode_lengths,
        q.shape[-1] ** -0.5,
    )
    return out


def paged_attention(
    q: torch.Tensor,
    pool: KVPool,
    layer: int,
    batch: AttentionBatch,
    decode_attention: DecodeAttention = torch_decode,
) -> torch.Tensor:
    """q: [T, heads, D], the batch's keys and values already in the pool. -> [T, heads * D]."""
    out = torch.empty_like(q)
    decode = batch.num_decode
    if decode:
        out[:decode] = decode_attention(q[:decode], pool, layer, batch)
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
