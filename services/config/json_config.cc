#include "services/config/json_config.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/watch_queue.h"

namespace micro::config {
namespace {

using nlohmann::json;

constexpr const char* kSecretKey = "$secret";
constexpr const char* kMask = "[secret]";

bool IsSecretLeaf(const json& node) {
  return node.is_object() && node.size() == 1 && node.contains(kSecretKey) &&
         node[kSecretKey].is_string();
}

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

// How deep arrays and objects nest in JSON text, counted before parsing so that no recursive
// walk (ours or the library's dump) ever meets a value nested deeper than Limits::max_nesting.
size_t Nesting(const std::string& text) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Parses a value a caller gave: INVALID_ARGUMENT naming the problem for anything the library
// refuses (syntax, invalid UTF-8, numbers out of range) and for nesting past the limit.
Result<json> ParseValue(const std::string& text, const Limits& limits) {
  if (const size_t nesting = Nesting(text); nesting > limits.max_nesting) {
    return absl::InvalidArgumentError(
        fmt::format("the value nests arrays and objects {} levels deep; the limit is {}", nesting,
                    limits.max_nesting));
  }
  try {
    return json::parse(text);
  } catch (const json::out_of_range& e) {
    return absl::InvalidArgumentError(
        fmt::format("the value has a number out of range (beyond about 1.8e308): {}", e.what()));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(fmt::format("the value is not valid JSON: {}", e.what()));
  }
}

// `path` extended by one member name.
std::string Child(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

// What a secret leaf is sealed for: its namespace and full path.
std::string SecretContext(const std::string& ns, const std::string& path) {
  return ns + std::string(1, '\0') + path;
}

Result<std::vector<std::string>> SplitPath(const std::string& path, const Limits& limits) {
  std::vector<std::string> segments;
  if (path.empty()) return segments;
  if (path.size() > limits.max_path_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("path is {} bytes; the limit is {}", path.size(), limits.max_path_bytes));
  }
  if (!ValidUtf8(path)) {
    return absl::InvalidArgumentError("the path is not valid UTF-8; paths are JSON member names");
  }
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    std::string segment = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (segment.empty() || segment.size() > limits.max_segment_bytes || segment == kSecretKey) {
      return absl::InvalidArgumentError(
          fmt::format("path '{}' is not valid: use dot-separated names of 1 to {} bytes (not '{}')",
                      path, limits.max_segment_bytes, kSecretKey));
    }
    segments.push_back(std::move(segment));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (segments.size() > limits.max_depth) {
    return absl::InvalidArgumentError(
        fmt::format("path '{}' is deeper than {} levels", path, limits.max_depth));
  }
  return segments;
}

// The node at `segments`, or nullptr.
const json* Find(const json& root, const std::vector<std::string>& segments) {
  const json* node = &root;
  for (const std::string& s : segments) {
    if (!node->is_object() || IsSecretLeaf(*node)) return nullptr;
    auto it = node->find(s);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

// A copy of `node` (at `path` of namespace `ns`) with secret leaves masked, or opened with `box`.
Result<json> Present(const json& node, const SecretBox* box, const std::string& ns,
                     const std::string& path) {
  if (IsSecretLeaf(node)) {
    if (box == nullptr) return json(kMask);
    auto plain = box->Open(node[kSecretKey].get<std::string>(), SecretContext(ns, path));
    if (!plain.ok()) return plain.status();
    return json::parse(*plain, nullptr, /*allow_exceptions=*/false);
  }
  if (!node.is_object()) return node;
  json out = json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    auto value = Present(it.value(), box, ns, Child(path, it.key()));
    if (!value.ok()) return value.status();
    out[it.key()] = std::move(*value);
  }
  return out;
}

// Seals every leaf of `value` (anything that is not an object is a leaf) for its place: `value`
// is to be set at `path` of namespace `ns`.
Status SealLeaves(json& value, const SecretBox& box, const std::string& ns,
                  const std::string& path) {
  if (!value.is_object()) {
    auto sealed = box.Seal(value.dump(), SecretContext(ns, path));
    if (!sealed.ok()) return sealed.status();
    value = json{{kSecretKey, *sealed}};
    return absl::OkStatus();
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (Status s = SealLeaves(it.value(), box, ns, Child(path, it.key())); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Merges `value` into `target` leaf by leaf: objects merge, everything else replaces.
void Merge(json& target, json value) {
  if (!value.is_object() || IsSecretLeaf(value) || !target.is_object() || IsSecretLeaf(target)) {
    target = std::move(value);
    return;
  }
  for (auto it = value.begin(); it != value.end(); ++it)
    Merge(target[it.key()], std::move(it.value()));
}

// Member names a path can reach: not empty, no '.', not the reserved secret marker.
Status CheckMemberNames(const json& node) {
  if (!node.is_object()) return absl::OkStatus();
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it.key().empty() || it.key().find('.') != std::string::npos || it.key() == kSecretKey) {
      return absl::InvalidArgumentError(fmt::format(
          "member name '{}' is not allowed: names must be non-empty, without '.', and not '{}'",
          it.key(), kSecretKey));
    }
    if (Status s = CheckMemberNames(it.value()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

size_t Depth(const json& node) {
  if (!node.is_object() || IsSecretLeaf(node)) return 0;
  size_t deepest = 0;
  for (const auto& child : node) deepest = std::max(deepest, Depth(child));
  return deepest + 1;
}

// Whether a change at `changed` concerns a watcher of `watched`: one contains the other.
bool Related(const std::string& watched, const std::string& changed) {
  const auto under = [](const std::string& a, const std::string& b) {
    return b.empty() || a == b ||
           (a.size() > b.size() && a.compare(0, b.size(), b) == 0 && a[b.size()] == '.');
  };
  return under(changed, watched) || under(watched, changed);
}

}  // namespace

JsonConfig::JsonConfig(std::unique_ptr<Documents> documents, SecretBox secrets, Limits limits)
    : documents_(std::move(documents)),
      secrets_(std::move(secrets)),
      limits_(limits),
      watchers_(WatcherBudget{limits.max_watchers, limits.watcher_queue_changes,
                              limits.watcher_queue_bytes, "changes", limits.stream_bytes}) {}

JsonConfig::~JsonConfig() = default;

namespace {

Result<json> LoadDocument(Documents& documents, const std::string& ns) {
  auto text = documents.Load(ns);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return json::object();
  json doc = json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InternalError(fmt::format("the stored config of namespace '{}' is corrupt", ns));
  }
  return doc;
}

}  // namespace

Result<std::string> JsonConfig::Get(const std::string& ns, const std::string& path,
                                    bool reveal_secrets) try {
  auto segments = SplitPath(path, limits_);
  if (!segments.ok()) return segments.status();
  auto doc = LoadDocument(*documents_, ns);
  if (!doc.ok()) return doc.status();
  const json* node = Find(*doc, *segments);
  if (node == nullptr || (segments->empty() && doc->empty())) {
    return absl::NotFoundError(
        fmt::format("config path '{}' is not set in namespace '{}'", path, ns));
  }
  auto shown = Present(*node, reveal_secrets ? &secrets_ : nullptr, ns, path);
  if (!shown.ok()) return shown.status();
  return shown->dump();
} catch (const json::exception& e) {
  return absl::InternalError(
      fmt::format("the config of namespace '{}' cannot be shown: {}", ns, e.what()));
}

Status JsonConfig::Set(const std::string& ns, const std::string& path, const std::string& value,
                       bool secret) try {
  auto segments = SplitPath(path, limits_);
  if (!segments.ok()) return segments.status();
  if (value.size() > limits_.max_value_bytes) {
    return absl::InvalidArgumentError(fmt::format("the value is {} bytes; the limit is {}",
                                                  value.size(), limits_.max_value_bytes));
  }
  auto parsed = ParseValue(value, limits_);
  if (!parsed.ok()) return parsed.status();
  if (segments->empty() && !parsed->is_object()) {
    return absl::InvalidArgumentError(
        "the whole document (empty path) can only be set to an object");
  }
  if (Status s = CheckMemberNames(*parsed); !s.ok()) return s;
  if (Depth(*parsed) + segments->size() > limits_.max_depth) {
    return absl::InvalidArgumentError(
        fmt::format("the value would nest deeper than {} levels", limits_.max_depth));
  }
  if (secret) {
    if (Status s = SealLeaves(*parsed, secrets_, ns, path); !s.ok()) return s;
  }
  auto lock = namespace_locks_.Lock(ns);
  auto doc = LoadDocument(*documents_, ns);
  if (!doc.ok()) return doc.status();
  json* node = &*doc;
  for (const std::string& s : *segments) {
    if (!node->is_object() || IsSecretLeaf(*node)) *node = json::object();
    node = &(*node)[s];
  }
  Merge(*node, std::move(*parsed));
  const std::string text = doc->dump();
  if (text.size() > limits_.max_document_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("namespace '{}' would hold {} bytes of config; the limit is {}", ns,
                    text.size(), limits_.max_document_bytes));
  }
  if (Status s = documents_->Save(ns, text); !s.ok()) return s;
  auto shown = Present(*node, nullptr, ns, path);
  Publish(ns, path, shown.ok() ? shown->dump() : "null");
  return absl::OkStatus();
} catch (const json::exception& e) {
  // Only reached before the save: what the caller sent cannot be held as JSON.
  return absl::InvalidArgumentError(
      fmt::format("the value cannot be stored at '{}': {}", path, e.what()));
}

Status JsonConfig::Delete(const std::string& ns, const std::string& path) try {
  auto segments = SplitPath(path, limits_);
  if (!segments.ok()) return segments.status();
  auto lock = namespace_locks_.Lock(ns);
  auto doc = LoadDocument(*documents_, ns);
  if (!doc.ok()) return doc.status();
  if (segments->empty()) {
    if (doc->empty()) return absl::OkStatus();
    *doc = json::object();
  } else {
    std::vector<std::string> parent_path(segments->begin(), segments->end() - 1);
    json* parent = const_cast<json*>(Find(*doc, parent_path));
    if (parent == nullptr || !parent->is_object() || IsSecretLeaf(*parent) ||
        parent->erase(segments->back()) == 0) {
      return absl::OkStatus();  // nothing there
    }
  }
  if (Status s = documents_->Save(ns, doc->empty() ? "" : doc->dump()); !s.ok()) return s;
  Publish(ns, path, "null");
  return absl::OkStatus();
} catch (const json::exception& e) {
  return absl::InternalError(
      fmt::format("the config of namespace '{}' cannot be changed: {}", ns, e.what()));
}

Result<std::unique_ptr<ConfigWatcher>> JsonConfig::Watch(const std::string& ns,
                                                         const std::string& path,
                                                         std::function<void()> notify) {
  if (auto segments = SplitPath(path, limits_); !segments.ok()) return segments.status();
  return watchers_.Subscribe<ConfigWatcher>(WatchFilter{ns, path}, std::move(notify));
}

void JsonConfig::CloseWatchers() {
  watchers_.CloseAll(absl::UnavailableError("the server is shutting down"));
}

void JsonConfig::Publish(const std::string& ns, const std::string& path, const std::string& value) {
  const Change change{path, value};
  watchers_.Publish([&](const WatchFilter& f) { return f.ns == ns && Related(f.path, path); },
                    change, sizeof(Change) + path.size() + value.size());
}

}  // namespace micro::config
