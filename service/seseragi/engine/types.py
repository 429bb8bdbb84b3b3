"""Plain data the engine takes and gives: no torch, no protobuf."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

# Temperatures below this are greedy: dividing logits by a denormal would make them infinite.
GREEDY_TEMPERATURE = 1e-5


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How the next token is picked; a temperature below GREEDY_TEMPERATURE means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0
    presence_penalty: float = 0.0  # OpenAI's: once per token present in the output
    frequency_penalty: float = 0.0  # OpenAI's: per occurrence in the output
    min_p: float = 0.0  # drop tokens below min_p x the top probability; 0: off
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token_id, bias) added to the logits

    @property
    def penalizes_output(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_TEMPERATURE


@dataclass(frozen=True, slots=True)
class StoppingParams:
    """When a generation ends; `time_limit_s` is soft (ends OK with partial text)."""

    max_new_tokens: int
    min_new_tokens: int = 0
    stop_sequences: tuple[str, ...] = ()
    include_stop_sequence: bool = False
    time_limit_s: float | None = None
    stop_token_ids: tuple[int, ...] = ()  # sampling one ends the generation (STOP_TOKEN)
    ignore_eos: bool = False  # end-of-sequence does not end the generation


STRUCTURED_KINDS = ("json_schema", "regex", "grammar", "choice")


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """A grammar the output must follow. `spec` is the schema, regex or EBNF text as given, or
    for `choice` a JSON array of the allowed strings: plain text, so it crosses processes."""

    kind: str  # one of STRUCTURED_KINDS
    spec: str

    @property
    def key(self) -> str:
        """The digest a compiled grammar is cached under."""
        return hashlib.sha256(f"{self.kind}\0{self.spec}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Request:
    """One generation request, already tokenized and validated."""

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams
    stopping: StoppingParams
    logprobs: bool = False
    top_logprobs: int = 0
    deadline: float | None = None  # time.monotonic() value; None means no deadline
    structured: StructuredOutput | None = None  # compiled before admission (engine/grammar.py)


class StopReason(enum.Enum):
    MAX_TOKENS = "max_tokens"
    END_OF_SEQUENCE = "end_of_sequence"
    STOP_SEQUENCE = "stop_sequence"
    TIME_LIMIT = "time_limit"
    CONTEXT_LENGTH = "context_length"
    STOP_TOKEN = "stop_token"


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()  # (token_id, logprob), most likely first


@dataclass(slots=True)
class TextDelta:
    """New text and the tokens it came from; never splits a character or leaks a stop prefix."""

    text: str
    token_ids: list[int]
    generated_token_count: int
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Timings:
    queue_s: float
    time_to_first_token_s: float
    decode_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of a successful generation."""

    stop_reason: StopReason
    stop_sequence: str
    input_tokens: int
    output_tokens: int
    timings: Timings


@dataclass(frozen=True, slots=True)
class Failed:
    """The last event of a generation the engine could not finish."""

    error: Exception


Event = TextDelta | Finished | Failed
