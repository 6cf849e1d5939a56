#pragma once

#include <string>

#include "core/status.h"
#include "services/store/store.h"

namespace micro::store {

// Input checks shared by every Store backend: INVALID_ARGUMENT naming the field and the limit.

[[nodiscard]] Status CheckLocation(const std::string& db, const std::string& table,
                                   const Limits& limits);
[[nodiscard]] Status CheckKey(const std::string& key, const Limits& limits);
[[nodiscard]] Status CheckRecord(const Record& record, const Limits& limits);

// The number of records a scan may return under `limits`.
uint32_t ScanCap(const Scan& scan, const Limits& limits);

// Whether a key is in a scan (prefix and suffix; pagination is the caller's).
inline bool InScan(const std::string& key, const Scan& scan) {
  return key.compare(0, scan.prefix.size(), scan.prefix) == 0 && key.size() >= scan.suffix.size() &&
         key.compare(key.size() - scan.suffix.size(), scan.suffix.size(), scan.suffix) == 0;
}

// Seconds left until `expires_unix_ms` at `now_unix_ms`, rounded up; 0 for no expiry.
inline int64_t SecondsLeft(int64_t expires_unix_ms, int64_t now_unix_ms) {
  if (expires_unix_ms == 0) return 0;
  return (expires_unix_ms - now_unix_ms + 999) / 1000;
}

}  // namespace micro::store
