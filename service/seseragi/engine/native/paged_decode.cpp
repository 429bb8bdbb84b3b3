// Decode attention straight from the paged KV cache: one new query token per sequence attends
// over its keys and values where they lie in the block pool, with no gathered copy.
//
// q [B, heads, D], pools [blocks, block_size, kv_heads, D], tables [B, W] int64 and lengths [B]
// int64 (keys per sequence, the new one included) -> [B, heads, D]. float32 only. Exact
// two-pass softmax, float32 sums; each sequence's result is computed alone (batch-invariant).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

at::Tensor paged_decode_attention(const at::Tensor& q_in, const at::Tensor& key_pool,
                                  const at::Tensor& value_pool, const at::Tensor& tables_in,
                                  const at::Tensor& lengths_in, double scale) {
  TORCH_CHECK(q_in.dim() == 3 && key_pool.dim() == 4, "q [B, heads, D], pools 4-d");
  TORCH_CHECK(q_in.scalar_type() == at::kFloat && key_pool.scalar_type() == at::kFloat &&
                  value_pool.scalar_type() == at::kFloat,
              "float32 only");
  TORCH_CHECK(key_pool.is_contiguous() && value_pool.is_contiguous(), "contiguous pools");
  const at::Tensor q = q_in.contiguous();
  const at::Tensor tables = tables_in.contiguous();
  const at::Tensor lengths = lengths_in.contiguous();
  TORCH_CHECK(tables.scalar_type() == at::kLong && lengths.scalar_type() == at::kLong, "int64");
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(2);
  const int64_t num_blocks = key_pool.size(0), block_size = key_pool.size(1);
  const int64_t kv_heads = key_pool.size(2), width = tables.size(1);
  TORCH_CHECK(key_pool.size(3) == dim && heads % kv_heads == 0, "shapes");
  TORCH_CHECK(tables.size(0) == batch && lengths.size(0) == batch, "one table per row");
  const int64_t group = heads / kv_heads;
  const int64_t* table_data = tables.data_ptr<int64_t>();
  const int64_t* length_data = lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t length = length_data[b];
    TORCH_CHECK(length >= 1 && length <= width * block_size, "length outside the table");
    for (int64_t i = 0; i < (length + block_size - 1) / block_size; ++i) {
      const int64_t block = table_data[b * width + i];
      TORCH_CHECK(block >= 0 && block < num_blocks, "block id outside the pool");
    }
  }
  at::Tensor out = at::empty({batch, heads, dim}, q.options());
  const float* q_data = q.data_ptr<float>();
  const float* k_data = key_pool.data_ptr<float>();
  const float* v_data = value_pool.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const float scale_f = static_cast<float>(scale);
  const int64_t token_stride = kv_heads * dim;  // between two tokens of one block
  // Where token t of a sequence with block table `table` starts, in floats, in either pool.
  auto row_of = [&](const int64_t* table, int64_t t) {
    return (table[t / block_size] * block_size + t % block_size) * token_stride;
  };

  // One sequence's kv heads [kv_begin, kv_end): each pass over its tokens reads every head's
  // slice of a token row at once, so memory is read in order, block by block.
  auto attend = [&](int64_t b, int64_t kv_begin, int64_t kv_end, std::vector<float>& scores,
                    std::vector<float>& acc) {
    const int64_t length = length_data[b];
    const int64_t* table = table_data + b * width;
    const int64_t first = kv_begin * group, rows = (kv_end - kv_begin) * group;
    const float* qs = q_data + (b * heads + first) * dim;
    scores.resize(static_cast<size_t>(rows * length));
    for (int64_t t = 0; t < length; ++t) {
      const float* token = k_data + row_of(table, t);
      for (int64_t r = 0; r < rows; ++r) {
        const float* k = token + (kv_begin + r / group) * dim;
        const float* qr = qs + r * dim;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < dim; ++d) dot += qr[d] * k[d];
        scores[r * length + t] = dot * scale_f;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* row = scores.data() + r * length;
      float top = row[0];
      for (int64_t t = 1; t < length; ++t) top = std::max(top, row[t]);
      float total = 0.f;
      for (int64_t t = 0; t < length; ++t) {
        row[t] = std::exp(row[t] - top);
        total += row[t];
      }
      const float inverse = 1.f / total;
#pragma omp simd
      for (int64_t t = 0; t < length; ++t) row[t] *= inverse;
    }
    acc.assign(static_cast<size_t>(rows * dim), 0.f);
    for (int64_t t = 0; t < length; ++t) {
      const float* token = v_data + row_of(table, t);
      for (int64_t r = 0; r < rows; ++r) {
        const float* v = token + (kv_begin + r / group) * dim;
        const float p = scores[r * length + t];
        float* a = acc.data() + r * dim;
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) a[d] += p * v[d];
      }
    }
    std::copy(acc.begin(), acc.end(), out_data + (b * heads + first) * dim);
  };
  // Enough sequences to keep every thread busy: one task each; else one per (sequence, kv head).
  const bool per_sequence = batch >= at::get_num_threads();
  const int64_t tasks = per_sequence ? batch : batch * kv_heads;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores, acc;
    for (int64_t task = begin; task < end; ++task) {
      if (per_sequence) {
        attend(task, 0, kv_heads, scores, acc);
      } else {
        attend(task / kv_heads, task % kv_heads, task % kv_heads + 1, scores, acc);
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(seseragi, m) {
  m.def(
      "paged_decode_attention(Tensor q, Tensor key_pool, Tensor value_pool, Tensor tables,"
      " Tensor lengths, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(seseragi, CPU, m) {
  m.impl("paged_decode_attention", &paged_decode_attention);
}
