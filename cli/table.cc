#include "cli/table.h"

#include <absl/strings/escaping.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace micro::cli {
namespace {

// The length of a UTF-8 sequence from its first byte; 0 if it cannot start one.
size_t Utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) return 2;
  if ((lead & 0xf0) == 0xe0) return 3;
  if ((lead & 0xf8) == 0xf0) return 4;
  return 0;
}

// True if `text` is valid UTF-8 without control characters (C0, DEL, C1).
bool IsPrintableUtf8(std::string_view text) {
  constexpr uint32_t kMinCode[] = {0, 0, 0x80, 0x800, 0x10000};  // shorter is overlong
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = Utf8Length(lead);
    if (length == 0 || i + length > text.size()) return false;
    uint32_t code = length == 1 ? lead : lead & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    if (code < kMinCode[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
    i += length;
  }
  return true;
}

}  // namespace

std::string Displayable(const std::string& bytes) {
  if (!bytes.empty() && bytes.rfind("base64:", 0) != 0 && IsPrintableUtf8(bytes)) return bytes;
  return "base64:" + absl::Base64Escape(bytes);
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

}  // namespace micro::cli
