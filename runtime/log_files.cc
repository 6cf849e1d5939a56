#include "runtime/log_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace micro::runtime {
namespace {

namespace fs = std::filesystem;

// Reads return at most this many records, whatever `lines` asks.
constexpr int64_t kMaxReadRecords = 100000;
// A follower that falls this far behind is dropped (WatchQueue's overflow rule).
constexpr size_t kFollowerMaxRecords = 10000;
constexpr size_t kFollowerMaxBytes = 16 << 20;

std::string PathOf(const std::string& dir, const std::string& instance, int generation) {
  return generation == 0 ? fmt::format("{}/{}.log", dir, instance)
                         : fmt::format("{}/{}.log.{}", dir, instance, generation);
}

// The instance ids that have a current or rotated file in `dir`.
std::vector<std::string> InstancesIn(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(".log");
    if (at == std::string::npos || at == 0) continue;
    const std::string rest = name.substr(at + 4);
    if (!rest.empty() && rest[0] != '.') continue;
    out.push_back(name.substr(0, at));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool Matches(const LogQuery& query, const std::string& instance) {
  return query.instance.empty() || query.instance == instance;
}

}  // namespace

std::string FormatLogLine(const LogRecord& record) {
  const std::time_t seconds = static_cast<std::time_t>(record.unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} {}\n", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     record.unix_ms % 1000, record.stream, record.message);
}

bool ParseLogLine(std::string_view line, const std::string& instance, LogRecord* out) {
  // 2026-11-27T02:30:00.123Z stdout message
  if (line.size() < 26 || line[4] != '-' || line[10] != 'T' || line[23] != 'Z' || line[24] != ' ') {
    return false;
  }
  auto number = [&](size_t at, size_t len, int* value) {
    auto [end, ec] = std::from_chars(line.data() + at, line.data() + at + len, *value);
    return ec == std::errc() && end == line.data() + at + len;
  };
  std::tm tm{};
  int ms = 0;
  if (!number(0, 4, &tm.tm_year) || !number(5, 2, &tm.tm_mon) || !number(8, 2, &tm.tm_mday) ||
      !number(11, 2, &tm.tm_hour) || !number(14, 2, &tm.tm_min) || !number(17, 2, &tm.tm_sec) ||
      !number(20, 3, &ms)) {
    return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::string_view rest = line.substr(25);
  const size_t space = rest.find(' ');
  out->unix_ms = static_cast<int64_t>(::timegm(&tm)) * 1000 + ms;
  out->instance = instance;
  out->version.clear();
  out->stream = std::string(rest.substr(0, space));
  out->message = space == std::string_view::npos ? "" : std::string(rest.substr(space + 1));
  return true;
}

ServiceLogs::ServiceLogs(std::string dir, std::string version, LogPolicy policy)
    : dir_(std::move(dir)), version_(std::move(version)), policy_(policy) {}

ServiceLogs::~ServiceLogs() {
  for (auto& [instance, file] : files_) {
    if (file.fd >= 0) ::close(file.fd);
  }
}

void ServiceLogs::set_policy(const LogPolicy& policy) {
  std::lock_guard lock(mu_);
  policy_ = policy;
}

ServiceLogs::File* ServiceLogs::OpenLocked(const std::string& instance) {
  File& file = files_[instance];
  if (file.fd >= 0) return &file;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string path = PathOf(dir_, instance, 0);
  file.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (file.fd < 0) return nullptr;
  struct stat st {};
  file.size = ::fstat(file.fd, &st) == 0 ? st.st_size : 0;
  return &file;
}

void ServiceLogs::RotateLocked(const std::string& instance, File& file) {
  ::close(file.fd);
  file.fd = -1;
  std::error_code ec;
  if (policy_.max_files <= 0) {
    fs::remove(PathOf(dir_, instance, 0), ec);
  } else {
    fs::remove(PathOf(dir_, instance, policy_.max_files), ec);
    for (int g = policy_.max_files - 1; g >= 0; --g) {
      fs::rename(PathOf(dir_, instance, g), PathOf(dir_, instance, g + 1), ec);
    }
  }
  file.size = 0;
}

void ServiceLogs::Append(const LogRecord& in) {
  LogRecord record = in;
  record.version = version_;
  const std::string line = FormatLogLine(record);
  std::lock_guard lock(mu_);
  File* file = OpenLocked(record.instance);
  if (file != nullptr && file->size > 0 &&
      file->size + static_cast<int64_t>(line.size()) > policy_.max_file_bytes) {
    RotateLocked(record.instance, *file);
    file = OpenLocked(record.instance);
  }
  if (file == nullptr || ::write(file->fd, line.data(), line.size()) < 0) {
    ++write_errors_;
  } else {
    file->size += static_cast<int64_t>(line.size());
  }
  for (auto& [token, follower] : followers_) {
    if (follower.instance.empty() || follower.instance == record.instance) {
      follower.queue->Push(record, line.size());
    }
  }
}

Result<std::vector<LogRecord>> ServiceLogs::Read(const LogQuery& query) {
  std::lock_guard lock(mu_);
  return ReadLocked(query);
}

Result<std::vector<LogRecord>> ServiceLogs::ReadLocked(const LogQuery& query) {
  const int64_t want =
      query.lines < 0 ? kMaxReadRecords : std::min<int64_t>(query.lines, kMaxReadRecords);
  std::vector<LogRecord> all;
  if (want == 0) return all;
  for (const std::string& instance : InstancesIn(dir_)) {
    if (!Matches(query, instance)) continue;
    // Newest file first; stop once this instance alone has `want` records, since the answer
    // never holds more than that many of one instance.
    std::vector<LogRecord> mine;
    for (int g = 0; g <= std::max(policy_.max_files, 100); ++g) {
      std::ifstream in(PathOf(dir_, instance, g));
      if (!in) {
        if (g > policy_.max_files) break;
        continue;
      }
      std::vector<LogRecord> file_records;
      std::string line;
      LogRecord record;
      while (std::getline(in, line)) {
        if (ParseLogLine(line, instance, &record) && record.unix_ms >= query.since_unix_ms) {
          record.version = version_;
          file_records.push_back(std::move(record));
        }
      }
      mine.insert(mine.begin(), std::make_move_iterator(file_records.begin()),
                  std::make_move_iterator(file_records.end()));
      if (static_cast<int64_t>(mine.size()) >= want) break;
    }
    if (static_cast<int64_t>(mine.size()) > want) mine.erase(mine.begin(), mine.end() - want);
    all.insert(all.end(), std::make_move_iterator(mine.begin()),
               std::make_move_iterator(mine.end()));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const LogRecord& a, const LogRecord& b) { return a.unix_ms < b.unix_ms; });
  if (static_cast<int64_t>(all.size()) > want) all.erase(all.begin(), all.end() - want);
  return all;
}

Result<uint64_t> ServiceLogs::Follow(const LogQuery& query, std::shared_ptr<Queue> queue) {
  std::lock_guard lock(mu_);
  auto backlog = ReadLocked(query);
  if (!backlog.ok()) return backlog.status();
  for (const LogRecord& record : *backlog) queue->Push(record, record.message.size());
  const uint64_t token = next_token_++;
  followers_[token] = {query.instance, std::move(queue)};
  return token;
}

void ServiceLogs::Unsubscribe(uint64_t token) {
  std::lock_guard lock(mu_);
  followers_.erase(token);
}

void ServiceLogs::CloseFiles() {
  std::lock_guard lock(mu_);
  for (auto& [instance, file] : files_) {
    if (file.fd >= 0) ::close(file.fd);
  }
  files_.clear();
}

void ServiceLogs::CloseFollowers(const Status& why) {
  std::lock_guard lock(mu_);
  for (auto& [token, follower] : followers_) follower.queue->Close(why);
  followers_.clear();
}

void LineSplitter::Feed(std::string_view chunk, const std::function<void(std::string_view)>& line) {
  while (!chunk.empty()) {
    const size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(chunk);
      while (partial_.size() >= kMaxLogLineBytes) {
        line(std::string_view(partial_).substr(0, kMaxLogLineBytes));
        partial_.erase(0, kMaxLogLineBytes);
      }
      return;
    }
    if (partial_.empty()) {
      std::string_view whole = chunk.substr(0, nl);
      while (whole.size() > kMaxLogLineBytes) {
        line(whole.substr(0, kMaxLogLineBytes));
        whole.remove_prefix(kMaxLogLineBytes);
      }
      line(whole);
    } else {
      partial_.append(chunk.substr(0, nl));
      Flush(line);
    }
    chunk.remove_prefix(nl + 1);
  }
}

void LineSplitter::Flush(const std::function<void(std::string_view)>& line) {
  if (partial_.empty()) return;
  std::string_view rest(partial_);
  while (rest.size() > kMaxLogLineBytes) {
    line(rest.substr(0, kMaxLogLineBytes));
    rest.remove_prefix(kMaxLogLineBytes);
  }
  line(rest);
  partial_.clear();
}

}  // namespace micro::runtime
