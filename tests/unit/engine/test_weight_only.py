"""Weight-only int8/int4: the quantization error is bounded; every kernel computes the same
product."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from seseragi.engine.weight_only import (
    INT4_GROUP,
    KERNELS,
    SMALL_ROWS,
    Int4Weight,
    Int8Weight,
    QuantizedLinear,
    QuantizedWeight,
    available_kernels,
    choose_kernels,
    quantized_linears,
)

FORMATS: list[type[QuantizedWeight]] = [Int8Weight, Int4Weight]


def _weight(out: int = 96, inp: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(out, inp, generator=torch.Generator().manual_seed(seed))


def test_int8_keeps_each_weight_within_half_a_step_of_its_channel_scale() -> None:
    weight = _weight()
    weight[3] *= 100  # one loud channel must not coarsen the others
    quantized = Int8Weight.quantize(weight, None)
    assert quantized.values.dtype == torch.int8
    assert quantized.scales.shape == (96,)
    error = (quantized.dequantized() - weight).abs()
    assert bool((error <= quantized.scales[:, None] / 2 + 1e-6).all())
    assert int(quantized.values.abs().max()) == 127


def test_int4_keeps_each_weight_within_half_a_step_of_its_group_scale() -> None:
    weight = _weight()
    weight[3, :INT4_GROUP] *= 100  # one loud group must not coarsen the others
    quantized = Int4Weight.quantize(weight, None)
    assert quantized.codes.dtype == torch.uint8 and int(quantized.codes.max()) <= 15
    assert quantized.scales.shape == (96, 64 // INT4_GROUP)
    error = (quantized.dequantized() - weight).abs()
    steps = quantized.scales.float().repeat_interleave(INT4_GROUP, dim=1)
    # half a step, plus the bfloat16 rounding of the scale and zero (8 bits of mantissa)
    assert bool((error <= steps / 2 + 0.01 * weight.abs().amax(1, keepdim=True)).all())
    assert float(error[4].max()) < float(error[3, :INT4_GROUP].max()) / 10


def test_int4_refuses_widths_its_groups_do_not_divide() -> None:
    with pytest.raises(ValueError, match="divisible by"):
        Int4Weight.quantize(_weight(inp=INT4_GROUP + 8), None)


@pytest.mark.parametrize("weight_format", FORMATS)
def test_an_all_zero_channel_quantizes_to_zeros_without_dividing_by_zero(
    weight_format: type[QuantizedWeight],
) -> None:
    weight = _weight()
    weight[5] = 0
    quantized = weight_format.quantize(weight, None)
    assert torch.isfinite(quantized.dequantized()).all()
    assert bool((quantized.dequantized()[5] == 0).all())


def _cases() -> list[tuple[type[QuantizedWeight], str]]:
    return [(fmt, name) for fmt in FORMATS for name in available_kernels(fmt)]


@pytest.mark.parametrize(("weight_format", "name"), _cases())
@pytest.mark.parametrize("rows", [1, 3, 16, 40])
@pytest.mark.parametrize("with_bias", [False, True])
def test_every_kernel_computes_the_dequantized_product(
    weight_format: type[QuantizedWeight], name: str, rows: int, with_bias: bool
) -> None:
    generator = torch.Generator().manual_seed(rows)
    bias = torch.randn(96, generator=generator) if with_bias else None
    quantized = weight_format.quantize(_weight(seed=rows), bias)
    x = torch.randn(rows, 64, generator=generator)
    expected = F.linear(x, quantized.dequantized(), bias)
    out = KERNELS[name](quantized)(x)
    assert out.dtype == x.dtype and out.shape == expected.shape
    # bfloat16 activations keep 8 bits of mantissa: a relative error of a few 1e-3 per product
    tolerance = 1e-4 if name == "fp32" else 0.05 * float(expected.abs().max())
    torch.testing.assert_close(out, expected, rtol=0.02, atol=tolerance)


def test_the_linear_runs_small_batches_and_large_batches_on_their_own_kernels() -> None:
    calls: list[str] = []

    def kernel(name: str):  # type: ignore[no-untyped-def]
        def run(x: torch.Tensor) -> torch.Tensor:
            calls.append(name)
            return x

        return run

    weight = Int8Weight.quantize(_weight(), None)
    linear = QuantizedLinear(weight, kernel("small"), kernel("large"))
    linear(torch.zeros(1, 64))
    linear(torch.zeros(SMALL_ROWS, 64))
    linear(torch.zeros(SMALL_ROWS + 1, 64))
    assert calls == ["small", "small", "large"]


@pytest.mark.parametrize("weight_format", FORMATS)
def test_choose_kernels_picks_available_kernels_and_builds_linears_that_agree(
    weight_format: type[QuantizedWeight],
) -> None:
    weights = [weight_format.quantize(_weight(seed=seed), None) for seed in range(3)]
    choice = choose_kernels(weight_format)
    assert {choice.small, choice.large} <= set(available_kernels(weight_format))
    linears = quantized_linears(weights, choice)
    x = torch.randn(SMALL_ROWS + 4, 64)
    for linear, weight in zip(linears, weights, strict=True):
        assert isinstance(linear, QuantizedLinear) and linear.weight is weight
        expected = F.linear(x, weight.dequantized())
        tolerance = 0.05 * float(expected.abs().max())
        for rows in (1, SMALL_ROWS + 4):  # both kernels
            torch.testing.assert_close(linear(x[:rows]), expected[:rows], rtol=0.02, atol=tolerance)
