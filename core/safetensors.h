// Byte-level reader/writer for the safetensors format
// (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  little-endian u64 N = byte length of the JSON header
//   [N bytes]  UTF-8 JSON object, optionally padded with trailing spaces:
//                {name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                 "__metadata__": {str: str}}            (optional)
//   [rest]     the data buffer; offsets are relative to its start, row-major, little-endian.
//
// The reader validates everything (bounds, sizes, overlap, coverage) up front and reports
// every problem as a dan::Error naming the file, the tensor key and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dan::st {

struct TensorInfo {
  std::string name;
  std::string dtype;  // "F16","BF16","F32","F64","I8","I16","I32","I64","U8","U16","U32","U64","BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets relative to the data buffer
  uint64_t nbytes() const { return end - begin; }
};

// Bytes per element of a safetensors dtype name; throws dan::Error on an unknown name.
size_t dtype_size(const std::string& dtype);

// Number of elements of `shape`, or throws if a dimension is negative or the product
// overflows. `what` prefixes the error message.
uint64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

// Headers larger than this are rejected before parsing (same limit as the reference).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

class Reader {
 public:
  // Reads the whole file into memory and validates it.
  static Reader open(const std::string& path);
  // Validates an in-memory file image; `origin` names it in error messages.
  static Reader from_bytes(std::string bytes, std::string origin);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by data offset
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& origin() const { return origin_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming file + key if missing

  // Start of t's bytes inside the buffer (t.nbytes() of them). The pointer has no alignment
  // guarantee beyond what the file provides: copy with std::memcpy rather than casting.
  const uint8_t* data(const TensorInfo& t) const;

 private:
  Reader() = default;

  std::string origin_;
  std::string bytes_;     // the whole file image
  size_t data_start_ = 0; // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

struct WriteEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data;  // nbytes little-endian bytes, row-major; may be null when nbytes == 0
  size_t nbytes;
};

// Writes `entries` (sorted by name, in that order in the buffer) atomically: the bytes go to
// `path + ".tmp.<pid>"`, which is renamed over `path` only once fully written and synced.
// On any failure the temp file is removed, `path` is left untouched and dan::Error is thrown.
void write(const std::string& path, const std::vector<WriteEntry>& entries,
           const std::map<std::string, std::string>& metadata = {});

// IEEE 754 binary16 <-> binary32. f32_to_f16 rounds to nearest even, overflows to inf,
// keeps the sign of zero and maps NaN to a quiet NaN.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// bfloat16 <-> binary32 (bf16 is the top half of an f32). Rounds to nearest even;
// NaN stays NaN (quiet bit forced so a payload in the dropped bits is not lost into inf).
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace dan::st
