// Run-directory outputs: atomic writes, JSON lines (append, read, truncate on resume), run
// folder naming, config.yaml; SVG line plots (well-formed, escaped, points where the axes
// say, NaN gaps, log axis); the progress reporter's terminal and log formats.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "recsys/config.h"
#include "recsys/plot.h"
#include "recsys/progress.h"
#include "recsys/rundir.h"

namespace fs = std::filesystem;
using namespace dan;
using namespace dan::recsys;
using nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> dir_names(const fs::path& d) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class RecsysRunDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("dan_rundir_{}_{}", ::getpid(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

// A fixed local time, so the folder name is known whatever the time zone.
std::chrono::system_clock::time_point local_time(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  return std::chrono::system_clock::from_time_t(std::mktime(&tm));
}

}  // namespace

// ---- atomic files and JSON lines ---------------------------------------------------------------

TEST_F(RecsysRunDir, AtomicWriteReplacesAndLeavesNoTempFile) {
  write_text_atomic(path("a.txt"), "first\n");
  write_text_atomic(path("a.txt"), "second\n");
  EXPECT_EQ(slurp(path("a.txt")), "second\n");
  write_json_atomic(path("r.json"), json{{"recall", 0.25}, {"k", 100}});
  EXPECT_EQ(slurp(path("r.json")), "{\n  \"k\": 100,\n  \"recall\": 0.25\n}\n");
  EXPECT_EQ(dir_names(dir_), (std::vector<std::string>{"a.txt", "r.json"}));

  // A failing rename (the target is a folder) leaves the target and the folder as they were.
  fs::create_directories(dir_ / "busy");
  write_text_atomic(path("busy/keep.txt"), "kept");
  const std::string msg = error_of([&] { write_text_atomic(path("busy"), "x"); });
  EXPECT_NE(msg.find("cannot rename '" + path("busy") + ".tmp."), std::string::npos) << msg;
  EXPECT_EQ(dir_names(dir_), (std::vector<std::string>{"a.txt", "busy", "r.json"}));
  EXPECT_EQ(slurp(path("busy/keep.txt")), "kept");
  // A missing folder: the temp file cannot be created; the error names it.
  const std::string msg2 = error_of([&] { write_text_atomic(path("nodir/x.txt"), "x"); });
  EXPECT_EQ(msg2.rfind("cannot create '" + path("nodir/x.txt") + ".tmp.", 0), 0u) << msg2;
}

TEST_F(RecsysRunDir, JsonLinesAppendAndReadBack) {
  const std::string p = path("metrics.jsonl");
  append_jsonl(p, json{{"epoch", 1}, {"loss", 0.5}});
  append_jsonl(p, json{{"epoch", 2}, {"loss", 0.25}, {"note", "a\nb"}});
  EXPECT_EQ(slurp(p), "{\"epoch\":1,\"loss\":0.5}\n{\"epoch\":2,\"loss\":0.25,\"note\":\"a\\nb\"}\n");
  const auto lines = read_jsonl(p);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["note"], "a\nb");
  // A torn last line (a crash mid-append) is ignored by readers; a bad line elsewhere is an error.
  std::ofstream(p, std::ios::app) << "{\"epoch\": 3, \"lo";
  EXPECT_EQ(read_jsonl(p).size(), 2u);
  std::ofstream(path("bad.jsonl")) << "{\"epoch\": 1}\nnot json\n{\"epoch\": 2}\n";
  const std::string msg = error_of([&] { read_jsonl(path("bad.jsonl")); });
  EXPECT_EQ(msg.rfind(path("bad.jsonl") + ":2: not a JSON line", 0), 0u) << msg;
}

TEST_F(RecsysRunDir, TruncateKeepsLinesUpToTheResumedEpoch) {
  const std::string p = path("metrics.jsonl");
  std::ofstream(p) << "{\"event\":\"start\"}\n"
                      "{\"epoch\":1,\"loss\":0.9}\n"
                      "{\"epoch\":2,\"step\":10,\"loss\":0.7}\n"
                      "{\"epoch\":2,\"loss\":0.6}\n"
                      "{\"note\":\"between\"}\n"
                      "{\"epoch\":3,\"loss\":0.5}\n"
                      "{\"note\":\"after 3\"}\n"
                      "{\"epoch\":4,\"loss\":0.4}\n"
                      "{\"epoch\":5,\"lo";  // torn
  const TruncateResult r = truncate_jsonl_after_epoch(p, 2);
  EXPECT_EQ(r.kept, 5u);
  EXPECT_EQ(r.dropped, 4u);
  EXPECT_EQ(slurp(p),
            "{\"event\":\"start\"}\n"
            "{\"epoch\":1,\"loss\":0.9}\n"
            "{\"epoch\":2,\"step\":10,\"loss\":0.7}\n"
            "{\"epoch\":2,\"loss\":0.6}\n"
            "{\"note\":\"between\"}\n");
  // Resuming again at the same epoch changes nothing; appends continue after the kept lines.
  const std::string before = slurp(p);
  EXPECT_EQ(truncate_jsonl_after_epoch(p, 2).dropped, 0u);
  EXPECT_EQ(slurp(p), before);
  append_jsonl(p, json{{"epoch", 3}});
  EXPECT_EQ(read_jsonl(p).back()["epoch"], 3);
  EXPECT_EQ(truncate_jsonl_after_epoch(p, 0).kept, 1u);  // only the line without an epoch before epoch 1
  EXPECT_EQ(truncate_jsonl_after_epoch(path("none.jsonl"), 3).kept, 0u);
  EXPECT_FALSE(fs::exists(path("none.jsonl")));
  std::ofstream(path("bad.jsonl")) << "{\"epoch\":\"two\"}\n";
  EXPECT_EQ(error_of([&] { truncate_jsonl_after_epoch(path("bad.jsonl"), 1); }),
            path("bad.jsonl") + ":1: \"epoch\" is \"two\", expected an integer");
}

// ---- run directories ---------------------------------------------------------------------------

TEST_F(RecsysRunDir, CreateNamesRunsByTimeAndNeverReusesOne) {
  const auto t = local_time(2026, 11, 27, 14, 25, 1);
  const RunDir a = RunDir::create(path("runs"), "bert", t);
  const RunDir b = RunDir::create(path("runs"), "bert", t);
  const RunDir c = RunDir::create(path("runs"), "bert", t);
  EXPECT_EQ(a.path(), path("runs/bert-20261127-142501"));
  EXPECT_EQ(b.path(), path("runs/bert-20261127-142501-2"));
  EXPECT_EQ(c.path(), path("runs/bert-20261127-142501-3"));
  RunDir::create(path("runs"), "bert", local_time(2026, 11, 27, 9, 0, 0));
  RunDir::create(path("runs"), "bert-x", local_time(2027, 1, 1, 0, 0, 0));
  EXPECT_EQ(RunDir::latest(path("runs"), "bert"), c.path());
  EXPECT_EQ(RunDir::latest(path("runs"), "tfidf"), std::nullopt);
  EXPECT_EQ(RunDir::open(a.path()).path(), a.path());
  EXPECT_EQ(error_of([&] { RunDir::open(path("runs/nope")); }),
            "RunDir::open: '" + path("runs/nope") + "' is not a run directory (no such folder)");
  EXPECT_EQ(error_of([&] { RunDir::create(path("runs"), "a/b"); }),
            "RunDir::create: bad run name 'a/b': expected a non-empty name without '/'");
}

TEST_F(RecsysRunDir, WritesConfigResultsPlotsAndMetrics) {
  Schema s;
  s.add_int("wmf.factors", 200, "rank of U and V").add_string("data.dir", "", "dataset directory");
  const Config cfg = load_config(s, "", {"wmf.factors=16"});
  const RunDir run = RunDir::create(path("runs"), "demo");
  run.write_config(cfg);
  const Config back = load_config(s, run.file("config.yaml"));
  EXPECT_EQ(back.get_int("wmf.factors"), 16);
  EXPECT_EQ(back.canonical_text(), cfg.canonical_text());
  EXPECT_NE(slurp(run.file("config.yaml")).find("  # rank of U and V\n  factors: 16\n"), std::string::npos);

  run.write_text("plots/loss.svg", "<svg/>");
  EXPECT_TRUE(run.exists("plots/loss.svg"));
  run.write_json("results.json", json{{"recall@100", 0.3}});
  EXPECT_EQ(json::parse(slurp(run.file("results.json")))["recall@100"], 0.3);
  for (int e = 1; e <= 4; ++e) run.append_jsonl("metrics.jsonl", json{{"epoch", e}});
  EXPECT_EQ(run.truncate_jsonl_after_epoch(2).dropped, 2u);
  EXPECT_EQ(run.read_jsonl("metrics.jsonl").size(), 2u);
  EXPECT_EQ(dir_names(run.path()), (std::vector<std::string>{"config.yaml", "metrics.jsonl", "plots", "results.json"}));
}

// ---- plots ------------------------------------------------------------------------------------

namespace {

// Checks the document is well formed enough for a browser: every tag closed in order, one
// <svg> root, no raw '&' outside entities. Returns "" or the problem.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0;
  int roots = 0;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return "unterminated tag";
    std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
      continue;
    }
    const bool self = tag.back() == '/';
    const std::string name = tag.substr(0, tag.find_first_of(" /"));
    if (stack.empty()) ++roots;
    if (stack.empty() && name != "svg") return "root is <" + name + ">";
    if (!self) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "roots: " + std::to_string(roots);
  for (size_t a = s.find('&'); a != std::string::npos; a = s.find('&', a + 1)) {
    const size_t semi = s.find(';', a);
    const std::string ent = s.substr(a, semi == std::string::npos ? 0 : semi - a + 1);
    if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;") return "raw &";
  }
  return "";
}

// The (x, y) pairs of every path of the document, and the number of subpaths (M commands).
struct PathPoints {
  std::vector<std::pair<double, double>> pts;
  int moves = 0;
};
PathPoints path_points(const std::string& svg) {
  PathPoints out;
  const std::string open = "<path d=\"";
  for (size_t at = svg.find(open); at != std::string::npos; at = svg.find(open, at + 1)) {
    const size_t b = at + open.size();
    std::istringstream ss(svg.substr(b, svg.find('"', b) - b));
    std::string cmd;
    double x, y;
    while (ss >> cmd >> x >> y) {
      if (cmd == "M") ++out.moves;
      out.pts.emplace_back(x, y);
    }
  }
  return out;
}

}  // namespace

TEST(RecsysPlot, NiceTicks) {
  auto near = [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - b[i]) > 1e-12) return false;
    return true;
  };
  EXPECT_TRUE(near(nice_ticks(0.13, 0.47, 6), {0.1, 0.2, 0.3, 0.4, 0.5}));
  EXPECT_TRUE(near(nice_ticks(0, 47, 6), {0, 10, 20, 30, 40, 50}));
  EXPECT_TRUE(near(nice_ticks(-3, 7, 6), {-5, 0, 5, 10}));  // step 2 would need 7 ticks
  EXPECT_TRUE(near(nice_ticks(-3, 7, 7), {-4, -2, 0, 2, 4, 6, 8}));
  EXPECT_TRUE(near(nice_ticks(1, 50, 7), {0, 10, 20, 30, 40, 50}));
  const auto flat = nice_ticks(2, 2, 6);
  EXPECT_LE(flat.front(), 1.8);
  EXPECT_GE(flat.back(), 2.2);
}

TEST(RecsysPlot, SvgIsWellFormedAndPointsLieWhereTheAxesSay) {
  PlotSpec p;
  p.title = "loss <train> & val";
  p.x_label = "epoch";
  p.y_label = "MSE";
  p.series.push_back({.name = "s", .x = {0, 5, 10}, .y = {0, 0.5, 1}});
  const std::string svg = line_plot_svg(p);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_NE(svg.find("viewBox=\"0 0 720 440\""), std::string::npos);
  EXPECT_NE(svg.find("loss &lt;train&gt; &amp; val"), std::string::npos);
  // Plot area by hand: left 72, top 40 (title), bottom 440 - 52 = 388, right 720 - 16 - legend
  // (36 + 7 per character of the longest name = 43) = 661; axes [0, 10] x [0, 1].
  EXPECT_NE(svg.find("<path d=\"M 72.00 388.00 L 366.50 214.00 L 661.00 40.00\""), std::string::npos) << svg;
  for (const char* label : {">0<", ">4<", ">10<", ">0.2<", ">1.0<", ">epoch<", ">MSE<", ">s<"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
}

TEST(RecsysPlot, SeriesNamesEscapedNanPointsSkippedCoordinatesInside) {
  PlotSpec p;
  p.title = "recall";
  p.series.push_back({.name = "train <a&b>", .x = {1, 2, 3, 4, 5, 6}, .y = {0.1, 0.2, NAN, 0.4, INFINITY, 0.6}});
  p.series.push_back({.name = "val", .x = {1, NAN, 3}, .y = {-2, 5, 7}, .dashed = true, .markers = true});
  p.series.push_back({.name = "empty", .x = {1}, .y = {NAN}});
  const std::string svg = line_plot_svg(p);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  for (const char* name : {"train &lt;a&amp;b&gt;", ">val<", ">empty<"}) EXPECT_NE(svg.find(name), std::string::npos) << name;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  const PathPoints pp = path_points(svg);
  // train: 4 finite points in 3 runs ({1,2}, {4}, {6}); val: 2 finite points in 2 runs.
  EXPECT_EQ(pp.pts.size(), 6u);
  EXPECT_EQ(pp.moves, 5);
  for (const auto& [x, y] : pp.pts) {
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 720);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, 440);
  }
  int circles = 0;
  for (size_t at = svg.find("<circle cx=\""); at != std::string::npos; at = svg.find("<circle cx=\"", at + 1)) {
    ++circles;
    double cx = -1, cy = -1;
    ASSERT_EQ(std::sscanf(svg.c_str() + at, "<circle cx=\"%lf\" cy=\"%lf\"", &cx, &cy), 2);
    EXPECT_TRUE(cx >= 0 && cx <= 720 && cy >= 0 && cy <= 440) << cx << " " << cy;
  }
  EXPECT_EQ(circles, 4);  // train's isolated {4} and {6}, val's two points (markers)
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_EQ(error_of([&] { line_plot_svg({.series = {{.name = "bad", .x = {1, 2}, .y = {1}}}}); }),
            "line_plot_svg: series 'bad' has 2 x values and 1 y values");
}

TEST(RecsysPlot, LogAxisPlacesDecadesEvenlyAndSkipsNonPositive) {
  PlotSpec p;
  p.log_y = true;
  p.series.push_back({.name = "loss", .x = {0, 1, 2, 3}, .y = {1, 10, 0, 1000}});
  const std::string svg = line_plot_svg(p);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  for (const char* label : {">1<", ">10<", ">100<", ">1000<"}) EXPECT_NE(svg.find(label), std::string::npos) << label;
  const PathPoints pp = path_points(svg);
  ASSERT_EQ(pp.pts.size(), 3u);  // y = 0 is skipped on a log axis
  const double decade = pp.pts[0].second - pp.pts[1].second;
  EXPECT_GT(decade, 0);
  EXPECT_NEAR(pp.pts[1].second - pp.pts[2].second, 2 * decade, 0.02);
}

// ---- progress -------------------------------------------------------------------------------

namespace {

struct FakeClock {
  double t = 100.0;
  std::function<double()> fn() {
    return [this] { return t; };
  }
};

}  // namespace

TEST(RecsysProgress, PlainLinesWhenNotATerminal) {
  std::ostringstream out;
  FakeClock clock;
  Progress bar({.out = &out, .tty = false, .clock = clock.fn(), .log_every = 100});
  EXPECT_FALSE(bar.is_tty());
  bar.start_epoch(3, 50, 400);
  for (int i = 0; i < 400; ++i) {
    clock.t += 0.05;  // 20 steps per second
    bar.step({{"loss", i % 2 ? 0.2 : 0.1}});
  }
  bar.end_epoch("val recall 0.5");
  EXPECT_EQ(out.str(),
            "epoch 3/50 100/400 loss 0.15 20.0 it/s ETA 0:15\n"
            "epoch 3/50 200/400 loss 0.15 20.0 it/s ETA 0:10\n"
            "epoch 3/50 300/400 loss 0.15 20.0 it/s ETA 0:05\n"
            "epoch 3/50 400/400 loss 0.15 20.0 it/s 20.0 s val recall 0.5\n");
  ASSERT_EQ(bar.means().size(), 1u);
  EXPECT_NEAR(bar.means()[0].second, 0.15, 1e-12);

  // Unknown step count, slow steps, several metrics in first-given order.
  std::ostringstream o2;
  Progress slow({.out = &o2, .tty = false, .clock = clock.fn()});
  slow.start_epoch(1, 2, 0);
  for (int i = 0; i < 3; ++i) {
    clock.t += 2;
    slow.step({{"loss", 1.0}, {"acc", 0.123456}});
  }
  slow.message("note");
  slow.end_epoch();
  EXPECT_EQ(o2.str(), "note\nepoch 1/2 3 steps loss 1 acc 0.1235 2.00 s/it 6.0 s\n");
}

TEST(RecsysProgress, InPlaceBarOnATerminalRefreshedAtMostTenTimesASecond) {
  std::ostringstream out;
  FakeClock clock;
  Progress bar({.out = &out, .tty = true, .clock = clock.fn()});
  bar.start_epoch(3, 50, 400);
  for (int i = 0; i < 400; ++i) {
    clock.t += 0.0625;  // 16 steps per second, exact in binary
    bar.step({{"loss", 0.1234}});
    if (i == 200) bar.message("checkpoint saved");
  }
  bar.end_epoch();
  const std::string s = out.str();
  // Drawn at the first step, then whenever 0.1 s have passed: every second step (1, 3, ..., 399),
  // plus the redraw after the message and the final line.
  EXPECT_EQ(std::count(s.begin(), s.end(), '\r'), 200 + 2 + 1);
  EXPECT_NE(s.find("\repoch 3/50 [######              ] 121/400 loss 0.1234 16.0 it/s ETA 0:18\x1b[K"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("\r\x1b[Kcheckpoint saved\n\repoch 3/50 [##########          ] 201/400"), std::string::npos);
  const std::string last = "\repoch 3/50 [####################] 400/400 loss 0.1234 16.0 it/s 25.0 s\x1b[K\n";
  EXPECT_EQ(s.substr(s.size() - last.size()), last);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 2);  // the message and the end of the epoch
}

TEST(RecsysProgress, DurationFormat) {
  EXPECT_EQ(Progress::format_duration(9), "0:09");
  EXPECT_EQ(Progress::format_duration(0.2), "0:01");
  EXPECT_EQ(Progress::format_duration(725), "12:05");
  EXPECT_EQ(Progress::format_duration(3723), "1:02:03");
  EXPECT_EQ(Progress::format_duration(NAN), "?");
}
