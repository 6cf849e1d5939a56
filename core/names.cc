#include "core/names.h"

#include <fmt/format.h>

#include <cctype>

namespace micro {
namespace {

bool Allowed(char c, Charset charset) {
  const bool alnum = std::isalnum(static_cast<unsigned char>(c)) != 0;
  switch (charset) {
    case Charset::kName:
      return alnum || c == '.' || c == '_' || c == '-';
    case Charset::kVersion:
      return alnum || c == '.' || c == '_' || c == '-' || c == '+';
    case Charset::kPrintable:
      return c > 0x20 && c < 0x7f;
  }
  return false;
}

const char* Describe(Charset charset) {
  switch (charset) {
    case Charset::kName:
      return "letters, digits, '.', '_' and '-', starting with a letter or digit";
    case Charset::kVersion:
      return "letters, digits, '.', '_', '+' and '-'";
    case Charset::kPrintable:
      return "printable ASCII without spaces";
  }
  return "";
}

}  // namespace

Status CheckName(std::string_view what, std::string_view value, size_t max_bytes, Charset charset) {
  if (value.empty()) return absl::InvalidArgumentError(fmt::format("{} is empty", what));
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("{} is {} bytes; the limit is {}", what, value.size(), max_bytes));
  }
  for (char c : value) {
    if (!Allowed(c, charset)) {
      return absl::InvalidArgumentError(fmt::format("{} '{}' has the character {:?}; allowed: {}",
                                                    what, value, c, Describe(charset)));
    }
  }
  if (charset == Charset::kName && !std::isalnum(static_cast<unsigned char>(value[0]))) {
    return absl::InvalidArgumentError(
        fmt::format("{} '{}' must start with a letter or digit", what, value));
  }
  return absl::OkStatus();
}

Status CheckSubject(std::string_view what, std::string_view value, size_t max_bytes,
                    size_t max_tokens, bool wildcards) {
  if (value.empty()) return absl::InvalidArgumentError(fmt::format("{} is empty", what));
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("{} is {} bytes; the limit is {}", what, value.size(), max_bytes));
  }
  size_t tokens = 0;
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find('.', start);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view token = value.substr(start, end - start);
    const bool last = end == value.size();
    start = end + 1;
    if (++tokens > max_tokens) {
      return absl::InvalidArgumentError(
          fmt::format("{} '{:.64}' has more than {} tokens, the limit", what, value, max_tokens));
    }
    if (token.empty()) {
      return absl::InvalidArgumentError(fmt::format(
          "{} '{}' has an empty token; use tokens separated by single dots, as in orders.created",
          what, value));
    }
    if (token == "*" || token == ">") {
      if (!wildcards) {
        return absl::InvalidArgumentError(
            fmt::format("{} '{}' has the wildcard '{}'; publish to a concrete topic (wildcards "
                        "are for subscribing)",
                        what, value, token));
      }
      if (token == ">" && !last) {
        return absl::InvalidArgumentError(
            fmt::format("{} '{}' has the wildcard '>' before its last token; '>' may only be "
                        "the last token",
                        what, value));
      }
      continue;
    }
    for (char c : token) {
      if (c == '*' || c == '>') {
        return absl::InvalidArgumentError(fmt::format(
            "{} '{}' has '{}' inside a token; the wildcards '*' and '>' must be whole tokens", what,
            value, c));
      }
      if (!Allowed(c, Charset::kPrintable)) {
        return absl::InvalidArgumentError(
            fmt::format("{} '{}' has the character {:?}; allowed: printable ASCII without spaces, "
                        "in tokens separated by '.'",
                        what, value, c));
      }
    }
  }
  return absl::OkStatus();
}

Status CheckNamespace(std::string_view ns) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(fmt::format(
        "namespace '{}' is not valid: use 1 to 63 characters of a-z, 0-9 and '-', starting and "
        "ending with a letter or digit",
        ns));
  };
  if (ns.empty() || ns.size() > 63 || ns.front() == '-' || ns.back() == '-') return bad();
  for (char c : ns) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return bad();
  }
  return absl::OkStatus();
}

}  // namespace micro
