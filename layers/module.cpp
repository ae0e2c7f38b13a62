// Module bookkeeping: registration, recursive traversal, state_dict load/save, device moves.
#include "layers/module.h"

#include <unordered_set>

#include "core/philox.h"
#include "core/serialize.h"
#include "kernels/kernels.h"

namespace dan {

namespace {

// Points t's impl at src's data: every handle aliasing t (module members, optimizer param
// lists) sees the new data, as PyTorch's `param.data = ...` does in Module.to().
void set_data(const Tensor& t, const Tensor& src) {
  TensorImpl& i = t.impl();
  i.storage = src.storage();
  i.shape = src.shape();
  i.strides = src.strides();
  i.offset = src.offset();
  i.dtype = src.dtype();
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "\"" : ", \"") + s + "\"";
  return "[" + out + "]";
}

}  // namespace

Tensor Module::forward(const Tensor&) {
  fail("forward: {} does not implement forward(const Tensor&)", type_name());
}

void Module::check_new_name(const std::string& name, const char* what) const {
  DAN_CHECK(!name.empty() && name.find('.') == std::string::npos,
            "{}: {} name '{}' must be non-empty and contain no '.'", type_name(), what, name);
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list) {
      if (n == name) return true;
    }
    return false;
  };
  DAN_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_),
            "{}: cannot register {} '{}': the name is already used", type_name(), what, name);
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name, "parameter");
  DAN_CHECK(t.defined(), "{}: parameter '{}' is an undefined tensor", type_name(), name);
  DAN_CHECK(is_floating(t.dtype()), "{}: parameter '{}' must be f32 or f64, got {}", type_name(),
            name, t.dtype());
  DAN_CHECK(t.is_leaf(), "{}: parameter '{}' was produced by an op; register a leaf (detach() "
            "it first)", type_name(), name);
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "buffer");
  DAN_CHECK(t.defined(), "{}: buffer '{}' is an undefined tensor", type_name(), name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  DAN_CHECK(m != nullptr, "{}: module '{}' is null", type_name(), name);
  DAN_CHECK(m.get() != this, "{}: a module cannot be its own child ('{}')", type_name(), name);
  children_.emplace_back(name, std::move(m));
}

template <typename F>
void Module::visit(const std::string& prefix, F&& f) const {
  f(prefix, *this);
  for (const auto& [name, child] : children_) child->visit(prefix + name + ".", f);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.params_) {
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(prefix + name, t);
    }
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.buffers_) {
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(prefix + name, t);
    }
  });
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

void Module::to(Device d) {
  auto move = [&](const Tensor& t) {
    if (t.device() == d) return;
    set_data(t, raw::contiguous_copy(t, d));
    if (Tensor g = t.grad(); g.defined()) Tensor(t).set_grad(raw::contiguous_copy(g, d));
  };
  visit("", [&](const std::string&, const Module& m) {
    for (const auto& [_, t] : m.params_) move(t);
    for (const auto& [_, t] : m.buffers_) move(t);
  });
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad_();
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.params_) out.emplace_back(prefix + name, t.detach());
    for (const auto& [name, t] : m.buffers_) out.emplace_back(prefix + name, t.detach());
  });
  return out;
}

LoadResult Module::load_state_dict(const std::map<std::string, Tensor>& sd, bool strict) {
  LoadResult r;
  std::vector<std::string> mismatched;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (dst, src)
  std::unordered_set<std::string> expected;
  for (const auto& [name, dst] : state_dict()) {
    expected.insert(name);
    const auto it = sd.find(name);
    if (it == sd.end()) {
      r.missing_keys.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined() || src.shape() != dst.shape() || src.dtype() != dst.dtype()) {
      mismatched.push_back(src.defined()
          ? fmt::format("\"{}\": checkpoint {} {}, model {} {}", name, shape_str(src.shape()),
                        src.dtype(), shape_str(dst.shape()), dst.dtype())
          : fmt::format("\"{}\": checkpoint tensor is undefined", name));
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& [name, _] : sd) {
    if (!expected.count(name)) r.unexpected_keys.push_back(name);
  }
  std::vector<std::string> problems;
  if (strict && !r.missing_keys.empty()) {
    problems.push_back("missing keys " + quoted_list(r.missing_keys));
  }
  if (strict && !r.unexpected_keys.empty()) {
    problems.push_back("unexpected keys " + quoted_list(r.unexpected_keys));
  }
  if (!mismatched.empty()) {
    problems.push_back(fmt::format("shape/dtype mismatches [{}]", fmt::join(mismatched, "; ")));
  }
  // Nothing is copied unless everything matches, so a failed load leaves the module intact.
  DAN_CHECK(problems.empty(), "load_state_dict for {}: {}", type_name(), fmt::join(problems, "; "));
  NoGradGuard no_grad;
  for (const auto& [dst, src] : copies) raw::copy_(dst, src);
  return r;
}

LoadResult Module::load_state_dict(const NamedTensors& sd, bool strict) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, t] : sd) {
    DAN_CHECK(m.emplace(name, t).second, "load_state_dict for {}: key \"{}\" appears twice",
              type_name(), name);
  }
  return load_state_dict(m, strict);
}

void Module::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  save_safetensors(path, state_dict(), metadata);
}

LoadResult Module::load(const std::string& path, bool strict) {
  const std::map<std::string, Tensor> sd = load_safetensors(path);
  try {
    return load_state_dict(sd, strict);
  } catch (const Error& e) {
    fail("{} (checkpoint {})", e.what(), path);
  }
}

void init_uniform_(const Tensor& t, double lo, double hi, Generator& gen) {
  NoGradGuard no_grad;
  const bool wide = t.dtype() == DType::f64;
  const uint64_t n = static_cast<uint64_t>(t.numel());
  kernels::uniform_(t, gen.seed(), gen.reserve(philox::blocks_for(n, wide)), lo, hi);
}

void init_normal_(const Tensor& t, double mean, double std, Generator& gen) {
  NoGradGuard no_grad;
  const bool wide = t.dtype() == DType::f64;
  const uint64_t n = static_cast<uint64_t>(t.numel());
  kernels::normal_(t, gen.seed(), gen.reserve(philox::blocks_for(n, wide)), mean, std);
}

}  // namespace dan
