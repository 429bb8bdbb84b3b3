"""A lean forward pass for Llama-family models that reads and writes the paged KV cache.

transformers' eager forward pays Python and layout overhead in every one of 30 layers and only
knows its own caches. This one takes the engine's flat batch (decode rows and prefill chunks of
many sequences mixed in one pass), fuses q/k/v and gate/up into single matmuls, and keeps each
layer's keys and values in the block pool. Weights come from the loaded Hugging Face model, so any
Llama, Mistral or Qwen2 checkpoint works; other architectures use `padded_runner`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from seseragi.engine.attention import AttentionBatch, paged_attention
from seseragi.engine.kernels import TORCH_KERNELS, Kernels
from seseragi.engine.kv_pool import KVPool
from seseragi.engine.linear import Linear, linear_from
from seseragi.engine.weight_only import (
    Int4Weight,
    Int8Weight,
    QuantizedWeight,
    choose_kernels,
    quantized_linears,
)

# Weight-only formats the forward runs on: int8 per output channel, int4 per group of 32 inputs.
WEIGHT_FORMATS: dict[str, type[QuantizedWeight] | None] = {
    "none": None,
    "int8": Int8Weight,
    "int4": Int4Weight,
}
# The head decides every token: with int4 layers it keeps int8 (as llama.cpp's Q4 files keep the
# output matrix at 6 bits). Measured by bench.quality on the default model: an int4 head gave
# perplexity 25.71 (fp32 24.41) and 84% top-1 agreement with fp32; an int8 head 24.29 and 97%.
HEAD_FORMAT = {"none": "none", "int8": "int8", "int4": "int8"}

SUPPORTED_ARCHITECTURES = frozenset({"llama", "mistral", "qwen2"})


@dataclass(frozen=True, slots=True)
class LlamaShape:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int
    eps: float


@dataclass(frozen=True, slots=True)
class _Layer:
    attn_norm: torch.Tensor  # [hidden]
    qkv: Linear  # hidden -> (heads + 2 * kv_heads) * head_dim
    out: Linear  # heads * head_dim -> hidden
    mlp_norm: torch.Tensor
    gate_up: Linear  # hidden -> 2 * intermediate
    down: Linear  # intermediate -> hidden


def supports(model: Any) -> bool:
    """True when this forward can stand in for the model's own (plain RoPE, no sliding window)."""
    config = model.config
    return (
        getattr(config, "model_type", None) in SUPPORTED_ARCHITECTURES
        and not getattr(config, "sliding_window", None)
        and getattr(config, "hidden_act", "silu") == "silu"
        and not getattr(config, "mlp_bias", False)
        and not hasattr(model, "hf_quantizer")
    )


_FORWARDS: weakref.WeakKeyDictionary[Any, dict[str, LlamaForward]] = weakref.WeakKeyDictionary()


def forward_for(model: Any, weights: str = "none") -> LlamaForward:
    """One `LlamaForward` per loaded model and weight format: engines built over the same model
    (tests, restarts) share its packed weights instead of each holding another copy."""
    forwards = _FORWARDS.setdefault(model, {})
    forward = forwards.get(weights)
    if forward is None:
        forward = forwards[weights] = LlamaForward(model, weights)
    return forward


class LlamaForward:
    """The model as the engine runs it: embed -> layers over the pool -> norm -> logits."""

    def __init__(self, model: Any, weights: str = "none") -> None:
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {sorted(WEIGHT_FORMATS)}, not {weights!r}")
        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // (
            config.num_attention_heads
        )
        self.shape = LlamaShape(
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            kv_heads=config.num_key_value_heads,
            head_dim=head_dim,
            hidden=config.hidden_size,
            vocab=config.vocab_size,
            eps=float(config.rms_norm_eps),
        )
        self.dtype: torch.dtype = model.dtype
        self.device: torch.device = model.device
        inner = model.model
        self._embed = inner.embed_tokens.weight.detach()
        self._norm = inner.norm.weight.detach()
        self._lm_head = _linears([(model.lm_head.weight.detach(), None)], HEAD_FORMAT[weights])[0]
        self._layers = [_layer_from(layer, weights) for layer in inner.layers]
        self._rotary = _RotaryTable(inner.rotary_emb, config, self.device, self.dtype)

    def linears(self) -> list[Linear]:
        """Every matmul the forward runs, layer by layer, then the head (what it holds)."""
        per_layer = [[layer.qkv, layer.out, layer.gate_up, layer.down] for layer in self._layers]
        return [linear for layer in per_layer for linear in layer] + [self._lm_head]

    def forward(
        self, batch: AttentionBatch, pool: KVPool, kernels: Kernels = TORCH_KERNELS
    ) -> torch.Tensor:
        """Hidden states of the tokens in `batch.logits_rows`, as logits [N, vocab].

        `x` is the residual stream; each norm is fused with the add before it, and the last
        add of a layer is normed with the next layer's weights (the model's final norm after
        the last layer).
        """
        shape = self.shape
        x = self._embed[batch.input_ids]  # [T, hidden], a copy: updated in place below
        cos, sin = self._rotary.at(batch.positions)  # [T, head_dim] each
        layers = self._layers
        h = kernels.rms_norm(x, layers[0].attn_norm, shape.eps)
        for index, layer in enumerate(layers):
            q = kernels.rope_and_cache(
                layer.qkv(h), cos, sin, pool, index, batch.slots, shape.heads
            )
            attended = paged_attention(q, pool, index, batch, kernels.decode_attention)
            h = kernels.add_rms_norm(x, layer.out(attended), layer.mlp_norm, shape.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            following = layers[index + 1].attn_norm if index + 1 < len(layers) else self._norm
            h = kernels.add_rms_norm(x, layer.down(F.silu(gate) * up), following, shape.eps)
        return self._lm_head(h[batch.logits_rows])


Projection = tuple[torch.Tensor, torch.Tensor | None]  # weight [out, in], bias [out]


def _layer_from(layer: Any, weights: str) -> _Layer:
    """A layer's matmuls as the forward runs them (qkv, out, gate_up, down) in `weights`."""
    attn, mlp = layer.self_attn, layer.mlp
    qkv = (attn.q_proj, attn.k_proj, attn.v_proj)
    qkv_bias = None
    if attn.q_proj.bias is not None:
        qkv_bias = torch.cat([p.bias.detach() for p in qkv])
    qkv_, out, gate_up, down = _linears(
        [
            (torch.cat([p.weight.detach() for p in qkv]), qkv_bias),
            (attn.o_proj.weight.detach(), None),
            (torch.cat([mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach()]), None),
            (mlp.down_proj.weight.detach(), None),
        ],
        weights,
    )
    return _Layer(
        attn_norm=layer.input_layernorm.weight.detach(),
        qkv=qkv_,
        out=out,
        mlp_norm=layer.post_attention_layernorm.weight.detach(),
        gate_up=gate_up,
        down=down,
    )


def _linears(projections: list[Projection], weights: str) -> list[Linear]:
    weight_format = WEIGHT_FORMATS[weights]
    if weight_format is None:
        return [linear_from(weight, bias) for weight, bias in projections]
    quantized = [weight_format.quantize(weight, bias) for weight, bias in projections]
    return quantized_linears(quantized, choose_kernels(weight_format))


class _RotaryTable:
    """cos/sin for every position, computed once by the model's own rotary module.

    Using the model's module keeps every RoPE variant it knows (llama3 scaling, YaRN, ...) exact.
    """

    def __init__(self, rotary: Any, config: Any, device: torch.device, dtype: torch.dtype) -> None:
        length = int(getattr(config, "max_position_embeddings", 8192))
        positions = torch.arange(length, device=device)[None, :]
        probe = torch.zeros(1, dtype=dtype, device=device)
        with torch.inference_mode():
            cos, sin = rotary(probe, positions)
        self._cos = cos[0].to(dtype).contiguous()  # [positions, head_dim]
        sin = sin[0].to(dtype)
        half = sin.shape[-1] // 2
        # rotate_half(x) * sin == roll(x, half) * [-sin_first_half, sin_second_half], exactly
        self._sin = torch.cat([-sin[:, :half], sin[:, half:]], dim=-1).contiguous()

    def at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and the sign-folded sin `rope` takes, [T, head_dim] each."""
        return self._cos[positions], self._sin[positions]
