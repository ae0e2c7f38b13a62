// CPU losses: mean squared error and cross entropy (log_softmax + NLL with ignore_index),
// forward and backward, with PyTorch's 'mean' reduction semantics.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 15;  // elements before OpenMP pays off
constexpr int64_t kSumChunk = int64_t{1} << 14;     // elements per partial sum

Tensor contig(const Tensor& t) {
  return t.is_contiguous() ? t : raw::contiguous_copy(t, Device::cpu());
}

// sum_i (p[i] - t[i])^2 in double over fixed-size chunks added in order: the same bits for any
// thread count.
template <typename T>
double sq_diff_sum(const T* p, const T* t, int64_t n) {
  const int64_t nchunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> part(static_cast<size_t>(nchunks), 0.0);
  double* pp = part.data();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t i0 = c * kSumChunk, i1 = std::min(n, i0 + kSumChunk);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < i1; ++i) {
      const double d = static_cast<double>(p[i]) - static_cast<double>(t[i]);
      s += d * d;
    }
    pp[c] = s;
  }
  double total = 0;
  for (double s : part) total += s;
  return total;
}

// Target of row i as int64, after checking it is ignore_index or a class in [0, c).
template <typename I>
std::vector<int64_t> checked_targets(const Tensor& target, int64_t c, int64_t ignore_index,
                                     const char* op) {
  const Tensor t = contig(target);
  const I* tp = static_cast<const I*>(t.raw_data());
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t v = tp[i];
    DAN_CHECK(v == ignore_index || (v >= 0 && v < c),
              "{}: target[{}] = {} is out of range for {} classes (expected 0 <= target < {} or "
              "ignore_index = {})",
              op, i, v, c, c, ignore_index);
    out[static_cast<size_t>(i)] = v;
  }
  return out;
}

std::vector<int64_t> targets_of(const Tensor& target, int64_t c, int64_t ignore_index,
                                const char* op) {
  return DAN_DISPATCH_INDEX(target.dtype(), op, [&]<typename I>() {
    return checked_targets<I>(target, c, ignore_index, op);
  });
}

template <typename T>
Tensor scalar_of(double v, DType dt) {
  Tensor t = raw::empty({}, dt);
  *static_cast<T*>(t.raw_data()) = static_cast<T>(v);
  return t;
}

template <typename T>
void mse_backward_loop(const T* p, const T* t, T* o, int64_t n, T norm, T g) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = (p[i] - t[i]) * norm * g;
}

}  // namespace

Tensor mse_loss(const Tensor& pred_in, const Tensor& target_in) {
  const Tensor pred = contig(pred_in), target = contig(target_in);
  const int64_t n = pred.numel();
  return DAN_DISPATCH_FLOAT(pred.dtype(), "mse_loss", [&]<typename T>() {
    const double s = sq_diff_sum(static_cast<const T*>(pred.raw_data()),
                                 static_cast<const T*>(target.raw_data()), n);
    // An empty mean is NaN, as in PyTorch.
    return scalar_of<T>(s / static_cast<double>(n), pred.dtype());
  });
}

// dpred = (pred - target) * (2 / N) * g, in PyTorch's order of operations.
Tensor mse_loss_backward(const Tensor& grad, const Tensor& pred_in, const Tensor& target_in) {
  const Tensor pred = contig(pred_in), target = contig(target_in);
  const int64_t n = pred.numel();
  Tensor out = raw::empty(pred.shape(), pred.dtype());
  DAN_DISPATCH_FLOAT(pred.dtype(), "mse_loss_backward", [&]<typename T>() {
    mse_backward_loop(static_cast<const T*>(pred.raw_data()),
                      static_cast<const T*>(target.raw_data()), static_cast<T*>(out.raw_data()), n,
                      static_cast<T>(2.0 / static_cast<double>(n)), static_cast<T>(grad.item()));
  });
  return out;
}

CrossEntropyOut cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  const int64_t n = logits.size(0), c = logits.size(1);
  // Checked before any work so that a bad label fails fast with its row.
  const std::vector<int64_t> tgt = targets_of(target, c, ignore_index, "cross_entropy");
  CrossEntropyOut out;
  out.log_probs = log_softmax(logits);
  DAN_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&]<typename T>() {
    const T* lp = static_cast<const T*>(out.log_probs.raw_data());
    double s = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (tgt[i] == ignore_index) continue;
      s -= lp[i * c + tgt[i]];
      ++count;
    }
    // Every target ignored: 0 / 0 = NaN, as in PyTorch.
    out.loss = scalar_of<T>(s / static_cast<double>(count), logits.dtype());
  });
  return out;
}

// dlogits = (softmax - onehot(target)) * g / count; ignored rows are zero. Computed as PyTorch
// does: the NLL gradient (-g/count at each target) goes through log_softmax_backward, which
// also gives the vectorized exp.
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& log_probs, const Tensor& target,
                              int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  const int64_t n = log_probs.size(0), c = log_probs.size(1);
  const std::vector<int64_t> tgt = targets_of(target, c, ignore_index, op);
  int64_t count = 0;
  for (int64_t v : tgt) count += v != ignore_index ? 1 : 0;
  Tensor g_lp = raw::empty(log_probs.shape(), log_probs.dtype());
  DAN_DISPATCH_FLOAT(log_probs.dtype(), op, [&]<typename T>() {
    T* g = static_cast<T*>(g_lp.raw_data());
    std::fill_n(g, n * c, T(0));
    if (count == 0) return;
    const T s = static_cast<T>(grad.item() / static_cast<double>(count));
    for (int64_t i = 0; i < n; ++i) {
      if (tgt[i] != ignore_index) g[i * c + tgt[i]] = -s;
    }
  });
  return log_softmax_backward(g_lp, log_probs);
}

}  // namespace dan::kernels::cpu
