"""Every bad input gets INVALID_ARGUMENT with a BadRequest naming its field."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat
from tests.servers import ServerThread

pytestmark = pytest.mark.integration
Stub = generation_pb2_grpc.GenerationServiceStub


def with_changes(**changes: object) -> pb.GenerateRequest:
    request = chat(CAPITAL_QUESTION)
    for path, value in changes.items():
        target = request
        *parents, leaf = path.split("__")
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, list):
            getattr(target, leaf).extend(value)
        else:
            setattr(target, leaf, value)
    return request


BAD_INPUTS = {
    "neither input": (pb.GenerateRequest(), "prompt", "INPUT_MISSING"),
    "both inputs": (with_changes(prompt="hi"), "prompt", "INPUT_AMBIGUOUS"),
    "empty prompt": (pb.GenerateRequest(prompt=""), "prompt", "EMPTY_PROMPT"),
    "unknown role": (
        pb.GenerateRequest(messages=[pb.ChatMessage(role="wizard", content="hi")]),
        "messages[0].role",
        "UNKNOWN_ROLE",
    ),
    "input too long": (pb.GenerateRequest(prompt="word " * 3000), "prompt", "INPUT_TOO_LONG"),
    "temperature too high": (
        with_changes(sampling__temperature=2.5),
        "sampling.temperature",
        "OUT_OF_RANGE",
    ),
    "temperature negative": (
        with_changes(sampling__temperature=-0.1),
        "sampling.temperature",
        "OUT_OF_RANGE",
    ),
    "top_p zero": (with_changes(sampling__top_p=0.0), "sampling.top_p", "OUT_OF_RANGE"),
    "top_p above one": (with_changes(sampling__top_p=1.5), "sampling.top_p", "OUT_OF_RANGE"),
    "negative top_k": (with_changes(sampling__top_k=-1), "sampling.top_k", "OUT_OF_RANGE"),
    "NaN temperature": (
        with_changes(sampling__temperature=float("nan")),
        "sampling.temperature",
        "OUT_OF_RANGE",
    ),
    "NaN top_p": (with_changes(sampling__top_p=float("nan")), "sampling.top_p", "OUT_OF_RANGE"),
    "repetition penalty too small": (
        with_changes(sampling__repetition_penalty=1e-30),
        "sampling.repetition_penalty",
        "OUT_OF_RANGE",
    ),
    "infinite repetition penalty": (
        with_changes(sampling__repetition_penalty=float("inf")),
        "sampling.repetition_penalty",
        "OUT_OF_RANGE",
    ),
    "max_new_tokens zero": (
        with_changes(stopping__max_new_tokens=0),
        "stopping.max_new_tokens",
        "OUT_OF_RANGE",
    ),
    "max_new_tokens above cap": (
        with_changes(stopping__max_new_tokens=100_000),
        "stopping.max_new_tokens",
        "OUT_OF_RANGE",
    ),
    "min above max": (
        with_changes(stopping__min_new_tokens=30),
        "stopping.min_new_tokens",
        "OUT_OF_RANGE",
    ),
    "too many stop sequences": (
        with_changes(stopping__stop_sequences=[str(i) for i in range(20)]),
        "stopping.stop_sequences",
        "TOO_MANY",
    ),
    "stop sequence too long": (
        with_changes(stopping__stop_sequences=["x" * 500]),
        "stopping.stop_sequences[0]",
        "TOO_LONG",
    ),
    "empty stop sequence": (
        with_changes(stopping__stop_sequences=[""]),
        "stopping.stop_sequences[0]",
        "EMPTY_STOP_SEQUENCE",
    ),
}


def details_of(
    error: grpc.RpcError,
) -> tuple[error_details_pb2.BadRequest, error_details_pb2.ErrorInfo]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
        elif detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
    return bad, info


@pytest.mark.parametrize(
    ("request_", "field", "reason"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys()
)
@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
def test_bad_input_names_its_field(
    stub: Stub, method: str, request_: pb.GenerateRequest, field: str, reason: str
) -> None:
    def call() -> object:
        if method == "Generate":
            return stub.Generate(request_)
        return list(stub.GenerateStream(as_stream(request_)))

    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad, info = details_of(caught.value)
    assert field in [v.field for v in bad.field_violations]
    assert reason in [v.reason for v in bad.field_violations]
    assert info.domain == "seseragi.v1"
    assert field in caught.value.details()


def test_input_too_long_message_states_counts_and_limit(stub: Stub) -> None:
    prompt = "word " * 3000
    count = stub.Tokenize(pb.TokenizeRequest(prompt=prompt)).token_count
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(pb.GenerateRequest(prompt=prompt))
    assert f"input is {count} tokens; the limit is 2048 tokens" in caught.value.details()


def test_every_violation_is_reported_at_once(stub: Stub) -> None:
    request = with_changes(sampling__temperature=9.0, sampling__top_k=-3)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(request)
    bad, _ = details_of(caught.value)
    assert {v.field for v in bad.field_violations} == {"sampling.temperature", "sampling.top_k"}


def test_server_keeps_serving_after_errors(stub: Stub) -> None:
    assert "Paris" in stub.Generate(chat(CAPITAL_QUESTION)).text


UNREADABLE_BYTES = b"\xff\xff\xff\xff\x0f"  # a varint that never ends: no message parses from it


@pytest.mark.parametrize(
    ("method", "streaming"),
    [
        ("/seseragi.v1.GenerationService/Generate", False),
        ("/seseragi.v1.GenerationService/GenerateStream", True),
        ("/seseragi.v1.GenerationService/Tokenize", False),
        ("/seseragi.v1.JobService/SubmitJob", False),
        ("/seseragi.v1.JobService/GetJob", False),
    ],
)
def test_bytes_that_are_no_message_get_invalid_argument(
    server: ServerThread, method: str, streaming: bool
) -> None:
    """Found by the fault suite's fuzz row: these ended UNKNOWN before any handler ran."""

    def call(channel: grpc.Channel) -> object:
        if streaming:
            return list(channel.unary_stream(method)(UNREADABLE_BYTES, timeout=10))
        return channel.unary_unary(method)(UNREADABLE_BYTES, timeout=10)

    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as caught:
        call(channel)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    bad, _ = details_of(caught.value)
    assert [v.reason for v in bad.field_violations] == ["UNREADABLE"]
