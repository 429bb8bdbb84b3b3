"""The core promises of Generate and GenerateStream against a real server and model."""

from __future__ import annotations

import time

import grpc
import pytest

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat, read_stream

pytestmark = pytest.mark.integration
Stub = generation_pb2_grpc.GenerationServiceStub


def test_unary_chat_answers_paris(stub: Stub) -> None:
    response, call = stub.Generate.with_call(chat(CAPITAL_QUESTION))
    assert "Paris" in response.text
    assert response.stop_reason == pb.STOP_REASON_END_OF_SEQUENCE
    assert response.usage.input_tokens > 10
    assert response.usage.output_tokens == len(response.token_ids)
    trailers = dict(call.trailing_metadata())
    assert trailers["x-usage-output-tokens"] == str(response.usage.output_tokens)
    assert trailers["x-usage-input-tokens"] == str(response.usage.input_tokens)
    assert trailers["x-stop-reason"] == "end_of_sequence"


def test_stream_orders_events_and_joins_to_the_unary_text(stub: Stub) -> None:
    request = chat(CAPITAL_QUESTION)
    unary = stub.Generate(request)
    result = read_stream(stub.GenerateStream(as_stream(request)))
    assert result.kinds[0] == "started" and result.kinds.count("started") == 1
    assert result.kinds[-1] == "final" and result.kinds.count("final") == 1
    assert "Paris" in result.text
    assert result.text == unary.text
    assert [t for d in result.deltas for t in d.token_ids] == list(unary.token_ids)
    assert result.final is not None and result.started is not None
    assert result.final.usage == unary.usage
    assert result.started.input_token_count == unary.usage.input_tokens
    assert result.started.seed == result.final.seed


def test_stream_is_incremental(stub: Stub) -> None:
    request = as_stream(chat("Tell me a short story about a river.", max_new_tokens=48))
    arrivals: list[tuple[str, float]] = []
    for event in stub.GenerateStream(request):
        arrivals.append((event.WhichOneof("event"), time.monotonic()))
    delta_times = [t for kind, t in arrivals if kind == "delta"]
    final_time = arrivals[-1][1]
    assert len(delta_times) > 10
    # The first delta comes long before the end: tokens are not buffered until completion.
    assert final_time - delta_times[0] > 0.5 * (final_time - arrivals[0][1])


def test_multibyte_text_never_splits(stub: Stub) -> None:
    request = chat("日本の首都はどこですか？日本語で答えてください。", max_new_tokens=40)
    result = read_stream(stub.GenerateStream(as_stream(request)))
    assert any(ord(ch) > 0x3000 for ch in result.text), result.text
    assert all("\ufffd" not in d.text for d in result.deltas)
    assert result.text == stub.Generate(request).text


def test_stop_sequence_spanning_tokens_cuts_exactly(stub: Stub) -> None:
    full = stub.Generate(chat(CAPITAL_QUESTION)).text
    stop = "of Fra"
    assert stop in full, full
    request = chat(CAPITAL_QUESTION, stop_sequences=[stop])
    result = read_stream(stub.GenerateStream(as_stream(request)))
    expected = full[: full.index(stop)]
    assert result.text == expected  # joined deltas hold nothing of the stop sequence
    assert result.final is not None
    assert result.final.stop_reason == pb.STOP_REASON_STOP_SEQUENCE
    assert result.final.stop_sequence == stop
    unary = stub.Generate(request)
    assert unary.text == expected


def test_include_stop_sequence_keeps_it(stub: Stub) -> None:
    full = stub.Generate(chat(CAPITAL_QUESTION)).text
    request = chat(CAPITAL_QUESTION, stop_sequences=["Paris"], include_stop_sequence=True)
    assert stub.Generate(request).text == full[: full.index("Paris") + len("Paris")]


def test_max_tokens_and_min_tokens(stub: Stub) -> None:
    response = stub.Generate(chat(CAPITAL_QUESTION, max_new_tokens=20, min_new_tokens=20))
    assert response.usage.output_tokens == 20
    assert response.stop_reason == pb.STOP_REASON_MAX_TOKENS


def test_time_limit_ends_ok_with_partial_text(stub: Stub) -> None:
    request = chat(
        "Write a long essay about rivers.",
        max_new_tokens=1000,
        min_new_tokens=1000,
        time_limit_ms=700,
    )
    response = stub.Generate(request)
    assert response.stop_reason == pb.STOP_REASON_TIME_LIMIT
    assert 0 < response.usage.output_tokens < 1000
    assert response.text


def test_seeded_sampling_is_reproducible(stub: Stub) -> None:
    request = chat("Invent a name for a cat.", temperature=1.0, max_new_tokens=16)
    request.sampling.seed = 1234
    first, second = stub.Generate(request), stub.Generate(request)
    assert first.text == second.text and first.seed == 1234
    unseeded = chat("Invent a name for a cat.", temperature=1.0, max_new_tokens=16)
    assert stub.Generate(unseeded).seed != stub.Generate(unseeded).seed


def test_logprobs_are_returned_per_token(stub: Stub) -> None:
    request = chat(CAPITAL_QUESTION, max_new_tokens=5)
    request.options.logprobs = True
    request.options.top_logprobs = 3
    response = stub.Generate(request)
    assert len(response.logprobs) == len(response.token_ids)
    for token_id, item in zip(response.token_ids, response.logprobs, strict=True):
        assert item.token_id == token_id and item.logprob <= 0
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].token_id == token_id  # greedy picks the most likely token


def test_tokenize_matches_generate_input(stub: Stub) -> None:
    tokenized = stub.Tokenize(
        pb.TokenizeRequest(messages=[pb.ChatMessage(role="user", content=CAPITAL_QUESTION)])
    )
    response = stub.Generate(chat(CAPITAL_QUESTION, max_new_tokens=1))
    assert tokenized.token_count == response.usage.input_tokens == len(tokenized.token_ids)
    assert tokenized.within_limits
    assert "<|im_start|>assistant" in tokenized.rendered_text
    too_long = stub.Tokenize(pb.TokenizeRequest(prompt="word " * 3000))
    assert not too_long.within_limits and "limit" in too_long.limit_violation


def test_model_info_reports_what_is_in_use(stub: Stub) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.model_id == "smollm2-135m-instruct"
    assert info.revision.startswith("sha256:")
    assert (info.device, info.dtype, info.quantization.method, info.quantization.bits) == (
        "cpu",
        "float32",
        "none",
        32,
    )
    assert info.context_length == 8192
    assert info.limits.max_new_tokens >= info.limits.default_max_new_tokens > 0
    assert info.limits.max_request_bytes > 0 and info.capabilities.chat


def test_oversized_message_is_refused(stub: Stub, server: object) -> None:
    huge = pb.GenerateRequest(prompt="x" * (2 << 20))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(huge)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
