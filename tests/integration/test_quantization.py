"""Quantized models load and generate on CPU too, and GetModelInfo says so: NF4 through
bitsandbytes, int8 through the engine's own weight-only kernels."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from seseragi.model.loader import LoadedModel, load
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
Quantized = tuple[ServerThread, LoadedModel, str, int]


@pytest.fixture(
    scope="module", params=[("nf4", 4), ("int8", 8), ("int4", 4)], ids=["nf4", "int8", "int4"]
)
def quantized(request: pytest.FixtureRequest) -> Iterator[Quantized]:
    method, bits = request.param
    settings = make_settings(quantization=method)
    loaded = load(settings)
    with ServerThread(settings, loaded) as server:
        yield server, loaded, method, bits


def test_quantized_model_answers_and_reports_itself(quantized: Quantized) -> None:
    server, _, method, bits = quantized
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest())
        assert (info.quantization.method, info.quantization.bits) == (method, bits)
        assert "Paris" in stub.Generate(chat(CAPITAL_QUESTION)).text


def test_linear_layers_hold_quantized_weights(quantized: Quantized) -> None:
    """What is in memory, not what GetModelInfo repeats from the configuration.

    NF4: every projection of every decoder layer is a bitsandbytes layer storing two 4-bit codes
    per uint8. int8/int4 on CPU: the engine's forward (shared by every engine over this model)
    runs every projection and the head on int8 weights with one scale per output channel, or on
    4-bit codes with a scale and zero per group of inputs.
    """
    import bitsandbytes as bnb
    import torch

    from seseragi.engine import llama
    from seseragi.engine.build import engine_weights
    from seseragi.engine.weight_only import INT4_GROUP, Int4Weight, Int8Weight, QuantizedLinear

    _, loaded, method, _ = quantized
    layers = loaded.model.model.layers
    if method in ("int8", "int4") and loaded.info.device == "cpu":
        assert engine_weights(loaded) == method
        linears = llama.forward_for(loaded.model, method).linears()
        assert len(linears) == 4 * len(layers) + 1  # qkv, out, gate_up, down; the head
        for index, linear in enumerate(linears):
            assert isinstance(linear, QuantizedLinear)
            weight = linear.weight
            if method == "int8" or index == len(linears) - 1:  # int4 layers keep an int8 head
                assert isinstance(weight, Int8Weight) and weight.values.dtype == torch.int8
                assert weight.scales.shape == (weight.values.shape[0],)
            else:
                assert isinstance(weight, Int4Weight) and int(weight.codes.max()) <= 15
                assert weight.scales.shape[1] * INT4_GROUP == weight.in_features
        return
    linears = [m for m in layers.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7 * len(layers)  # q, k, v, o, gate, up, down
    for linear in linears:
        if method == "nf4":
            assert isinstance(linear, bnb.nn.Linear4bit)
            assert linear.weight.dtype == torch.uint8
            assert linear.weight.numel() * 2 == linear.in_features * linear.out_features
            assert linear.weight.quant_state.quant_type == "nf4"
        else:
            assert isinstance(linear, bnb.nn.Linear8bitLt)
            assert linear.weight.dtype == torch.int8
        assert str(linear.weight.device) == loaded.info.device
