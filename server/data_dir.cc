#include "server/data_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace micro::server {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

Status ErrnoStatus(const std::string& what, int err) {
  std::string message = fmt::format("{}: {}", what, std::strerror(err));
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace

Result<std::unique_ptr<DataDir>> DataDir::Open(const std::string& path) {
  std::error_code ec;
  const bool created = std::filesystem::create_directories(path, ec);
  if (ec) {
    return ErrnoStatus(fmt::format("cannot create data dir {}", path), ec.value());
  }
  if (created) {
    // Keys and state will live here: readable by its owner only, whatever the umask.
    std::filesystem::permissions(path, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::FailedPreconditionError(fmt::format("data dir {} is not a directory", path));
  }
  const std::string lock_path = path + "/micro.lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoStatus(fmt::format("data dir {} is not writable", path), errno);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = ReadSmallFile(lock_path);
      return absl::FailedPreconditionError(fmt::format(
          "data dir {} is in use by another micro server (pid {}); stop it or pass another "
          "--data-dir",
          path, pid.empty() ? "unknown" : pid));
    }
    return ErrnoStatus(fmt::format("cannot lock {}", lock_path), err);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(fmt::format("data dir {} is not writable", path), err);
  }
  return std::unique_ptr<DataDir>(new DataDir(path, fd));
}

int DataDir::LockHolder(const std::string& path) {
  const std::string lock_path = path + "/micro.lock";
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  if (!held) return 0;
  const std::string pid = ReadSmallFile(lock_path);
  return std::atoi(pid.c_str());
}

DataDir::~DataDir() {
  std::error_code ec;
  std::filesystem::remove(path_ + "/server.json", ec);
  ::close(lock_fd_);  // drops the flock
}

Status DataDir::WriteFile(const std::string& name, const std::string& contents) const {
  const std::string final_path = path_ + "/" + name;
  const std::string temp_path = final_path + ".tmp";
  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(fmt::format("cannot write {}", temp_path), errno);
  const bool written =
      ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  const int err = errno;
  ::close(fd);
  if (!written) return ErrnoStatus(fmt::format("cannot write {}", temp_path), err);
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus(fmt::format("cannot rename {} to {}", temp_path, final_path), errno);
  }
  return absl::OkStatus();
}

}  // namespace micro::server
