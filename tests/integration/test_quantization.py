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


@pytest.fixture(scope="module", params=[("nf4", 4), ("int8", 8)], ids=["nf4", "int8"])
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
    per uint8. int8 on CPU: the engine's forward (shared by every engine over this model) runs
    every projection and the head on int8 weights with one scale per output channel.
    """
    import bitsandbytes as bnb
    import torch

    from seseragi.engine import llama
    from seseragi.engine.build import engine_weights
    from seseragi.engine.int8_linear import Int8Linear

    _, loaded, method, _ = quantized
    layers = loaded.model.model.layers
    if method == "int8" and loaded.info.device == "cpu":
        assert engine_weights(loaded) == "int8"
        linears = llama.forward_for(loaded.model, "int8").linears()
        assert len(linears) == 4 * len(layers) + 1  # qkv, out, gate_up, down; the head
        for linear in linears:
            assert isinstance(linear, Int8Linear)
            assert linear.weight.values.dtype == torch.int8
            assert linear.weight.scales.shape == (linear.weight.values.shape[0],)
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
