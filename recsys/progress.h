// Progress reporting for training loops: an in-place bar on a terminal, plain log lines when
// the output is a file or a pipe (CI logs, nohup), so logs stay readable in both.
//
//   Progress bar;                                   // stderr; bar if it is a terminal
//   for (int e = 1; e <= epochs; ++e) {
//     bar.start_epoch(e, epochs, batches.size());
//     for (...) { ...; bar.step({{"loss", loss.item()}}); }
//     bar.end_epoch(fmt::format("val recall@100 {:.4f}", recall));
//   }
//
// Terminal (redrawn at most every refresh_s, and once at the end of each epoch):
//   epoch 3/50 [#####               ] 120/400 loss 0.1234 31.2 it/s ETA 0:09
// Not a terminal (one line per epoch, and every log_every steps if set):
//   epoch 3/50 400/400 loss 0.1234 31.2 it/s 12.8 s val recall@100 0.2710
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dan::recsys {

struct ProgressOptions {
  std::ostream* out = nullptr;    // nullptr: std::cerr
  std::optional<bool> tty{};      // unset: isatty() of stderr (or stdout when out is std::cout)
  std::function<double()> clock{};  // seconds, monotonic; unset: std::chrono::steady_clock
  double refresh_s = 0.1;         // terminal redraw interval
  int64_t log_every = 0;          // not a terminal: also a line every N steps (0: epoch ends only)
  int bar_width = 20;
};

class Progress {
 public:
  explicit Progress(ProgressOptions opts = {});
  ~Progress();  // ends a bar left open with a newline
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `epoch` as shown (1-based), out of `num_epochs`; `steps` in this epoch (0: unknown, then
  // no bar and no ETA are shown).
  void start_epoch(int64_t epoch, int64_t num_epochs, int64_t steps);
  // `n` steps done. Each metric is shown as the mean of the values given since start_epoch
  // (weighted by n), so a noisy batch loss reads as the epoch's running loss. Metrics appear
  // in the order they were first given.
  void step(const std::vector<std::pair<std::string, double>>& metrics = {}, int64_t n = 1);
  // Prints the epoch's final line, with `summary` (e.g. validation metrics) appended.
  void end_epoch(const std::string& summary = "");
  // A line of text above the bar (the bar is redrawn below it on a terminal).
  void message(const std::string& line);

  bool is_tty() const { return tty_; }
  // The epoch's running means so far (what the line shows), in first-given order.
  std::vector<std::pair<std::string, double>> means() const;
  double elapsed_s() const;  // since start_epoch

  // "0:09", "12:05", "1:02:03" (seconds rounded up): the ETA format.
  static std::string format_duration(double seconds);

 private:
  std::string line(bool final) const;
  void draw(bool final);

  std::ostream* out_;
  bool tty_;
  std::function<double()> clock_;
  double refresh_s_;
  int64_t log_every_;
  int bar_width_;

  int64_t epoch_ = 0, num_epochs_ = 0, total_ = 0, done_ = 0;
  double t0_ = 0, last_draw_ = 0;
  bool drawn_ = false;  // a bar is on screen (terminal)
  struct Mean {
    std::string name;
    double sum = 0;
    double weight = 0;
  };
  std::vector<Mean> metrics_;
};

}  // namespace dan::recsys
