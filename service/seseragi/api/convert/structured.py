"""The request's `structured_output` as an engine spec, compiled by the engine before admission
(in the process that holds the grammars) so a bad schema, regex or grammar is refused naming its
field."""

from __future__ import annotations

import json

from seseragi.api.errors import FieldViolation
from seseragi.engine.handle import EngineClient
from seseragi.engine.types import StructuredOutput
from seseragi_contract.v1 import generation_pb2 as pb

MAX_SPEC_CHARS = 64 * 1024
MAX_CHOICES = 256


def structured_spec(
    message: pb.GenerateRequest | pb.GenerateStreamRequest,
) -> tuple[StructuredOutput | None, list[FieldViolation]]:
    """The spec the request asks for (None: free text) and the rules it breaks before compiling."""
    if not message.HasField("structured_output"):
        return None, []
    wanted = message.structured_output
    kind = wanted.WhichOneof("kind")
    field = f"structured_output.{kind}"
    if kind is None:
        return None, [FieldViolation("structured_output", "set exactly one kind", "EMPTY")]
    if kind == "choice":
        values = list(wanted.choice.values)
        if not values or len(values) > MAX_CHOICES or not all(values):
            description = f"give 1 to {MAX_CHOICES} non-empty strings"
            return None, [FieldViolation(field, description, "BAD_CHOICES")]
        spec = StructuredOutput(kind, json.dumps(values))
    else:
        spec = StructuredOutput(kind, getattr(wanted, kind))
    if not spec.spec.strip() or len(spec.spec) > MAX_SPEC_CHARS:
        description = f"must be non-empty and at most {MAX_SPEC_CHARS} characters"
        return None, [FieldViolation(field, description, "BAD_GRAMMAR")]
    if message.stopping.ignore_eos:
        description = "cannot be combined with ignore_eos: a grammar ends at end-of-sequence"
        return None, [FieldViolation(field, description, "CONFLICT")]
    return spec, []


async def grammar_violation(spec: StructuredOutput, engine: EngineClient) -> FieldViolation | None:
    """Compile (or find cached) the grammar; a violation naming the field when it does not."""
    reason = await engine.grammar_error(spec)
    if reason is None:
        return None
    return FieldViolation(f"structured_output.{spec.kind}", reason, "BAD_GRAMMAR")
