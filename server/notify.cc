#include "server/notify.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace micro::server {

// The protocol is small and stable (sd_notify(3), "NOTIFY_SOCKET"), so it is written here
// rather than linking libsystemd for one call.
Status NotifyServiceManager(std::string_view socket, std::string_view state) {
  if (socket.empty()) return absl::OkStatus();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket[0] != '/' && socket[0] != '@') {
    return absl::InvalidArgumentError(fmt::format(
        "NOTIFY_SOCKET '{}' is neither a path nor an abstract socket ('@...')", socket));
  }
  if (socket.size() > sizeof(address.sun_path) - (socket[0] == '/' ? 1 : 0)) {
    return absl::InvalidArgumentError(fmt::format("NOTIFY_SOCKET '{}' is too long", socket));
  }
  std::memcpy(address.sun_path, socket.data(), socket.size());
  if (socket[0] == '@') address.sun_path[0] = '\0';  // abstract: the name is not NUL-terminated
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size() +
                                             (socket[0] == '/' ? 1 : 0));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(
        fmt::format("cannot notify {}: socket: {}", socket, std::strerror(errno)));
  }
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address), length);
  const int error = errno;
  ::close(fd);
  if (sent < 0) {
    return absl::UnavailableError(
        fmt::format("cannot notify {} of {}: {}", socket, state, std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace micro::server
