// Run directories and the crash-safe file writes behind them (POSIX: open/write/fsync/rename).
#include "recsys/rundir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "recsys/config.h"

namespace dan::recsys {

namespace fs = std::filesystem;

namespace {

std::string errno_text(int e) { return std::strerror(e); }

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write '{}': {}", path, errno_text(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Syncs a folder so a rename in it is durable; best effort (some file systems refuse).
void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DAN_CHECK(fd >= 0, "cannot create '{}': {}", tmp, errno_text(errno));
  try {
    write_all(fd, text.data(), text.size(), tmp);
    if (::fsync(fd) != 0) fail("cannot sync '{}': {}", tmp, errno_text(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  const int close_rc = ::close(fd);
  const int close_errno = errno;
  if (close_rc != 0) {
    ::unlink(tmp.c_str());
    fail("cannot close '{}': {}", tmp, errno_text(close_errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename '{}' to '{}': {}", tmp, path, errno_text(e));
  }
  sync_dir(fs::path(path).parent_path());
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  write_text_atomic(path, j.dump(2) + "\n");
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  DAN_CHECK(f.good(), "cannot read '{}': {}", path, errno_text(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  DAN_CHECK(!f.bad(), "cannot read '{}'", path);
  return ss.str();
}

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  // dump() escapes control characters, so the line holds no raw '\n'.
  const std::string line = j.dump() + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  DAN_CHECK(fd >= 0, "cannot open '{}' for appending: {}", path, errno_text(errno));
  try {
    write_all(fd, line.data(), line.size(), path);
    if (::fsync(fd) != 0) fail("cannot sync '{}': {}", path, errno_text(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

namespace {

struct Lines {
  std::vector<std::string> complete;  // without their '\n'
  bool torn = false;                  // a last line without '\n'
};

Lines split_lines(const std::string& text) {
  Lines out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      out.torn = true;
      break;
    }
    out.complete.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

nlohmann::json parse_line(const std::string& line, const std::string& path, size_t lineno) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}:{}: not a JSON line: {}", path, lineno, e.what());
  }
}

}  // namespace

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  const Lines lines = split_lines(read_text_file(path));
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < lines.complete.size(); ++i) {
    if (lines.complete[i].empty()) continue;
    out.push_back(parse_line(lines.complete[i], path, i + 1));
  }
  return out;
}

TruncateResult truncate_jsonl_after_epoch(const std::string& path, int64_t epoch) {
  TruncateResult r;
  std::error_code ec;
  if (!fs::exists(path, ec)) return r;
  const Lines lines = split_lines(read_text_file(path));
  std::string kept;
  size_t i = 0;
  for (; i < lines.complete.size(); ++i) {
    const std::string& line = lines.complete[i];
    if (!line.empty()) {
      const nlohmann::json j = parse_line(line, path, i + 1);
      if (j.is_object() && j.contains("epoch")) {
        const auto& e = j["epoch"];
        DAN_CHECK(e.is_number_integer(), "{}:{}: \"epoch\" is {}, expected an integer", path, i + 1, e.dump());
        if (e.get<int64_t>() > epoch) break;
      }
    }
    kept += line + "\n";
    ++r.kept;
  }
  r.dropped = lines.complete.size() - i + (lines.torn ? 1 : 0);
  if (r.dropped > 0) write_text_atomic(path, kept);
  return r;
}

// ---- RunDir ----------------------------------------------------------------------------------

RunDir RunDir::create(const std::string& base_dir, const std::string& name,
                      std::chrono::system_clock::time_point now) {
  DAN_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
            "RunDir::create: bad run name '{}': expected a non-empty name without '/'", name);
  std::error_code ec;
  fs::create_directories(base_dir, ec);
  DAN_CHECK(!ec, "RunDir::create: cannot create '{}': {}", base_dir, ec.message());
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const std::string stem = (fs::path(base_dir) / (name + "-" + stamp)).string();
  for (int n = 1; n < 10000; ++n) {
    const std::string p = n == 1 ? stem : stem + "-" + std::to_string(n);
    if (::mkdir(p.c_str(), 0755) == 0) return RunDir(p);
    DAN_CHECK(errno == EEXIST, "RunDir::create: cannot create '{}': {}", p, errno_text(errno));
  }
  fail("RunDir::create: too many runs named '{}' in the same second", stem);
}

RunDir RunDir::open(const std::string& path) {
  std::error_code ec;
  DAN_CHECK(fs::is_directory(path, ec), "RunDir::open: '{}' is not a run directory (no such folder)", path);
  return RunDir(path);
}

std::optional<std::string> RunDir::latest(const std::string& base_dir, const std::string& name) {
  std::error_code ec;
  if (!fs::is_directory(base_dir, ec)) return std::nullopt;
  // <name>-YYYYmmdd-HHMMSS[-n]: order by (stamp, n).
  std::optional<std::string> best;
  std::pair<std::string, long> best_key;
  const std::string pre = name + "-";
  for (const auto& e : fs::directory_iterator(base_dir, ec)) {
    if (!e.is_directory()) continue;
    const std::string f = e.path().filename().string();
    if (f.size() < pre.size() + 15 || f.compare(0, pre.size(), pre) != 0) continue;
    const std::string stamp = f.substr(pre.size(), 15);
    const std::string rest = f.substr(pre.size() + 15);
    const bool stamp_ok = std::all_of(stamp.begin(), stamp.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; }) && stamp[8] == '-';
    if (!stamp_ok) continue;
    long n = 1;
    if (!rest.empty()) {
      if (rest[0] != '-' || rest.size() < 2 ||
          !std::all_of(rest.begin() + 1, rest.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        continue;
      }
      n = std::stol(rest.substr(1));
    }
    const std::pair<std::string, long> key{stamp, n};
    if (!best || key > best_key) {
      best = e.path().string();
      best_key = key;
    }
  }
  return best;
}

std::string RunDir::file(const std::string& rel) const { return (fs::path(path_) / rel).string(); }

bool RunDir::exists(const std::string& rel) const {
  std::error_code ec;
  return fs::exists(file(rel), ec);
}

void RunDir::write_text(const std::string& rel, const std::string& text) const {
  const fs::path p = file(rel);
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  DAN_CHECK(!ec, "cannot create '{}': {}", p.parent_path().string(), ec.message());
  write_text_atomic(p.string(), text);
}

void RunDir::write_json(const std::string& rel, const nlohmann::json& j) const { write_text(rel, j.dump(2) + "\n"); }

void RunDir::write_config(const Config& cfg) const {
  write_text("config.yaml",
             "# The resolved configuration of this run: every key, defaults included.\n" +
                 cfg.to_yaml(/*docs=*/true));
}

void RunDir::append_jsonl(const std::string& rel, const nlohmann::json& j) const {
  recsys::append_jsonl(file(rel), j);
}

std::vector<nlohmann::json> RunDir::read_jsonl(const std::string& rel) const {
  return recsys::read_jsonl(file(rel));
}

TruncateResult RunDir::truncate_jsonl_after_epoch(int64_t epoch, const std::string& rel) const {
  return recsys::truncate_jsonl_after_epoch(file(rel), epoch);
}

}  // namespace dan::recsys
