// WMF by implicit ALS: factors U (users x f), V (items x f) minimizing
//   sum_{u,i} c_ui (p_ui - u_u.v_i)^2 + reg (sum_u |u_u|^2 + sum_i |v_i|^2)
// over the full matrix (p = 1, c = value on stored entries; p = 0, c = 1 elsewhere). The
// stored value is the confidence itself (as in the `implicit` package: nothing is added to it),
// so a caller turning ratings into confidences writes c = 1 + alpha * r into the matrix.
// See models/wmf/README.md for the solvers, the loss normalization and the file format.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "recsys/csr.h"

namespace dan::wmf {

enum class Solver { cg, cholesky };
const char* solver_name(Solver s);      // "cg", "cholesky"
Solver parse_solver(const std::string& s);  // inverse; errors name the value

struct AlsConfig {
  int64_t factors = 64;
  int iterations = 15;
  double reg = 0.01;
  Solver solver = Solver::cg;
  int cg_steps = 3;
  uint64_t seed = 0;
  double init_scale = 0.01;  // initial factors ~ U[0, init_scale) from Philox(seed)
  Device device = Device::cpu();
  // Compute the loss after every iteration (one extra pass over the data, about the cost of
  // one CG step). When false, IterationStats::loss is NaN; als_loss gives it afterwards.
  bool compute_loss = true;
};

struct IterationStats {
  int iteration = 0;  // 1-based
  double loss = 0;    // normalized as implicit does: total / (sum c + rows*cols - nnz)
  double seconds = 0;  // wall time of this iteration's two half-steps (and its loss)
};

struct AlsResult {
  Tensor U, V;  // f32, on the CPU
  std::vector<IterationStats> history;
  AlsConfig config;  // what produced U and V (saved with them)
};

// The normalized full weighted loss of (U, V) on C (any device; cheap formulation):
//   [sum over stored (u,i) of c (1 - s)^2 + sum over the others of s^2
//    + reg (|U|^2 + |V|^2)] / (sum of stored c + rows*cols - nnz),   s = u_u.v_i,
// exactly implicit 0.7's calculate_loss. U and V must be on one device.
double als_loss(const recsys::Csr& C, const Tensor& U, const Tensor& V, double reg);

// Fits; `on_iteration` (may be empty) is called after each iteration (progress lines).
// U is drawn first (Philox counters from 0), then V (the counters after U's): the same seed
// gives the same factors on every device and thread count.
AlsResult fit_als(const recsys::Csr& C, const AlsConfig& cfg,
                  const std::function<void(const IterationStats&)>& on_iteration = {});

// Same, starting from given factors (U0 [rows x f], V0 [cols x f], f32, any device; copied,
// not modified) instead of random ones: warm starts, and side-by-side runs with other ALS
// implementations from one initialization. cfg.factors must equal f.
AlsResult fit_als(const recsys::Csr& C, const AlsConfig& cfg, const Tensor& U0, const Tensor& V0,
                  const std::function<void(const IterationStats&)>& on_iteration = {});

// U, V plus the row/column -> dataset index maps, as one safetensors file (atomic). Tensors
// "U" [users x f] F32, "V" [items x f] F32, "users" [users] I32, "items" [items] I32; metadata
// factors, reg, iterations, solver, cg_steps, seed, init_scale and final_loss (when known).
void save_factors(const std::string& path, const AlsResult& r, const std::vector<int32_t>& users,
                  const std::vector<int32_t>& items);
struct Factors {
  Tensor U, V;
  std::vector<int32_t> users, items;
  std::map<std::string, std::string> metadata;
};
// Reads what save_factors wrote; a missing key, a wrong dtype or inconsistent shapes are an
// error naming the file and the key.
Factors load_factors(const std::string& path);

}  // namespace dan::wmf
