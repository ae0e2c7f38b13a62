// Device = (type, index). CPU has index 0; CUDA devices are numbered as the driver numbers them.
#pragma once

#include <string>

#include "core/error.h"

namespace dan {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  // "cpu", "cuda", "cuda:1"
  static Device parse(const std::string& s);

  static constexpr Device cpu() { return Device(DeviceType::cpu, 0); }
  static constexpr Device cuda(int i = 0) { return Device(DeviceType::cuda, i); }
  constexpr bool is_cpu() const { return type == DeviceType::cpu; }
  constexpr bool is_cuda() const { return type == DeviceType::cuda; }
  constexpr bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

inline Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string n = s.substr(5);
    DAN_CHECK(!n.empty() && n.find_first_not_of("0123456789") == std::string::npos && n.size() < 4,
              "device: cannot parse '{}': expected cpu, cuda or cuda:N", s);
    return cuda(std::stoi(n));
  }
  fail("device: cannot parse '{}': expected cpu, cuda or cuda:N", s);
}

}  // namespace dan

template <>
struct fmt::formatter<dan::Device> : fmt::formatter<std::string> {
  auto format(const dan::Device& d, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};
