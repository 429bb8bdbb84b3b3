"""Weight-only quantized matmuls for the CPU engine (`SESERAGI_QUANTIZATION=int8` or `int4`).

A decode step reads every weight once per token, so on CPU its time is mostly bytes moved: int8
weights (symmetric, one scale per output channel) move a quarter of fp32's, int4 weights
(asymmetric, a scale and a zero per group of 32 inputs) an eighth. Activations stay in floating
point. Which kernel is fastest depends on the CPU and the number of rows: PyTorch's
`_weight_int8pack_mm` and `_weight_int4pack_mm_for_cpu` are GEMV-like kernels (one row on an
AVX-512 EPYC, all 30 layers and the head: fp32 20 ms, int8 7-10 ms, int4 6 ms) that lose to
oneDNN's packed bf16 matmul from a few rows on; the choice is a fixed rule (`choose_kernels`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from seseragi.engine.linear import DenseLinear, Linear, onednn_available

log = logging.getLogger(__name__)

SMALL_ROWS = 4  # batches up to this many rows use the small-batch kernel
INT4_GROUP = 32  # inputs per int4 scale/zero: 64 was 4% faster here and measurably less exact


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

    @property
    def in_features(self) -> int:
        return int(self.values.shape[1])

    def dequantized(self) -> torch.Tensor:
        return self.values.float() * self.scales[:, None]


@dataclass(frozen=True, slots=True)
class Int4Weight:
    codes: torch.Tensor  # [out, in] uint8 in 0..15, packed per kernel
    scales: torch.Tensor  # [out, in / group] bfloat16
    zeros: torch.Tensor  # [out, in / group] bfloat16: weight ~= (code - 8) * scale + zero
    bias: torch.Tensor | None

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int4Weight:
        out, inputs = weight.shape
        if inputs % INT4_GROUP:
            raise ValueError(f"int4 needs input widths divisible by {INT4_GROUP}, not {inputs}")
        groups = weight.float().view(out, inputs // INT4_GROUP, INT4_GROUP)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        scales = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
        codes = torch.round((groups - low) / scales).clamp(0, 15).to(torch.uint8)
        zeros = low + 8 * scales  # the kernel's zero is the value of code 8
        return cls(
            codes.view(out, inputs).contiguous(),
            scales[..., 0].to(torch.bfloat16),
            zeros[..., 0].to(torch.bfloat16),
            bias,
        )

    @property
    def in_features(self) -> int:
        return int(self.codes.shape[1])

    def dequantized(self) -> torch.Tensor:
        out, inputs = self.codes.shape
        groups = self.codes.view(out, -1, INT4_GROUP).float() - 8
        scales, zeros = self.scales.float()[..., None], self.zeros.float()[..., None]
        return (groups * scales + zeros).view(out, inputs)


QuantizedWeight = Int8Weight | Int4Weight
Kernel = Callable[[QuantizedWeight], Linear]


def _with_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out + bias


def _int8_gemv(weight: QuantizedWeight) -> Linear:
    """int8 weights read as they are; the kernel wants bfloat16 activations (its float32 path is
    a slow reference loop)."""
    assert isinstance(weight, Int8Weight)
    values, scales, bias = weight.values, weight.scales.to(torch.bfloat16), weight.bias

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(x.to(torch.bfloat16), values, scales)
        return _with_bias(out.to(x.dtype), bias)

    return run


def _int4_gemv(weight: QuantizedWeight) -> Linear:
    """Two int4 codes per byte in the kernel's own tiled layout, with bfloat16 activations."""
    assert isinstance(weight, Int4Weight)
    packed = torch._convert_weight_to_int4pack_for_cpu(weight.codes.to(torch.int32), 1)
    scales_and_zeros = torch.stack([weight.scales.t(), weight.zeros.t()], dim=-1).contiguous()
    bias = weight.bias

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int4pack_mm_for_cpu(
            x.to(torch.bfloat16), packed, INT4_GROUP, scales_and_zeros
        )
        return _with_bias(out.to(x.dtype), bias)

    return run


def _bf16_packed(weight: QuantizedWeight) -> Linear:
    """The weights widened once to bfloat16 in oneDNN's layout: fast where the CPU has bfloat16
    dot products (AVX-512 BF16, AMX)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(
        weight.dequantized().to(torch.bfloat16).contiguous(), 32
    )
    bias = weight.bias

    def run(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), packed, None, "none", [], ""
        )
        return _with_bias(out.to(x.dtype), bias)

    return run


def _fp32_packed(weight: QuantizedWeight) -> Linear:
    """The weights widened once to float32: the same numbers, no faster than fp32."""
    return DenseLinear(weight.dequantized(), weight.bias)


KERNELS: dict[str, Kernel] = {
    "int8": _int8_gemv,
    "int4": _int4_gemv,
    "bf16": _bf16_packed,
    "fp32": _fp32_packed,
}


class QuantizedLinear:
    """One quantized projection, run by the kernel chosen for its batch's row count."""

    def __init__(self, weight: QuantizedWeight, small: Linear, large: Linear) -> None:
        self.weight = weight
        self._small, self._large = small, large

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._small(x) if x.shape[0] <= SMALL_ROWS else self._large(x)


@dataclass(frozen=True, slots=True)
class KernelChoice:
    small: str
    large: str


_CHOICES: dict[type[QuantizedWeight], KernelChoice] = {}


def _native(weight_type: type[QuantizedWeight]) -> str:
    return "int8" if weight_type is Int8Weight else "int4"


def available_kernels(weight_type: type[QuantizedWeight]) -> list[str]:
    """The kernels this PyTorch and CPU can run for one weight format."""
    names = ["fp32"] if onednn_available() else []
    native = _native(weight_type)
    if hasattr(torch, "_weight_int8pack_mm" if native == "int8" else "_weight_int4pack_mm_for_cpu"):
        names.append(native)
    if onednn_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        names.append("bf16")
    return names


def choose_kernels(weight_type: type[QuantizedWeight]) -> KernelChoice:
    """The kernels for one weight format on this CPU, by a fixed rule rather than by timing.

    Kernels differ in rounding (bfloat16 or float32 activations), so a choice timed at load would
    let a busy neighbour change a greedy answer from one start to the next. The rule is what the
    measurements favour: with bfloat16 dot products (AVX-512 BF16, AMX) the native GEMV for up to
    SMALL_ROWS rows and packed bfloat16 beyond; without them the int8 GEMV measured slower than
    float32, so the weights run dequantized in float32 (same numbers as the format, no gain).
    """
    if (known := _CHOICES.get(weight_type)) is not None:
        return known  # a property of the CPU and the format: decided (and logged) once
    available = available_kernels(weight_type)
    native = _native(weight_type)
    if not available:
        raise RuntimeError(
            "no kernel for quantized weights: this PyTorch has neither oneDNN nor a weight-only"
            " int8/int4 matmul"
        )
    if "bf16" in available:
        choice = KernelChoice(native if native in available else "bf16", "bf16")
    elif "fp32" in available:
        choice = KernelChoice("fp32", "fp32")
    else:
        choice = KernelChoice(native, native)
    log.info(
        "weight-only kernels chosen", extra={"small_rows": choice.small, "large_rows": choice.large}
    )
    _CHOICES[weight_type] = choice
    return choice


def quantized_linears(weights: Sequence[QuantizedWeight], choice: KernelChoice) -> list[Linear]:
    linears: list[Linear] = []
    for weight in weights:
        small = KERNELS[choice.small](weight)
        large = small if choice.large == choice.small else KERNELS[choice.large](weight)
        linears.append(QuantizedLinear(weight, small, large))
    return linears
