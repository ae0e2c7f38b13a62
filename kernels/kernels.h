// Kernel entry points. dan::kernels::<op> validates its inputs (shapes, dtypes, devices; the
// errors name the op and the shapes) and routes to the backend of the inputs' device:
// dan::kernels::cpu (kernels/cpu/) or dan::kernels::cuda (kernels/cuda/). These are not
// differentiable; autograd/ builds the differentiable ops on top of them.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dan::kernels {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, abs, relu, tanh, sigmoid, gelu_erf, gelu_tanh, square, reciprocal,
  sin, cos
};
enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum };
enum class CompareOp : uint8_t { eq, ne, lt, le, gt, ge };
enum class ReduceOp : uint8_t { sum, mean, max, min };

const char* name(UnaryOp op);
const char* name(BinaryOp op);
const char* name(CompareOp op);
const char* name(ReduceOp op);

struct LayerNormOut { Tensor y, mean, rstd; };
struct LayerNormGrads { Tensor dx, dweight, dbias; };
struct BatchNormOut { Tensor y, save_mean, save_invstd; };
struct BatchNormGrads { Tensor dx, dweight, dbias; };
struct DropoutOut { Tensor y, mask; };
struct CrossEntropyOut { Tensor loss, log_probs; };

// NumPy broadcasting of two shapes; error names the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

#include "kernels/ops.inc"

namespace cpu {
#include "kernels/ops.inc"
}  // namespace cpu

namespace cuda {
#include "kernels/ops.inc"
}  // namespace cuda

}  // namespace dan::kernels
