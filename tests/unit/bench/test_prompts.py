"""Prompt rendering with the real tokenizer: exactly 48 ids, identical for every engine."""

from __future__ import annotations

from typing import Any

import pytest

from bench.prompts import (
    PROMPT_TOKENS,
    conversation,
    encode,
    exact_chat,
    load_tokenizer,
    long_prompts,
    workload_prompts,
)
from seseragi.config import Settings
from seseragi.model import builtin


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(str(builtin.pull(Settings.model_validate({}).cache_dir)))


def test_every_workload_prompt_is_exactly_48_tokens(tokenizer: Any) -> None:
    prompts = workload_prompts(tokenizer, 32)
    assert [len(p.token_ids) for p in prompts] == [PROMPT_TOKENS] * 32
    assert len({p.token_ids for p in prompts}) == 32


def test_the_text_encodes_back_to_the_ids_as_the_server_encodes_it(tokenizer: Any) -> None:
    for prompt in workload_prompts(tokenizer, 16):
        assert encode(tokenizer, prompt.text) == prompt.token_ids
        assert tuple(tokenizer(prompt.text)["input_ids"]) == prompt.token_ids
        assert prompt.text.endswith("<|im_start|>assistant\n")


def test_a_length_below_the_template_cannot_be_met(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="exactly 10 tokens"):
        exact_chat(tokenizer, "Why is the sky blue?", length=10)


def test_out_of_range_counts_are_refused(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="count"):
        workload_prompts(tokenizer, 33)


def test_long_prompts_differ_and_share_only_the_template(tokenizer: Any) -> None:
    prompts = long_prompts(tokenizer, 3, 413)
    assert all(440 <= len(p.token_ids) <= 480 for p in prompts)
    assert len({p.token_ids for p in prompts}) == 3


def test_conversation_turns_share_the_long_system_prompt(tokenizer: Any) -> None:
    turns = conversation(tokenizer, 500, 3)
    assert all(510 <= len(t.token_ids) <= 540 for t in turns)
    shared = 0
    for a, b in zip(turns[0].token_ids, turns[1].token_ids, strict=False):
        if a != b:
            break
        shared += 1
    assert shared >= 500
