"""Callers sending the most extreme values each sampling field accepts never disturb a neighbour:
a long greedy stream beside them ends with the same text as alone, and each of them ends OK."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from seseragi.api.convert.requests import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MIN_REPETITION_PENALTY,
)
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import as_stream, chat, read_stream

pytestmark = pytest.mark.integration
TINY = 1.4e-45  # the smallest positive float32 (a denormal)
EXTREMES = [
    {"temperature": TINY},
    {"temperature": 1e-5},
    {"temperature": MAX_TEMPERATURE, "top_p": TINY},
    {"temperature": MAX_TEMPERATURE, "top_k": 2**31 - 1, "seed": 2**64 - 1},
    {"temperature": MAX_TEMPERATURE, "top_k": 1, "repetition_penalty": MIN_REPETITION_PENALTY},
    {"temperature": 1e-5, "repetition_penalty": MIN_REPETITION_PENALTY},
    {"temperature": MAX_TEMPERATURE, "repetition_penalty": MAX_REPETITION_PENALTY, "top_p": 1.0},
    {"temperature": 0.0, "repetition_penalty": MAX_REPETITION_PENALTY},
]


def extreme(values: dict[str, float]) -> pb.GenerateRequest:
    request = chat("Say something surprising.", max_new_tokens=24, min_new_tokens=24)
    request.sampling.CopyFrom(pb.SamplingParams(**values))  # type: ignore[arg-type]
    return request


def test_extreme_neighbours_change_no_text_of_a_long_greedy_stream(
    stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    long = chat("Write a long story about a river.", max_new_tokens=96, min_new_tokens=96)
    alone = stub.Generate(long).text
    with ThreadPoolExecutor(len(EXTREMES) + 1) as pool:
        streamed = pool.submit(lambda: read_stream(stub.GenerateStream(as_stream(long))))
        others = [pool.submit(stub.Generate, extreme(v)) for v in EXTREMES]
        results = [o.result(timeout=300) for o in others]
        together = streamed.result(timeout=300)
    assert together.final is not None and together.text == alone
    for values, result in zip(EXTREMES, results, strict=True):
        assert result.usage.output_tokens == 24, values


def test_a_value_just_outside_a_range_is_refused_naming_its_field(
    stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    request = extreme({"repetition_penalty": MIN_REPETITION_PENALTY / 2})
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling.repetition_penalty" in (caught.value.details() or "")
