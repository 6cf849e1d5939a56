// Docker Engine calls against an engine that accepts connections and never answers.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>

#include "runtime/container/container_driver.h"
#include "runtime/container/docker_client.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using Catch::Matchers::Contains;
using namespace std::chrono_literals;

// A unix socket that listens and never accepts: connections queue, requests go unanswered.
class SilentEngine {
 public:
  SilentEngine() : path_(dir_.path() + "/docker.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(fd_, 64) == 0;
  }
  ~SilentEngine() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  micro::testing::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

// Runs `call` on a thread; a call that hangs fails the test instead of the whole run (the
// client's Shutdown then frees the thread).
template <typename Call>
auto Bounded(DockerClient& client, Call call) {
  auto result = std::async(std::launch::async, call);
  if (result.wait_for(30s) != std::future_status::ready) {
    client.Shutdown();
    FAIL("the engine call did not return within 30 s");
  }
  return result.get();
}

TEST_CASE("engine calls to a socket that never answers fail at the deadline",
          "[runtime][container]") {
  SilentEngine engine;
  REQUIRE(engine.ok());
  DockerClient client(engine.path(), 300ms);
  const Status ping = Bounded(client, [&] { return client.Ping(); });
  CHECK(absl::IsDeadlineExceeded(ping));
  CHECK_THAT(std::string(ping.message()), Contains(engine.path()));
  CHECK_THAT(std::string(ping.message()), Contains("did not answer within 300 ms"));
  const Status inspect = Bounded(client, [&] { return client.Inspect("x").status(); });
  CHECK(absl::IsDeadlineExceeded(inspect));
  const Status kill = Bounded(client, [&] { return client.Kill("x", 9); });
  CHECK(absl::IsDeadlineExceeded(kill));
}

TEST_CASE("a socket nobody listens on is UNAVAILABLE at once", "[runtime][container]") {
  micro::testing::TempDir dir;
  DockerClient client(dir.path() + "/none.sock", 300ms);
  const Status ping = client.Ping();
  CHECK(absl::IsUnavailable(ping));
  CHECK_THAT(std::string(ping.message()), Contains("cannot reach the Docker engine"));
}

}  // namespace
}  // namespace micro::runtime
