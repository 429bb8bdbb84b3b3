"""KV blocks are counted exactly, and equal prompt prefixes share keyed blocks."""

from __future__ import annotations

import pytest

from seseragi.engine.block_manager import BlockManager

pytestmark = pytest.mark.unit


def test_allocation_rounds_up_to_blocks_and_free_returns_them() -> None:
    blocks = BlockManager(10, 4, prefix_caching=False)
    allocation = blocks.allocate(list(range(5)), total_tokens=9)
    assert len(allocation.table) == 3 and allocation.cached_tokens == 0
    assert blocks.free_blocks == 7
    blocks.free(allocation.table)
    assert blocks.free_blocks == 10


def test_a_registered_prefix_is_shared_but_never_the_last_prompt_token() -> None:
    blocks = BlockManager(10, 4, prefix_caching=True)
    prompt = list(range(12))
    first = blocks.allocate(prompt, total_tokens=12)
    assert blocks.register(first.table, prompt, computed=12, done=0) == 3
    second = blocks.allocate(prompt, total_tokens=12)
    # 3 full blocks are cached, but the last token must be computed for its logits: 2 shared.
    assert second.cached_tokens == 8
    assert second.table[:2] == first.table[:2] and second.table[2] != first.table[2]
    assert (blocks.stats.queries, blocks.stats.hits) == (24, 8)


def test_a_different_token_breaks_the_chain_from_its_block_on() -> None:
    blocks = BlockManager(10, 4, prefix_caching=True)
    prompt = list(range(12))
    first = blocks.allocate(prompt, total_tokens=12)
    blocks.register(first.table, prompt, computed=12, done=0)
    changed = [*prompt[:5], 99, *prompt[6:], 100]
    assert blocks.allocate(changed, total_tokens=13).cached_tokens == 4


def test_unused_cached_blocks_are_evicted_least_recently_used_first() -> None:
    blocks = BlockManager(4, 2, prefix_caching=True)
    a, b = [1, 2, 3], [5, 6, 7]
    for prompt in (a, b):
        allocation = blocks.allocate(prompt, total_tokens=4)
        blocks.register(allocation.table, prompt, computed=2, done=0)
        blocks.free(allocation.table)
    touched = blocks.allocate(a, total_tokens=4)  # a's block is now the most recently used
    assert touched.cached_tokens == 2
    blocks.free(touched.table)
    assert blocks.free_blocks == 4 and blocks.cached_blocks == 2
    filler = blocks.allocate([8] * 6, total_tokens=6)  # 2 never-used blocks + 1 evicted
    assert blocks.cached_blocks == 1
    blocks.free(filler.table)
    assert blocks.allocate(a, total_tokens=4).cached_tokens == 2
    assert blocks.allocate(b, total_tokens=2).cached_tokens == 0


def test_can_allocate_counts_a_shared_unreferenced_hit_once() -> None:
    blocks = BlockManager(2, 2, prefix_caching=True)
    prompt = [1, 2, 3]
    allocation = blocks.allocate(prompt, total_tokens=4)
    blocks.register(allocation.table, prompt, computed=2, done=0)
    blocks.free(allocation.table)
    assert blocks.can_allocate(prompt, 4)  # one hit block + one fresh block = both blocks
    assert not blocks.can_allocate(prompt, 6)


def test_shared_blocks_counts_equal_leading_full_blocks_short_of_the_last_token() -> None:
    blocks = BlockManager(10, 4, prefix_caching=True)
    prompt = list(range(12))
    assert blocks.shared_blocks(prompt, prompt) == 2  # the third holds the last token
    assert blocks.shared_blocks(prompt, [*range(12), 40, 41]) == 2
    assert blocks.shared_blocks(prompt, list(range(6))) == 1  # only its full blocks count
    assert blocks.shared_blocks(prompt, [0, 1, 2, 3, 4, 99, 6, 7, 8]) == 1
    assert blocks.shared_blocks(prompt, [9, *range(1, 12)]) == 0
