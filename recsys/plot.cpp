// SVG line plots: nice ticks, linear or log10 y axis, legend on the right, broken lines at
// missing points.
#include "recsys/plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace dan::recsys {

namespace {

// matplotlib's tab10: distinguishable and familiar to readers of papers.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;
    }
  }
  return out;
}

std::string num(double v) {  // SVG coordinates: two decimals are plenty
  return fmt::format("{:.2f}", v);
}

std::string tick_label(double v, double step) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e6 || a < 1e-4) return fmt::format("{:g}", v);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

std::string decade_label(int k) {
  if (k >= -3 && k <= 5) return fmt::format("{:g}", std::pow(10.0, k));
  return fmt::format("1e{}", k);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  DAN_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_ticks: bad range [{}, {}]", lo, hi);
  DAN_CHECK(max_ticks >= 2, "nice_ticks: max_ticks {} < 2", max_ticks);
  if (lo == hi) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  // The smallest step of 1, 2 or 5 x 10^k whose ticks (outermost ones enclosing [lo, hi]) are
  // at most max_ticks.
  auto count = [&](double s) {
    return std::ceil(hi / s - 1e-9) - std::floor(lo / s + 1e-9) + 1;
  };
  double step = 0;
  for (int k = static_cast<int>(std::floor(std::log10((hi - lo) / (max_ticks - 1)))) - 1; step == 0; ++k) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double s = m * std::pow(10.0, k);
      if (count(s) <= max_ticks) {
        step = s;
        break;
      }
    }
  }
  const double first = std::floor(lo / step + 1e-9) * step;
  const double last = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> ticks;
  const int n = static_cast<int>(std::llround((last - first) / step));
  for (int i = 0; i <= n; ++i) {
    double t = first + i * step;
    if (std::abs(t) < step * 1e-9) t = 0;  // no "-0"
    ticks.push_back(t);
  }
  return ticks;
}

std::string line_plot_svg(const PlotSpec& spec) {
  DAN_CHECK(spec.width >= 200 && spec.height >= 150, "line_plot_svg: size {}x{} is below 200x150",
            spec.width, spec.height);
  for (const auto& s : spec.series) {
    DAN_CHECK(s.x.size() == s.y.size(), "line_plot_svg: series '{}' has {} x values and {} y values", s.name,
              s.x.size(), s.y.size());
  }
  auto drawable = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!spec.log_y || y > 0);
  };

  // Data ranges over the drawable points.
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : spec.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i])) continue;
      const double y = spec.log_y ? std::log10(s.y[i]) : s.y[i];
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) {  // nothing to draw: an empty frame
    xmin = 0;
    xmax = 1;
    ymin = 0;
    ymax = 1;
  }
  const std::vector<double> xt = nice_ticks(xmin, xmax, 7);
  std::vector<double> yt;       // tick positions in axis units (log10 on a log axis)
  std::vector<std::string> yl;  // their labels
  if (spec.log_y) {
    int k0 = static_cast<int>(std::floor(ymin + 1e-9)), k1 = static_cast<int>(std::ceil(ymax - 1e-9));
    if (k1 == k0) ++k1;
    const int every = std::max(1, (k1 - k0 + 7) / 8);  // at most ~8 labelled decades
    k0 = static_cast<int>(std::floor(static_cast<double>(k0) / every)) * every;
    k1 = static_cast<int>(std::ceil(static_cast<double>(k1) / every)) * every;
    for (int k = k0; k <= k1; k += every) {
      yt.push_back(k);
      yl.push_back(decade_label(k));
    }
  } else {
    yt = nice_ticks(ymin, ymax, 6);
    for (double t : yt) yl.push_back(tick_label(t, yt.size() > 1 ? yt[1] - yt[0] : 1));
  }
  const double x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();

  // Layout: title on top, y labels on the left, legend on the right.
  size_t longest = 0;
  for (const auto& s : spec.series) longest = std::max(longest, s.name.size());
  const double W = spec.width, H = spec.height;
  const double legend_w = spec.series.empty() ? 0 : std::min(W * 0.4, 36.0 + 7.0 * static_cast<double>(longest));
  const double left = 72, right = W - 16 - legend_w, top = spec.title.empty() ? 16 : 40, bottom = H - 52;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (right - left); };
  auto py = [&](double y) { return bottom - (y - y0) / (y1 - y0) * (bottom - top); };

  std::string o;
  o += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      spec.width, spec.height);
  o += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"white\"/>\n";
  if (!spec.title.empty()) {
    o += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
                     num((left + right) / 2), xml_escape(spec.title));
  }
  // Grid and ticks.
  o += "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : xt) {
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", num(px(t)), num(top), num(bottom));
  }
  for (double t : yt) {
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\"/>\n", num(left), num(py(t)), num(right));
  }
  o += "</g>\n";
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
                   num(left), num(top), num(right - left), num(bottom - top));
  o += "<g fill=\"#333\">\n";
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double t : xt) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(px(t)), num(bottom + 16),
                     xml_escape(tick_label(t, xstep)));
  }
  for (size_t i = 0; i < yt.size(); ++i) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", num(left - 6), num(py(yt[i]) + 4),
                     xml_escape(yl[i]));
  }
  if (!spec.x_label.empty()) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num((left + right) / 2),
                     num(H - 14), xml_escape(spec.x_label));
  }
  if (!spec.y_label.empty()) {
    const double cy = (top + bottom) / 2;
    o += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">{1}</text>\n",
                     num(cy), xml_escape(spec.y_label + (spec.log_y ? " (log scale)" : "")));
  }
  o += "</g>\n";

  // Series: one path per series, a new subpath after each skipped point.
  for (size_t si = 0; si < spec.series.size(); ++si) {
    const Series& s = spec.series[si];
    const std::string color = s.color.empty() ? kPalette[si % 10] : s.color;
    o += fmt::format("<g class=\"series\" stroke=\"{}\" fill=\"{}\">\n<title>{}</title>\n", xml_escape(color),
                     xml_escape(color), xml_escape(s.name));
    std::string d;
    std::vector<std::pair<double, double>> dots;
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      for (size_t i = 0; i < run.size(); ++i) {
        d += fmt::format("{} {} {} ", i == 0 ? "M" : "L", num(run[i].first), num(run[i].second));
      }
      if (run.size() == 1 || (s.markers && !run.empty())) dots.insert(dots.end(), run.begin(), run.end());
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i])) {
        flush();
        continue;
      }
      run.emplace_back(px(s.x[i]), py(spec.log_y ? std::log10(s.y[i]) : s.y[i]));
    }
    flush();
    if (!d.empty()) {
      d.pop_back();
      o += fmt::format("<path d=\"{}\" fill=\"none\" stroke-width=\"1.8\"{}/>\n", d,
                       s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    }
    for (const auto& [x, y] : dots) {
      o += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"2.5\" stroke=\"none\"/>\n", num(x), num(y));
    }
    o += "</g>\n";
  }

  // Legend.
  if (!spec.series.empty()) {
    const double lx = right + 12;
    o += "<g class=\"legend\">\n";
    for (size_t si = 0; si < spec.series.size(); ++si) {
      const Series& s = spec.series[si];
      const std::string color = s.color.empty() ? kPalette[si % 10] : s.color;
      const double ly = top + 10 + 18.0 * static_cast<double>(si);
      if (ly > H - 4) break;  // more series than room: the rest are named in their <title>
      o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", num(lx),
                       num(ly), num(lx + 20), num(ly), xml_escape(color), s.dashed ? " stroke-dasharray=\"6 4\"" : "");
      o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>\n", num(lx + 26), num(ly + 4),
                       xml_escape(s.name));
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace dan::recsys
