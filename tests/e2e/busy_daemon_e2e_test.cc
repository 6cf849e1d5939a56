// A crashed instance is restarted promptly while the daemon is busy with everything that used to
// run on its event loop or hold a shared lock: expiring records (the TTL sweep), snapshots,
// settings writes in many namespaces, deploys and deletes (the runtime's synced writes) and
// whole-table scans. The restart path runs on the event loop, so a loop held by any of them
// shows here as a restart that waits.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "micro/config/v1/config.grpc.pb.h"
#include "micro/runtime/v1/runtime.grpc.pb.h"
#include "micro/store/v1/store.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;

// How long a restart may take under this load. An idle daemon restarts a crashed instance with
// no backoff in a few milliseconds; a loop blocked behind fsyncs or scans takes far longer.
constexpr auto kRestartBound = 2s;

int RunningPid(const MicroDaemon& daemon, const std::string& name) {
  ProgramResult result = daemon.Cli({"status", name, "--output", "json"});
  if (result.exit_code != 0) return -1;
  auto status = nlohmann::json::parse(result.out, nullptr, false);
  if (status.is_discarded() || status["services"].empty()) return -1;
  for (const auto& instance : status["services"][0]["instances"]) {
    if (instance.value("status", "") == "STATUS_RUNNING") return instance.value("pid", -1);
  }
  return -1;
}

// Background load through the public API from a few client threads, bounded in time and count.
class Load {
 public:
  explicit Load(const MicroDaemon& daemon) : channel_(daemon.Channel()) {
    Spawn([this](int i) { WriteExpiring(i); });
    Spawn([this](int i) { SetSettings(i); });
    Spawn([this](int i) { Snapshot(i); });
    Spawn([this](int i) { Deploy(i); });
    Spawn([this](int i) { Scan(i); });
  }
  ~Load() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
  }
  int64_t calls() const { return calls_; }

 private:
  static constexpr int kMaxCallsPerThread = 20'000;

  template <typename F>
  void Spawn(F body) {
    threads_.emplace_back([this, body] {
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      for (int i = 0; i < kMaxCallsPerThread && !stop_; ++i) {
        if (std::chrono::steady_clock::now() > deadline) return;
        body(i);
        ++calls_;
      }
    });
  }
  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + 10s);
    return context;
  }

  // Records of 4 KiB that expire after a second: the sweep always has work.
  void WriteExpiring(int i) {
    micro::store::v1::WriteRequest request;
    request.set_table("busy");
    request.mutable_record()->set_key("k" + std::to_string(i % 5000));
    request.mutable_record()->set_value(std::string(4096, 'x'));
    request.mutable_record()->set_ttl_seconds(1);
    micro::store::v1::WriteResponse response;
    (void)store_->Write(Context().get(), request, &response);
  }
  void SetSettings(int i) {
    micro::config::v1::SetRequest request;
    request.set_namespace_("busy-" + std::to_string(i % 8));
    request.set_path("busy.n");
    request.set_value(std::to_string(i));
    auto context = Context();
    micro::config::v1::SetResponse response;
    (void)config_->Set(context.get(), request, &response);
  }
  void Snapshot(int i) {
    micro::store::v1::SnapshotRequest request;
    request.set_dir("busy-" + std::to_string(i % 3) + "-" + std::to_string(i));
    micro::store::v1::SnapshotResponse response;
    (void)store_->Snapshot(Context().get(), request, &response);
  }
  void Deploy(int i) {
    const std::string name = "churn-" + std::to_string(i % 4);
    micro::runtime::v1::CreateRequest create;
    create.mutable_service()->set_name(name);
    auto* options = create.mutable_options();
    options->set_command("/bin/sleep");
    options->add_args("300");
    micro::runtime::v1::CreateResponse created;
    (void)runtime_->Create(Context().get(), create, &created);
    micro::runtime::v1::DeleteRequest remove;
    remove.set_name(name);
    micro::runtime::v1::DeleteResponse removed;
    (void)runtime_->Delete(Context().get(), remove, &removed);
  }
  void Scan(int) {
    micro::store::v1::ReadRequest request;
    request.set_table("busy");
    request.set_key("9");
    request.set_suffix(true);
    micro::store::v1::ReadResponse response;
    (void)store_->Read(Context().get(), request, &response);
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<micro::store::v1::Store::Stub> store_ =
      micro::store::v1::Store::NewStub(channel_);
  std::unique_ptr<micro::config::v1::Config::Stub> config_ =
      micro::config::v1::Config::NewStub(channel_);
  std::unique_ptr<micro::runtime::v1::Runtime::Stub> runtime_ =
      micro::runtime::v1::Runtime::NewStub(channel_);
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> calls_{0};
  std::vector<std::thread> threads_;
};

TEST_CASE("a crashed instance restarts promptly while the daemon is busy", "[e2e][busy]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir dir;
  const std::string manifest = dir.path() + "/micro.yaml";
  std::ofstream(manifest) << "name: victim\ncommand: /bin/sleep\nargs: [\"300\"]\n"
                             "backoff:\n  initial: 0s\n";
  REQUIRE(daemon.Cli({"run", manifest}).exit_code == 0);
  int pid = -1;
  REQUIRE(WaitFor([&] { return (pid = RunningPid(daemon, "victim")) > 0; }, 10s));

  Load load(daemon);
  REQUIRE(WaitFor([&] { return load.calls() > 200; }, 20s));
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int next = -1;
    CHECK(WaitFor([&] { return (next = RunningPid(daemon, "victim")) > 0 && next != pid; },
                  kRestartBound));
    if (next <= 0 || next == pid) break;
    pid = next;
  }
  CHECK(daemon.process().running());
}

}  // namespace
}  // namespace micro::testing
