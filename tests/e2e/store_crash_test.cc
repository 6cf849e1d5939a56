// Durability: every write the daemon acknowledged survives `kill -9` of the daemon.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "micro/store/v1/store.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

namespace v1 = micro::store::v1;

// A daemon on `data_dir` (reused across rounds), its address read from a fresh server.json.
struct Daemon {
  explicit Daemon(const std::string& data_dir) {
    std::filesystem::remove(data_dir + "/server.json");  // left behind by a killed daemon
    process = std::make_unique<ChildProcess>(
        std::vector<std::string>{MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir",
                                 data_dir, "--log-level", "warn"});
    const bool up = WaitFor(
        [&] {
          std::ifstream in(data_dir + "/server.json");
          auto json = nlohmann::json::parse(in, nullptr, false);
          if (json.is_discarded() || !json.contains("grpc_address")) return false;
          address = json["grpc_address"].get<std::string>();
          return true;
        },
        std::chrono::seconds(15));
    REQUIRE(up);
    stub = v1::Store::NewStub(AuthedChannel(address, AdminToken(data_dir, address)));
  }
  std::unique_ptr<ChildProcess> process;
  std::string address;
  std::unique_ptr<v1::Store::Stub> stub;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return context;
}

TEST_CASE("acknowledged writes survive kill -9 of the daemon, round after round",
          "[e2e][store][crash]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  std::map<std::string, std::string> acknowledged;  // across all rounds
  std::mt19937 random(std::random_device{}());
  constexpr int kRounds = 4;
  constexpr int kWriters = 8;
  for (int round = 0; round < kRounds; ++round) {
    Daemon daemon(data_dir);
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        for (int i = 0; !stop && i < 100000; ++i) {
          v1::WriteRequest request;
          request.set_database("crash");
          const std::string key = fmt::format("r{}-w{}-{}", round, w, i);
          request.mutable_record()->set_key(key);
          request.mutable_record()->set_value(key + "/" + std::string(64 + i % 64, 'x'));
          v1::WriteResponse response;
          if (!daemon.stub->Write(Context().get(), request, &response).ok()) return;
          std::lock_guard lock(mu);
          acknowledged[key] = request.record().value();
        }
      });
    }
    // Kill at a random moment while the writers are busy.
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 900)(random)));
    ::kill(daemon.process->pid(), SIGKILL);
    CHECK(daemon.process->Wait(std::chrono::seconds(10)) == -1);
    stop = true;
    for (auto& t : writers) t.join();
  }
  INFO(acknowledged.size() << " acknowledged writes");
  REQUIRE(acknowledged.size() > 100);

  Daemon daemon(data_dir);
  size_t missing = 0;
  size_t wrong = 0;
  for (const auto& [key, value] : acknowledged) {
    v1::ReadRequest request;
    request.set_database("crash");
    request.set_key(key);
    v1::ReadResponse response;
    grpc::Status status = daemon.stub->Read(Context().get(), request, &response);
    if (!status.ok()) {
      ++missing;
    } else if (response.records(0).value() != value) {
      ++wrong;
    }
  }
  CHECK(missing == 0);
  CHECK(wrong == 0);
  CHECK(daemon.process->Stop(SIGTERM) == 0);
}

}  // namespace
}  // namespace micro::testing
