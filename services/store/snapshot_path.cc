#include "services/store/snapshot_path.h"

#include <fmt/format.h>

#include <filesystem>

namespace micro::store {

namespace fs = std::filesystem;

namespace {

// Whether `path` is `root` or inside it; both canonical.
bool Within(const fs::path& path, const fs::path& root) {
  auto [root_end, path_it] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

}  // namespace

Result<std::string> SnapshotPath(const std::string& root, const std::string& requested) {
  if (requested.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("give the snapshot a name, such as 'nightly'; it is written inside {}", root));
  }
  const fs::path given(requested);
  for (const fs::path& part : given) {
    if (part == "..") {
      return absl::InvalidArgumentError(fmt::format(
          "snapshot path '{}' has a '..'; snapshots are written inside {}", requested, root));
    }
  }
  std::error_code ec;
  fs::create_directories(root, ec);
  if (!ec) fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace, ec);
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot create the snapshot folder {}: {}; check store.snapshot_dir", root, ec.message()));
  }
  fs::path target = (given.is_absolute() ? given : fs::path(root) / given).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  // The parent must exist; resolving it follows every symlink on the way.
  const fs::path parent = fs::canonical(target.parent_path(), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("the folder of snapshot '{}' does not exist: {}", requested, ec.message()));
  }
  const fs::path resolved = parent / target.filename();
  if (!Within(parent, canonical_root) || resolved == canonical_root) {
    return absl::PermissionDeniedError(fmt::format(
        "snapshot path '{}' is outside the snapshot folder {}; give a name inside it (such as "
        "'nightly') or set store.snapshot_dir",
        requested, canonical_root.string()));
  }
  if (fs::symlink_status(resolved, ec).type() != fs::file_type::not_found) {
    return absl::InvalidArgumentError(fmt::format(
        "snapshot {} already exists; give a new name or delete the old one", resolved.string()));
  }
  return resolved.string();
}

}  // namespace micro::store
