#pragma once

// The units a manifest and the CLI write values in: durations, sizes and signal names.
//
// Durations: "500ms", "1s", "1.5s", "2m", "1h", "1d", sums such as "1m30s", or a bare number of
// seconds. Sizes: a bare number of bytes, or with B, KB/MB/GB/TB (powers of 1000) or
// KiB/MiB/GiB/TiB (powers of 1024); fractions such as "1.5GiB" are allowed. Signals: "SIGTERM",
// "TERM", "sigterm" or a number 1..64. Every parser is pure and thread-safe.

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "core/status.h"

namespace micro::runtime {

// "SIGTERM" for 15; a signal without a name is "SIG<n>".
std::string SignalName(int signal);

// "SIGTERM", "TERM", "sigterm" or "15" -> 15. INVALID_ARGUMENT for anything else.
[[nodiscard]] Result<int> ParseSignal(std::string_view text);

// See the duration forms above. INVALID_ARGUMENT for a negative, empty, malformed or absurdly
// large (over 100 years) duration; a fraction of a millisecond is rounded to the nearest one.
[[nodiscard]] Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// See the size forms above. INVALID_ARGUMENT for a negative, malformed or over 1 PiB size; a
// fraction of a byte is rounded down.
[[nodiscard]] Result<int64_t> ParseSize(std::string_view text);

// "1.5s", "2m", "1h30m": the shortest form ParseDuration reads back to `duration`.
std::string FormatDuration(std::chrono::milliseconds duration);

// A non-negative decimal number ("12", "1.5", surrounding blanks allowed). INVALID_ARGUMENT
// "must be a number, not '<text>'" for anything else.
[[nodiscard]] Result<double> ParseNumber(std::string_view text);

// True if all of `text` is a whole number in T's range, stored in `out`.
template <typename T>
bool ParseWhole(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace micro::runtime
