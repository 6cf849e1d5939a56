#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace micro::runtime {

// Names that the drivers, cgroups and the container engine see are built from a service's
// (namespace, name, version) and a suffix (the instance index, "build3", ...). They are
// injective: two different services never share one, whatever their valid names and versions.

// Instance ids never get longer than this (a cgroup folder name must fit NAME_MAX, 255).
inline constexpr size_t kMaxInstanceIdBytes = 200;

// `NS.NAME.VERSION.SUFFIX`, readable and the same as the plain join for the common case. In
// NAME, '.' is written "_." and '_' "__"; in VERSION, '_' is "__" and '+' is "_p". The result
// holds only [A-Za-z0-9_.-] and starts with the namespace's first character. It can be read
// back: the namespace ends at the first '.', the name at the next '.' not escaped by '_', the
// suffix (which holds no '.' or '_') after the last '.', and the version is what lies between.
// An id that would be longer than kMaxInstanceIdBytes becomes `NS.PREFIX_hHASH.SUFFIX`, where
// HASH is 32 hex digits of SHA-256 over name and version ("_h" never occurs in the long form).
// `suffix` must be non-empty and hold only [A-Za-z0-9-] (it is not escaped).
std::string InstanceId(std::string_view ns, std::string_view name, std::string_view version,
                       std::string_view suffix);

// The folder name under LOGS_DIR/NS/NAME/ for `version`: the version itself, except "." and
// "..", which would name the folder itself or its parent: they become "%2E" and "%2E%2E"
// ('%' never occurs in a version). VersionOfLogFolder is the inverse.
std::string LogFolderOfVersion(std::string_view version);
std::string VersionOfLogFolder(std::string_view folder);

}  // namespace micro::runtime
