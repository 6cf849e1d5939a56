// The service manager's readiness protocol (server/notify.h): the datagram itself, and the real
// daemon sending READY=1 once it serves and STOPPING=1 when it begins to stop.
#include "server/notify.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <random>

#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

// A bound unix datagram socket standing in for systemd's notification socket: `name` is a path,
// or an abstract name when it starts with '@' (as NOTIFY_SOCKET spells it).
class NotifyListener {
 public:
  explicit NotifyListener(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(name_.size() < sizeof(address.sun_path));
    std::memcpy(address.sun_path, name_.data(), name_.size());
    if (name_[0] == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() +
                                               (name_[0] == '@' ? 0 : 1));
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0);
  }
  ~NotifyListener() { ::close(fd_); }

  const std::string& name() const { return name_; }

  // The next datagram, or "" if none arrives within `timeout`.
  std::string Receive(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }

 private:
  std::string name_;
  int fd_ = -1;
};

std::string AbstractName() {
  std::random_device random;
  return "@micro-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(random());
}

TEST_CASE("READY=1 reaches a socket named by a path", "[notify]") {
  TempDir dir;
  NotifyListener listener(dir.path() + "/notify.sock");
  REQUIRE(server::NotifyServiceManager(listener.name(), "READY=1").ok());
  CHECK(listener.Receive() == "READY=1");
}

TEST_CASE("READY=1 reaches an abstract socket named with '@'", "[notify]") {
  NotifyListener listener(AbstractName());
  REQUIRE(server::NotifyServiceManager(listener.name(), "READY=1").ok());
  CHECK(listener.Receive() == "READY=1");
  REQUIRE(server::NotifyServiceManager(listener.name(), "STOPPING=1").ok());
  CHECK(listener.Receive() == "STOPPING=1");
}

TEST_CASE("no NOTIFY_SOCKET means nothing is sent and no error", "[notify]") {
  CHECK(server::NotifyServiceManager("", "READY=1").ok());
}

TEST_CASE("an unusable NOTIFY_SOCKET is an error that names it", "[notify]") {
  TempDir dir;
  const std::string missing = dir.path() + "/nobody-listens.sock";
  Status s = server::NotifyServiceManager(missing, "READY=1");
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(s.message()), Catch::Contains(missing));

  s = server::NotifyServiceManager("relative.sock", "READY=1");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.message()), Catch::Contains("relative.sock"));

  s = server::NotifyServiceManager("/" + std::string(200, 'x'), "READY=1");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("the daemon sends READY=1 once it serves and STOPPING=1 at SIGTERM", "[notify][e2e]") {
  NotifyListener listener(AbstractName());
  MicroDaemon daemon({}, {{"NOTIFY_SOCKET", listener.name()}});
  REQUIRE(listener.Receive() == "READY=1");
  // Ready means serving: server.json, which clients read, is already written.
  CHECK(std::filesystem::exists(daemon.data_dir() + "/server.json"));
  REQUIRE(daemon.WaitUntilServing());
  CHECK(daemon.Cli({"health"}).exit_code == 0);
  CHECK(daemon.process().Stop(SIGTERM, std::chrono::seconds(30)) == 0);
  CHECK(listener.Receive() == "STOPPING=1");
}

}  // namespace
}  // namespace micro::testing
