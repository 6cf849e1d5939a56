// Durability of events: publishers and consumers running, `kill -9` of the daemon, restart.
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
#include <set>
#include <thread>

#include "micro/events/v1/events.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

namespace v1 = micro::events::v1;

constexpr const char* kTopic = "crash";
const char* const kGroups[] = {"g1", "g2"};

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
    stub = v1::Events::NewStub(AuthedChannel(address, AdminToken(data_dir, address)));
  }
  std::unique_ptr<ChildProcess> process;
  std::string address;
  std::unique_ptr<v1::Events::Stub> stub;
};

// What the consumers saw, across rounds.
struct Seen {
  std::mutex mu;
  std::map<std::string, std::set<uint64_t>> received;             // group -> sequences
  std::map<std::string, std::map<int, uint64_t>> first_of_round;  // group -> round -> lowest
};

// One consumer: reads, records, acknowledges, until the stream ends or `stop`.
void Consume(Daemon& daemon, const std::string& group, int round, Seen& seen,
             std::atomic<bool>& stop, grpc::ClientContext& context) {
  auto stream = daemon.stub->Consume(&context);
  v1::ConsumeRequest sub;
  sub.mutable_subscription()->set_topic(kTopic);
  sub.mutable_subscription()->set_group(group);
  sub.mutable_subscription()->set_start_sequence(1);
  sub.mutable_subscription()->set_ack_wait_ms(2000);
  if (!stream->Write(sub)) return;
  v1::Event event;
  while (!stop && stream->Read(&event)) {
    {
      std::lock_guard lock(seen.mu);
      seen.received[group].insert(event.sequence());
      auto [it, inserted] = seen.first_of_round[group].emplace(round, event.sequence());
      if (!inserted) it->second = std::min(it->second, event.sequence());
    }
    v1::ConsumeRequest ack;
    ack.mutable_ack()->set_id(event.id());
    ack.mutable_ack()->set_success(true);
    if (!stream->Write(ack)) break;
  }
}

TEST_CASE("acknowledged events survive kill -9 and every group gets every one of them",
          "[e2e][events][crash]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  std::map<uint64_t, std::string> acknowledged;  // sequence -> payload, across rounds
  Seen seen;
  size_t reused = 0;  // sequences acknowledged twice
  std::mt19937 random(std::random_device{}());
  constexpr int kRounds = 4;
  constexpr int kPublishers = 4;
  for (int round = 0; round < kRounds; ++round) {
    Daemon daemon(data_dir);
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    for (const char* group : kGroups) {
      for (int c = 0; c < 2; ++c) {
        contexts.push_back(std::make_unique<grpc::ClientContext>());
        grpc::ClientContext* context = contexts.back().get();
        threads.emplace_back(
            [&, group, context] { Consume(daemon, group, round, seen, stop, *context); });
      }
    }
    for (int p = 0; p < kPublishers; ++p) {
      threads.emplace_back([&, p] {
        for (int i = 0; !stop && i < 100000; ++i) {
          v1::PublishRequest request;
          request.set_topic(kTopic);
          request.set_payload(fmt::format("r{}-p{}-{}", round, p, i));
          v1::PublishResponse response;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          if (!daemon.stub->Publish(&context, request, &response).ok()) return;
          std::lock_guard lock(mu);
          // Catch2 assertions are not thread-safe: count here, check after the join.
          if (!acknowledged.emplace(response.sequence(), request.payload()).second) ++reused;
        }
      });
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 1200)(random)));
    ::kill(daemon.process->pid(), SIGKILL);
    CHECK(daemon.process->Wait(std::chrono::seconds(10)) == -1);
    stop = true;
    for (auto& context : contexts) context->TryCancel();
    for (auto& t : threads) t.join();
  }
  INFO(acknowledged.size() << " acknowledged events");
  CHECK(reused == 0);
  REQUIRE(acknowledged.size() > 100);

  Daemon daemon(data_dir);
  // No acknowledged event is lost, and each has the payload it was published with.
  size_t missing = 0, wrong = 0;
  uint64_t next = 1;
  std::map<uint64_t, std::string> stored;
  for (;;) {
    v1::ReadRequest read;
    read.set_topic(kTopic);
    read.set_start_sequence(next);
    v1::ReadResponse page;
    grpc::ClientContext context;
    REQUIRE(daemon.stub->Read(&context, read, &page).ok());
    if (page.events_size() == 0) break;
    for (const auto& e : page.events()) stored[e.sequence()] = e.payload();
    next = page.events(page.events_size() - 1).sequence() + 1;
  }
  for (const auto& [sequence, payload] : acknowledged) {
    auto it = stored.find(sequence);
    if (it == stored.end()) {
      ++missing;
    } else if (it->second != payload) {
      ++wrong;
    }
  }
  CHECK(missing == 0);
  CHECK(wrong == 0);

  // Every group gets every acknowledged event at least once (the last round drains).
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (const char* group : kGroups) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    grpc::ClientContext* context = contexts.back().get();
    threads.emplace_back(
        [&, group, context] { Consume(daemon, group, kRounds, seen, stop, *context); });
  }
  const bool all = WaitFor(
      [&] {
        std::lock_guard lock(seen.mu);
        for (const char* group : kGroups) {
          for (const auto& [sequence, payload] : acknowledged) {
            if (seen.received[group].count(sequence) == 0) return false;
          }
        }
        return true;
      },
      std::chrono::seconds(60));
  CHECK(all);
  stop = true;
  for (auto& context : contexts) context->TryCancel();
  for (auto& t : threads) t.join();

  // A group's position never goes back: the lowest sequence a round starts with (the stored
  // position, as nothing is in memory after a restart) never decreases from round to round.
  std::lock_guard lock(seen.mu);
  for (const char* group : kGroups) {
    uint64_t previous = 0;
    for (const auto& [round, lowest] : seen.first_of_round[group]) {
      INFO("group " << group << " round " << round << " starts at " << lowest);
      CHECK(lowest >= previous);
      previous = lowest;
    }
  }
  CHECK(daemon.process->Stop(SIGTERM) == 0);
}

}  // namespace
}  // namespace micro::testing
