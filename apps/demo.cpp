// `deepaninet demo`: a small end-to-end training run on synthetic data, the shape of
// DropoutNet's item tower: content features of "anime" -> MLP -> WMF-like latent factors,
// evaluated on held-out (cold) items. It exercises the whole framework stack (tensors, kernels,
// autograd, layers, Adam, checkpoints) until the recommender pipeline replaces it.
#include "apps/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/ops.h"
#include "core/threads.h"
#include "layers/mlp.h"
#include "layers/optim/adam.h"

namespace dan::apps {

namespace {

struct Synthetic {
  Tensor phi_train, v_train, phi_val, v_val;
};

// Items have latent factors V ~ N(0, 1); their content is a fixed nonlinear mix of the factors
// plus noise, so V is learnable from content, as a WMF item vector is from its synopsis.
Synthetic make_data(int64_t n_items, int64_t rank, int64_t content_dim, Generator& gen, Device dev) {
  NoGradGuard ng;
  Tensor v = randn({n_items, rank}, gen);
  Tensor mix = randn({rank, content_dim}, gen) * (1.0 / std::sqrt(static_cast<double>(rank)));
  Tensor phi = tanh(matmul(v, mix) * 1.5) + randn({n_items, content_dim}, gen) * 0.1;
  const int64_t n_train = n_items * 4 / 5;
  auto rows = [&](const Tensor& t, int64_t a, int64_t b) { return t.narrow(0, a, b - a).contiguous().to(dev); };
  return {rows(phi, 0, n_train), rows(v, 0, n_train), rows(phi, n_train, n_items), rows(v, n_train, n_items)};
}

double eval_mse(MLP& model, const Tensor& phi, const Tensor& v) {
  NoGradGuard ng;
  model.eval();
  const double m = mse_loss(model(phi), v).item();
  model.train();
  return m;
}

}  // namespace

int run_demo(const DemoOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  Generator gen(o.seed);
  const Device dev = Device::parse(o.device);
  const int64_t rank = 32, content_dim = 300;
  Synthetic d = make_data(o.items, rank, content_dim, gen, dev);

  MLPConfig cfg;
  cfg.in_dim = content_dim;
  cfg.hidden = {256, 128};
  cfg.out_dim = rank;
  cfg.activation = Activation::tanh;
  cfg.batch_norm = true;
  MLP model(cfg, gen);
  model.to(dev);
  Adam opt(model.parameters(), AdamOptions{.lr = o.lr});

  fmt::print("demo: {} train / {} cold items, content {} -> MLP {} -> rank {}, device {}, {} threads\n",
             d.phi_train.size(0), d.phi_val.size(0), content_dim, fmt::join(cfg.hidden, "-"), rank,
             dev, num_threads());
  fmt::print("demo: cold-item MSE of predicting zeros = {:.4f}\n", mse_loss(zeros_like(d.v_val), d.v_val).item());

  std::filesystem::create_directories(o.out);
  std::ofstream metrics(std::filesystem::path(o.out) / "metrics.jsonl");
  const int64_t n = d.phi_train.size(0);
  double val = 0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    // A fresh permutation per epoch from the Philox generator (argsort of uniforms).
    std::vector<double> keys = rand({n}, gen, DType::f64).to_vector();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t s = 0; s + o.batch <= n; s += o.batch) {
      std::vector<int64_t> idx(order.begin() + s, order.begin() + s + o.batch);
      Tensor bi = from_vector(idx, {o.batch}, dev);
      Tensor loss = mse_loss(model(index_select(d.phi_train, bi)), index_select(d.v_train, bi));
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item();
      ++batches;
    }
    val = eval_mse(model, d.phi_val, d.v_val);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("epoch {:2d}/{}  train mse {:.4f}  cold-item mse {:.4f}  ({:.2f} s)\n", epoch, o.epochs,
               loss_sum / static_cast<double>(batches), val, secs);
    metrics << fmt::format("{{\"epoch\": {}, \"train_mse\": {:.6f}, \"val_mse\": {:.6f}, \"seconds\": {:.3f}}}\n",
                           epoch, loss_sum / static_cast<double>(batches), val, secs);
  }
  const std::string ckpt = (std::filesystem::path(o.out) / "model.safetensors").string();
  model.save(ckpt, {{"format", "pt"}, {"model", "demo-mlp"}});
  fmt::print("demo: wrote {} and {}/metrics.jsonl\n", ckpt, o.out);
  return 0;
}

}  // namespace dan::apps
