"""From a protobuf request to an engine `Request`, naming every field that breaks a rule."""

from __future__ import annotations

import secrets
import struct
import time
from dataclasses import dataclass

from seseragi.api.convert.structured import structured_spec
from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.engine.types import Request, SamplingParams, StoppingParams
from seseragi.model.tokenizer import CHAT_ROLES, TextTokenizer, Tools
from seseragi.settings import GenerationSettings
from seseragi_contract.v1 import generation_pb2 as pb

MAX_REQUEST_ID_LENGTH = 128
MAX_CHOICES = 8
MAX_LOGIT_BIAS = 300
MAX_STOP_TOKEN_IDS = 16
# Every accepted sampling value keeps the sampler finite: with logits clamped to 1e4 (see
# engine.sampling), 1e4 / MIN_REPETITION_PENALTY / GREEDY_TEMPERATURE is still far below float32's
# limit, and temperatures under GREEDY_TEMPERATURE are greedy. NaN fails every range check.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.0, 2.0
MIN_REPETITION_PENALTY, MAX_REPETITION_PENALTY = 0.01, 10.0


def as_float32(value: float) -> float:
    """The proto's float fields are 32-bit: a client's 0.01 arrives as 0.0099999998, so each bound
    is compared in the precision the value travelled in."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


GenerateMessage = pb.GenerateRequest | pb.GenerateStreamRequest
InputMessage = GenerateMessage | pb.TokenizeRequest


@dataclass(frozen=True, slots=True)
class RenderedInput:
    text: str
    token_ids: list[int]
    field: str  # "prompt" or "messages", for error messages


def check_input(message: InputMessage, tokenizer: TextTokenizer) -> list[FieldViolation]:
    """Rules on prompt/messages that hold before tokenizing."""
    has_prompt = message.HasField("prompt")
    if has_prompt and message.messages:
        return [
            _v("prompt", "give exactly one of prompt and messages, not both", "INPUT_AMBIGUOUS")
        ]
    if not has_prompt and not message.messages:
        return [_v("prompt", "give exactly one of prompt and messages", "INPUT_MISSING")]
    if has_prompt and not message.prompt:
        return [_v("prompt", "must not be empty", "EMPTY_PROMPT")]
    if message.messages and not tokenizer.has_chat_template:
        return [
            _v("messages", "this model has no chat template; send a prompt", "CHAT_UNSUPPORTED")
        ]
    return [
        _v(
            f"messages[{i}].role",
            f"unknown role {m.role!r}; use one of {', '.join(CHAT_ROLES)}",
            "UNKNOWN_ROLE",
        )
        for i, m in enumerate(message.messages)
        if m.role not in CHAT_ROLES
    ]


def render_input(
    message: InputMessage, tokenizer: TextTokenizer, tools: Tools = ()
) -> RenderedInput:
    if message.HasField("prompt"):
        return RenderedInput(message.prompt, tokenizer.encode(message.prompt), "prompt")
    text, ids = tokenizer.encode_chat([(m.role, m.content) for m in message.messages], tools)
    return RenderedInput(text, ids, "messages")


def input_limit_violation(
    rendered: RenderedInput, settings: GenerationSettings, context_length: int
) -> FieldViolation | None:
    limit = min(settings.max_input_tokens, context_length - 1)
    count = len(rendered.token_ids)
    if count > limit:
        return _v(
            rendered.field,
            f"input is {count} tokens; the limit is {limit} tokens",
            "INPUT_TOO_LONG",
        )
    return None


def parse_generate(
    message: GenerateMessage,
    tokenizer: TextTokenizer,
    settings: GenerationSettings,
    context_length: int,
    time_remaining: float | None,
    tools: Tools = (),
) -> Request:
    """Validate everything but a grammar's compile (the engine's, see `structured`), render and
    tokenize the input (with OpenAI `tools`, which only the HTTP face has), and build the engine
    request."""
    structured, structured_violations = structured_spec(message)
    violations = (
        check_input(message, tokenizer)
        + _check_parameters(message, settings)
        + _check_token_ids(message, tokenizer.vocab_size)
        + structured_violations
    )
    if violations:
        raise InvalidRequest(violations)
    rendered = render_input(message, tokenizer, tools)
    too_long = input_limit_violation(rendered, settings, context_length)
    if too_long is not None:
        raise InvalidRequest([too_long])
    return Request(
        request_id=message.request_id or secrets.token_hex(8),
        prompt_token_ids=tuple(rendered.token_ids),
        sampling=_sampling(message.sampling, settings),
        stopping=_stopping(message.stopping, settings),
        logprobs=message.options.logprobs or message.options.top_logprobs > 0,
        top_logprobs=message.options.top_logprobs,
        deadline=None if time_remaining is None else time.monotonic() + time_remaining,
        structured=structured,
    )


def _check_parameters(
    message: GenerateMessage, settings: GenerationSettings
) -> list[FieldViolation]:
    found = (
        _check_sampling(message.sampling)
        + _check_openai_sampling(message.sampling)
        + _check_stopping(message.stopping, settings)
    )
    if message.options.top_logprobs > settings.max_top_logprobs:
        found.append(
            _v(
                "options.top_logprobs",
                f"must be at most {settings.max_top_logprobs}",
                "OUT_OF_RANGE",
            )
        )
    if message.n > MAX_CHOICES:
        found.append(_v("n", f"must be in [1, {MAX_CHOICES}]", "OUT_OF_RANGE"))
    if len(message.request_id) > MAX_REQUEST_ID_LENGTH:
        found.append(
            _v("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters", "TOO_LONG")
        )
    return found


def _check_sampling(sampling: pb.SamplingParams) -> list[FieldViolation]:
    found = []
    temperature = sampling.temperature
    if sampling.HasField("temperature") and not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        found.append(_v("sampling.temperature", "must be in [0, 2]", "OUT_OF_RANGE"))
    if sampling.HasField("top_p") and not 0.0 < sampling.top_p <= 1.0:
        found.append(_v("sampling.top_p", "must be in (0, 1]", "OUT_OF_RANGE"))
    if sampling.top_k < 0:
        found.append(_v("sampling.top_k", "must not be negative", "OUT_OF_RANGE"))
    penalty = sampling.repetition_penalty
    if sampling.HasField("repetition_penalty") and not (
        as_float32(MIN_REPETITION_PENALTY) <= penalty <= MAX_REPETITION_PENALTY
    ):
        found.append(
            _v(
                "sampling.repetition_penalty",
                f"must be in [{MIN_REPETITION_PENALTY:g}, {MAX_REPETITION_PENALTY:g}]",
                "OUT_OF_RANGE",
            )
        )
    return found


def _check_openai_sampling(sampling: pb.SamplingParams) -> list[FieldViolation]:
    found = [
        _v(f"sampling.{name}", "must be in [-2, 2]", "OUT_OF_RANGE")
        for name in ("presence_penalty", "frequency_penalty")
        if sampling.HasField(name) and not -2.0 <= getattr(sampling, name) <= 2.0
    ]
    if sampling.HasField("min_p") and not 0.0 <= sampling.min_p <= 1.0:
        found.append(_v("sampling.min_p", "must be in [0, 1]", "OUT_OF_RANGE"))
    if len(sampling.logit_bias) > MAX_LOGIT_BIAS:
        found.append(_v("sampling.logit_bias", f"at most {MAX_LOGIT_BIAS} entries", "TOO_MANY"))
    found.extend(
        _v(f"sampling.logit_bias[{token}]", "must be in [-100, 100]", "OUT_OF_RANGE")
        for token, bias in sorted(sampling.logit_bias.items())
        if not -100.0 <= bias <= 100.0
    )
    return found


def _check_token_ids(message: GenerateMessage, vocab_size: int) -> list[FieldViolation]:
    """Token ids a caller names must exist, or the sampler would index past the logits."""
    stop_ids = message.stopping.stop_token_ids
    found = [
        _v(f"sampling.logit_bias[{token}]", f"must be below {vocab_size}", "BAD_TOKEN_ID")
        for token in sorted(message.sampling.logit_bias)
        if token >= vocab_size
    ]
    if len(stop_ids) > MAX_STOP_TOKEN_IDS:
        found.append(_v("stopping.stop_token_ids", f"at most {MAX_STOP_TOKEN_IDS} ids", "TOO_MANY"))
    found.extend(
        _v(f"stopping.stop_token_ids[{i}]", f"must be below {vocab_size}", "BAD_TOKEN_ID")
        for i, token in enumerate(stop_ids)
        if token >= vocab_size
    )
    return found


def _check_stopping(
    stopping: pb.StoppingCriteria, settings: GenerationSettings
) -> list[FieldViolation]:
    found = []
    max_new = (
        stopping.max_new_tokens
        if stopping.HasField("max_new_tokens")
        else settings.default_max_new_tokens
    )
    if stopping.HasField("max_new_tokens") and not 1 <= max_new <= settings.max_new_tokens:
        found.append(
            _v(
                "stopping.max_new_tokens",
                f"must be in [1, {settings.max_new_tokens}]",
                "OUT_OF_RANGE",
            )
        )
    if stopping.min_new_tokens > max_new:
        found.append(
            _v(
                "stopping.min_new_tokens",
                f"must be at most max_new_tokens ({max_new})",
                "OUT_OF_RANGE",
            )
        )
    if len(stopping.stop_sequences) > settings.max_stop_sequences:
        found.append(
            _v(
                "stopping.stop_sequences",
                f"at most {settings.max_stop_sequences} stop sequences",
                "TOO_MANY",
            )
        )
    for i, stop in enumerate(stopping.stop_sequences):
        if not stop:
            found.append(
                _v(f"stopping.stop_sequences[{i}]", "must not be empty", "EMPTY_STOP_SEQUENCE")
            )
        elif len(stop) > settings.max_stop_sequence_length:
            limit = settings.max_stop_sequence_length
            found.append(
                _v(
                    f"stopping.stop_sequences[{i}]",
                    f"must be at most {limit} characters",
                    "TOO_LONG",
                )
            )
    return found


def _sampling(sampling: pb.SamplingParams, settings: GenerationSettings) -> SamplingParams:
    return SamplingParams(
        temperature=sampling.temperature
        if sampling.HasField("temperature")
        else settings.default_temperature,
        top_p=sampling.top_p if sampling.HasField("top_p") else 1.0,
        top_k=sampling.top_k,
        repetition_penalty=sampling.repetition_penalty
        if sampling.HasField("repetition_penalty")
        else 1.0,
        seed=sampling.seed if sampling.HasField("seed") else secrets.randbits(63),
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        min_p=sampling.min_p,
        logit_bias=tuple(sorted(sampling.logit_bias.items())),
    )


def _stopping(stopping: pb.StoppingCriteria, settings: GenerationSettings) -> StoppingParams:
    time_limit_ms = stopping.time_limit_ms if stopping.HasField("time_limit_ms") else 0
    return StoppingParams(
        max_new_tokens=stopping.max_new_tokens
        if stopping.HasField("max_new_tokens")
        else settings.default_max_new_tokens,
        min_new_tokens=stopping.min_new_tokens,
        stop_sequences=tuple(stopping.stop_sequences),
        include_stop_sequence=stopping.include_stop_sequence,
        time_limit_s=time_limit_ms / 1000 if time_limit_ms else None,
        stop_token_ids=tuple(stopping.stop_token_ids),
        ignore_eos=stopping.ignore_eos,
    )


def _v(field: str, description: str, reason: str) -> FieldViolation:
    return FieldViolation(field, description, reason)
