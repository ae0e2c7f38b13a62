// Progress bar / progress log lines for epochs and steps.
#include "recsys/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "core/error.h"

namespace dan::recsys {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Metric values: 4 significant digits, compact ("0.1234", "123.5", "1.5e-05").
std::string metric_text(double v) { return fmt::format("{:.4g}", v); }

}  // namespace

Progress::Progress(ProgressOptions o)
    : out_(o.out ? o.out : &std::cerr),
      clock_(o.clock ? std::move(o.clock) : std::function<double()>(steady_seconds)),
      refresh_s_(o.refresh_s),
      log_every_(o.log_every),
      bar_width_(std::max(1, o.bar_width)) {
  if (o.tty) {
    tty_ = *o.tty;
  } else if (out_ == &std::cerr || out_ == &std::clog) {
    tty_ = ::isatty(STDERR_FILENO) != 0;
  } else if (out_ == &std::cout) {
    tty_ = ::isatty(STDOUT_FILENO) != 0;
  } else {
    tty_ = false;
  }
}

Progress::~Progress() {
  if (drawn_) *out_ << "\n" << std::flush;
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::ceil(seconds - 1e-9));
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

void Progress::start_epoch(int64_t epoch, int64_t num_epochs, int64_t steps) {
  DAN_CHECK(steps >= 0, "Progress::start_epoch: negative step count {}", steps);
  if (drawn_) {  // the previous epoch was not ended: keep its bar
    *out_ << "\n";
    drawn_ = false;
  }
  epoch_ = epoch;
  num_epochs_ = num_epochs;
  total_ = steps;
  done_ = 0;
  metrics_.clear();
  t0_ = clock_();
  last_draw_ = t0_;
}

void Progress::step(const std::vector<std::pair<std::string, double>>& metrics, int64_t n) {
  done_ += n;
  for (const auto& [name, v] : metrics) {
    auto it = std::find_if(metrics_.begin(), metrics_.end(), [&](const Mean& m) { return m.name == name; });
    if (it == metrics_.end()) {
      metrics_.push_back({name, 0, 0});
      it = metrics_.end() - 1;
    }
    it->sum += v * static_cast<double>(n);
    it->weight += static_cast<double>(n);
  }
  const double now = clock_();
  if (tty_) {
    if (!drawn_ || now - last_draw_ >= refresh_s_) {
      last_draw_ = now;
      draw(false);
    }
  } else if (log_every_ > 0 && done_ % log_every_ < n && (total_ == 0 || done_ < total_)) {
    // Crossed a multiple of log_every (n may be > 1); the last step is end_epoch's line.
    draw(false);
  }
}

void Progress::end_epoch(const std::string& summary) {
  std::string l = line(true);
  if (!summary.empty()) l += " " + summary;
  if (tty_) {
    *out_ << "\r" << l << "\x1b[K\n" << std::flush;
  } else {
    *out_ << l << "\n" << std::flush;
  }
  drawn_ = false;
}

void Progress::message(const std::string& text) {
  if (tty_ && drawn_) {
    *out_ << "\r\x1b[K" << text << "\n";
    draw(false);
  } else {
    *out_ << text << "\n" << std::flush;
  }
}

std::vector<std::pair<std::string, double>> Progress::means() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& m : metrics_) out.emplace_back(m.name, m.weight > 0 ? m.sum / m.weight : 0.0);
  return out;
}

double Progress::elapsed_s() const { return clock_() - t0_; }

std::string Progress::line(bool final) const {
  std::string l = fmt::format("epoch {}/{}", epoch_, num_epochs_);
  if (total_ > 0) {
    if (tty_) {
      const int64_t filled = std::min<int64_t>(bar_width_, bar_width_ * done_ / total_);
      l += " [" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(bar_width_ - filled), ' ') + "]";
    }
    l += fmt::format(" {}/{}", done_, total_);
  } else {
    l += fmt::format(" {} steps", done_);
  }
  for (const auto& [name, v] : means()) l += " " + name + " " + metric_text(v);
  const double el = elapsed_s();
  if (done_ > 0 && el > 0) {
    const double rate = static_cast<double>(done_) / el;
    l += rate >= 1 ? fmt::format(" {:.1f} it/s", rate) : fmt::format(" {:.2f} s/it", 1 / rate);
    if (final) {
      l += fmt::format(" {:.1f} s", el);
    } else if (total_ > 0 && done_ < total_) {
      l += " ETA " + format_duration(static_cast<double>(total_ - done_) / rate);
    }
  } else if (final) {
    l += fmt::format(" {:.1f} s", std::max(0.0, el));
  }
  return l;
}

void Progress::draw(bool final) {
  if (tty_) {
    *out_ << "\r" << line(final) << "\x1b[K" << std::flush;
    drawn_ = true;
  } else {
    *out_ << line(final) << "\n" << std::flush;
  }
}

}  // namespace dan::recsys
