#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace micro {

// Character classes for the names users give things.
enum class Charset {
  kName,       // [A-Za-z0-9._-], first character alphanumeric
  kVersion,    // [A-Za-z0-9._+-]
  kPrintable,  // printable ASCII without spaces
};

// Checks that `value` is 1..max_bytes long and drawn from `charset`. The error is
// INVALID_ARGUMENT and names `what` ("service name", ...), the limit and the offending character.
[[nodiscard]] Status CheckName(std::string_view what, std::string_view value, size_t max_bytes,
                               Charset charset);

// Checks a dot-separated subject (a broker topic): 1..max_bytes, at most max_tokens non-empty
// tokens of printable ASCII without spaces. With `wildcards`, a token may be `*`, and the last
// token may be `>`; without, `*` and `>` are refused anywhere. INVALID_ARGUMENT names `what`,
// the rule broken and the limit.
[[nodiscard]] Status CheckSubject(std::string_view what, std::string_view value, size_t max_bytes,
                                  size_t max_tokens, bool wildcards);

// Namespaces: 1..63 characters of [a-z0-9-], starting and ending alphanumeric (a DNS label).
[[nodiscard]] Status CheckNamespace(std::string_view ns);

inline constexpr const char* kDefaultNamespace = "micro";

}  // namespace micro
