"""Choose the model runner and size the KV cache: the one place an `Engine` is put together."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from seseragi.engine import llama
from seseragi.engine.engine import Engine, EngineConfig, new_block_manager
from seseragi.engine.grammar import Grammars
from seseragi.engine.kernels import KernelChoice, kernels_for
from seseragi.engine.kv_pool import KVPool
from seseragi.engine.model_runner import ModelRunner
from seseragi.engine.paged_runner import PagedModelRunner

log = logging.getLogger(__name__)


def build_engine(
    model: Any,
    config: EngineConfig,
    *,
    runner: str,
    kv_cache_bytes: int,
    pad_token_id: int,
    max_sequence_tokens: int | None = None,
    grammars: Grammars | None = None,
    weights: str = "none",
    kernels: KernelChoice = "torch",
    cache_dir: Path | None = None,
) -> Engine:
    """An engine over `model`: the paged runner when asked or supported ("auto"), else padded.

    `weights="int8"`/`"int4"` runs the paged runner's matmuls on weight-only int8/int4 (CPU);
    only that runner can. The KV cache must hold at least one sequence of `max_sequence_tokens`
    (input plus output, the context length by default), or such a request could never be
    admitted. `kernels` picks PyTorch's or the native kernels for the paged runner's attention,
    norms and RoPE (`kernels`); native ones are compiled into `cache_dir`.
    """
    if weights != "none" and (runner == "padded" or not llama.supports(model)):
        raise ValueError(
            f"{weights} weights on CPU need the paged runner, which supports"
            f" {sorted(llama.SUPPORTED_ARCHITECTURES)} models; this one is"
            f" {model.config.model_type!r} with runner {runner!r}"
        )
    if runner == "padded" or (runner == "auto" and not llama.supports(model)):
        padded = replace(config, kv_cache_blocks=0, prefix_caching=False, mixed_batches=False)
        log.info("engine runner", extra={"runner": "padded"})
        return Engine(ModelRunner(model, config.eos_token_ids, pad_token_id, grammars), padded)
    if not llama.supports(model):
        raise ValueError(
            f"the paged runner supports {sorted(llama.SUPPORTED_ARCHITECTURES)} models without"
            f" bitsandbytes quantization; this one is {model.config.model_type!r}"
        )
    forward = llama.forward_for(model, weights)
    shape = forward.shape
    per_token = KVPool.bytes_per_token(shape.layers, shape.kv_heads, shape.head_dim, forward.dtype)
    num_blocks = kv_cache_bytes // (per_token * config.block_size)
    longest = min(max_sequence_tokens or config.context_length, config.context_length)
    needed = -(-longest // config.block_size)
    if num_blocks < needed:
        raise ValueError(
            f"the KV cache ({kv_cache_bytes} bytes, {num_blocks} blocks) cannot hold one sequence"
            f" of {longest} tokens ({needed} blocks): raise SESERAGI_KV_CACHE_BYTES"
        )
    paged = replace(config, kv_cache_blocks=num_blocks, mixed_batches=True)
    blocks = new_block_manager(paged)
    pool = KVPool(
        shape.layers,
        num_blocks,
        config.block_size,
        shape.kv_heads,
        shape.head_dim,
        forward.dtype,
        forward.device,
    )
    chosen = kernels_for(kernels, forward.dtype, forward.device, cache_dir)
    log.info(
        "engine runner",
        extra={
            "runner": "paged",
            "kv_blocks": num_blocks,
            "block_size": config.block_size,
            "kernels": chosen.name,
        },
    )
    paged_runner = PagedModelRunner(forward, pool, blocks, config.eos_token_ids, grammars, chosen)
    return Engine(paged_runner, paged, blocks=blocks)
