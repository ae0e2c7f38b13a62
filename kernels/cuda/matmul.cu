// CUDA matmul / linear through cuBLAS SGEMM. cuBLAS is column-major; a row-major C = A B is
// computed as C^T = B^T A^T, for which a row-major matrix is already its own transpose in
// column-major order. Views that are plain transposes (unit stride along rows) are passed as
// op = T without a copy; anything else (expanded, sliced with a step) is copied first.
#include "kernels/cuda/common.cuh"

#include <climits>

namespace dan::kernels::cuda {

namespace {

// One operand as cuBLAS sees it in the swapped (column-major) call.
struct GemmOperand {
  Tensor keep;  // owns the data (the input itself, or its contiguous copy)
  const float* ptr = nullptr;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1;
  int64_t batch_stride = 0;
};

// Matrix [r, c] with strides (s0, s1): row-major with leading dim s0 (op N in the swapped
// call) or column-major with leading dim s1 (op T). Returns false when neither fits.
bool classify(int64_t r, int64_t c, int64_t s0, int64_t s1, cublasOperation_t* op, int64_t* ld) {
  if (s1 == 1 || c == 1) {
    const int64_t l = r == 1 ? std::max<int64_t>(c, 1) : s0;
    if (l >= std::max<int64_t>(c, 1)) {
      *op = CUBLAS_OP_N;
      *ld = l;
      return true;
    }
  }
  if (s0 == 1 || r == 1) {
    const int64_t l = c == 1 ? std::max<int64_t>(r, 1) : s1;
    if (l >= std::max<int64_t>(r, 1)) {
      *op = CUBLAS_OP_T;
      *ld = l;
      return true;
    }
  }
  return false;
}

// t is [r, c] or [B, r, c]; a batch dim of size 1 gets batch stride 0 (broadcast).
GemmOperand operand(const Tensor& t) {
  GemmOperand g;
  const bool batched = t.dim() == 3;
  const int64_t r = t.size(-2), c = t.size(-1);
  g.keep = t;
  // An expanded batch dim (stride 0) needs no copy: every batch then reads the same matrix.
  if (!classify(r, c, t.stride(-2), t.stride(-1), &g.op, &g.ld)) {
    g.keep = contiguous(t);
    g.op = CUBLAS_OP_N;
    g.ld = std::max<int64_t>(c, 1);
  }
  g.ptr = static_cast<const float*>(g.keep.raw_data());
  g.batch_stride = batched && g.keep.size(0) > 1 ? g.keep.stride(0) : 0;
  return g;
}

void check_int(int64_t v, const char* what) {
  DAN_CHECK(v <= INT_MAX, "matmul: {} = {} exceeds cuBLAS's 32-bit limit", what, v);
}

// C [batch, m, n] (contiguous) = A [.., m, k] @ B [.., k, n] + beta * C.
void gemm_into(const Tensor& c, const Tensor& a, const Tensor& b, int64_t batch, float beta) {
  const int dev = c.device().index;
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (batch == 0 || m == 0 || n == 0) return;
  float* cp = static_cast<float*>(c.raw_data());
  if (k == 0) {
    if (beta == 0.0f) {
      DAN_CUDA_CHECK(cudaMemsetAsync(cp, 0, static_cast<size_t>(batch * m * n) * sizeof(float),
                                     stream_of(dev)));
    }
    return;
  }
  const GemmOperand A = operand(a), B = operand(b);
  check_int(m, "m");
  check_int(n, "n");
  check_int(k, "k");
  check_int(A.ld, "lda");
  check_int(B.ld, "ldb");
  check_int(batch, "batch");
  cublasHandle_t h = ::dan::cuda::cublas_handle(dev);
  const float alpha = 1.0f;
  if (batch == 1) {
    DAN_CUBLAS_CHECK(cublasSgemm(h, B.op, A.op, static_cast<int>(n), static_cast<int>(m),
                                 static_cast<int>(k), &alpha, B.ptr, static_cast<int>(B.ld), A.ptr,
                                 static_cast<int>(A.ld), &beta, cp, static_cast<int>(n)));
    return;
  }
  DAN_CUBLAS_CHECK(cublasSgemmStridedBatched(
      h, B.op, A.op, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, B.ptr,
      static_cast<int>(B.ld), B.batch_stride, A.ptr, static_cast<int>(A.ld), A.batch_stride, &beta,
      cp, static_cast<int>(n), m * n, static_cast<int>(batch)));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  require_f32(a, "matmul", "a");
  DeviceGuard guard(a.device().index);
  if (a.dim() == 2) {
    Tensor c = raw::empty({a.size(0), b.size(1)}, DType::f32, a.device());
    gemm_into(c, a, b, 1, 0.0f);
    return c;
  }
  const int64_t batch = a.size(0) == 1 ? b.size(0) : a.size(0);
  Tensor c = raw::empty({batch, a.size(1), b.size(2)}, DType::f32, a.device());
  gemm_into(c, a, b, batch, 0.0f);
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  require_f32(x, "linear", "input");
  DeviceGuard guard(x.device().index);
  const int64_t n = x.size(0), out_features = w.size(0);
  Tensor y = raw::empty({n, out_features}, DType::f32, x.device());
  float beta = 0.0f;
  if (bias.defined()) {
    // Bias rows first, then the GEMM accumulates on top (beta = 1): no separate add pass.
    copy_into(y, raw::expand(bias, {n, out_features}));
    beta = 1.0f;
  }
  gemm_into(y, x, raw::transpose(w, 0, 1), 1, beta);
  return y;
}

}  // namespace dan::kernels::cuda
