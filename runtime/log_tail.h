#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/log_files.h"

namespace micro::runtime {

// How far a backward read of log files goes.
struct TailLimits {
  int64_t want = 0;           // records
  int64_t since_unix_ms = 0;  // stop at the first older record
  int64_t max_bytes = 0;      // file bytes to read, at most
};

// What a ReadTail got to.
struct TailResult {
  int64_t bytes = 0;  // file bytes read
  bool done = false;  // `want` reached, an older record met or the bytes spent: read no more
};

// Reads the records in bytes [0, size) of the log file `fd` from the END backwards, appending
// them to `newest_first` (newest first), until `limits` say stop. `limits.want` counts what is
// in `newest_first` already (from newer files of the same instance), `limits.max_bytes` the
// `spent` bytes as well. Lines that are not records are skipped; a line cut by the byte bound
// is dropped.
TailResult ReadTail(int fd, int64_t size, const std::string& instance, const TailLimits& limits,
                    int64_t spent, std::vector<LogRecord>* newest_first);

}  // namespace micro::runtime
