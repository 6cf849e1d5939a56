// `micro events` against a real daemon, and a consumer that stops reading.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "micro/events/v1/events.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

namespace v1 = micro::events::v1;
constexpr int64_t kMiB = 1 << 20;

ProgramResult Events(const MicroDaemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), "events");
  return daemon.Cli(std::move(args));
}

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST_CASE("events through the CLI: publish, read, topics and consume with a group",
          "[e2e][events]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult first = Events(daemon, {"publish", "orders", "one", "-m", "k=v", "--id", "o-1"});
  CHECK(first.exit_code == 0);
  CHECK(first.out == "published sequence 1 id o-1\n");
  ProgramResult duplicate = Events(daemon, {"publish", "orders", "one", "--id", "o-1"});
  CHECK(duplicate.out == "duplicate of sequence 1 id o-1\n");
  ProgramResult second = Events(daemon, {"publish", "orders", "two", "-o", "json"});
  REQUIRE(second.exit_code == 0);
  CHECK(nlohmann::json::parse(second.out)["sequence"] == "2");

  ProgramResult read = Events(daemon, {"read", "orders", "-o", "json"});
  REQUIRE(read.exit_code == 0);
  auto events = nlohmann::json::parse(read.out)["events"];
  REQUIRE(events.size() == 2);
  CHECK(events[0]["payload"] == "b25l");  // proto JSON writes bytes as base64
  CHECK(events[0]["metadata"]["k"] == "v");
  ProgramResult table = Events(daemon, {"read", "orders", "--start-sequence", "2"});
  CHECK(table.out.find("SEQUENCE") == 0);
  CHECK(table.out.find("two") != std::string::npos);
  CHECK(table.out.find("one") == std::string::npos);

  ProgramResult topics = Events(daemon, {"topics", "-o", "json"});
  REQUIRE(topics.exit_code == 0);
  auto listed = nlohmann::json::parse(topics.out)["topics"];
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["name"] == "orders");
  CHECK(listed[0]["last_sequence"] == "2");

  ProgramResult consumed = Events(daemon, {"consume", "orders", "--group", "billing",
                                           "--start-sequence", "1", "--count", "2", "-o", "json"});
  REQUIRE(consumed.exit_code == 0);
  auto lines = JsonLines(consumed.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["sequence"] == "1");
  CHECK(lines[1]["sequence"] == "2");
  CHECK(lines[0]["delivery_count"] == 1);
  // The group's position is kept: it resumes with the next event.
  REQUIRE(Events(daemon, {"publish", "orders", "three"}).exit_code == 0);
  ProgramResult resumed =
      Events(daemon, {"consume", "orders", "--group", "billing", "--count", "1"});
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.out.rfind("3  ", 0) == 0);
  CHECK(resumed.out.find("three") != std::string::npos);
}

TEST_CASE("events retention through the CLI: a topic's own bounds, shown and applied",
          "[e2e][events]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult set =
      Events(daemon, {"retention", "audit", "--max-events", "2", "--max-age", "36h"});
  REQUIRE(set.exit_code == 0);
  CHECK(set.out.find("36h") != std::string::npos);
  CHECK(set.out.find("1073741824 (default)") != std::string::npos);  // max bytes: the default
  for (int i = 0; i < 5; ++i) REQUIRE(Events(daemon, {"publish", "audit", "x"}).exit_code == 0);
  // The trimmer runs once a second.
  REQUIRE(WaitFor(
      [&] {
        auto read = Events(daemon, {"read", "audit", "-o", "json"});
        return read.exit_code == 0 && nlohmann::json::parse(read.out)["events"].size() == 2;
      },
      std::chrono::seconds(10)));
  ProgramResult shown = Events(daemon, {"retention", "audit", "-o", "json"});
  REQUIRE(shown.exit_code == 0);
  auto json = nlohmann::json::parse(shown.out);
  CHECK(json["configured"]["max_events"] == "2");
  CHECK(json["retention"]["max_age_ms"] == "129600000");
  CHECK(!json["configured"].contains("max_bytes"));
  ProgramResult reset = Events(daemon, {"retention", "audit", "--reset", "-o", "json"});
  REQUIRE(reset.exit_code == 0);
  CHECK(nlohmann::json::parse(reset.out)["retention"]["max_age_ms"] == "604800000");

  CHECK(Events(daemon, {"retention"}).exit_code == 2);
  CHECK(Events(daemon, {"retention", "audit", "--max-age", "soon"}).exit_code == 2);
  CHECK(Events(daemon, {"retention", "audit", "--max-events", "-1"}).exit_code == 2);
  ProgramResult unknown = Events(daemon, {"retention", "nothing-here"});
  CHECK(unknown.exit_code == 3);  // not found
  CHECK(unknown.err.find("nothing-here") != std::string::npos);
}

TEST_CASE("events CLI usage errors exit 2 and bad input exits 1 naming the field",
          "[e2e][events]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  CHECK(Events(daemon, {}).exit_code == 2);
  CHECK(Events(daemon, {"nope"}).exit_code == 2);
  CHECK(Events(daemon, {"publish", "t"}).exit_code == 2);
  CHECK(Events(daemon, {"publish", "t", "x", "-m", "novalue"}).exit_code == 2);
  CHECK(Events(daemon, {"read"}).exit_code == 2);
  CHECK(Events(daemon, {"read", "t", "--limit", "5000"}).exit_code == 2);
  CHECK(Events(daemon, {"consume", "t", "--since", "1h", "--start-sequence", "3"}).exit_code == 2);
  CHECK(Events(daemon, {"consume", "t", "--since", "soon"}).exit_code == 2);
  CHECK(Events(daemon, {"consume", "t", "--max-in-flight", "5000"}).exit_code == 2);
  ProgramResult help = Events(daemon, {"consume", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--group") != std::string::npos);
  ProgramResult bad = Events(daemon, {"publish", "bad topic", "x"});
  CHECK(bad.exit_code == 2);  // usage
  CHECK(bad.err.find("INVALID_ARGUMENT") != std::string::npos);
  CHECK(bad.err.find("topic") != std::string::npos);
}

std::unique_ptr<grpc::ClientContext> Context(int seconds = 60) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

v1::ConsumeRequest Subscribe(const std::string& group, int64_t ack_wait_ms = 0) {
  v1::ConsumeRequest request;
  request.mutable_subscription()->set_topic("feed");
  request.mutable_subscription()->set_group(group);
  request.mutable_subscription()->set_start_sequence(1);
  request.mutable_subscription()->set_ack_wait_ms(ack_wait_ms);
  return request;
}

// Reads and acknowledges until it has `want` distinct sequences; returns how many it got.
size_t Drain(v1::Events::Stub& stub, const std::string& group, size_t want,
             int64_t ack_wait_ms = 0) {
  auto context = Context(120);
  auto stream = stub.Consume(context.get());
  stream->Write(Subscribe(group, ack_wait_ms));
  std::set<uint64_t> seen;
  v1::Event event;
  while (seen.size() < want && stream->Read(&event)) {
    seen.insert(event.sequence());
    v1::ConsumeRequest ack;
    ack.mutable_ack()->set_id(event.id());
    ack.mutable_ack()->set_success(true);
    stream->Write(ack);
  }
  context->TryCancel();
  return seen.size();
}

// The bound: the daemon's base (start-up footprint, RocksDB's memtables and block cache), the
// slow consumers' queues (4 MiB each at most) and gRPC's per-stream buffers. The base is 160 MiB
// (115 MiB peak measured in this test in all); under AddressSanitizer, whose shadow memory and
// allocator caches hold more, 376 MiB (424 MiB measured in all since the HTTP gateway and
// metrics, about 310 MiB of it base).
// RssMeasuredEnv is empty except under ASan.
constexpr int kSlowConsumers = 8;
int64_t BoundBytes() {
  const int64_t base = RssMeasuredEnv().empty() ? 160 * kMiB : 376 * kMiB;
  return base + kSlowConsumers * (4 + 4) * kMiB;
}

TEST_CASE("consumers that stop reading hold a bounded amount of memory and hold up no one",
          "[e2e][events][budget]") {
  MicroDaemon daemon({}, RssMeasuredEnv());
  REQUIRE(daemon.WaitUntilServing());
  auto channel = daemon.Channel();
  auto stub = v1::Events::NewStub(channel);
  // Slow consumers, each in a group of its own and one in the shared group: they subscribe and
  // never read.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<v1::ConsumeRequest, v1::Event>>> slow;
  for (int i = 0; i < kSlowConsumers; ++i) {
    contexts.push_back(Context(600));
    slow.push_back(stub->Consume(contexts.back().get()));
    slow.back()->Write(Subscribe(i == 0 ? "shared" : "slow-" + std::to_string(i), 1000));
  }
  constexpr int kEvents = 3000;
  v1::PublishRequest publish;
  publish.set_topic("feed");
  publish.set_payload(std::string(16 * 1024, 'p'));
  for (int i = 0; i < kEvents; ++i) {
    v1::PublishResponse done;
    REQUIRE(stub->Publish(Context().get(), publish, &done).ok());
  }
  // Another group reads everything; the fast member of the shared group gets everything too,
  // the slow member's share after its ack_wait.
  CHECK(Drain(*stub, "fast", kEvents) == kEvents);
  CHECK(Drain(*stub, "shared", kEvents, 1000) == kEvents);

  const int64_t rss = ResidentBytes(daemon.process().pid());
  INFO("daemon RSS " << rss / kMiB << " MiB; bound " << BoundBytes() / kMiB << " MiB");
  CHECK(rss > 0);
  CHECK(rss < BoundBytes());
  for (auto& context : contexts) context->TryCancel();
  for (auto& stream : slow) (void)stream->Finish();
}

}  // namespace
}  // namespace micro::testing
