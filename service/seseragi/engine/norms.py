"""RMSNorm as the Llama forward runs it, alone and fused with the residual add before it.

`add_rms_norm(residual, x, weight, eps)` adds `x` into `residual` in place and returns the
normalized sum: the residual stream is one tensor updated twice per layer, and the norm reads
what the add just wrote. The native pair (`native/rms_norm.cpp`) does each in one pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812

RmsNorm = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
AddRmsNorm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def torch_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def torch_add_rms_norm(
    residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float
) -> torch.Tensor:
    residual.add_(x)
    return F.rms_norm(residual, (residual.shape[-1],), weight, eps)


def native_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    out: torch.Tensor = torch.ops.seseragi.rms_norm(x, weight, eps)
    return out


def native_add_rms_norm(
    residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float
) -> torch.Tensor:
    out: torch.Tensor = torch.ops.seseragi.add_rms_norm(residual, x, weight, eps)
    return out
