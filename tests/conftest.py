"""Shared fixtures: the real model, loaded once, and a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from seseragi.model.loader import LoadedModel, load
from seseragi.v1 import generation_pb2_grpc
from tests.servers import ServerThread, make_settings


@pytest.fixture(scope="session")
def loaded_model() -> LoadedModel:
    return load(make_settings())


@pytest.fixture(scope="session")
def server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    with ServerThread(make_settings(), loaded_model) as running:
        yield running


@pytest.fixture
def stub(server: ServerThread) -> Iterator[generation_pb2_grpc.GenerationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield generation_pb2_grpc.GenerationServiceStub(channel)
