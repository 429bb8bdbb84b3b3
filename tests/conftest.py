"""Shared fixtures: the real model, loaded once, and a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from seseragi.model.loader import LoadedModel, load
from seseragi_contract.v1 import generation_pb2_grpc
from tests.redis_servers import delete_keys
from tests.servers import REDIS_TEST_PREFIX, ServerThread, make_settings


@pytest.fixture(scope="session", autouse=True)
def redis_test_keys() -> Iterator[str]:
    """The Redis key prefix of this run; its keys are deleted at the end (never FLUSHALL)."""
    yield REDIS_TEST_PREFIX
    delete_keys(make_settings().redis_url, REDIS_TEST_PREFIX)


@pytest.fixture(scope="session", autouse=True)
def native_kernels() -> None:
    """The engine's native CPU kernels, built once before any server starts: on a fresh machine
    the first engine would compile them (about 20 s) inside some server's start-up window, or
    several servers at once. Building them is itself tested (tests/unit/engine)."""
    import torch

    from seseragi.engine.kernels import kernels_for

    kernels_for("auto", torch.float32, torch.device("cpu"), make_settings().cache_dir)


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
