// The backward engine: topological order over the tape, gradient accumulation per node and
// into leaves' .grad, then release of the saved state (unless retain_graph).
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "kernels/kernels.h"

namespace dan {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

namespace autograd {

Tensor saved(const Tensor& t) {
  if (!t.defined()) return t;
  return raw::make_view(t, t.shape(), t.strides(), t.offset());
}

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!grad_enabled()) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || needs_grad(t);
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(fn);
  node->out_shape = out.shape();
  node->next.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.grad_fn()) {
      e.fn = t.grad_fn();
    } else if (t.defined() && t.requires_grad()) {
      e.leaf = t.impl_ptr();
    }
    node->next.push_back(std::move(e));
  }
  // A fresh handle so that a view sharing `out`'s impl elsewhere is not re-linked.
  TensorImpl& impl = out.impl();
  impl.requires_grad = true;
  node->output = out.impl_ptr();
  impl.grad_fn = std::move(node);
  return out;
}

namespace {

Tensor accumulate(const Tensor& acc, const Tensor& g) {
  if (!acc.defined()) return g;
  return kernels::binary(kernels::BinaryOp::add, acc, g);
}

// The first gradient a leaf receives, as the leaf's own tensor. A fresh contiguous kernel
// output that nothing else references (neither its handle nor its storage) is taken as it is;
// anything else is copied, so in-place updates of .grad never reach another tensor.
std::shared_ptr<TensorImpl> own_grad(Tensor& g) {
  if (g.is_contiguous() && !g.grad_fn() && !g.requires_grad() && g.impl_ptr().use_count() == 1 &&
      g.storage().use_count() == 1) {
    std::shared_ptr<TensorImpl> p = g.impl_ptr();
    g = Tensor();
    return p;
  }
  return raw::contiguous_copy(g, g.device()).impl_ptr();
}

void check_grad_shape(const Tensor& g, const Shape& want, const char* node) {
  DAN_CHECK(g.shape() == want, "backward: {} produced a gradient of shape {} for a tensor of "
            "shape {}", node, shape_str(g.shape()), shape_str(want));
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  DAN_CHECK(root.defined(), "backward: called on an undefined tensor");
  DAN_CHECK(needs_grad(root), "backward: the tensor does not require grad and has no grad_fn "
            "(was it computed under NoGradGuard, or from tensors without requires_grad?)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    DAN_CHECK(root.numel() == 1, "backward: implicit gradient only for one-element outputs; "
              "this one has shape {} (pass a gradient)", shape_str(root.shape()));
    grad = full(root.shape(), 1.0, root.dtype(), root.device());
  }
  DAN_CHECK(grad.shape() == root.shape(), "backward: gradient has shape {}, output has {}",
            shape_str(grad.shape()), shape_str(root.shape()));
  NoGradGuard no_grad;

  if (!root.grad_fn()) {  // a leaf: accumulate directly
    TensorImpl& impl = root.impl();
    impl.grad = impl.grad ? accumulate(Tensor(impl.grad), grad).impl_ptr()
                          : raw::contiguous_copy(grad, grad.device()).impl_ptr();
    return;
  }

  // Dependency counts: how many edges point at each node from nodes reachable from root.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack = {root.grad_fn().get()};
  std::unordered_set<Node*> seen = {stack.back()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    DAN_CHECK(!n->released, "backward: the graph through '{}' was already freed by an earlier "
              "backward(); pass retain_graph=true to backward twice", n->name);
    for (const Edge& e : n->next) {
      if (!e.fn) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  std::unordered_map<Node*, Tensor> pending;
  std::vector<std::shared_ptr<Node>> ready = {root.grad_fn()};
  pending[root.grad_fn().get()] = grad;
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor g = std::move(pending[node.get()]);
    pending.erase(node.get());
    // A node reached with no gradient (every path into it carried none) still releases its
    // children's dependency counts, so nodes further down are not left waiting.
    std::vector<Tensor> grads(node->next.size());
    if (g.defined()) {
      if (auto out = node->output.lock(); out && out->retains_grad) {
        out->grad = accumulate(Tensor(out->grad), g).impl_ptr();
      }
      std::vector<bool> needs(node->next.size());
      for (size_t i = 0; i < needs.size(); ++i) needs[i] = node->next[i].active();
      grads = node->backward(g, needs);
      DAN_CHECK(grads.size() == node->next.size(), "backward: {} returned {} gradients for {} "
                "inputs", node->name, grads.size(), node->next.size());
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& e = node->next[i];
      if (!e.active()) continue;
      if (e.leaf) {
        if (!grads[i].defined()) continue;
        check_grad_shape(grads[i], e.leaf->shape, node->name);
        // A leaf's .grad is owned by the leaf alone (a backward may hand the same tensor to
        // several inputs), so in-place updates such as clipping never touch anything else.
        e.leaf->grad = e.leaf->grad ? accumulate(Tensor(e.leaf->grad), grads[i]).impl_ptr()
                                    : own_grad(grads[i]);
        continue;
      }
      Node* child = e.fn.get();
      if (grads[i].defined()) {
        check_grad_shape(grads[i], child->out_shape, node->name);
        pending[child] = accumulate(pending[child], grads[i]);
      }
      if (--deps[child] == 0) ready.push_back(e.fn);
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->released = true;
    }
  }
}

}  // namespace autograd

void Tensor::backward(const Tensor& grad) const { autograd::backward(*this, grad); }

}  // namespace dan
