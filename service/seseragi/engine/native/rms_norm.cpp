// RMSNorm in one pass, and fused with the residual add before it, as vLLM's CPU kernels do.
// Eager PyTorch runs it as several operators (pow, mean, add, rsqrt, mul, mul), each a dispatch
// and a pass over memory: 10 us against 3 us here for one row, 60 times per step.
// float32 rows, contiguous; float32 sums.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>

namespace {

void check_rows(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(), name,
              " must be a contiguous float32 [rows, width] tensor");
}

void check_weight(const at::Tensor& weight, int64_t width) {
  TORCH_CHECK(weight.is_contiguous() && weight.numel() == width &&
                  weight.scalar_type() == at::kFloat,
              "weight must be float32 [width]");
}

// out = row / rms(row) * weight, the sum of squares in float32.
void normalize(const float* row, const float* weight, float* out, int64_t width, double eps) {
  float squares = 0.f;
#pragma omp simd reduction(+ : squares)
  for (int64_t i = 0; i < width; ++i) squares += row[i] * row[i];
  const float scale =
      1.f / std::sqrt(squares / static_cast<float>(width) + static_cast<float>(eps));
#pragma omp simd
  for (int64_t i = 0; i < width; ++i) out[i] = (row[i] * scale) * weight[i];
}

// residual += x (in place); returns rms_norm(residual) * weight.
at::Tensor add_rms_norm(at::Tensor residual, const at::Tensor& x, const at::Tensor& weight,
                        double eps) {
  check_rows(residual, "residual");
  check_rows(x, "x");
  TORCH_CHECK(x.sizes() == residual.sizes(), "x and residual differ in shape");
  const int64_t rows = residual.size(0), width = residual.size(1);
  check_weight(weight, width);
  at::Tensor out = at::empty(residual.sizes(), residual.options());
  float* r = residual.data_ptr<float>();
  const float* add = x.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      float* rr = r + row * width;
      const float* ar = add + row * width;
#pragma omp simd
      for (int64_t i = 0; i < width; ++i) rr[i] += ar[i];
      normalize(rr, w, o + row * width, width, eps);
    }
  });
  return out;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rows(x, "x");
  const int64_t rows = x.size(0), width = x.size(1);
  check_weight(weight, width);
  at::Tensor out = at::empty(x.sizes(), x.options());
  const float* xs = x.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      normalize(xs + row * width, w, o + row * width, width, eps);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(seseragi, m) {
  m.def("add_rms_norm(Tensor(a!) residual, Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(seseragi, CPU, m) {
  m.impl("add_rms_norm", &add_rms_norm);
  m.impl("rms_norm", &rms_norm);
}
