"""A KV cache that appends in place: transformers' DynamicLayer re-concatenates every step.

Each layer keeps its keys and values in a buffer with spare room along the sequence axis and
hands the model views of the used part; a decode step writes one column instead of copying the
whole cache (about 10% of a batch-16 decode step on CPU). Replacing `keys`/`values` (batch
select, join, trim) copies into a fresh buffer with room again.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

HEADROOM = 64  # spare positions per buffer; a full buffer is re-allocated with this much room again


class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    def __init__(self, **kwargs: Any) -> None:
        self._key_buffer: torch.Tensor | None = None  # [B, kv_heads, capacity, head_dim]
        self._value_buffer: torch.Tensor | None = None
        self._key_len = 0
        self._value_len = 0
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._key_buffer is None else self._key_buffer[:, :, : self._key_len]

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._key_buffer, self._key_len = _with_room(tensor)

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._value_buffer is None else self._value_buffer[:, :, : self._value_len]

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._value_buffer, self._value_len = _with_room(tensor)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized or self._key_buffer is None or self._value_buffer is None:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True
            self.keys, self.values = key_states, value_states
        else:
            new = key_states.shape[-2]
            if self._key_len + new > self._key_buffer.shape[2]:
                self.keys, self.values = self.keys, self.values  # re-allocate with room
            assert self._key_buffer is not None and self._value_buffer is not None
            self._key_buffer[:, :, self._key_len : self._key_len + new] = key_states
            self._value_buffer[:, :, self._value_len : self._value_len + new] = value_states
            self._key_len += new
            self._value_len += new
        keys, values = self.keys, self.values
        assert keys is not None and values is not None
        return keys, values


def new_cache(config: PretrainedConfig) -> DynamicCache:
    """A DynamicCache whose full-attention layers append in place."""
    cache = DynamicCache(config=config)
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache


def _with_room(tensor: torch.Tensor | None) -> tuple[torch.Tensor | None, int]:
    if tensor is None or tensor.dim() != 4:  # None, or the empty placeholder of lazy init
        return None, 0
    batch, heads, length, head_dim = tensor.shape
    buffer = tensor.new_empty((batch, heads, length + HEADROOM, head_dim))
    buffer[:, :, :length] = tensor
    return buffer, length
