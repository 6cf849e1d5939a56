// The store's budgets against a real daemon: the read budget under a hostile client, and the
// quota and a full disk on a small tmpfs.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "micro/store/v1/store.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;
namespace v1 = micro::store::v1;

std::unique_ptr<v1::Store::Stub> Stub(const MicroDaemon& daemon) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a hostile client takes whatever the daemon sends
  return v1::Store::NewStub(daemon.Channel(args));
}

grpc::Status Write(v1::Store::Stub& stub, const std::string& key, std::string value) {
  v1::WriteRequest request;
  request.mutable_record()->set_key(key);
  request.mutable_record()->set_value(std::move(value));
  v1::WriteResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  return stub.Write(&context, request, &response);
}

grpc::Status Delete(v1::Store::Stub& stub, const std::string& key) {
  v1::DeleteRequest request;
  request.set_key(key);
  v1::DeleteResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  return stub.Delete(&context, request, &response);
}

// The documented bound (docs/store.md, "Limits"): with 1,000 records of 1 MiB stored and eight
// clients asking for all of them at once, again and again, the daemon stays under 512 MiB.
constexpr int64_t kReadRssBound = 512LL << 20;

TEST_CASE("reading 1,000 records of 1 MiB at once keeps the daemon's memory bounded",
          "[e2e][store][budget]") {
  MicroDaemon daemon({}, RssMeasuredEnv());
  REQUIRE(daemon.WaitUntilServing());
  std::vector<std::thread> writers;
  std::atomic<int> failed{0};
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      auto stub = Stub(daemon);
      for (int i = w; i < 1000; i += 4) {
        char key[16];
        std::snprintf(key, sizeof key, "big/%04d", i);
        if (!Write(*stub, key, std::string(1 << 20, static_cast<char>('a' + i % 26))).ok()) {
          ++failed;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  REQUIRE(failed == 0);

  std::atomic<bool> reading{true};
  std::atomic<int> pages{0};
  std::atomic<int> biggest_page{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 8; ++r) {
    readers.emplace_back([&] {
      auto stub = Stub(daemon);
      for (int round = 0; round < 5; ++round) {
        v1::ReadRequest request;
        request.set_key("big/");
        request.set_prefix(true);
        request.set_limit(1000);
        v1::ReadResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + 60s);
        if (!stub->Read(&context, request, &response).ok()) continue;
        ++pages;
        int size = static_cast<int>(response.ByteSizeLong());
        if (size > biggest_page) biggest_page = size;
      }
    });
  }
  int64_t peak = 0;
  std::thread sampler([&] {
    while (reading) {
      peak = std::max(peak, ResidentBytes(daemon.process().pid()));
      std::this_thread::sleep_for(5ms);
    }
  });
  for (auto& t : readers) t.join();
  reading = false;
  sampler.join();
  INFO("peak RSS " << (peak >> 20) << " MiB");
  CHECK(pages == 40);
  CHECK(biggest_page <= 4 << 20);  // fits gRPC's default 4 MiB client limit
  CHECK(peak > 0);
  CHECK(peak < kReadRssBound);
}

// A tmpfs of `size` at `path`, unmounted at the end. Mounting needs root: without it the test
// fails, saying so, rather than skipping.
class Tmpfs {
 public:
  Tmpfs(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    ProgramResult mount =
        RunProgram({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path});
    mounted_ = mount.exit_code == 0;
    error_ = mount.err;
  }
  ~Tmpfs() {
    if (mounted_) RunProgram({"/usr/bin/umount", "-l", path_});
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

TEST_CASE("on a small disk the quota refuses writes before the disk fills, and deletes work",
          "[e2e][store][quota]") {
  TempDir dir;
  Tmpfs disk(dir.path() + "/disk", "24m");
  if (!disk.mounted()) FAIL("cannot mount a 24 MiB tmpfs (this test needs root): " << disk.error());
  MicroDaemon daemon(
      {"--data-dir", dir.path() + "/disk/data", "--store-quota-bytes", std::to_string(4 << 20)});
  REQUIRE(daemon.WaitUntilServing());
  auto stub = Stub(daemon);

  int written = 0;
  grpc::Status status;
  while (written < 100 &&
         (status = Write(*stub, "k" + std::to_string(written), std::string(256 << 10, 'v'))).ok()) {
    ++written;
  }
  INFO(status.error_message());
  CHECK(written == 15);  // 16 x 256 KiB with keys is just over 4 MiB
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(status.error_message().find("store.quota_bytes") != std::string::npos);
  for (int i = 0; i < 3; ++i) {
    CHECK(Write(*stub, "more", std::string(256 << 10, 'v')).error_code() ==
          grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  ProgramResult health = daemon.Cli({"health"});
  CHECK(health.exit_code == 0);
  CHECK(health.out.find("ALARM: store: the store's quota is reached") != std::string::npos);

  REQUIRE(Delete(*stub, "k0").ok());
  REQUIRE(Delete(*stub, "k1").ok());
  CHECK(Write(*stub, "more", std::string(256 << 10, 'v')).ok());
  CHECK(daemon.Cli({"health"}).out.find("ALARM") == std::string::npos);

  daemon.process().Stop(SIGTERM);
  const std::string log = daemon.process().Stderr();
  size_t refusals = 0;
  for (size_t at = log.find("writes are refused"); at != std::string::npos;
       at = log.find("writes are refused", at + 1)) {
    ++refusals;
  }
  CHECK(refusals == 1);  // logged once, not once per refused write
  CHECK(log.find("writes are accepted again") != std::string::npos);
}

TEST_CASE("after the disk fills up, the store resumes writing by itself once space is back",
          "[e2e][store][quota]") {
  TempDir dir;
  Tmpfs disk(dir.path() + "/disk", "24m");
  if (!disk.mounted()) FAIL("cannot mount a 24 MiB tmpfs (this test needs root): " << disk.error());
  MicroDaemon daemon({"--data-dir", dir.path() + "/disk/data", "--store-quota-bytes", "0"});
  REQUIRE(daemon.WaitUntilServing());
  auto stub = Stub(daemon);
  REQUIRE(Write(*stub, "before", "v").ok());
  REQUIRE(Write(*stub, "k0", "v").ok());

  // Fill the disk from outside, as another program would.
  const std::string filler = dir.path() + "/disk/filler";
  {
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    const std::string block(64 << 10, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  }
  grpc::Status full;
  for (int i = 0;
       i < 400 && (full = Write(*stub, "k" + std::to_string(i), std::string(64 << 10, 'v'))).ok();
       ++i) {
  }
  INFO(full.error_message());
  CHECK(full.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(full.error_message().find("disk is nearly full") != std::string::npos);
  CHECK(Delete(*stub, "k0").ok());  // deletes go on, to free space
  CHECK(daemon.Cli({"health"}).out.find("ALARM: store:") != std::string::npos);

  std::filesystem::remove(filler);
  CHECK(WaitFor([&] { return Write(*stub, "after", "v").ok(); }, 20s));
  CHECK(Delete(*stub, "before").ok());
  CHECK(daemon.Cli({"health"}).out.find("ALARM") == std::string::npos);
  CHECK(daemon.process().running());
}

}  // namespace
}  // namespace micro::testing
