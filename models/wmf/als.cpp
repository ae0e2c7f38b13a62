// WMF by implicit ALS: the alternating half-steps over the kernels of kernels/als.h, the
// normalized loss, and the factor file. Device-agnostic: the matrices live on cfg.device, the
// Gram matrices come from kernels::matmul there, and only f x f Gram matrices and scalars are
// read back to the host.
#include "models/wmf/als.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "core/generator.h"
#include "core/philox.h"
#include "core/serialize.h"
#include "kernels/als.h"
#include "kernels/kernels.h"

namespace dan::wmf {

namespace {

kernels::CsrTensors upload(const recsys::Csr& C, Device d) {
  kernels::CsrTensors t;
  t.indptr = from_vector<int64_t>(C.indptr, {C.rows + 1}, d);
  t.indices = from_vector<int32_t>(C.indices, {C.nnz()}, d);
  t.values = from_vector<float>(C.values, {C.nnz()}, d);
  t.rows = C.rows;
  t.cols = C.cols;
  return t;
}

// Y^T Y on Y's device (thread-count independent on the CPU, see kernels/als.h).
Tensor gram(const Tensor& Y) { return kernels::als_gram(Y); }

double trace(const Tensor& G) {
  const std::vector<double> g = G.to_vector();
  const int64_t f = G.size(0);
  double t = 0;
  for (int64_t j = 0; j < f; ++j) t += g[j * f + j];
  return t;
}

double sum_of_squares(const Tensor& X) {
  return kernels::reduce(kernels::ReduceOp::sum, kernels::binary(kernels::BinaryOp::mul, X, X), {},
                         false)
      .item();
}

// Sum of all confidences of the full matrix: stored ones plus 1 for every other pair.
double confidence_total(const recsys::Csr& C) {
  double s = 0;
  for (float v : C.values) s += v;
  return s + static_cast<double>(C.rows) * static_cast<double>(C.cols) -
         static_cast<double>(C.nnz());
}

double normalized(const kernels::AlsLossParts& p, double reg, double sq_u, double sq_v,
                  double total_conf) {
  return (p.observed + p.dense + reg * (sq_u + sq_v)) / total_conf;
}

void check_matrix(const recsys::Csr& C, const char* op) {
  C.validate(op);
  for (int64_t k = 0; k < C.nnz(); ++k) {
    DAN_CHECK(std::isfinite(C.values[k]) && C.values[k] > 0,
              "{}: stored value {} (entry {}) is not a confidence: expected finite and > 0", op,
              C.values[k], k);
  }
}

void check_config(const AlsConfig& cfg) {
  DAN_CHECK(cfg.factors >= 1, "fit_als: factors must be >= 1, got {}", cfg.factors);
  DAN_CHECK(cfg.iterations >= 0, "fit_als: iterations must be >= 0, got {}", cfg.iterations);
  DAN_CHECK(std::isfinite(cfg.reg) && cfg.reg >= 0, "fit_als: reg must be finite and >= 0, got {}",
            cfg.reg);
  DAN_CHECK(cfg.solver != Solver::cg || cfg.cg_steps >= 1, "fit_als: cg_steps must be >= 1, got {}",
            cfg.cg_steps);
  DAN_CHECK(std::isfinite(cfg.init_scale) && cfg.init_scale > 0,
            "fit_als: init_scale must be finite and > 0, got {}", cfg.init_scale);
}

void check_factors(const Tensor& T, int64_t rows, int64_t f, const char* op, const char* what) {
  DAN_CHECK(T.defined(), "{}: {} is an undefined tensor", op, what);
  DAN_CHECK(T.dtype() == DType::f32, "{}: {} must be f32, got {}", op, what, T.dtype());
  DAN_CHECK(T.dim() == 2 && T.size(0) == rows && T.size(1) == f,
            "{}: {} has shape {}, expected [{}, {}]", op, what, shape_str(T.shape()), rows, f);
}

// The loop, on owned factor tensors U, V already on cfg.device.
AlsResult run(const recsys::Csr& C, const AlsConfig& cfg, Tensor U, Tensor V,
              const std::function<void(const IterationStats&)>& on_iteration) {
  const Device dev = cfg.device;
  const recsys::Csr Ct = C.transpose();
  const kernels::CsrTensors Cu = upload(C, dev), Ci = upload(Ct, dev);
  const double total_conf = confidence_total(C);
  const float reg = static_cast<float>(cfg.reg);

  AlsResult res;
  res.config = cfg;
  Tensor VtV = gram(V);
  for (int it = 1; it <= cfg.iterations; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    // User half-step: X = U, Y = V over C; then the item half-step: X = V, Y = U over C^T.
    if (cfg.solver == Solver::cg) {
      kernels::als_update_cg(U, V, VtV, Cu, reg, cfg.cg_steps);
    } else {
      kernels::als_update_cholesky(U, V, VtV, Cu, reg);
    }
    const Tensor UtU = gram(U);
    if (cfg.solver == Solver::cg) {
      kernels::als_update_cg(V, U, UtU, Ci, reg, cfg.cg_steps);
    } else {
      kernels::als_update_cholesky(V, U, UtU, Ci, reg);
    }
    // The new V's Gram serves the loss now and the next user half-step.
    VtV = gram(V);
    IterationStats st;
    st.iteration = it;
    // Reading VtV's trace back also waits for the device, so `seconds` is the real time.
    const double sq_v = trace(VtV);
    if (cfg.compute_loss) {
      const kernels::AlsLossParts parts = kernels::als_loss_parts(U, V, VtV, Cu);
      st.loss = normalized(parts, cfg.reg, trace(UtU), sq_v, total_conf);
    } else {
      st.loss = std::numeric_limits<double>::quiet_NaN();
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.history.push_back(st);
    if (on_iteration) on_iteration(st);
  }
  res.U = dev.is_cpu() ? U : raw::contiguous_copy(U, Device::cpu());
  res.V = dev.is_cpu() ? V : raw::contiguous_copy(V, Device::cpu());
  return res;
}

}  // namespace

const char* solver_name(Solver s) { return s == Solver::cg ? "cg" : "cholesky"; }

Solver parse_solver(const std::string& s) {
  if (s == "cg") return Solver::cg;
  if (s == "cholesky") return Solver::cholesky;
  fail("wmf: unknown solver '{}': expected cg or cholesky", s);
}

double als_loss(const recsys::Csr& C, const Tensor& U, const Tensor& V, double reg) {
  constexpr const char* op = "als_loss";
  check_matrix(C, op);
  DAN_CHECK(U.defined() && V.defined(), "{}: U or V is an undefined tensor", op);
  DAN_CHECK(U.dim() == 2, "{}: U must be 2-D, got shape {}", op, shape_str(U.shape()));
  const int64_t f = U.size(1);
  check_factors(U, C.rows, f, op, "U");
  check_factors(V, C.cols, f, op, "V");
  DAN_CHECK(U.device() == V.device(), "{}: U is on {}, V on {}", op, U.device(), V.device());
  DAN_CHECK(std::isfinite(reg) && reg >= 0, "{}: reg must be finite and >= 0, got {}", op, reg);
  const Device dev = U.device();
  const Tensor Uc = U.is_contiguous() ? U : raw::contiguous_copy(U, dev);
  const Tensor Vc = V.is_contiguous() ? V : raw::contiguous_copy(V, dev);
  const kernels::AlsLossParts parts = kernels::als_loss_parts(Uc, Vc, gram(Vc), upload(C, dev));
  return normalized(parts, reg, sum_of_squares(Uc), sum_of_squares(Vc), confidence_total(C));
}

AlsResult fit_als(const recsys::Csr& C, const AlsConfig& cfg,
                  const std::function<void(const IterationStats&)>& on_iteration) {
  check_matrix(C, "fit_als");
  check_config(cfg);
  // U takes the first Philox counters of the seed, V the ones after it.
  Generator gen(cfg.seed);
  Tensor U = empty({C.rows, cfg.factors}, DType::f32, cfg.device);
  Tensor V = empty({C.cols, cfg.factors}, DType::f32, cfg.device);
  const uint64_t off_u = gen.reserve(philox::blocks_for(static_cast<uint64_t>(U.numel()), false));
  const uint64_t off_v = gen.reserve(philox::blocks_for(static_cast<uint64_t>(V.numel()), false));
  kernels::uniform_(U, cfg.seed, off_u, 0.0, cfg.init_scale);
  kernels::uniform_(V, cfg.seed, off_v, 0.0, cfg.init_scale);
  return run(C, cfg, U, V, on_iteration);
}

AlsResult fit_als(const recsys::Csr& C, const AlsConfig& cfg, const Tensor& U0, const Tensor& V0,
                  const std::function<void(const IterationStats&)>& on_iteration) {
  check_matrix(C, "fit_als");
  check_config(cfg);
  check_factors(U0, C.rows, cfg.factors, "fit_als", "U0");
  check_factors(V0, C.cols, cfg.factors, "fit_als", "V0");
  // Fresh contiguous copies on the fit's device: the caller's tensors stay untouched.
  return run(C, cfg, raw::contiguous_copy(U0, cfg.device), raw::contiguous_copy(V0, cfg.device),
             on_iteration);
}

void save_factors(const std::string& path, const AlsResult& r, const std::vector<int32_t>& users,
                  const std::vector<int32_t>& items) {
  constexpr const char* op = "save_factors";
  DAN_CHECK(r.U.defined() && r.V.defined(), "{}: the result has no factors", op);
  DAN_CHECK(r.U.dim() == 2 && r.V.dim() == 2 && r.U.size(1) == r.V.size(1),
            "{}: U {} and V {} must be [n, f] with one f", op, shape_str(r.U.shape()),
            shape_str(r.V.shape()));
  DAN_CHECK(static_cast<int64_t>(users.size()) == r.U.size(0),
            "{}: {} user ids for {} rows of U", op, users.size(), r.U.size(0));
  DAN_CHECK(static_cast<int64_t>(items.size()) == r.V.size(0),
            "{}: {} item ids for {} rows of V", op, items.size(), r.V.size(0));
  const AlsConfig& c = r.config;
  std::map<std::string, std::string> meta = {
      {"factors", std::to_string(r.U.size(1))},
      {"reg", fmt::format("{}", c.reg)},
      {"iterations", std::to_string(c.iterations)},
      {"solver", solver_name(c.solver)},
      {"cg_steps", std::to_string(c.cg_steps)},
      {"seed", std::to_string(c.seed)},
      {"init_scale", fmt::format("{}", c.init_scale)},
  };
  if (!r.history.empty() && std::isfinite(r.history.back().loss)) {
    meta["final_loss"] = fmt::format("{}", r.history.back().loss);
  }
  save_safetensors(path,
                   {{"U", r.U},
                    {"V", r.V},
                    {"users", from_vector<int32_t>(users, {static_cast<int64_t>(users.size())})},
                    {"items", from_vector<int32_t>(items, {static_cast<int64_t>(items.size())})}},
                   meta);
}

Factors load_factors(const std::string& path) {
  const st::Reader rd = st::Reader::open(path);
  auto get = [&](const char* key, DType want, int64_t ndim) {
    DAN_CHECK(rd.contains(key),
              "load_factors: {} has no tensor '{}' (a factor file holds U, V, users, items)", path,
              key);
    Tensor t = load_tensor(rd, key);
    DAN_CHECK(t.dtype() == want && t.dim() == ndim,
              "load_factors: {}: '{}' is {} {}, expected a {}-D {} tensor", path, key, t.dtype(),
              shape_str(t.shape()), ndim, want);
    return t;
  };
  Factors out;
  out.U = get("U", DType::f32, 2);
  out.V = get("V", DType::f32, 2);
  const Tensor users = get("users", DType::i32, 1);
  const Tensor items = get("items", DType::i32, 1);
  DAN_CHECK(out.U.size(1) == out.V.size(1),
            "load_factors: {}: U {} and V {} have different numbers of factors", path,
            shape_str(out.U.shape()), shape_str(out.V.shape()));
  DAN_CHECK(users.numel() == out.U.size(0), "load_factors: {}: 'users' has {} ids for {} rows of U",
            path, users.numel(), out.U.size(0));
  DAN_CHECK(items.numel() == out.V.size(0), "load_factors: {}: 'items' has {} ids for {} rows of V",
            path, items.numel(), out.V.size(0));
  const int32_t* up = users.data<int32_t>();
  const int32_t* ip = items.data<int32_t>();
  out.users.assign(up, up + users.numel());
  out.items.assign(ip, ip + items.numel());
  out.metadata = rd.metadata();
  if (const auto it = out.metadata.find("factors"); it != out.metadata.end()) {
    DAN_CHECK(it->second == std::to_string(out.U.size(1)),
              "load_factors: {}: metadata says {} factors, U has {}", path, it->second,
              out.U.size(1));
  }
  return out;
}

}  // namespace dan::wmf
