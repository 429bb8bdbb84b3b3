"""bitsandbytes quantization loads and generates on CPU too, and GetModelInfo says so."""

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
    """Every projection of every decoder layer is a bitsandbytes layer storing packed weights.

    GetModelInfo only repeats the configuration; this looks at what is in memory (NF4: two
    4-bit codes per uint8, so half as many elements as the full matrix).
    """
    import bitsandbytes as bnb
    import torch

    _, loaded, method, _ = quantized
    layers = loaded.model.model.layers
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
