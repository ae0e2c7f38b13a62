// Tensor <-> safetensors conversion. The file data is not aligned for its element type (the
// format packs tensors back to back), so every element read goes through memcpy.
#include "core/serialize.h"

#include <bit>
#include <cstring>

namespace dan {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host needs byte swapping here");

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::b8: return "BOOL";
  }
  fail("safetensors: unknown dtype");
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Host copies must outlive the entries that point into them.
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  std::vector<st::WriteEntry> entries;
  entries.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    DAN_CHECK(t.defined(), "save_safetensors '{}': tensor '{}' is undefined", path, name);
    const Tensor h = t.device().is_cpu() && t.is_contiguous()
                         ? t
                         : raw::contiguous_copy(t, Device::cpu());
    host.push_back(h);
    entries.push_back(st::WriteEntry{name, safetensors_dtype(h.dtype()), h.shape(),
                                     h.numel() == 0 ? nullptr : h.raw_data(), h.nbytes()});
  }
  st::write(path, entries, metadata);
}

namespace {

template <typename Half>
void widen_half(const uint8_t* src, float* dst, int64_t n, Half convert) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = convert(h);
  }
}

}  // namespace

Tensor load_tensor(const st::Reader& r, const std::string& name, Device d) {
  const st::TensorInfo& info = r.info(name);
  const uint8_t* src = r.data(info);
  const std::string& dt = info.dtype;
  Tensor out;
  if (dt == "F32" || dt == "F64" || dt == "I32" || dt == "I64") {
    const DType t = dt == "F32" ? DType::f32 : dt == "F64" ? DType::f64
                  : dt == "I32" ? DType::i32 : DType::i64;
    out = raw::empty(info.shape, t, Device::cpu());
    DAN_CHECK(out.nbytes() == info.nbytes(), "load_safetensors: {}: tensor '{}' has {} bytes, "
              "shape {} of {} needs {}", r.origin(), name, info.nbytes(), shape_str(info.shape),
              dt, out.nbytes());
    if (out.nbytes() != 0) std::memcpy(out.raw_data(), src, out.nbytes());
  } else if (dt == "BOOL") {
    // Bytes other than 0/1 would be invalid bool objects: normalise instead of copying.
    out = raw::empty(info.shape, DType::b8, Device::cpu());
    auto* dst = static_cast<uint8_t*>(out.raw_data());
    for (int64_t i = 0; i < out.numel(); ++i) dst[i] = src[i] != 0 ? 1 : 0;
  } else if (dt == "F16" || dt == "BF16") {
    out = raw::empty(info.shape, DType::f32, Device::cpu());
    auto* dst = static_cast<float*>(out.raw_data());
    if (dt == "F16") {
      widen_half(src, dst, out.numel(), st::f16_to_f32);
    } else {
      widen_half(src, dst, out.numel(), st::bf16_to_f32);
    }
  } else {
    fail("load_safetensors: {}: tensor '{}' has dtype {}, which dan cannot hold (supported: "
         "F32, F64, I32, I64, BOOL; F16 and BF16 are converted to f32)", r.origin(), name, dt);
  }
  return d.is_cpu() ? out : raw::contiguous_copy(out, d);
}

std::map<std::string, Tensor> load_safetensors(const std::string& path, Device d) {
  const st::Reader r = st::Reader::open(path);
  std::map<std::string, Tensor> out;
  for (const st::TensorInfo& info : r.tensors()) out.emplace(info.name, load_tensor(r, info.name, d));
  return out;
}

}  // namespace dan
