// Line plots as standalone SVG text (no dependencies): training curves and metric-vs-K plots
// written into run directories, viewable in any browser.
//
//   PlotSpec p{.title = "DropoutNet loss", .x_label = "epoch", .y_label = "MSE", .log_y = true};
//   p.series.push_back({.name = "train", .x = epochs, .y = train_loss});
//   p.series.push_back({.name = "val", .x = epochs, .y = val_loss});
//   run.write_text("plots/loss.svg", line_plot_svg(p));
#pragma once

#include <string>
#include <vector>

namespace dan::recsys {

struct Series {
  std::string name{};            // legend text
  std::vector<double> x{}, y{};  // same length; points with a NaN/inf coordinate are skipped
                                 // (the line breaks there), as are y <= 0 on a log axis
  std::string color{};           // any SVG color; empty: the next color of a 10-color palette
  bool dashed = false;
  bool markers = false;          // a dot at every point (isolated points always get one)
};

struct PlotSpec {
  std::string title{}, x_label{}, y_label{};
  std::vector<Series> series{};
  bool log_y = false;  // y axis in decades, ticks at powers of ten
  int width = 720, height = 440;
};

// The plot as one SVG document (an <svg> root with xmlns and a viewBox of width x height).
// Axis ranges cover the finite points and are widened to "nice" tick values (1, 2, 5 × 10^k);
// a series with no drawable point still appears in the legend. Throws dan::Error if a series'
// x and y lengths differ or the size is below 200 x 150.
std::string line_plot_svg(const PlotSpec& spec);

// Ticks covering [lo, hi] with the smallest step of 1, 2 or 5 × 10^k that needs at most
// `max_ticks` of them: the first tick is <= lo and the last >= hi (e.g. [0.13, 0.47] with 6 →
// 0.1, 0.2, 0.3, 0.4, 0.5).
// lo == hi is widened around the value first.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6);

}  // namespace dan::recsys
