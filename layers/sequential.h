// Sequential: children named "0", "1", ... in order, each fed the previous one's output, so
// state_dict names match torch.nn.Sequential's.
#pragma once

#include <initializer_list>

#include "layers/module.h"

namespace dan {

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);

  // Appends m as child number size().
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }

  size_t size() const { return children().size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
};

}  // namespace dan
