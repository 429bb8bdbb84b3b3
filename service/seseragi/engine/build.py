"""Build the engine and its sequences the same way in the server thread and the core process."""

from __future__ import annotations

from seseragi.engine.builder import build_engine
from seseragi.engine.engine import Engine, EngineConfig
from seseragi.engine.grammar import grammars_for
from seseragi.model.loader import LoadedModel, engine_weight_format
from seseragi.settings import WorkerSettings


def make_engine(loaded: LoadedModel, settings: WorkerSettings) -> Engine:
    info = loaded.info
    config = EngineConfig(
        max_running=settings.max_running_requests,
        max_waiting=settings.max_queued_requests,
        max_prefill_tokens=settings.max_prefill_tokens,
        max_prefill_tokens_while_decoding=settings.max_prefill_tokens_while_decoding,
        context_length=info.context_length,
        eos_token_ids=info.eos_token_ids,
        block_size=settings.kv_block_size,
        prefix_caching=settings.prefix_caching,
    )
    return build_engine(
        loaded.model,
        config,
        runner=settings.engine_runner,
        kv_cache_bytes=settings.kv_cache_bytes,
        pad_token_id=info.pad_token_id,
        max_sequence_tokens=settings.max_input_tokens + settings.max_new_tokens,
        grammars=grammars_for(loaded.tokenizer),
        weights=engine_weights(loaded),
        kernels=settings.cpu_kernels,
        cache_dir=settings.cache_dir,
    )


def engine_weights(loaded: LoadedModel) -> str:
    """int8 and int4 on CPU are the engine's own weight-only formats; elsewhere bitsandbytes
    holds the quantized weights."""
    return engine_weight_format(loaded.info.quantization, loaded.info.device)
