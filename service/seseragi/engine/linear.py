"""Matrix multiplies for the engine's forward.

On CPU every matmul runs through oneDNN with the weight reordered once into its blocked layout
(what PyTorch's inductor does when it freezes a model). Measured on this 2-core AVX2 CPU over the
default model's 30 layers plus its head, ms per step: one row 40 vs 55 with `F.linear`, two rows
37 vs 103, sixteen rows 61 vs 125. Elsewhere (GPU, other dtypes) `F.linear` it is.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812

PACK_ROWS_HINT = 32  # the batch size oneDNN tunes its weight layout for


def onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(  # type: ignore[no-untyped-call]
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


class Linear(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class DenseLinear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.bias = bias
        self._packed: torch.Tensor | None = None
        self._weight: torch.Tensor | None = None  # [out, in], kept only when not packed
        if weight.device.type == "cpu" and weight.dtype == torch.float32 and onednn_available():
            self._packed = torch.ops.mkldnn._reorder_linear_weight(
                weight.contiguous(), PACK_ROWS_HINT
            )
        else:
            self._weight = weight.contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is None:
            assert self._weight is not None
            return F.linear(x, self._weight, self.bias)
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self._packed, self.bias, "none", [], ""
        )
        return out


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    return DenseLinear(weight, bias)
