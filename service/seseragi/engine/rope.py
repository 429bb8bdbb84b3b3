"""Rotary position embedding of a layer's fresh queries and keys, and the store of keys and
values into the paged KV cache: what happens between a layer's q|k|v matmul and its attention.

The native form (`native/rope_cache.cpp`) does it in one pass over the fused projection; the
PyTorch form takes about ten operators (slices, a roll, multiplies, two index copies).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from seseragi.engine.kv_pool import KVPool

# qkv [T, (heads + 2 kv_heads) * D], cos and signed sin [T, D], the pool, the layer, slots [T],
# heads -> rotated queries [T, heads, D]; the rotated keys and the values are in the pool.
RopeAndCache = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, KVPool, int, torch.Tensor, int], torch.Tensor
]


def rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE as Hugging Face's Llama applies it, in four ops. x: [T, heads, head_dim].

    `x * cos + rotate_half(x) * sin` with rotate_half(x) = [-x2, x1]: the negation lives in
    `signed_sin`, so the rotation is a roll; flipping a sign is exact, so are the results.
    """
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


def torch_rope_and_cache(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    signed_sin: torch.Tensor,
    pool: KVPool,
    layer: int,
    slots: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    kv_heads, head_dim = pool.keys[layer].shape[2:]
    qk_heads = heads + kv_heads
    # q and k sit side by side in qkv: one rotation covers both heads' sets
    qk = rope(
        qkv[:, : qk_heads * head_dim].view(-1, qk_heads, head_dim),
        cos[:, None, :],
        signed_sin[:, None, :],
    )
    v = qkv[:, qk_heads * head_dim :].view(-1, kv_heads, head_dim)
    pool.write(layer, slots, qk[:, heads:], v)
    return qk[:, :heads]


def native_rope_and_cache(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    signed_sin: torch.Tensor,
    pool: KVPool,
    layer: int,
    slots: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    q: torch.Tensor = torch.ops.seseragi.rope_and_cache(
        qkv, cos, signed_sin, pool.keys[layer], pool.values[layer], slots, heads
    )
    return q
