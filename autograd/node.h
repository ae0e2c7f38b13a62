// The tape: each recorded op output points at a Node holding its backward function and one
// Edge per input (to the input's Node, or to the leaf tensor whose .grad accumulates).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dan::autograd {

struct Node;

struct Edge {
  std::shared_ptr<Node> fn;           // input produced by an op
  std::shared_ptr<TensorImpl> leaf;   // input is a leaf that requires grad
  bool active() const { return fn != nullptr || leaf != nullptr; }
};

// grads of the inputs given the grad of the output; needs[i] says whether input i wants one
// (an undefined Tensor is fine where it does not).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad, const std::vector<bool>& needs)>;

struct Node {
  const char* name = "";
  std::vector<Edge> next;
  BackwardFn backward;
  Shape out_shape;                     // grads arriving here must have this shape
  std::weak_ptr<TensorImpl> output;    // for retain_grad() on non-leaves
  bool released = false;
};

// Records `out` as produced by op `name` from `inputs` if grad mode is on and any input
// requires grad; returns `out` (now a non-leaf requiring grad) either way.
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);

// True if `t` takes part in autograd (a leaf requiring grad or an op output on the tape).
inline bool needs_grad(const Tensor& t) { return t.defined() && (t.requires_grad() || t.grad_fn()); }

// A data-only alias of `t` (same storage, no autograd links): what backward closures save, so
// the tape never holds a reference cycle through an output's own grad_fn.
Tensor saved(const Tensor& t);

// Runs the backward pass from `root`. `grad` defaults to 1 for a one-element root.
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);

}  // namespace dan::autograd
