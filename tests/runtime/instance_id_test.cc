// Instance ids (driver ids, cgroup folders, container names) and log folder names.
#include "runtime/instance_id.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/names.h"
#include "runtime/manifest.h"

namespace micro::runtime {
namespace {

TEST_CASE("a dotted name and a dotted version no longer share an instance id",
          "[runtime][instance_id]") {
  const std::string a = InstanceId("micro", "api.v2", "1", "0");
  const std::string b = InstanceId("micro", "api", "v2.1", "0");
  CHECK(a != b);
  CHECK(a == "micro.api_.v2.1.0");
  CHECK(b == "micro.api.v2.1.0");
}

TEST_CASE("plain names keep the ids they always had", "[runtime][instance_id]") {
  CHECK(InstanceId("micro", "web", "latest", "0") == "micro.web.latest.0");
  CHECK(InstanceId("team-a", "web-api", "1.2.3", "build4") == "team-a.web-api.1.2.3.build4");
}

TEST_CASE("every valid (namespace, name, version, index) gets its own instance id",
          "[runtime][instance_id]") {
  // Every name and version of up to four characters over the letters that matter: the
  // separators and escapes, and one ordinary character.
  const std::string name_chars = "a._-";
  const std::string version_chars = "a._-+p";
  auto all = [](const std::string& chars, size_t max_len, bool name) {
    std::vector<std::string> out;
    std::vector<std::string> frontier{""};
    for (size_t len = 1; len <= max_len; ++len) {
      std::vector<std::string> next;
      for (const std::string& prefix : frontier) {
        for (char c : chars) next.push_back(prefix + c);
      }
      for (const std::string& s : next) {
        if (CheckName("x", s, 64, name ? Charset::kName : Charset::kVersion).ok()) {
          out.push_back(s);
        }
      }
      frontier = std::move(next);
    }
    return out;
  };
  const std::vector<std::string> names = all(name_chars, 4, true);
  const std::vector<std::string> versions = all(version_chars, 3, false);
  REQUIRE(names.size() > 50);
  REQUIRE(versions.size() > 200);
  std::set<std::string> seen;
  size_t count = 0;
  for (const char* ns : {"micro", "a"}) {
    for (const std::string& name : names) {
      for (const std::string& version : versions) {
        for (const char* index : {"0", "1", "build1"}) {
          const std::string id = InstanceId(ns, name, version, index);
          ++count;
          CHECK(seen.insert(id).second);
          CHECK(id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_.-") == std::string::npos);
        }
      }
    }
  }
  CHECK(seen.size() == count);
}

TEST_CASE("the longest names and versions still give short, distinct ids",
          "[runtime][instance_id]") {
  const std::string ns(63, 'n');
  const std::string name = "a" + std::string(kMaxServiceNameBytes - 1, '.');
  const std::string version(kMaxVersionBytes, '+');
  const std::string version2 = std::string(kMaxVersionBytes - 1, '+') + "_";
  const std::string a = InstanceId(ns, name, version, "build123456789");
  const std::string b = InstanceId(ns, name, version2, "build123456789");
  CHECK(a.size() <= kMaxInstanceIdBytes);
  CHECK(b.size() <= kMaxInstanceIdBytes);
  CHECK(a != b);
  CHECK(a.rfind(ns + ".a", 0) == 0);
  // A long id never equals a short one: "_h" occurs only in the long form.
  CHECK(a.find("_h") != std::string::npos);
  CHECK(InstanceId("micro", "h", "h", "0").find("_h") == std::string::npos);
}

TEST_CASE("the versions '.' and '..' get log folders of their own", "[runtime][instance_id]") {
  CHECK(LogFolderOfVersion("1.0") == "1.0");
  CHECK(LogFolderOfVersion("...") == "...");
  CHECK(LogFolderOfVersion(".") != ".");
  CHECK(LogFolderOfVersion("..") != "..");
  CHECK(LogFolderOfVersion(".") != LogFolderOfVersion(".."));
  for (const char* v : {".", "..", "...", "1.0", "latest"}) {
    CHECK(VersionOfLogFolder(LogFolderOfVersion(v)) == v);
  }
}

}  // namespace
}  // namespace micro::runtime
