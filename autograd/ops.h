// The differentiable op surface: free functions in namespace dan (plus Tensor's view methods
// declared in core/tensor.h). Each records its backward on the tape when grad mode is on and
// an input requires grad; the list of ops is autograd/ops.def.
#pragma once

#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace dan {

// ---- elementwise (broadcasting) -----------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double s);
Tensor rsub(const Tensor& a, double s);  // s - a
Tensor rdiv(const Tensor& a, double s);  // s / a
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
// GELU, exact erf form by default; approximate = true gives the tanh form.
Tensor gelu(const Tensor& x, bool approximate = false);
Tensor square(const Tensor& x);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// comparisons (not differentiable; bool results)
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(double s, const Tensor& a);

// ---- reductions (dims empty = all) --------------------------------------------------------
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Max over one dim; the gradient goes to the first maximal element (argmax), as in PyTorch.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // not differentiable
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);

// ---- linear algebra -----------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // 2-D or batched 3-D
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// ---- neural-net ops (last-dim softmax/layer_norm; batch_norm over [N, C]) ------------------
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum = 0.1, double eps = 1e-5);
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
Tensor index_select(const Tensor& x, const Tensor& index);  // rows of x
Tensor embedding(const Tensor& weight, const Tensor& index);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor mse_loss(const Tensor& pred, const Tensor& target);
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100);

// ---- random factories (Philox; not differentiable) ---------------------------------------
Tensor rand(const Shape& s, Generator& gen = default_generator(), DType t = DType::f32,
            Device d = Device::cpu());
Tensor randn(const Shape& s, Generator& gen = default_generator(), DType t = DType::f32,
             Device d = Device::cpu());
Tensor bernoulli(const Shape& s, double p, Generator& gen = default_generator(),
                 DType t = DType::f32, Device d = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);

// In-place helpers for optimizers and initializers (not recorded; use under NoGradGuard).
void fill_(const Tensor& t, double v);
void copy_(const Tensor& dst, const Tensor& src);

}  // namespace dan

// ---- fused transformer ops (autograd/ops_attention.cpp) ---------------------------------------
namespace dan {

// Multi-head self-attention on packed projections qkv [B, S, 3H] (q | k | v, head h in columns
// h*dh .. (h+1)*dh of each part): per head softmax(q k^T * scale + key_bias[b]) v, with dropout
// on the probabilities in training -> [B, S, H], heads side by side as the output Linear wants
// them. key_bias [B, S] is additive per key (HF's extended attention mask) and not
// differentiated. No [B, heads, S, S] tensor is kept for the backward: it recomputes the
// probabilities from per-row statistics. The dropout mask is the one dropout() would draw on
// the [B, heads, S, S] probabilities at this point of `gen`.
Tensor self_attention(const Tensor& qkv, const Tensor& key_bias, int64_t num_heads, double scale,
                      double dropout_p = 0.0, bool training = false,
                      Generator& gen = default_generator());
// gelu(x + bias), bias [x.size(-1)]: the bias of a preceding bias-free linear folded into the
// activation (one pass forward, one pass backward including the bias gradient).
Tensor bias_gelu(const Tensor& x, const Tensor& bias, bool approximate = false);
// layer_norm(x + residual, weight, bias, eps) in one pass (post-LN residual blocks).
Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps = 1e-5);

}  // namespace dan
