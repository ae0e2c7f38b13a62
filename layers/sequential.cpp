// Sequential container.
#include "layers/sequential.h"

namespace dan {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  register_module(std::to_string(size()), std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [_, m] : children()) h = m->forward(h);
  return h;
}

const std::shared_ptr<Module>& Sequential::operator[](size_t i) const {
  DAN_CHECK(i < size(), "Sequential: index {} out of range for {} modules", i, size());
  return children()[i].second;
}

}  // namespace dan
