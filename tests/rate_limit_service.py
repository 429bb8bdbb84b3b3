"""A rate-limit service speaking Envoy's RLS protocol, applying the rendered rules, for the tests.

envoyproxy/ratelimit (Go, over Redis) cannot run here. This one answers the same gRPC method
with the same fixed-window rules file, so a real Envoy's global filter can be driven end to
end. Written by hand: no Python package ships the RLS protos. Only the fields Envoy sends that
matter are declared (envoy/service/ratelimit/v3/rls.proto numbering); protobuf skips the rest.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "envoy.service.ratelimit.v3"
OK, OVER_LIMIT = 1, 2  # RateLimitResponse.Code
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
F = descriptor_pb2.FieldDescriptorProto


def _message(name: str, *fields: tuple[str, int, int, int, str]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, label, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    return message


def _classes() -> tuple[Any, Any]:
    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/rls_subset.proto", package=PACKAGE, syntax="proto3"
    )
    proto.message_type.extend(
        [
            _message(
                "Entry", ("key", 1, F.TYPE_STRING, one, ""), ("value", 2, F.TYPE_STRING, one, "")
            ),
            _message("Descriptor", ("entries", 1, F.TYPE_MESSAGE, many, f".{PACKAGE}.Entry")),
            _message(
                "RateLimitRequest",
                ("domain", 1, F.TYPE_STRING, one, ""),
                ("descriptors", 2, F.TYPE_MESSAGE, many, f".{PACKAGE}.Descriptor"),
                ("hits_addend", 3, F.TYPE_UINT32, one, ""),
            ),
            _message("RateLimitResponse", ("overall_code", 1, F.TYPE_INT32, one, "")),
        ]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PACKAGE}.RateLimitRequest")
    )
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PACKAGE}.RateLimitResponse")
    )
    return request, response


Request, Response = _classes()


class RateLimitService:
    """Counts each descriptor in a fixed window per its rule, as envoyproxy/ratelimit does
    (whose windows start on the clock's minute; these start when the service does)."""

    def __init__(self, rules: dict[str, Any]) -> None:
        self.rules = rules
        self.seen: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self._counts: Counter[tuple[object, ...]] = Counter()
        self._lock = threading.Lock()
        self._started = time.monotonic()  # windows from here: a test never straddles a boundary
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(
            self._should_rate_limit,
            request_deserializer=Request.FromString,
            response_serializer=Response.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    f"{PACKAGE}.RateLimitService", {"ShouldRateLimit": handler}
                )
            ]
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> RateLimitService:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    def _rule(self, entries: tuple[tuple[str, str], ...]) -> dict[str, Any] | None:
        if len(entries) != 1:
            return None  # the project's rules are one level deep
        key, value = entries[0]
        for rule in self.rules["descriptors"]:
            if rule["key"] == key and rule.get("value", value) == value:
                limit: dict[str, Any] = rule["rate_limit"]
                return limit
        return None

    def _should_rate_limit(self, request: Any, context: grpc.ServicerContext) -> Any:
        code = OK
        with self._lock:
            for descriptor in request.descriptors:
                entries = tuple((e.key, e.value) for e in descriptor.entries)
                self.seen.append((request.domain, entries))
                limit = self._rule(entries) if request.domain == self.rules["domain"] else None
                if limit is None:
                    continue
                window = int(time.monotonic() - self._started) // UNIT_SECONDS[limit["unit"]]
                self._counts[(entries, window)] += request.hits_addend or 1
                if self._counts[(entries, window)] > limit["requests_per_unit"]:
                    code = OVER_LIMIT
        return Response(overall_code=code)
