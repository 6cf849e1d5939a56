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

// The smallest string greater than every string starting with `prefix` ("" if there is none).
std::string PrefixEnd(std::string prefix);

// Counts one Read page against the limits: keys stepped over, records and their bytes.
class PageBudget {
 public:
  PageBudget(const Limits& limits, uint32_t cap) : limits_(limits), cap_(cap) {}

  // Counts one key stepped over. False past Limits::max_scan_visits; status() says why.
  bool Step();
  // Whether a record of `bytes` (RecordBytes) joins the page: false once it holds `cap`
  // records, or when the record would take it past Limits::max_read_bytes. The first record
  // always joins: one record never exceeds the budget.
  bool Take(size_t bytes);
  // RESOURCE_EXHAUSTED once Step returned false, saying how to narrow the scan.
  Status status() const;

 private:
  const Limits& limits_;
  const uint32_t cap_;
  uint32_t visits_ = 0;
  uint32_t records_ = 0;
  size_t bytes_ = 0;
  bool exhausted_ = false;
};

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
