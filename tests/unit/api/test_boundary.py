"""Whatever escapes a handler ends as a mapped status: never UNKNOWN naming a Python type."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import wrappers_pb2

from seseragi.api.boundary import ErrorBoundary

pytestmark = pytest.mark.unit
Text = wrappers_pb2.StringValue


async def broken_unary(request: Text, context: grpc.aio.ServicerContext) -> Text:
    raise KeyError("secret-internal-detail")


async def broken_stream(request: Text, context: grpc.aio.ServicerContext) -> AsyncIterator[Text]:
    yield Text(value="first")
    raise ValueError("secret-internal-detail")


async def test_an_escaping_exception_is_internal_without_its_type() -> None:
    server = grpc.aio.server(interceptors=[ErrorBoundary()])
    codecs = {
        "request_deserializer": Text.FromString,
        "response_serializer": Text.SerializeToString,
    }
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(broken_unary, **codecs),
        "Stream": grpc.unary_stream_rpc_method_handler(broken_stream, **codecs),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Broken", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary(
                "/test.Broken/Unary", Text.SerializeToString, Text.FromString
            )
            stream = channel.unary_stream(
                "/test.Broken/Stream", Text.SerializeToString, Text.FromString
            )
            with pytest.raises(grpc.aio.AioRpcError) as unary_error:
                await unary(Text(value="x"))
            call = stream(Text(value="x"))
            received = [(await call.read()).value]  # type: ignore[union-attr]
            with pytest.raises(grpc.aio.AioRpcError) as stream_error:
                await call.read()
    finally:
        await server.stop(0)
    assert received == ["first"]
    for error in (unary_error.value, stream_error.value):
        assert error.code() is grpc.StatusCode.INTERNAL
        details = error.details() or ""
        assert "Error" not in details and "secret" not in details, details
