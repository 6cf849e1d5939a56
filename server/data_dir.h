#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace micro::server {

// The daemon's data directory, held exclusively: opening it takes an advisory lock on
// `<dir>/micro.lock` (holding our pid) that the kernel drops when the process dies, so a crashed
// daemon never blocks the next one.
class DataDir {
 public:
  // Creates the directory (mode 0700) if needed and locks it.
  // Errors: FAILED_PRECONDITION if another process holds the lock (its pid in the message),
  // PERMISSION_DENIED / INTERNAL if the directory cannot be created or written.
  [[nodiscard]] static Result<std::unique_ptr<DataDir>> Open(const std::string& path);

  // The pid of the process holding the lock of the data dir at `path`, or 0 if none does.
  static int LockHolder(const std::string& path);

  ~DataDir();  // releases the lock and removes server.json

  const std::string& path() const { return path_; }

  // Atomically replaces `<dir>/<name>` with `contents` (write to a temp file, then rename).
  [[nodiscard]] Status WriteFile(const std::string& name, const std::string& contents) const;

 private:
  DataDir(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}

  std::string path_;
  int lock_fd_;
};

}  // namespace micro::server
