#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/watch_queue.h"
#include "runtime/spec.h"

namespace micro::runtime {

// One line of a service's output, or a note of the supervisor's ("system").
struct LogRecord {
  int64_t unix_ms = 0;
  std::string instance;  // instance id, or "build"
  std::string stream;    // stdout, stderr, system
  std::string message;   // without the line break
  std::string version;   // the service version, set by ServiceLogs on the way out
};

// Lines longer than this are split, so one runaway line cannot pin memory.
inline constexpr size_t kMaxLogLineBytes = 16 << 10;

// The text form of a record in a log file: `2026-11-27T02:30:00.123Z stdout message`.
std::string FormatLogLine(const LogRecord& record);
// Parses FormatLogLine's output (without the line break); false if the line is not one.
bool ParseLogLine(std::string_view line, const std::string& instance, LogRecord* out);

// Closes a follower's queue when its stream simply ends (the service was removed, or a reader
// that does not follow has had everything): a watch stream then finishes with OK.
inline Status EndOfLogs() { return EndOfStream(); }

// A reader's subscription to log records (served from a ServiceLogs::Queue by QueueWatcher).
class LogFollower {
 public:
  virtual ~LogFollower() = default;
  virtual std::optional<LogRecord> Next() = 0;
  virtual Status status() const = 0;
};

// Which records a reader wants.
struct LogQuery {
  std::string instance;  // empty: every instance and the build
  int64_t since_unix_ms = 0;
  int64_t lines = 100;  // the last N; < 0: all kept
};

// A service's log files: one file per instance in `dir` (INSTANCE.log, rotated to INSTANCE.log.1
// up to .N, oldest highest), plus live subscribers for followers. Appends come from the
// supervisor; reads and subscriptions from any thread. Thread-safe.
class ServiceLogs {
 public:
  using Queue = WatchQueue<LogRecord>;

  ServiceLogs(std::string dir, std::string version, LogPolicy policy);
  ~ServiceLogs();

  // Appends to the instance's file (rotating it past the size limit) and hands the record to
  // every follower. A write error is counted, never thrown: output must not stop a service.
  void Append(const LogRecord& record);

  // Stored records matching `query`, oldest first.
  [[nodiscard]] Result<std::vector<LogRecord>> Read(const LogQuery& query);

  // Atomically: the stored records matching `query` are pushed to `queue`, then every later
  // record of a matching instance. Returns a token for Unsubscribe.
  [[nodiscard]] Result<uint64_t> Follow(const LogQuery& query, std::shared_ptr<Queue> queue);
  void Unsubscribe(uint64_t token);

  // Ends every follower's stream (the service was removed, or the daemon stops).
  void CloseFollowers(const Status& why);
  // Closes the open files (they reopen on the next Append): for a service that was removed.
  void CloseFiles();

  void set_policy(const LogPolicy& policy);
  const std::string& dir() const { return dir_; }

 private:
  struct File {
    int fd = -1;
    int64_t size = 0;
  };
  Result<std::vector<LogRecord>> ReadLocked(const LogQuery& query);
  File* OpenLocked(const std::string& instance);
  void RotateLocked(const std::string& instance, File& file);

  const std::string dir_;
  const std::string version_;
  std::mutex mu_;
  LogPolicy policy_;
  std::map<std::string, File> files_;
  struct Follower {
    std::string instance;
    std::shared_ptr<Queue> queue;
  };
  std::map<uint64_t, Follower> followers_;
  uint64_t next_token_ = 1;
  uint64_t write_errors_ = 0;
};

// Turns output chunks into lines, one buffer per stream; a partial line waits for its end.
class LineSplitter {
 public:
  // Calls `line` for every complete line in `chunk` (without the line break).
  void Feed(std::string_view chunk, const std::function<void(std::string_view)>& line);
  // Hands out what is left as a last line (the process ended without a final line break).
  void Flush(const std::function<void(std::string_view)>& line);

 private:
  std::string partial_;
};

}  // namespace micro::runtime
