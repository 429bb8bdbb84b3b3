"""Runs one scheduled step on the paged KV cache: build the flat batch, forward, sample.

The only code besides `llama` and `attention` that touches tensors for Llama-family models.
Each row is one token: decode rows first (one per running sequence), then each prefill chunk's
tokens. Only rows that end what a sequence knows are turned into logits and sampled.
"""

from __future__ import annotations

import torch

from seseragi.engine.attention import AttentionBatch, PrefillSpan
from seseragi.engine.block_manager import BlockManager
from seseragi.engine.grammar import Grammars
from seseragi.engine.kernels import TORCH_KERNELS, Kernels
from seseragi.engine.kv_pool import KVPool
from seseragi.engine.llama import LlamaForward
from seseragi.engine.model_runner import TokenOutput
from seseragi.engine.sampling import RowSampler, sample_rows
from seseragi.engine.scheduler import Chunk, SchedulerPlan
from seseragi.engine.sequence import Sequence


class PagedModelRunner:
    def __init__(
        self,
        forward: LlamaForward,
        pool: KVPool,
        blocks: BlockManager,
        eos_token_ids: tuple[int, ...],
        grammars: Grammars | None = None,
        kernels: Kernels = TORCH_KERNELS,
    ) -> None:
        self._forward = forward
        self._kernels = kernels
        self._grammars = grammars
        self._pool = pool
        self._blocks = blocks
        self._eos_token_ids = eos_token_ids
        self._device = forward.device
        self._samplers: dict[int, RowSampler] = {}

    @property
    def size(self) -> int:
        return len(self._samplers)

    @property
    def cache_tokens(self) -> int:
        """Cache slots held by sequences or kept for the prefix cache."""
        blocks = self._blocks
        return (blocks.num_blocks - blocks.free_blocks) * blocks.block_size

    @torch.inference_mode()
    def run(self, plan: SchedulerPlan) -> list[TokenOutput]:
        batch, sampled = self._build(plan)
        logits = self._forward.forward(batch, self._pool, self._kernels)
        samplers = [self._sampler_for(seq) for seq in sampled]
        picks = sample_rows(logits, samplers, self._eos_token_ids)
        return [
            TokenOutput(seq.seq_id, token, logprob)
            for seq, (token, logprob) in zip(sampled, picks, strict=True)
        ]

    replays_whole_batch = False  # a failed step leaves every sequence's cache as it was

    def replay(self, seq: Sequence, part: SchedulerPlan) -> list[TokenOutput]:
        """The step again for `seq` alone: its blocks up to `seq.computed` are still valid."""
        return self.run(part)

    def release(self, seq_ids: set[int]) -> None:
        for seq_id in seq_ids:
            self._samplers.pop(seq_id, None)

    def reset(self) -> None:
        self._samplers.clear()

    def _sampler_for(self, seq: Sequence) -> RowSampler:
        sampler = self._samplers.get(seq.seq_id)
        if sampler is None:
            request = seq.request
            sampler = RowSampler.for_request(request, self._device, self._grammars)
            self._samplers[seq.seq_id] = sampler
        return sampler

    def _build(self, plan: SchedulerPlan) -> tuple[AttentionBatch, list[Sequence]]:
        size = self._blocks.block_size
        tokens: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        logits_rows: list[int] = []
        sampled: list[Sequence] = []
        for row, seq in enumerate(plan.decode):
            position = seq.computed
            tokens.append(seq.token_ids(position, position + 1)[0])
            positions.append(position)
            slots.append(seq.block_table[position // size] * size + position % size)
            logits_rows.append(row)
            sampled.append(seq)
        spans: list[PrefillSpan] = []
        for chunk in plan.prefill:
            spans.append(self._span(chunk, len(tokens)))
            chunk_positions = range(chunk.start, chunk.start + chunk.length)
            tokens += chunk.seq.token_ids(chunk.start, chunk.start + chunk.length)
            positions += chunk_positions
            table = chunk.seq.block_table
            slots += [table[p // size] * size + p % size for p in chunk_positions]
            if chunk.completes:
                logits_rows.append(len(tokens) - 1)
                sampled.append(chunk.seq)
        tables, mask, lengths = self._decode_tables(plan.decode)
        as_tensor = self._long
        batch = AttentionBatch(
            input_ids=as_tensor(tokens),
            positions=as_tensor(positions),
            slots=as_tensor(slots),
            logits_rows=as_tensor(logits_rows),
            num_decode=len(plan.decode),
            decode_tables=tables,
            decode_mask=mask,
            decode_lengths=lengths,
            prefills=spans,
        )
        return batch, sampled

    def _span(self, chunk: Chunk, start_row: int) -> PrefillSpan:
        context = chunk.start + chunk.length
        table = self._long(chunk.seq.block_table[: self._blocks.blocks_for(context)])
        mask = None
        if chunk.start:
            query_positions = torch.arange(chunk.start, context, device=self._device)
            mask = torch.arange(context, device=self._device)[None, :] <= query_positions[:, None]
        return PrefillSpan(start_row, chunk.length, table, context, mask)

    def _decode_tables(
        self, decode: list[Sequence]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Block tables padded to the longest row, a mask of each row's real keys, and their
        number."""
        if not decode:
            return None, None, None
        lengths = [seq.computed + 1 for seq in decode]
        width = self._blocks.blocks_for(max(lengths))
        tables = self._long([(seq.block_table + [0] * width)[:width] for seq in decode])
        keys = torch.arange(width * self._blocks.block_size, device=self._device)
        counts = self._long(lengths)
        mask = keys[None, :] < counts[:, None]
        return tables, mask[:, None, None, :], counts

    def _long(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self._device)
