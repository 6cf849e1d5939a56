#include "services/store/validation.h"

#include <fmt/format.h>

#include "core/names.h"

namespace micro::store {

Status CheckLocation(const std::string& db, const std::string& table, const Limits& limits) {
  if (auto s = CheckName("database", db, limits.max_name_bytes, Charset::kName); !s.ok()) return s;
  return CheckName("table", table, limits.max_name_bytes, Charset::kName);
}

namespace {

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

Status CheckKey(const std::string& key, const Limits& limits) {
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  // Keys travel as proto3 strings, which must be UTF-8.
  if (!ValidUtf8(key)) return absl::InvalidArgumentError("the key is not valid UTF-8");
  if (key.size() > limits.max_key_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("the key is {} bytes; the limit is {}", key.size(), limits.max_key_bytes));
  }
  return absl::OkStatus();
}

Status CheckRecord(const Record& record, const Limits& limits) {
  if (auto s = CheckKey(record.key, limits); !s.ok()) return s;
  if (record.value.size() > limits.max_value_bytes) {
    return absl::InvalidArgumentError(fmt::format("the value is {} bytes; the limit is {}",
                                                  record.value.size(), limits.max_value_bytes));
  }
  if (record.ttl_seconds < 0 || record.ttl_seconds > limits.max_ttl_seconds) {
    return absl::InvalidArgumentError(
        fmt::format("ttl_seconds is {}; use 0 (never expires) up to {}", record.ttl_seconds,
                    limits.max_ttl_seconds));
  }
  if (record.metadata.size() > limits.max_metadata_entries) {
    return absl::InvalidArgumentError(fmt::format("metadata has {} entries; the limit is {}",
                                                  record.metadata.size(),
                                                  limits.max_metadata_entries));
  }
  size_t bytes = 0;
  for (const auto& [k, v] : record.metadata) bytes += k.size() + v.size();
  if (bytes > limits.max_metadata_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("metadata is {} bytes; the limit is {}", bytes, limits.max_metadata_bytes));
  }
  return absl::OkStatus();
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

bool PageBudget::Step() {
  if (++visits_ > limits_.max_scan_visits) exhausted_ = true;
  return !exhausted_;
}

bool PageBudget::Take(size_t bytes) {
  if (records_ >= cap_) return false;
  if (records_ > 0 && bytes_ + bytes > limits_.max_read_bytes) return false;
  ++records_;
  bytes_ += bytes;
  return true;
}

Status PageBudget::status() const {
  if (!exhausted_) return absl::OkStatus();
  return absl::ResourceExhaustedError(fmt::format(
      "the scan stepped over {} keys without completing (the limit for one call); narrow it "
      "with a longer prefix or a smaller offset, or page through the keys with List",
      limits_.max_scan_visits));
}

uint32_t ScanCap(const Scan& scan, const Limits& limits) {
  if (scan.limit == 0 || scan.limit > limits.max_scan_records) return limits.max_scan_records;
  return scan.limit;
}

}  // namespace micro::store
