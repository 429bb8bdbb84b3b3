"""Any local model directory loads; dtype and the context cap are what GetModelInfo reports."""

from __future__ import annotations

import grpc
import pytest

from seseragi.model import builtin
from seseragi.model.loader import load
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration


def test_local_directory_model_with_bfloat16_and_a_context_cap() -> None:
    model_dir = builtin.converted_dir(make_settings().cache_dir)
    settings = make_settings(model=str(model_dir), dtype="bfloat16", max_context_tokens=48)
    with (
        ServerThread(settings, load(settings)) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest())
        assert info.model_id == str(model_dir)
        assert info.revision.startswith("sha256:")
        assert (info.dtype, info.quantization.method, info.quantization.bits) == (
            "bfloat16",
            "none",
            16,
        )
        assert info.context_length == 48
        response = stub.Generate(chat(CAPITAL_QUESTION, max_new_tokens=100, min_new_tokens=100))
        assert response.stop_reason == pb.STOP_REASON_CONTEXT_LENGTH
        assert response.usage.input_tokens + response.usage.output_tokens == 48
