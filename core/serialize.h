// Tensor-level safetensors I/O on top of the byte-level reader/writer in core/safetensors.h:
// model and optimizer checkpoints, HF weight files and the gold fixtures all go through here.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace dan {

// Writes `tensors` (any device, any strides; copied to the host first) as one safetensors
// file. Dtypes map f32/f64/i32/i64/bool <-> F32/F64/I32/I64/BOOL. Names must be unique; the
// write is atomic (see st::write), so an interrupted checkpoint never clobbers the last one.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor of a safetensors file onto device `d` (contiguous, not requiring grad).
// F16 and BF16 tensors (common in HF checkpoints) are converted to f32 on load, so a file
// saved back holds F32 there. Any other dtype we have no tensor type for (U8, I8, I16, U16,
// U32, U64) is an error that names the file and the key.
std::map<std::string, Tensor> load_safetensors(const std::string& path, Device d = Device::cpu());

// One tensor of an opened file (same conversions and errors as load_safetensors). Lets a
// caller read a few tensors of a large file, or look at r.metadata() too.
Tensor load_tensor(const st::Reader& r, const std::string& name, Device d = Device::cpu());

// The safetensors dtype name of a dan dtype ("F32", ..., "BOOL").
const char* safetensors_dtype(DType t);

}  // namespace dan
