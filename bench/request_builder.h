#ifndef MICRO_BENCH_REQUEST_BUILDER_H_
#define MICRO_BENCH_REQUEST_BUILDER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen_flags.h"

namespace micro::bench {

// The serialized request the flags describe: --request-hex decoded, or --request-text parsed as
// text format into a message of --request-type, found in the generated descriptor pool (every
// message of micro_proto and micro_bench_proto). On failure returns false and sets *error.
[[nodiscard]] bool BuildRequest(const LoadgenFlags& flags, std::string* bytes, std::string* error);

// Per-call numbers: every occurrence of kCallNumberMarker in the serialized request is overwritten,
// call by call, with that call's number as kCallNumberMarker.size() zero-padded decimal digits, so
// that each call can write a distinct key. The width is fixed, so no length prefix changes. In
// --request-text, "{n}" is short for the marker; in --request-hex, encode the marker's bytes.
inline constexpr std::string_view kCallNumberMarker = "{nnnnnnnnnn}";

// Offsets of the markers in `request`, in order; empty when it has none.
std::vector<size_t> FindCallNumberFields(std::string_view request);

// Writes `number` (modulo 10^12) at each of `fields` of *request.
void SetCallNumber(uint64_t number, const std::vector<size_t>& fields, std::string* request);

// Hex of either case, with no separators; an odd length or a non-hex digit fails.
[[nodiscard]] bool DecodeHex(std::string_view hex, std::string* bytes);
std::string EncodeHex(std::string_view bytes);

}  // namespace micro::bench

#endif  // MICRO_BENCH_REQUEST_BUILDER_H_
