"""bitsandbytes quantization loads and generates on CPU too, and GetModelInfo says so."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from seseragi.model.loader import load
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[("nf4", 4), ("int8", 8)], ids=["nf4", "int8"])
def quantized(request: pytest.FixtureRequest) -> Iterator[tuple[ServerThread, str, int]]:
    method, bits = request.param
    settings = make_settings(quantization=method)
    with ServerThread(settings, load(settings)) as server:
        yield server, method, bits


def test_quantized_model_answers_and_reports_itself(
    quantized: tuple[ServerThread, str, int],
) -> None:
    server, method, bits = quantized
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest())
        assert (info.quantization.method, info.quantization.bits) == (method, bits)
        assert "Paris" in stub.Generate(chat(CAPITAL_QUESTION)).text
