#pragma once

#include <atomic>
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

// Reads return at most this many records, whatever `lines` asks.
inline constexpr int64_t kMaxReadRecords = 100000;
// Of the log files, one read (or the history of one Follow) goes through at most this many
// bytes, from the end, shared evenly among the instances it reads (at least
// kMinReadBytesPerInstance each): `micro logs -n all` of a chatty service shows its recent past.
inline constexpr int64_t kMaxReadBytes = 8 << 20;
inline constexpr int64_t kMinReadBytesPerInstance = 64 << 10;
// A follower whose history is still being read holds back at most this much of the live
// output; past it, it is closed (RESOURCE_EXHAUSTED) like a follower that falls behind.
inline constexpr size_t kMaxHeldBackBytes = 4 << 20;

// How far a log file's modification time may lag behind the records written to it: files are
// stamped from the kernel's coarse clock, and some file systems keep whole seconds only.
inline constexpr int64_t kFileTimeSlackMs = 2000;

// Which records a reader wants.
struct LogQuery {
  std::string instance;  // empty: every instance and the build
  int64_t since_unix_ms = 0;
  int64_t lines = 100;                // the last N; < 0: all kept (up to kMaxReadRecords)
  int64_t max_bytes = kMaxReadBytes;  // of log files read for the history
};

// The log files all ServiceLogs sharing it keep open at once: past `max_open`, an append opens,
// writes and closes its file. Descriptors are the daemon's scarcest resource (fd_budget.h).
// Thread-safe.
class OpenFileBudget {
 public:
  explicit OpenFileBudget(size_t max_open) : max_open_(max_open) {}
  // True if one more file may stay open (then Release it when it closes).
  bool TryAcquire() {
    size_t open = open_.load();
    while (open < max_open_) {
      if (open_.compare_exchange_weak(open, open + 1)) return true;
    }
    return false;
  }
  void Release() { open_.fetch_sub(1); }
  size_t open() const { return open_.load(); }

 private:
  const size_t max_open_;
  std::atomic<size_t> open_{0};
};

// A service's log files: one file per instance in `dir` (INSTANCE.log, rotated to INSTANCE.log.1
// up to .N, oldest highest), plus live subscribers for followers. Appends come from the
// supervisor; reads and subscriptions from any thread. Thread-safe. Reads parse the files
// outside the lock that appends take (only the list of files and their sizes is taken under
// it), from the end backwards and within `LogQuery::max_bytes`: a large read never holds up
// the output of the service.
class ServiceLogs {
 public:
  using Queue = WatchQueue<LogRecord>;

  // `open_files` (may be null: no limit) bounds the files held open across appends.
  ServiceLogs(std::string dir, std::string version, LogPolicy policy,
              std::shared_ptr<OpenFileBudget> open_files = nullptr);
  ~ServiceLogs();

  // Appends to the instance's file (rotating it past the size limit) and hands the record to
  // every follower. A write error is counted, never thrown: output must not stop a service.
  void Append(const LogRecord& record);

  // Stored records matching `query`, oldest first.
  [[nodiscard]] Result<std::vector<LogRecord>> Read(const LogQuery& query);

  // The stored records matching `query` are pushed to `queue`, then every later record of a
  // matching instance, none twice and none left out (records appended while the history is
  // read are held back meanwhile, up to kMaxHeldBackBytes). Returns a token for Unsubscribe.
  [[nodiscard]] Result<uint64_t> Follow(const LogQuery& query, std::shared_ptr<Queue> queue);
  void Unsubscribe(uint64_t token);

  // Ends every follower's stream (the service was removed, or the daemon stops).
  void CloseFollowers(const Status& why);
  // Closes the open files (they reopen on the next Append): for a service that was removed.
  void CloseFiles();

  void set_policy(const LogPolicy& policy);
  const std::string& dir() const { return dir_; }
  // How many log files reads and follows have opened for history so far (a follow with
  // `lines` 0 opens none).
  uint64_t history_files_opened() const { return history_files_opened_.load(); }

 private:
  struct File {
    int fd = -1;
    bool held = false;  // counted in open_files_
    int64_t size = 0;
    uint64_t rotations = 0;  // how often INSTANCE.log became .1: a reader's files moved by this
  };
  // An instance's files as a reader found them under the lock.
  struct Snapshot {
    std::string instance;
    uint64_t rotations = 0;
    int64_t size = 0;  // of INSTANCE.log; what was appended later is not the reader's
    int max_files = 0;
  };
  std::vector<Snapshot> SnapshotLocked(const LogQuery& query);
  // Without the lock: the records of `snapshots` that `query` asks for, oldest first.
  std::vector<LogRecord> ReadSnapshots(const LogQuery& query,
                                       const std::vector<Snapshot>& snapshots);
  void ReadInstance(const LogQuery& query, const Snapshot& snapshot, int64_t max_bytes,
                    std::vector<LogRecord>* newest_first);
  // Opens generation `generation` of the snapshot's files where it is now (-1 if gone).
  int OpenGeneration(const Snapshot& snapshot, int generation);
  File* OpenLocked(const std::string& instance);
  void CloseLocked(File& file);
  void RotateLocked(const std::string& instance, File& file);

  const std::string dir_;
  const std::string version_;
  const std::shared_ptr<OpenFileBudget> open_files_;
  std::mutex mu_;
  LogPolicy policy_;
  std::map<std::string, File> files_;
  struct Follower {
    std::string instance;
    std::shared_ptr<Queue> queue;
    bool live = true;  // false while its history is read: records wait in `held`
    std::vector<LogRecord> held;
    size_t held_bytes = 0;
  };
  std::map<uint64_t, Follower> followers_;
  uint64_t next_token_ = 1;
  uint64_t write_errors_ = 0;
  std::atomic<uint64_t> history_files_opened_{0};
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
