#include "runtime/instance_id.h"

#include <fmt/format.h>
#include <openssl/sha.h>

#include <algorithm>

namespace micro::runtime {
namespace {

// Escapes what would make the join ambiguous; see InstanceId's contract.
std::string EscapeName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '_' || c == '.') out += '_';
    out += c;
  }
  return out;
}

std::string EscapeVersion(std::string_view version) {
  std::string out;
  out.reserve(version.size());
  for (char c : version) {
    if (c == '_') {
      out += "__";
    } else if (c == '+') {
      out += "_p";
    } else {
      out += c;
    }
  }
  return out;
}

// 32 hex digits of SHA-256 over name and version with a separator that occurs in neither.
std::string Hash(std::string_view name, std::string_view version) {
  std::string input;
  input.append(name).append(1, '/').append(version);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  std::string out;
  for (int i = 0; i < 16; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

}  // namespace

std::string InstanceId(std::string_view ns, std::string_view name, std::string_view version,
                       std::string_view suffix) {
  const std::string escaped_name = EscapeName(name);
  std::string id = fmt::format("{}.{}.{}.{}", ns, escaped_name, EscapeVersion(version), suffix);
  if (id.size() <= kMaxInstanceIdBytes) return id;
  // Too long for a folder name: keep what fits of the name for the reader, make it unique with
  // the hash. A '_' cut from its escaped character would change what the prefix says, so the
  // cut never ends on a lone escape.
  const std::string hash = Hash(name, version);
  const size_t fixed = ns.size() + suffix.size() + hash.size() + 5;  // three '.', "_h"
  size_t keep = kMaxInstanceIdBytes > fixed ? kMaxInstanceIdBytes - fixed : 0;
  keep = std::min(keep, escaped_name.size());
  size_t underscores = 0;
  while (underscores < keep && escaped_name[keep - 1 - underscores] == '_') ++underscores;
  if (underscores % 2 == 1) --keep;
  return fmt::format("{}.{}_h{}.{}", ns, escaped_name.substr(0, keep), hash, suffix);
}

std::string LogFolderOfVersion(std::string_view version) {
  if (version == ".") return "%2E";
  if (version == "..") return "%2E%2E";
  return std::string(version);
}

std::string VersionOfLogFolder(std::string_view folder) {
  if (folder == "%2E") return ".";
  if (folder == "%2E%2E") return "..";
  return std::string(folder);
}

}  // namespace micro::runtime
