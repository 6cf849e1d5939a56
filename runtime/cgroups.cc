#include "runtime/cgroups.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace micro::runtime {
namespace {

namespace fs = std::filesystem;

// This process's cgroup path per v1 controller, and "" for the v2 one, from /proc/self/cgroup.
std::map<std::string, std::string> OwnCgroups() {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream controllers(line.substr(a + 1, b - a - 1));
    const std::string path = line.substr(b + 1);
    std::string c;
    if (line.substr(a + 1, b - a - 1).empty()) out[""] = path;
    while (std::getline(controllers, c, ',')) out[c] = path;
  }
  return out;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// Makes `dir` (and parents); true if it exists and we may create children in it.
bool MakeDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  return fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool HasWord(const std::string& text, const std::string& word) {
  std::stringstream words(text);
  std::string w;
  while (words >> w) {
    if (w == word) return true;
  }
  return false;
}

// cgroup v2 enables a controller for a cgroup's children only while the cgroup itself holds no
// process. A daemon given a cgroup of its own (systemd's Delegate=yes, a container's cgroup
// namespace) sits in it, so it first moves into a leaf, `<own>/micro-daemon`, and then enables
// pids and memory below `own`. Returns what is missing, or "" when the controllers are on.
std::string EnableV2Controllers(const std::string& own) {
  const std::string available = ReadFile(own + "/cgroup.controllers");
  std::string missing;
  for (const char* controller : {"pids", "memory"}) {
    if (!HasWord(available, controller))
      missing += std::string(missing.empty() ? "" : ", ") + controller;
  }
  if (!missing.empty()) return missing + " not delegated";
  if (WriteFile(own + "/cgroup.subtree_control", "+pids +memory")) return "";
  // The root cgroup may hold processes and still enable controllers: a failure there is final.
  if (fs::path(own) == fs::path(own).root_path() || ::access(own.c_str(), W_OK) != 0) {
    return "cannot enable pids, memory in " + own;
  }
  const std::string leaf = own + "/micro-daemon";
  if (!MakeDir(leaf) || !WriteFile(leaf + "/cgroup.procs", std::to_string(::getpid())) ||
      !WriteFile(own + "/cgroup.subtree_control", "+pids +memory")) {
    return "cannot enable pids, memory in " + own + " (other processes share it)";
  }
  return "";
}

}  // namespace

std::unique_ptr<Cgroups> Cgroups::Detect(const std::string& supervisor_id) {
  const auto own = OwnCgroups();
  auto cgroups = std::unique_ptr<Cgroups>(new Cgroups());
  const std::string folder = "micro-" + supervisor_id;
  for (const char* controller : {"pids", "memory"}) {
    const std::string mount = std::string("/sys/fs/cgroup/") + controller;
    auto it = own.find(controller);
    if (it == own.end() || !fs::exists(mount + "/cgroup.procs")) continue;
    const std::string base =
        fs::path(mount + it->second).lexically_normal().string() + "/" + folder;
    if (!MakeDir(base)) continue;
    cgroups->hierarchies_.push_back({base, controller});
    if (std::string(controller) == "memory") cgroups->limits_memory_ = true;
  }
  if (!cgroups->hierarchies_.empty()) {
    cgroups->description_ = "cgroup v1 (";
    for (size_t i = 0; i < cgroups->hierarchies_.size(); ++i) {
      cgroups->description_ += (i ? ", " : "") + cgroups->hierarchies_[i].controller;
    }
    cgroups->description_ += ")";
    return cgroups;
  }
  // cgroup v2: mounted at /sys/fs/cgroup itself, or at /sys/fs/cgroup/unified in hybrid mode.
  auto v2 = own.find("");
  if (v2 == own.end()) return nullptr;
  for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (!fs::exists(std::string(mount) + "/cgroup.controllers")) continue;
    const std::string mine = fs::path(std::string(mount) + v2->second).lexically_normal().string();
    const std::string base = mine + "/" + folder;
    if (!MakeDir(base)) continue;
    // Limits need the controllers enabled below us. Without them the cgroups still hold and stop
    // every process of an instance, the memory limit falls back to RLIMIT_AS, and the log says so.
    const std::string missing = EnableV2Controllers(mine);
    if (missing.empty()) {
      cgroups->limits_memory_ = WriteFile(base + "/cgroup.subtree_control", "+pids +memory");
    }
    cgroups->hierarchies_.push_back({base, ""});
    cgroups->description_ =
        missing.empty() ? "cgroup v2" : "cgroup v2 (no limits: " + missing + ")";
    return cgroups;
  }
  return nullptr;
}

Cgroups::~Cgroups() {
  for (const Hierarchy& h : hierarchies_) ::rmdir(h.base.c_str());
}

Result<std::vector<std::string>> Cgroups::Create(const std::string& instance, int64_t memory_bytes,
                                                 int64_t max_processes) {
  std::vector<std::string> procs;
  for (const Hierarchy& h : hierarchies_) {
    const std::string dir = h.base + "/" + instance;
    if (!MakeDir(dir)) {
      return absl::FailedPreconditionError(fmt::format("cannot create cgroup {}", dir));
    }
    auto limit = [&](const std::string& file, int64_t value) -> Status {
      if (value <= 0 || !fs::exists(dir + "/" + file)) return absl::OkStatus();
      if (WriteFile(dir + "/" + file, std::to_string(value))) return absl::OkStatus();
      return absl::FailedPreconditionError(
          fmt::format("cannot set the limit {}/{} to {}", dir, file, value));
    };
    if (h.controller == "pids" || h.controller.empty()) {
      if (Status s = limit("pids.max", max_processes); !s.ok()) return s;
    }
    if (h.controller == "memory") {
      if (Status s = limit("memory.limit_in_bytes", memory_bytes); !s.ok()) return s;
    }
    if (h.controller.empty()) {
      if (Status s = limit("memory.max", memory_bytes); !s.ok()) return s;
    }
    procs.push_back(dir + "/cgroup.procs");
  }
  return procs;
}

std::vector<int> Cgroups::Pids(const std::string& instance) const {
  std::vector<int> pids;
  if (hierarchies_.empty()) return pids;
  std::ifstream in(hierarchies_[0].base + "/" + instance + "/cgroup.procs");
  int pid = 0;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

bool Cgroups::Remove(const std::string& instance) {
  bool all = true;
  for (const Hierarchy& h : hierarchies_) {
    const std::string dir = h.base + "/" + instance;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) all = false;
  }
  return all;
}

std::vector<std::string> Cgroups::Instances() const {
  std::vector<std::string> out;
  if (hierarchies_.empty()) return out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(hierarchies_[0].base, ec)) {
    if (entry.is_directory()) out.push_back(entry.path().filename().string());
  }
  return out;
}

}  // namespace micro::runtime
