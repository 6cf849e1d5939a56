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

#include "runtime/log_tail.h"
#include "runtime/manifest.h"

namespace micro::runtime {
namespace {

namespace fs = std::filesystem;

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

ServiceLogs::ServiceLogs(std::string dir, std::string version, LogPolicy policy,
                         std::shared_ptr<OpenFileBudget> open_files)
    : dir_(std::move(dir)),
      version_(std::move(version)),
      open_files_(std::move(open_files)),
      policy_(policy) {}

ServiceLogs::~ServiceLogs() {
  for (auto& [instance, file] : files_) CloseLocked(file);
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
  file.held = open_files_ == nullptr || open_files_->TryAcquire();
  struct stat st {};
  file.size = ::fstat(file.fd, &st) == 0 ? st.st_size : 0;
  return &file;
}

void ServiceLogs::CloseLocked(File& file) {
  if (file.fd < 0) return;
  ::close(file.fd);
  file.fd = -1;
  if (file.held && open_files_ != nullptr) open_files_->Release();
  file.held = false;
}

void ServiceLogs::RotateLocked(const std::string& instance, File& file) {
  CloseLocked(file);
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
  ++file.rotations;
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
  // Past the budget of open files, nothing stays open between appends.
  if (file != nullptr && !file->held) CloseLocked(*file);
  for (auto it = followers_.begin(); it != followers_.end();) {
    Follower& follower = it->second;
    if (!follower.instance.empty() && follower.instance != record.instance) {
      ++it;
    } else if (follower.live) {
      follower.queue->Push(record, line.size());
      ++it;
    } else if (follower.held_bytes + line.size() <= kMaxHeldBackBytes) {
      follower.held.push_back(record);
      follower.held_bytes += line.size();
      ++it;
    } else {
      follower.queue->Close(absl::ResourceExhaustedError(fmt::format(
          "the service wrote more than {} bytes while its history was read; follow again, "
          "with fewer --lines",
          kMaxHeldBackBytes)));
      it = followers_.erase(it);
    }
  }
}

std::vector<ServiceLogs::Snapshot> ServiceLogs::SnapshotLocked(const LogQuery& query) {
  std::vector<Snapshot> out;
  for (const std::string& instance : InstancesIn(dir_)) {
    if (!Matches(query, instance)) continue;
    Snapshot snapshot{instance, 0, 0, policy_.max_files};
    auto it = files_.find(instance);
    if (it != files_.end()) snapshot.rotations = it->second.rotations;
    if (it != files_.end() && it->second.fd >= 0) {
      snapshot.size = it->second.size;
    } else {
      struct stat st {};
      if (::stat(PathOf(dir_, instance, 0).c_str(), &st) == 0) snapshot.size = st.st_size;
    }
    out.push_back(std::move(snapshot));
  }
  return out;
}

int ServiceLogs::OpenGeneration(const Snapshot& snapshot, int generation) {
  // Rotations since the snapshot moved every file up by one: follow them. Opened under the
  // lock, so no rename comes between the count and the open; read later through the fd.
  std::lock_guard lock(mu_);
  auto it = files_.find(snapshot.instance);
  const uint64_t moved = it == files_.end() ? 0 : it->second.rotations - snapshot.rotations;
  const uint64_t now_at = static_cast<uint64_t>(generation) + moved;
  if (now_at > static_cast<uint64_t>(std::max(policy_.max_files, kMaxLogFiles))) return -1;
  const int fd = ::open(PathOf(dir_, snapshot.instance, static_cast<int>(now_at)).c_str(),
                        O_RDONLY | O_CLOEXEC);
  if (fd >= 0) ++history_files_opened_;
  return fd;
}

void ServiceLogs::ReadInstance(const LogQuery& query, const Snapshot& snapshot, int64_t max_bytes,
                               std::vector<LogRecord>* newest_first) {
  const TailLimits limits{
      query.lines < 0 ? kMaxReadRecords : std::min<int64_t>(query.lines, kMaxReadRecords),
      query.since_unix_ms, max_bytes};
  int64_t spent = 0;
  for (int g = 0; g <= std::max(snapshot.max_files, kMaxLogFiles); ++g) {
    const int fd = OpenGeneration(snapshot, g);
    if (fd < 0) {
      if (g > snapshot.max_files) break;
      continue;
    }
    struct stat st {};
    const bool ok = ::fstat(fd, &st) == 0;
    // The current file as it was at the snapshot; a rotated one is complete.
    const int64_t size = g == 0 ? std::min<int64_t>(snapshot.size, st.st_size) : st.st_size;
    const int64_t modified_ms =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    // A file last written before `since` holds nothing newer (nor do older generations). The
    // kernel stamps files from a coarse clock (a tick behind the records' precise one, more on
    // some file systems), so a file is skipped only when it is older than that by a margin:
    // otherwise a line written in the same tick as `since` would be lost to the reader.
    if (!ok || (query.since_unix_ms > 0 && modified_ms + kFileTimeSlackMs < query.since_unix_ms)) {
      ::close(fd);
      return;
    }
    const TailResult result = ReadTail(fd, size, snapshot.instance, limits, spent, newest_first);
    ::close(fd);
    spent += result.bytes;
    if (result.done) return;
  }
}

std::vector<LogRecord> ServiceLogs::ReadSnapshots(const LogQuery& query,
                                                  const std::vector<Snapshot>& snapshots) {
  std::vector<LogRecord> all;
  if (query.lines == 0 || snapshots.empty()) return all;
  const int64_t want =
      query.lines < 0 ? kMaxReadRecords : std::min<int64_t>(query.lines, kMaxReadRecords);
  const int64_t per_instance = std::max<int64_t>(
      kMinReadBytesPerInstance, query.max_bytes / static_cast<int64_t>(snapshots.size()));
  for (const Snapshot& snapshot : snapshots) {
    std::vector<LogRecord> mine;
    ReadInstance(query, snapshot, per_instance, &mine);
    for (auto it = mine.rbegin(); it != mine.rend(); ++it) {
      it->version = version_;
      all.push_back(std::move(*it));
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const LogRecord& a, const LogRecord& b) { return a.unix_ms < b.unix_ms; });
  if (static_cast<int64_t>(all.size()) > want) all.erase(all.begin(), all.end() - want);
  return all;
}

Result<std::vector<LogRecord>> ServiceLogs::Read(const LogQuery& query) {
  std::vector<Snapshot> snapshots;
  {
    std::lock_guard lock(mu_);
    snapshots = SnapshotLocked(query);
  }
  return ReadSnapshots(query, snapshots);
}

Result<uint64_t> ServiceLogs::Follow(const LogQuery& query, std::shared_ptr<Queue> queue) {
  uint64_t token;
  std::vector<Snapshot> snapshots;
  const bool history = query.lines != 0;
  {
    std::lock_guard lock(mu_);
    token = next_token_++;
    followers_[token] = {query.instance, queue, /*live=*/!history, {}, 0};
    if (history) snapshots = SnapshotLocked(query);
  }
  if (!history) return token;
  // Read and hand out the history without the lock; what is appended meanwhile is held back
  // and follows it.
  for (const LogRecord& record : ReadSnapshots(query, snapshots)) {
    queue->Push(record, record.message.size());
  }
  std::lock_guard lock(mu_);
  auto it = followers_.find(token);
  if (it == followers_.end()) return token;  // unsubscribed, or closed, meanwhile
  for (const LogRecord& record : it->second.held) queue->Push(record, record.message.size());
  it->second.held.clear();
  it->second.live = true;
  return token;
}

void ServiceLogs::Unsubscribe(uint64_t token) {
  std::lock_guard lock(mu_);
  followers_.erase(token);
}

void ServiceLogs::CloseFiles() {
  std::lock_guard lock(mu_);
  // The entries stay: their rotation counts keep readers that are under way on the right files.
  for (auto& [instance, file] : files_) CloseLocked(file);
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
