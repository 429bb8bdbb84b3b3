"""The REST routes Envoy transcodes come from the contract's google.api.http annotations."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2

from seseragi_contract.v1 import generation_pb2 as pb

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "verb", "path"),
    [
        ("Generate", "post", "/v1/generate"),
        ("GenerateStream", "post", "/v1/generate:stream"),
        ("Tokenize", "post", "/v1/tokenize"),
        ("GetModelInfo", "get", "/v1/model"),
    ],
)
def test_every_rpc_has_its_rest_route(method: str, verb: str, path: str) -> None:
    service = pb.DESCRIPTOR.services_by_name["GenerationService"]
    rule = service.methods_by_name[method].GetOptions().Extensions[annotations_pb2.http]
    assert getattr(rule, verb) == path
    assert rule.body == ("" if verb == "get" else "*")
