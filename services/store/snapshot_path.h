#pragma once

#include <string>

#include "core/status.h"

namespace micro::store {

// Where a snapshot named `requested` may be written: inside `root`, the store's snapshot
// folder (created, mode 0700, if missing). `requested` is a path relative to `root` ("nightly",
// "2026/12/07" under an existing "2026/12"), or an absolute path inside it. Symlinks are
// resolved before the check, so none can lead out. Returns the absolute path to create.
// Errors: INVALID_ARGUMENT (empty, "..", something already there, a missing parent folder),
// PERMISSION_DENIED (outside `root`), FAILED_PRECONDITION (`root` cannot be created).
[[nodiscard]] Result<std::string> SnapshotPath(const std::string& root,
                                               const std::string& requested);

}  // namespace micro::store
