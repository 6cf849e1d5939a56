#pragma once

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace micro::cli {

// Left-aligned text columns separated by two spaces, header first.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "k1=v1,k2=v2" in key order, or "-" when empty.
template <typename Map>
std::string JoinMetadata(const Map& map) {
  std::vector<std::pair<std::string, std::string>> entries(map.begin(), map.end());
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const auto& [key, value] : entries) {
    if (!out.empty()) out += ",";
    out += key + "=" + value;
  }
  return out.empty() ? "-" : out;
}

// A key, value or payload for a table cell: the text itself when it is printable UTF-8, else
// `base64:<bytes>`. Empty and `base64:`-looking text are encoded too, so a cell is unambiguous.
std::string Displayable(const std::string& bytes);

}  // namespace micro::cli
