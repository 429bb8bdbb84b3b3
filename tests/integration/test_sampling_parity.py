"""The OpenAI sampling parameters and n choices over gRPC, against a real server and model."""

from __future__ import annotations

import grpc
import pytest

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat

pytestmark = pytest.mark.integration
Stub = generation_pb2_grpc.GenerationServiceStub


def sampled(n: int = 1, seed: int = 77, **sampling: object) -> pb.GenerateRequest:
    request = chat("Name an animal.", max_new_tokens=10, temperature=1.0)
    request.sampling.seed = seed
    for name, value in sampling.items():
        if name == "logit_bias":
            request.sampling.logit_bias.update(value)  # type: ignore[arg-type]
        else:
            setattr(request.sampling, name, value)
    request.n = n
    return request


def test_generate_returns_every_choice_reproducibly(stub: Stub) -> None:
    request = sampled(n=3, presence_penalty=0.5, frequency_penalty=0.5, min_p=0.05)
    first, again = stub.Generate(request), stub.Generate(request)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert [c.seed for c in first.choices] == [c.seed for c in again.choices]
    assert len({c.seed for c in first.choices}) == 3
    assert first.text == first.choices[0].text and first.seed == 77
    # Choice 0 is the request itself: n=1 with the same seed gives the same text.
    alone = sampled(n=1, presence_penalty=0.5, frequency_penalty=0.5, min_p=0.05)
    assert stub.Generate(alone).text == first.text


def test_stream_tags_each_choice(stub: Stub) -> None:
    request = sampled(n=2)
    unary = stub.Generate(request)
    texts = {0: "", 1: ""}
    finals = []
    for event in stub.GenerateStream(as_stream(request)):
        if event.HasField("delta"):
            texts[event.delta.choice_index] += event.delta.text
        elif event.HasField("final"):
            finals.append(event.final.choice_index)
    assert sorted(finals) == [0, 1]
    assert [texts[0], texts[1]] == [c.text for c in unary.choices]


def test_new_parameters_are_seeded(stub: Stub) -> None:
    for params in (
        {"presence_penalty": 1.5},
        {"frequency_penalty": -1.0},
        {"min_p": 0.2},
        {"logit_bias": {100: 5.0, 200: -100.0}},
    ):
        request = sampled(**params)
        assert stub.Generate(request).text == stub.Generate(request).text, params


def test_logit_bias_bans_and_stop_token_ids_stop(stub: Stub) -> None:
    greedy = stub.Generate(chat("Count: 1, 2, 3,", max_new_tokens=4))
    first = greedy.token_ids[0]
    banned = chat("Count: 1, 2, 3,", max_new_tokens=4)
    banned.sampling.logit_bias[first] = -100.0
    assert stub.Generate(banned).token_ids[0] != first
    stopping = chat("Count: 1, 2, 3,", max_new_tokens=4, stop_token_ids=[first])
    stopped = stub.Generate(stopping)
    assert stopped.stop_reason == pb.STOP_REASON_STOP_TOKEN
    assert list(stopped.token_ids) == [first] and stopped.text == ""


def test_ignore_eos_runs_to_max_tokens(stub: Stub) -> None:
    short = stub.Generate(chat(CAPITAL_QUESTION, max_new_tokens=16))
    assert short.stop_reason == pb.STOP_REASON_END_OF_SEQUENCE
    forced = stub.Generate(chat(CAPITAL_QUESTION, max_new_tokens=16, ignore_eos=True))
    assert forced.stop_reason == pb.STOP_REASON_MAX_TOKENS
    assert len(forced.token_ids) == 16 and forced.text.startswith(short.text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: setattr(r.sampling, "presence_penalty", 2.5), "sampling.presence_penalty"),
        (lambda r: setattr(r.sampling, "min_p", 1.5), "sampling.min_p"),
        (lambda r: r.sampling.logit_bias.update({5: 101.0}), "sampling.logit_bias[5]"),
        (lambda r: r.sampling.logit_bias.update({10**7: 1.0}), "sampling.logit_bias[10000000]"),
        (lambda r: r.stopping.stop_token_ids.append(10**7), "stopping.stop_token_ids[0]"),
        (lambda r: setattr(r, "n", 9), "n"),
    ],
)
def test_out_of_range_names_the_field(stub: Stub, change: object, field: str) -> None:
    request = chat("Hi")
    change(request)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as refused:
        stub.Generate(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (refused.value.details() or "")
