#ifndef MICRO_BENCH_REQUEST_BUILDER_H_
#define MICRO_BENCH_REQUEST_BUILDER_H_

#include <string>
#include <string_view>

#include "bench/loadgen_flags.h"

namespace micro::bench {

// The serialized request the flags describe: --request-hex decoded, or --request-text parsed as
// text format into a message of --request-type, found in the generated descriptor pool (every
// message of micro_proto and micro_bench_proto). On failure returns false and sets *error.
[[nodiscard]] bool BuildRequest(const LoadgenFlags& flags, std::string* bytes, std::string* error);

// Hex of either case, with no separators; an odd length or a non-hex digit fails.
[[nodiscard]] bool DecodeHex(std::string_view hex, std::string* bytes);
std::string EncodeHex(std::string_view bytes);

}  // namespace micro::bench

#endif  // MICRO_BENCH_REQUEST_BUILDER_H_
