"""Matrix multiplies for the engine's forward.

On CPU a batch's matmuls run through oneDNN with the weight reordered once into its blocked
layout (what PyTorch's inductor does when it freezes a model): measured about 1.4x faster than
`F.linear` at 16 rows on this AVX2 CPU. A row or two stays on `F.linear`, which is faster there.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812

QUANTIZATIONS = ("none", "int8")
PACK_ROWS_HINT = 32  # the batch size oneDNN tunes its weight layout for
SMALL_BATCH_ROWS = 2  # at most this many rows, plain F.linear is faster


def onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(  # type: ignore[no-untyped-call]
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


class Linear(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class DenseLinear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = weight.contiguous()  # [out, in]
        self.bias = bias
        self._packed: torch.Tensor | None = None
        if weight.device.type == "cpu" and weight.dtype == torch.float32 and onednn_available():
            self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, PACK_ROWS_HINT)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is None or x.shape[0] <= SMALL_BATCH_ROWS:
            return F.linear(x, self.weight, self.bias)
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self._packed, self.bias, "none", [], ""
        )
        return out


class Int8Linear:
    """Symmetric per-output-channel int8 weights; activations stay in their float dtype."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.scales = quantize_int8(weight)
        self.bias = bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(x.contiguous(), self.weight, self.scales.to(x.dtype))
        return out if self.bias is None else out + self.bias


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[out, in] float -> ([out, in] int8, [out] scales) with the row's max mapped to 127."""
    scales = weight.float().abs().amax(dim=1).clamp(min=1e-8) / 127.0
    quantized = (weight.float() / scales[:, None]).round().clamp(-127, 127).to(torch.int8)
    return quantized.contiguous(), scales.to(weight.dtype).contiguous()


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None, quantization: str) -> Linear:
    if quantization == "int8":
        return Int8Linear(weight, bias)
    if quantization == "none":
        return DenseLinear(weight, bias)
    raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
