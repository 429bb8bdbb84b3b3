"""Which KV blocks each sequence owns, and the prefix cache over them: pure bookkeeping.

A full block is registered under a key made of its parent's key and its own token ids, so equal
prefixes (a chat template's system prompt, a conversation's earlier turns) map to the same blocks.
A new sequence takes every leading block it finds by key (shared, reference-counted) and computes
only the rest. Blocks nobody uses keep their contents and their key in an LRU list; they are
reused as free blocks, least recently used first, only when no never-used block is left.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence as Tokens
from dataclasses import dataclass

BlockKey = tuple[int, tuple[int, ...]]  # (hash of the parent block's key, this block's tokens)


@dataclass(slots=True)
class PrefixCacheStats:
    """Counters in vLLM's vocabulary: tokens asked for and tokens found."""

    queries: int = 0
    hits: int = 0


@dataclass(slots=True)
class Allocation:
    table: list[int]
    cached_tokens: int  # leading tokens whose keys/values are already in `table`'s blocks


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, *, prefix_caching: bool) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.stats = PrefixCacheStats()
        self._never_used: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()  # unreferenced, still keyed
        self._refs = [0] * num_blocks
        self._key_of: dict[int, BlockKey] = {}
        self._block_of: dict[BlockKey, int] = {}

    @property
    def free_blocks(self) -> int:
        return len(self._never_used) + len(self._evictable)

    @property
    def cached_blocks(self) -> int:
        """Blocks that hold a registered prefix, in use or not."""
        return len(self._key_of)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def can_allocate(self, prompt: Tokens[int], total_tokens: int) -> bool:
        """Whether `allocate` would succeed now (the prefix hits it would take count as free)."""
        hits = self._prefix_hits(prompt)
        needed = self.blocks_for(total_tokens) - len(hits)
        unreferenced_hits = sum(1 for block in hits if self._refs[block] == 0)
        return needed <= self.free_blocks - unreferenced_hits

    def allocate(self, prompt: Tokens[int], total_tokens: int) -> Allocation:
        """Blocks for `total_tokens` tokens: the prompt's cached prefix shared, the rest fresh."""
        hits = self._prefix_hits(prompt)
        if self.prefix_caching:
            self.stats.queries += len(prompt)
            self.stats.hits += len(hits) * self.block_size
        for block in hits:
            self._take(block)
        fresh = [self._pop_free() for _ in range(self.blocks_for(total_tokens) - len(hits))]
        return Allocation(hits + fresh, len(hits) * self.block_size)

    def free(self, table: list[int]) -> None:
        for block in table:
            self._refs[block] -= 1
            if self._refs[block] == 0:
                if block in self._key_of:
                    self._evictable[block] = None
                else:
                    self._never_used.append(block)

    def register(self, table: list[int], tokens: Tokens[int], computed: int, done: int) -> int:
        """Key the full blocks among the first `computed` tokens, from block `done` on.

        Returns how many leading blocks are now registered (the caller keeps it as `done`).
        A block whose key another block already holds stays unkeyed: one copy is enough.
        """
        full = min(computed // self.block_size, len(table))
        if not self.prefix_caching or full <= done:
            return done
        parent = 0
        size = self.block_size
        for index in range(full):
            key: BlockKey = (parent, tuple(tokens[index * size : (index + 1) * size]))
            block = table[index]
            if index >= done and key not in self._block_of and block not in self._key_of:
                self._block_of[key] = block
                self._key_of[block] = key
            parent = hash(key)
        return full

    def shared_blocks(self, prompt: Tokens[int], other: Tokens[int]) -> int:
        """How many of `prompt`'s leading full blocks `other` holds too: the blocks `prompt`
        would find cached once `other` has computed them (never the one with its last token)."""
        size = self.block_size
        limit = min((len(prompt) - 1) // size, len(other) // size)
        for index in range(limit):
            block = slice(index * size, (index + 1) * size)
            if prompt[block] != other[block]:
                return index
        return limit

    def _prefix_hits(self, prompt: Tokens[int]) -> list[int]:
        """Cached blocks that cover the prompt's leading full blocks, never its last token.

        The last prompt token is always computed: its logits give the first output token.
        """
        if not self.prefix_caching:
            return []
        hits: list[int] = []
        parent = 0
        size = self.block_size
        for index in range((len(prompt) - 1) // size):
            key: BlockKey = (parent, tuple(prompt[index * size : (index + 1) * size]))
            block = self._block_of.get(key)
            if block is None:
                break
            hits.append(block)
            parent = hash(key)
        return hits

    def _take(self, block: int) -> None:
        if self._refs[block] == 0:
            self._evictable.pop(block, None)
        self._refs[block] += 1

    def _pop_free(self) -> int:
        if self._never_used:
            block = self._never_used.popleft()
        else:
            block, _ = self._evictable.popitem(last=False)
            key = self._key_of.pop(block)
            del self._block_of[key]
        self._refs[block] = 1
        return block
