// Rotary embedding of a layer's fresh queries and keys, and the keys' and values' store into the
// paged KV cache, in one pass over the fused q|k|v projection. Eager PyTorch takes about ten
// operators for this (slices, a roll, multiplies, two index copies), each a dispatch per layer.
//
// qkv [T, (heads + 2 * kv_heads) * D]; cos and signed_sin [T, D] (the sign of rotate_half folded
// into sin's first half); pools [blocks, block_size, kv_heads, D]; slots [T] int64 (flat token
// positions in the pool) -> rotated queries [T, heads, D]. float32, contiguous.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>

namespace {

// out = x * cos + roll(x, D / 2) * signed_sin, as the Python formulation computes it.
inline void rotate(const float* x, const float* cos, const float* signed_sin, float* out,
                   int64_t dim) {
  const int64_t half = dim / 2;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) out[i] = x[i] * cos[i] + x[i + half] * signed_sin[i];
#pragma omp simd
  for (int64_t i = half; i < dim; ++i) out[i] = x[i] * cos[i] + x[i - half] * signed_sin[i];
}

at::Tensor rope_and_cache(const at::Tensor& qkv, const at::Tensor& cos,
                          const at::Tensor& signed_sin, at::Tensor key_pool,
                          at::Tensor value_pool, const at::Tensor& slots_in, int64_t heads) {
  TORCH_CHECK(qkv.dim() == 2 && qkv.scalar_type() == at::kFloat && qkv.is_contiguous(),
              "qkv must be a contiguous float32 [tokens, width] tensor");
  TORCH_CHECK(key_pool.dim() == 4 && key_pool.scalar_type() == at::kFloat &&
                  key_pool.is_contiguous() && value_pool.sizes() == key_pool.sizes() &&
                  value_pool.scalar_type() == at::kFloat && value_pool.is_contiguous(),
              "pools must be contiguous float32 [blocks, block_size, kv_heads, D] tensors");
  const int64_t tokens = qkv.size(0);
  const int64_t kv_heads = key_pool.size(2), dim = key_pool.size(3);
  const int64_t pool_tokens = key_pool.size(0) * key_pool.size(1);
  TORCH_CHECK(dim % 2 == 0 && qkv.size(1) == (heads + 2 * kv_heads) * dim, "qkv's width");
  TORCH_CHECK(cos.sizes() == signed_sin.sizes() && cos.dim() == 2 && cos.size(0) == tokens &&
                  cos.size(1) == dim && cos.is_contiguous() && signed_sin.is_contiguous() &&
                  cos.scalar_type() == at::kFloat && signed_sin.scalar_type() == at::kFloat,
              "cos and signed_sin must be contiguous float32 [tokens, D] tensors");
  const at::Tensor slots = slots_in.contiguous();
  TORCH_CHECK(slots.scalar_type() == at::kLong && slots.numel() == tokens, "one int64 slot a token");
  const int64_t* slot_data = slots.data_ptr<int64_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    TORCH_CHECK(slot_data[t] >= 0 && slot_data[t] < pool_tokens, "slot outside the pool");
  }
  at::Tensor q = at::empty({tokens, heads, dim}, qkv.options());
  const float* in = qkv.data_ptr<float>();
  const float* c = cos.data_ptr<float>();
  const float* s = signed_sin.data_ptr<float>();
  float* q_out = q.data_ptr<float>();
  float* keys = key_pool.data_ptr<float>();
  float* values = value_pool.data_ptr<float>();
  const int64_t width = qkv.size(1), kv_width = kv_heads * dim;
  at::parallel_for(0, tokens, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* row = in + t * width;
      const float* ct = c + t * dim;
      const float* st = s + t * dim;
      for (int64_t h = 0; h < heads; ++h) {
        rotate(row + h * dim, ct, st, q_out + (t * heads + h) * dim, dim);
      }
      float* key = keys + slot_data[t] * kv_width;
      for (int64_t h = 0; h < kv_heads; ++h) {
        rotate(row + (heads + h) * dim, ct, st, key + h * dim, dim);
      }
      const float* value = row + (heads + kv_heads) * dim;
      float* value_slot = values + slot_data[t] * kv_width;
#pragma omp simd
      for (int64_t i = 0; i < kv_width; ++i) value_slot[i] = value[i];
    }
  });
  return q;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(seseragi, m) {
  m.def(
      "rope_and_cache(Tensor qkv, Tensor cos, Tensor signed_sin, Tensor(a!) key_pool,"
      " Tensor(b!) value_pool, Tensor slots, int heads) -> Tensor");
}

TORCH_LIBRARY_IMPL(seseragi, CPU, m) { m.impl("rope_and_cache", &rope_and_cache); }
