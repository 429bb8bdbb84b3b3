"""The packed matmul must compute what `F.linear` computes, at every batch size the engine runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from seseragi.engine.linear import linear_from


@pytest.mark.parametrize("rows", [1, 2, 3, 16, 33, 512])
@pytest.mark.parametrize("with_bias", [False, True])
def test_packed_linear_matches_f_linear(rows: int, with_bias: bool) -> None:
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(96, 64, generator=generator)
    bias = torch.randn(96, generator=generator) if with_bias else None
    x = torch.randn(rows, 64, generator=generator)
    expected = F.linear(x, weight, bias)
    torch.testing.assert_close(linear_from(weight, bias)(x), expected, rtol=1e-4, atol=1e-4)


def test_other_dtypes_fall_back_to_f_linear() -> None:
    weight = torch.randn(8, 4, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    assert torch.equal(linear_from(weight, None)(x), F.linear(x, weight))
