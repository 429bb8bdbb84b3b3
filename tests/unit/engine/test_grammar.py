"""Grammar masks in the batched sampler: constrained rows follow their grammar, free rows are
untouched, end-of-sequence only where the grammar may end, a bad spec is refused by name."""

from __future__ import annotations

import json

import pytest
import torch
import xgrammar as xgr

from seseragi.engine.grammar import GrammarError, Grammars
from seseragi.engine.sampling import ROW_FAILED, RowSampler, sample_rows
from seseragi.engine.types import Request, SamplingParams, StoppingParams, StructuredOutput

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")
EOS = 0
VOCAB = ["</s>", "a", "b", "c", "{", "}", '"', ":", "x", "ab", "1"]


@pytest.fixture(scope="module")
def grammars() -> Grammars:
    info = xgr.TokenizerInfo(VOCAB, xgr.VocabType.RAW, stop_token_ids=[EOS])
    return Grammars(info)


def _row(
    grammars: Grammars,
    spec: StructuredOutput | None,
    *,
    min_new_tokens: int = 0,
    generated: tuple[int, ...] = (),
) -> RowSampler:
    if spec is not None:
        grammars.compile(spec)
    stopping = StoppingParams(max_new_tokens=16, min_new_tokens=min_new_tokens)
    request = Request("r", (1,), SamplingParams(), stopping, structured=spec)
    return RowSampler.for_request(request, CPU, grammars, generated)


def _favouring(*token_ids: int) -> torch.Tensor:
    """Logits [V] that rank `token_ids` first, in that order."""
    logits = torch.zeros(len(VOCAB))
    for rank, token_id in enumerate(token_ids):
        logits[token_id] = 10.0 - rank
    return logits


def _choice(*values: str) -> StructuredOutput:
    return StructuredOutput("choice", json.dumps(list(values)))


def test_a_constrained_row_takes_only_tokens_its_grammar_allows(grammars: Grammars) -> None:
    row = _row(grammars, _choice("b", "c"))
    token, _ = sample_rows(_favouring(1, 8, 3)[None], [row], (EOS,))[0]
    assert token == 3  # "a" and "x" are likelier but cannot start "b" or "c"


def test_free_rows_pick_the_same_with_or_without_a_constrained_neighbour(
    grammars: Grammars,
) -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, len(VOCAB))
    sampled = SamplingParams(temperature=1.0, seed=7)
    free = [
        RowSampler.create(
            sampled, (1,), min_new_tokens=0, logprobs=False, top_logprobs=0, device=CPU
        )
        for _ in range(3)
    ]
    alone = sample_rows(logits[:3].clone(), free, (EOS,))
    free_again = [
        RowSampler.create(
            sampled, (1,), min_new_tokens=0, logprobs=False, top_logprobs=0, device=CPU
        )
        for _ in range(3)
    ]
    mixed = sample_rows(logits.clone(), [*free_again, _row(grammars, _choice("x"))], (EOS,))
    assert [t for t, _ in mixed[:3]] == [t for t, _ in alone]
    assert mixed[3][0] == 8


def test_end_of_sequence_only_once_the_grammar_accepts(grammars: Grammars) -> None:
    row = _row(grammars, _choice("ab"))
    picks = [sample_rows(_favouring(EOS, 1, 9, 2)[None], [row], (EOS,))[0][0] for _ in range(3)]
    assert picks == [1, 2, EOS]  # "a" then "b": "ab" as one token ranks below "a"


def test_the_grammar_overrides_min_tokens_when_it_can_only_end(grammars: Grammars) -> None:
    row = _row(grammars, _choice("a"), min_new_tokens=5, generated=(1,))
    token, _ = sample_rows(_favouring(2, EOS)[None], [row], (EOS,))[0]
    assert token == EOS


def test_a_replayed_row_resumes_its_grammar_where_it_was(grammars: Grammars) -> None:
    schema = StructuredOutput("regex", r"\{x:1\}")
    row = _row(grammars, schema, generated=(4, 8, 7))
    token, _ = sample_rows(_favouring(5, 10)[None], [row], (EOS,))[0]
    assert token == 10


def test_a_token_the_grammar_refuses_fails_only_its_row(grammars: Grammars) -> None:
    rows = [_row(grammars, _choice("a")), _row(grammars, _choice("b"))]
    logits = torch.stack([_favouring(1), _favouring(2)])
    logits[0] = float("-inf")
    logits[0, 2] = 1.0  # the model allows only "b": its own pick breaks the grammar
    picks = sample_rows(logits, rows, (EOS,))
    assert picks[0][0] == ROW_FAILED and picks[1][0] == 2


def test_compiled_grammars_are_cached_by_spec(grammars: Grammars) -> None:
    spec = StructuredOutput("json_schema", '{"type": "object"}')
    assert grammars.compile(spec) is grammars.compile(StructuredOutput(spec.kind, spec.spec))


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (StructuredOutput("json_schema", "{not json"), "not JSON"),
        (StructuredOutput("json_schema", '{"type": "nope"}'), "nope"),
        (StructuredOutput("regex", "("), "parenthesis"),
        (StructuredOutput("grammar", "root ::= "), "EBNF"),
        # xgrammar's message cut inside a multi-byte character (found by the fault suite's fuzzer)
        (StructuredOutput("grammar", "root ::= " + "日本語" * 15), "does not parse"),
    ],
)
def test_a_bad_spec_is_refused_with_the_reason(
    grammars: Grammars, spec: StructuredOutput, says: str
) -> None:
    with pytest.raises(GrammarError, match=says):
        grammars.compile(spec)


def test_a_matcher_needs_a_grammar_compiled_before_admission(grammars: Grammars) -> None:
    with pytest.raises(GrammarError, match="not compiled"):
        grammars.matcher(StructuredOutput("regex", "never compiled"))
