#include "runtime/log_tail.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace micro::runtime {
namespace {

// Bytes read per pread: most answers (the last 100 lines) fit in one.
constexpr int64_t kChunkBytes = 64 << 10;

}  // namespace

TailResult ReadTail(int fd, int64_t size, const std::string& instance, const TailLimits& limits,
                    int64_t spent, std::vector<LogRecord>* newest_first) {
  TailResult result;
  std::string carry;  // the start of a line whose beginning is further back in the file
  std::string chunk;
  LogRecord record;
  int64_t pos = size;
  // Hands out the complete lines of `text` newest first; what precedes its first line break
  // may continue further back and is kept for the next chunk (unless the file starts there).
  auto take_lines = [&](std::string_view text, bool at_start) {
    size_t end = text.size();
    for (;;) {
      const size_t nl = end == 0 ? std::string_view::npos : text.rfind('\n', end - 1);
      if (nl == std::string_view::npos && !at_start) {
        carry.assign(text.substr(0, end));
        return false;
      }
      const size_t begin = nl == std::string_view::npos ? 0 : nl + 1;
      const std::string_view line = text.substr(begin, end - begin);
      if (!line.empty() && ParseLogLine(line, instance, &record)) {
        if (record.unix_ms < limits.since_unix_ms) return true;
        newest_first->push_back(std::move(record));
        if (static_cast<int64_t>(newest_first->size()) >= limits.want) return true;
      }
      if (nl == std::string_view::npos) return false;
      end = nl;
    }
  };
  while (pos > 0) {
    const int64_t left = limits.max_bytes - spent - result.bytes;
    if (left <= 0) {
      result.done = true;  // the line in `carry`, cut by the bound, is dropped
      return result;
    }
    const int64_t n = std::min({kChunkBytes, pos, left});
    chunk.resize(static_cast<size_t>(n));
    ssize_t got;
    do {
      got = ::pread(fd, chunk.data(), static_cast<size_t>(n), pos - n);
    } while (got < 0 && errno == EINTR);
    if (got != n) break;  // the file shrank or failed: what was read stands
    pos -= n;
    result.bytes += n;
    chunk += carry;
    carry.clear();
    if (take_lines(chunk, pos == 0)) {
      result.done = true;
      return result;
    }
  }
  return result;
}

}  // namespace micro::runtime
