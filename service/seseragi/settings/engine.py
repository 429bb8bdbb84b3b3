"""The model and the engine that batches it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from seseragi.settings.base import SeseragiSettings

DEFAULT_MODEL = "smollm2-135m-instruct"


class EngineSettings(SeseragiSettings):
    model: str = Field(
        DEFAULT_MODEL,
        description="The built-in model name, a local Hugging Face model directory, or a hub id.",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "seseragi", description="Where converted models are kept."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16 on CUDA."
    )
    quantization: Literal["auto", "none", "nf4", "int8", "int4"] = Field(
        "auto",
        description="nf4: bitsandbytes NF4; int8: weight-only int8 (the engine's own kernels on"
        " CPU, bitsandbytes on CUDA); int4: weight-only int4 in groups of 32 (CPU only);"
        " auto: nf4 on CUDA, none on CPU.",
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0: one per core.")

    engine_process: bool = Field(
        True,
        description="Run the engine core (model and batch) in its own process, apart from the"
        " gRPC event loop (1.5x the tokens/s of a thread on a quiet 2-core CPU); false: a"
        " thread of the server process.",
    )
    max_running_requests: int = Field(32, ge=1, description="Sequences in the running batch.")
    max_queued_requests: int = Field(64, ge=0, description="Requests waiting for the batch.")
    max_prefill_tokens: int = Field(
        512,
        ge=1,
        description="Prompt tokens one engine step may compute; longer prompts are prefilled in"
        " chunks between decode steps of running streams.",
    )
    max_prefill_tokens_while_decoding: int = Field(
        256,
        ge=1,
        description="Prompt tokens a step may compute while other streams are decoding (at most"
        " max_prefill_tokens): a step's time grows with its prompt tokens, so this bounds how long"
        " a running stream waits for its next token while new prompts arrive.",
    )
    engine_runner: Literal["auto", "paged", "padded"] = Field(
        "auto",
        description="paged: Seseragi's Llama-family forward over a paged KV cache (chunked"
        " prefill, prefix caching); padded: any transformers model, left-padded batches;"
        " auto: paged when the model supports it.",
    )
    cpu_kernels: Literal["auto", "native", "torch"] = Field(
        "auto",
        description="The paged runner's decode attention, RMSNorm and RoPE with the KV cache"
        " write on CPU float32: native: C++ kernels compiled once per machine into the cache"
        " directory (needs g++; decode attention reads the KV cache in place; decode steps about"
        " 20% faster here); torch: PyTorch's operators; auto: native where they build, else"
        " torch.",
    )
    kv_cache_bytes: int = Field(
        512 << 20, ge=1 << 20, description="Memory of the paged KV cache, allocated at start."
    )
    kv_block_size: int = Field(16, ge=1, le=256, description="Tokens per KV cache block.")
    prefix_caching: bool = Field(
        True, description="Reuse the KV blocks of a prompt prefix seen before (paged runner)."
    )
    max_context_tokens: int = Field(
        0, ge=0, description="Cap on input plus output tokens per sequence; 0: the model's window."
    )
