"""Weight-only int8 matmuls for the CPU engine (`SESERAGI_QUANTIZATION=int8`).

A decode step reads every weight once per token, so on CPU its time is mostly bytes moved: int8
weights (symmetric, one scale per output channel) move a quarter of fp32's. Activations stay in
floating point. Which kernel is fastest depends on the CPU and the number of rows (PyTorch's
`_weight_int8pack_mm` is a GEMV-like kernel: 2.7x fp32 for one row on an AVX-512 EPYC, but slower
than fp32 from about eight rows, and slower everywhere on the AVX2 CPUs measured), so the choice is
measured once at load on the model's own shapes, as inductor's autotuning does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from seseragi.engine.linear import DenseLinear, Linear, onednn_available

log = logging.getLogger(__name__)

SMALL_ROWS = 4  # batches up to this many rows use the small-batch kernel
_TUNE_ROWS = (1, 16)  # one representative of each side of SMALL_ROWS
_TUNE_REPEATS = 5


@dataclass(frozen=True, slots=True)
class Int8Weight:
    values: torch.Tensor  # [out, in] int8
    scales: torch.Tensor  # [out] float32: weight ~= values * scales[:, None]
    bias: torch.Tensor | None

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int8Weight:
        weight = weight.float()
        scales = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        values = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(values.contiguous(), scales, bias)

    def dequantized(self) -> torch.Tensor:
        return self.values.float() * self.scales[:, None]


Kernel = Callable[[Int8Weight], Linear]


def _int8_gemv(weight: Int8Weight) -> Linear:
    """int8 weights read as they are; the kernel wants bfloat16 activations (its float32 path is
    a slow reference loop)."""
    values, scales = weight.values, weight.scales.to(torch.bfloat16)
    bias = weight.bias

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(x.to(torch.bfloat16), values, scales).to(x.dtype)
        return out if bias is None else out + bias

    return run


def _bf16_packed(weight: Int8Weight) -> Linear:
    """The int8 weights widened once to bfloat16 in oneDNN's layout: fast where the CPU has
    bfloat16 dot products (AVX-512 BF16, AMX)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(
        weight.dequantized().to(torch.bfloat16).contiguous(), 32
    )
    bias = weight.bias

    def run(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), packed, None, "none", [], ""
        )
        out = out.to(x.dtype)
        return out if bias is None else out + bias

    return run


def _fp32_packed(weight: Int8Weight) -> Linear:
    """The int8 weights widened once to float32: the same numbers, no faster than fp32."""
    return DenseLinear(weight.dequantized(), weight.bias)


KERNELS: dict[str, Kernel] = {"int8": _int8_gemv, "bf16": _bf16_packed, "fp32": _fp32_packed}


class Int8Linear:
    """One quantized projection, run by the kernel chosen for its batch's row count."""

    def __init__(self, weight: Int8Weight, small: Linear, large: Linear) -> None:
        self.weight = weight
        self._small, self._large = small, large

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._small(x) if x.shape[0] <= SMALL_ROWS else self._large(x)


@dataclass(frozen=True, slots=True)
class KernelChoice:
    small: str
    large: str


def available_kernels() -> list[str]:
    names = ["fp32"] if onednn_available() else []
    if hasattr(torch, "_weight_int8pack_mm"):
        names.append("int8")
    if onednn_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        names.append("bf16")
    return names


def choose_kernels(weights: Sequence[Int8Weight]) -> KernelChoice:
    """Time each available kernel over all of `weights` (the model's own shapes) at one and at
    sixteen rows, and keep the fastest of each. Best of a few passes, so a busy neighbour on a
    shared machine does not decide."""
    timings: dict[str, tuple[float, ...]] = {}
    for name in available_kernels():
        linears = [KERNELS[name](weight) for weight in weights]
        timings[name] = tuple(_best_pass(linears, weights, rows) for rows in _TUNE_ROWS)
        del linears
    if not timings:
        raise RuntimeError(
            "no int8 kernel is available: this PyTorch has neither oneDNN nor _weight_int8pack_mm"
        )
    small = min(timings, key=lambda name: timings[name][0])
    large = min(timings, key=lambda name: timings[name][1])
    log.info(
        "int8 kernels chosen",
        extra={
            "small_rows": small,
            "large_rows": large,
            "ms_per_pass": {name: [round(t * 1e3, 2) for t in ts] for name, ts in timings.items()},
        },
    )
    return KernelChoice(small, large)


def int8_linears(weights: Sequence[Int8Weight], choice: KernelChoice) -> list[Linear]:
    linears: list[Linear] = []
    for weight in weights:
        small = KERNELS[choice.small](weight)
        large = small if choice.large == choice.small else KERNELS[choice.large](weight)
        linears.append(Int8Linear(weight, small, large))
    return linears


def _best_pass(linears: Sequence[Linear], weights: Sequence[Int8Weight], rows: int) -> float:
    inputs = [torch.randn(rows, weight.values.shape[1]) for weight in weights]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(_TUNE_REPEATS + 1):  # the first pass warms caches and oneDNN's JIT
            started = time.perf_counter()
            for linear, x in zip(linears, inputs, strict=True):
                linear(x)
            best = min(best, time.perf_counter() - started)
    return best
