"""Who runs the forward's attention, norms and RoPE + cache write: PyTorch or native kernels.

The native kernels (`native/`) are compiled for this CPU at the engine's start and run float32
on CPU only. "auto" takes them where they build and falls back to PyTorch's (logged) where no
compiler is found; "native" makes that an error; "torch" never builds them. The choice is made
once per engine, so a greedy answer never depends on which implementation a step happened to get.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from seseragi.engine.attention import DecodeAttention, native_decode, torch_decode
from seseragi.engine.native import build as native_build
from seseragi.engine.norms import (
    AddRmsNorm,
    RmsNorm,
    native_add_rms_norm,
    native_rms_norm,
    torch_add_rms_norm,
    torch_rms_norm,
)
from seseragi.engine.rope import RopeAndCache, native_rope_and_cache, torch_rope_and_cache

log = logging.getLogger(__name__)

KernelChoice = Literal["auto", "native", "torch"]
NATIVE_LIBRARIES = ("paged_decode", "rms_norm", "rope_cache")


@dataclass(frozen=True, slots=True)
class Kernels:
    name: str
    decode_attention: DecodeAttention
    rms_norm: RmsNorm
    add_rms_norm: AddRmsNorm
    rope_and_cache: RopeAndCache


TORCH_KERNELS = Kernels(
    "torch", torch_decode, torch_rms_norm, torch_add_rms_norm, torch_rope_and_cache
)
NATIVE_KERNELS = Kernels(
    "native", native_decode, native_rms_norm, native_add_rms_norm, native_rope_and_cache
)


def kernels_for(
    choice: KernelChoice, dtype: torch.dtype, device: torch.device, cache_dir: Path | None
) -> Kernels:
    """The kernels for a forward in `dtype` on `device`, building native ones into `cache_dir`."""
    if choice == "torch":
        return TORCH_KERNELS
    if device.type != "cpu" or dtype != torch.float32:
        if choice == "native":
            raise ValueError(f"native kernels run float32 on CPU, not {dtype} on {device.type}")
        return TORCH_KERNELS
    try:
        if cache_dir is None:
            raise native_build.NativeBuildError("no cache directory to build native kernels in")
        for library in NATIVE_LIBRARIES:
            native_build.load(library, cache_dir)
    except native_build.NativeBuildError as error:
        if choice == "native":
            raise
        log.warning("native kernels unavailable; using PyTorch's", extra={"reason": str(error)})
        return TORCH_KERNELS
    return NATIVE_KERNELS
