// micro.broker.v1.Broker on the wire: codes, namespaces from metadata, both delivery streams,
// the streaming publish, stream caps and drop counts.
#include "services/broker/broker_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <new>
#include <set>
#include <stdexcept>

#include "micro/broker/v1/broker.grpc.pb.h"
#include "services/broker/memory_broker.h"
#include "tests/support/in_process_server.h"

namespace micro::broker {
namespace {

using Code = grpc::StatusCode;

Limits WithAccount(Limits limits, StreamBytes* account) {
  limits.stream_bytes = account;
  return limits;
}

struct Harness {
  explicit Harness(Limits limits = {}) : broker(WithAccount(limits, &contexts.stream_bytes())) {}

  CallContexts contexts;
  MemoryBroker broker;
  BrokerService service{broker, contexts};
  testing::InProcessServer server{contexts, {&service}};
  std::unique_ptr<v1::Broker::Stub> stub = v1::Broker::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& ns = "", int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  if (!ns.empty()) context->AddMetadata("micro-namespace", ns);
  return context;
}

v1::PublishRequest Request(const std::string& topic, const std::string& body,
                           std::map<std::string, std::string> header = {}) {
  v1::PublishRequest request;
  request.set_topic(topic);
  request.mutable_message()->set_body(body);
  request.mutable_message()->mutable_header()->insert(header.begin(), header.end());
  return request;
}

grpc::Status Publish(Harness& h, const v1::PublishRequest& request, const std::string& ns = "") {
  v1::PublishResponse response;
  return h.stub->Publish(Context(ns).get(), request, &response);
}

// An open Subscribe stream whose subscription is in place (headers received).
struct Subscribed {
  Subscribed(Harness& h, const std::string& topic, const std::string& queue = "",
             const std::string& ns = "")
      : context(Context(ns, 60)) {
    v1::SubscribeRequest request;
    request.set_topic(topic);
    request.set_queue(queue);
    reader = h.stub->Subscribe(context.get(), request);
    reader->WaitForInitialMetadata();
  }
  ~Subscribed() {
    if (finished) return;
    context->TryCancel();
    v1::Message ignored;
    while (reader->Read(&ignored)) {
    }
    (void)reader->Finish();
  }
  // Finish may be called once per call.
  grpc::Status Finish() {
    finished = true;
    return reader->Finish();
  }
  bool finished = false;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::Message>> reader;
};

grpc::Status RefusedSubscribe(Harness& h, const std::string& topic, const std::string& queue = "",
                              const std::string& ns = "") {
  auto context = Context(ns);
  v1::SubscribeRequest request;
  request.set_topic(topic);
  request.set_queue(queue);
  auto reader = h.stub->Subscribe(context.get(), request);
  v1::Message message;
  CHECK_FALSE(reader->Read(&message));
  return reader->Finish();
}

TEST_CASE("a published message reaches a subscriber with topic, header and body", "[broker][rpc]") {
  Harness h;
  Subscribed sub(h, "orders.*");
  REQUIRE(Publish(h, Request("orders.created", std::string("b\0dy", 4), {{"k", "v"}})).ok());
  v1::Message message;
  REQUIRE(sub.reader->Read(&message));
  CHECK(message.topic() == "orders.created");
  CHECK(message.body() == std::string("b\0dy", 4));
  CHECK(message.header().at("k") == "v");
  CHECK(message.header().count(kDroppedHeader) == 0);
}

TEST_CASE("Publish takes the topic from message.topic when the request's is empty",
          "[broker][rpc]") {
  Harness h;
  Subscribed sub(h, "t");
  v1::PublishRequest request = Request("", "x");
  request.mutable_message()->set_topic("t");
  REQUIRE(Publish(h, request).ok());
  v1::Message message;
  REQUIRE(sub.reader->Read(&message));
  CHECK(message.topic() == "t");
}

TEST_CASE("bad input over the wire is INVALID_ARGUMENT naming the field and the limit",
          "[broker][rpc]") {
  Harness h;
  const auto invalid = [](const grpc::Status& s, const std::string& words) {
    INFO(s.error_message());
    CHECK(s.error_code() == Code::INVALID_ARGUMENT);
    CHECK(s.error_message().find(words) != std::string::npos);
  };
  invalid(Publish(h, Request("a.*", "x")), "wildcard");
  invalid(Publish(h, Request("", "x")), "topic is empty");
  invalid(Publish(h, Request("t", std::string((1 << 20) + 1, 'x'))), "the limit is 1048576");
  invalid(Publish(h, Request("t", "x", {{"k", std::string(5000, 'v')}})), "the limit is 4096");
  invalid(Publish(h, Request("t", "x", {{"micro-dropped", "1"}})), "reserved");
  invalid(RefusedSubscribe(h, "a.>.b"), "'>' may only be the last token");
  invalid(RefusedSubscribe(h, "t", "no spaces"), "queue 'no spaces'");
  invalid(Publish(h, Request("t", "x"), "Bad_NS"), "namespace 'Bad_NS' is not valid");

  auto context = Context();
  v1::SubscribeBatchesRequest request;
  request.set_topic("t");
  request.set_max_messages(5000);
  auto reader = h.stub->SubscribeBatches(context.get(), request);
  v1::MessageBatch batch;
  CHECK_FALSE(reader->Read(&batch));
  invalid(reader->Finish(), "max_messages is 5000; use 1 to 4096");
}

TEST_CASE("the micro-namespace metadata isolates topics", "[broker][rpc]") {
  Harness h;
  Subscribed team_a(h, "t", "", "team-a");
  Subscribed team_b(h, "t", "", "team-b");
  REQUIRE(Publish(h, Request("t", "for-b"), "team-b").ok());
  REQUIRE(Publish(h, Request("t", "for-a"), "team-a").ok());
  v1::Message message;
  REQUIRE(team_a.reader->Read(&message));
  CHECK(message.body() == "for-a");
  REQUIRE(team_b.reader->Read(&message));
  CHECK(message.body() == "for-b");
}

TEST_CASE("queue group members over the wire share the messages", "[broker][rpc]") {
  Harness h;
  Subscribed w1(h, "jobs", "workers");
  Subscribed w2(h, "jobs", "workers");
  Subscribed plain(h, "jobs");
  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) REQUIRE(Publish(h, Request("jobs", std::to_string(i))).ok());
  v1::Message message;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(plain.reader->Read(&message));
    CHECK(message.body() == std::to_string(i));
  }
  // Round robin over two members: each gets half, and together all of them once.
  std::set<std::string> seen;
  for (int i = 0; i < kMessages / 2; ++i) {
    REQUIRE(w1.reader->Read(&message));
    seen.insert(message.body());
    REQUIRE(w2.reader->Read(&message));
    seen.insert(message.body());
  }
  CHECK(seen.size() == kMessages);
}

TEST_CASE("PublishStream publishes every message of every batch and answers the count",
          "[broker][rpc]") {
  Harness h;
  auto context = Context("", 60);
  v1::SubscribeBatchesRequest subscribe;
  subscribe.set_topic("fast.>");
  subscribe.set_max_messages(100);
  auto batches = h.stub->SubscribeBatches(context.get(), subscribe);
  batches->WaitForInitialMetadata();

  auto publish_context = Context();
  v1::PublishStreamResponse response;
  auto writer = h.stub->PublishStream(publish_context.get(), &response);
  constexpr int kBatches = 20, kPerBatch = 50;
  for (int b = 0; b < kBatches; ++b) {
    v1::PublishBatch batch;
    for (int i = 0; i < kPerBatch; ++i) {
      *batch.add_requests() = Request("fast.x", std::to_string(b * kPerBatch + i));
    }
    REQUIRE(writer->Write(batch));
  }
  REQUIRE(writer->WritesDone());
  REQUIRE(writer->Finish().ok());
  CHECK(response.published() == kBatches * kPerBatch);

  int received = 0;
  v1::MessageBatch batch;
  while (received < kBatches * kPerBatch && batches->Read(&batch)) {
    CHECK(batch.messages_size() <= 100);
    CHECK(batch.dropped() == 0);
    for (const v1::Message& m : batch.messages()) {
      CHECK(m.body() == std::to_string(received));  // in order
      ++received;
    }
  }
  CHECK(received == kBatches * kPerBatch);
  context->TryCancel();
}

TEST_CASE("PublishStream stops at the first bad message and says how many went before it",
          "[broker][rpc]") {
  Harness h;
  auto context = Context();
  v1::PublishStreamResponse response;
  auto writer = h.stub->PublishStream(context.get(), &response);
  v1::PublishBatch batch;
  *batch.add_requests() = Request("ok", "1");
  *batch.add_requests() = Request("ok", "2");
  *batch.add_requests() = Request("not..ok", "3");
  writer->Write(batch);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  CHECK(status.error_code() == Code::INVALID_ARGUMENT);
  CHECK(status.error_message().find("message 3 of the stream") != std::string::npos);
  CHECK(status.error_message().find("the 2 before it were published") != std::string::npos);
}

TEST_CASE("streams past max_streams are refused with RESOURCE_EXHAUSTED", "[broker][rpc]") {
  Harness h;
  h.contexts.streams().set_max(2);
  Subscribed one(h, "a");
  auto context = Context("", 60);
  v1::PublishStreamResponse response;
  auto publisher = h.stub->PublishStream(context.get(), &response);  // the second slot
  v1::PublishBatch batch;
  *batch.add_requests() = Request("a", "x");
  REQUIRE(publisher->Write(batch));  // the stream is in place once its first batch went through
  v1::Message message;
  REQUIRE(one.reader->Read(&message));

  grpc::Status refused = RefusedSubscribe(h, "b");
  CHECK(refused.error_code() == Code::RESOURCE_EXHAUSTED);
  CHECK(refused.error_message().find("max_streams") != std::string::npos);
  auto refused_context = Context();
  v1::PublishStreamResponse refused_response;
  auto refused_publisher = h.stub->PublishStream(refused_context.get(), &refused_response);
  refused_publisher->WritesDone();
  CHECK(refused_publisher->Finish().error_code() == Code::RESOURCE_EXHAUSTED);

  publisher->WritesDone();
  REQUIRE(publisher->Finish().ok());
  CHECK(response.published() == 1);
}

TEST_CASE("a subscriber that stopped reading sees how many messages it lost", "[broker][rpc]") {
  Limits limits;
  limits.subscriber_buffer_bytes = 64 << 10;
  Harness h(limits);
  Subscribed stalled(h, "t");
  constexpr int kMessages = 3000;  // 3 MB: past the buffer and what gRPC holds in flight
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(Publish(h, Request("t", std::string(1000, 'x'))).ok());
  }
  // What was buffered comes through, and the first message taken after the losses carries
  // their count in the micro-dropped header: every message is either delivered or counted.
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  v1::Message message;
  while (delivered + dropped < kMessages && stalled.reader->Read(&message)) {
    ++delivered;
    if (auto it = message.header().find(kDroppedHeader); it != message.header().end()) {
      dropped += std::stoull(it->second);
    }
  }
  INFO("delivered " << delivered << ", dropped " << dropped);
  CHECK(dropped > 0);
  CHECK(delivered + dropped == kMessages);
  CHECK(h.contexts.stream_bytes().used() == 0);
  // Read again, the subscriber gets new messages with no stale count.
  REQUIRE(Publish(h, Request("t", "after")).ok());
  REQUIRE(stalled.reader->Read(&message));
  CHECK(message.body() == "after");
  CHECK(message.header().count(kDroppedHeader) == 0);
}

TEST_CASE("a subscription ends with UNAVAILABLE when the broker closes for shutdown",
          "[broker][rpc]") {
  Harness h;
  Subscribed sub(h, "t");
  h.broker.CloseSubscriptions();
  v1::Message message;
  CHECK_FALSE(sub.reader->Read(&message));
  grpc::Status status = sub.Finish();
  CHECK(status.error_code() == Code::UNAVAILABLE);
  CHECK(status.error_message().find("shutting down") != std::string::npos);
}

// A broker whose every call throws, as a backend with a bug would.
class ThrowingBroker final : public Broker {
 public:
  Status Publish(const std::string&, Message) override {
    throw std::runtime_error("the broker caught fire");
  }
  Result<std::unique_ptr<Subscription>> Subscribe(const std::string&, const std::string&,
                                                  const std::string&,
                                                  std::function<void()>) override {
    throw std::bad_alloc();
  }
  void CloseSubscriptions() override {}
  BrokerStats Stats() const override { return {}; }
};

TEST_CASE("an exception in the broker ends the call with a status, never escapes",
          "[broker][rpc]") {
  CallContexts contexts;
  ThrowingBroker broker;
  BrokerService service{broker, contexts};
  testing::InProcessServer server{contexts, {&service}};
  auto stub = v1::Broker::NewStub(server.channel());

  v1::PublishResponse published;
  grpc::Status unary = stub->Publish(Context().get(), Request("t", "x"), &published);
  CHECK(unary.error_code() == Code::INTERNAL);
  CHECK(unary.error_message().find("the broker caught fire") != std::string::npos);

  auto context = Context();
  v1::SubscribeRequest request;
  request.set_topic("t");
  auto reader = stub->Subscribe(context.get(), request);
  v1::Message message;
  CHECK_FALSE(reader->Read(&message));
  CHECK(reader->Finish().error_code() == Code::RESOURCE_EXHAUSTED);  // bad_alloc

  auto stream_context = Context();
  v1::PublishStreamResponse response;
  auto writer = stub->PublishStream(stream_context.get(), &response);
  v1::PublishBatch batch;
  *batch.add_requests() = Request("t", "x");
  writer->Write(batch);
  writer->WritesDone();
  grpc::Status streamed = writer->Finish();
  CHECK(streamed.error_code() == Code::INTERNAL);
  CHECK(streamed.error_message().find("the broker caught fire") != std::string::npos);
}

}  // namespace
}  // namespace micro::broker
