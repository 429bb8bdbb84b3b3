"""A small typed Python client for Seseragi over the generated gRPC stubs.

The request and response types are the generated modules of the contract package
(`seseragi_contract.v1.generation_pb2`, `jobs_pb2`), a dependency of this one.
"""

from seseragi_client.async_client import AsyncClient
from seseragi_client.errors import SeseragiError
from seseragi_client.requests import GenerateParams, Turn, build_request
from seseragi_client.retry import NO_RETRY, RetryEvent, RetryPolicy
from seseragi_client.sync_client import Client

__all__ = [
    "NO_RETRY",
    "AsyncClient",
    "Client",
    "GenerateParams",
    "RetryEvent",
    "RetryPolicy",
    "SeseragiError",
    "Turn",
    "build_request",
]
