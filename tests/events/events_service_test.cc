// micro.events.v1.Events on the wire: every error code, through the in-process channel.
#include "services/events/events_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include "micro/events/v1/events.grpc.pb.h"
#include "tests/events/events_harness.h"
#include "tests/support/in_process_server.h"

namespace micro::events::testing {
namespace {

using Code = grpc::StatusCode;
namespace v1 = micro::events::v1;

struct Wire {
  explicit Wire(uint64_t disk_reserve_bytes = 0) : h({0, 0, 0}, {}, disk_reserve_bytes) {}
  Harness h;
  CallContexts contexts;
  EventsService service{*h.events, contexts};
  micro::testing::InProcessServer server{contexts, {&service}};
  std::unique_ptr<v1::Events::Stub> stub = v1::Events::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& ns = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!ns.empty()) context->AddMetadata("micro-namespace", ns);
  return context;
}

grpc::Status Publish(Wire& w, const std::string& topic, const std::string& payload,
                     v1::PublishResponse* out = nullptr, const std::string& ns = "",
                     const std::string& id = "") {
  v1::PublishRequest request;
  request.set_topic(topic);
  request.set_payload(payload);
  request.set_id(id);
  v1::PublishResponse response;
  return w.stub->Publish(Context(ns).get(), request, out ? out : &response);
}

v1::ConsumeRequest Subscribe(const std::string& topic, const std::string& group,
                             uint64_t start = 1) {
  v1::ConsumeRequest request;
  request.mutable_subscription()->set_topic(topic);
  request.mutable_subscription()->set_group(group);
  request.mutable_subscription()->set_start_sequence(start);
  return request;
}

TEST_CASE("events wire: publish, read and topics, with their error codes", "[events][rpc]") {
  Wire w;
  v1::PublishResponse published;
  REQUIRE(Publish(w, "t", "hello", &published, "team-a", "id-1").ok());
  CHECK(published.sequence() == 1);
  CHECK(published.id() == "id-1");
  REQUIRE(Publish(w, "t", "again", &published, "team-a", "id-1").ok());
  CHECK(published.duplicate());
  CHECK(Publish(w, "bad topic", "x").error_code() == Code::INVALID_ARGUMENT);
  CHECK(Publish(w, "t", std::string((1 << 20) + 1, 'x')).error_code() == Code::INVALID_ARGUMENT);
  CHECK(Publish(w, "t", "x", nullptr, "Bad_NS").error_code() == Code::INVALID_ARGUMENT);

  v1::ReadRequest read;
  read.set_topic("t");
  v1::ReadResponse events;
  REQUIRE(w.stub->Read(Context("team-a").get(), read, &events).ok());
  REQUIRE(events.events_size() == 1);
  CHECK(events.events(0).payload() == "hello");
  CHECK(events.events(0).topic() == "t");
  events.Clear();
  REQUIRE(w.stub->Read(Context().get(), read, &events).ok());  // another namespace
  CHECK(events.events_size() == 0);
  read.set_topic("");
  CHECK(w.stub->Read(Context().get(), read, &events).error_code() == Code::INVALID_ARGUMENT);

  v1::TopicsResponse topics;
  REQUIRE(w.stub->Topics(Context("team-a").get(), v1::TopicsRequest(), &topics).ok());
  REQUIRE(topics.topics_size() == 1);
  CHECK(topics.topics(0).name() == "t");
  CHECK(topics.topics(0).last_sequence() == 1);
}

TEST_CASE("events wire: a nearly full disk is RESOURCE_EXHAUSTED", "[events][rpc]") {
  Wire w(UINT64_MAX);
  CHECK(Publish(w, "t", "x").error_code() == Code::RESOURCE_EXHAUSTED);
  v1::ConfigureRequest request;
  request.set_topic("t");
  request.mutable_retention()->set_max_events(5);
  v1::ConfigureResponse response;
  CHECK(w.stub->Configure(Context().get(), request, &response).error_code() ==
        Code::RESOURCE_EXHAUSTED);
}

TEST_CASE("events wire: configure sets a topic's retention, per namespace", "[events][rpc]") {
  Wire w;
  v1::ConfigureRequest request;
  request.set_topic("t");
  request.mutable_retention()->set_max_events(5);
  request.mutable_retention()->set_max_age_ms(0);
  v1::ConfigureResponse response;
  REQUIRE(w.stub->Configure(Context("team-a").get(), request, &response).ok());
  CHECK(response.retention().max_events() == 5);
  CHECK(response.retention().has_max_bytes());  // what applies: every field present
  CHECK(response.configured().has_max_events());
  CHECK(response.configured().has_max_age_ms());
  CHECK(!response.configured().has_max_bytes());

  v1::TopicsResponse topics;
  REQUIRE(w.stub->Topics(Context("team-a").get(), v1::TopicsRequest(), &topics).ok());
  REQUIRE(topics.topics_size() == 1);
  CHECK(topics.topics(0).configured().max_events() == 5);
  topics.Clear();
  REQUIRE(w.stub->Topics(Context().get(), v1::TopicsRequest(), &topics).ok());
  CHECK(topics.topics_size() == 0);  // another namespace

  request.mutable_retention()->set_max_age_ms(-5);
  CHECK(w.stub->Configure(Context().get(), request, &response).error_code() ==
        Code::INVALID_ARGUMENT);
  request.set_topic("bad topic");
  request.mutable_retention()->clear_max_age_ms();
  CHECK(w.stub->Configure(Context().get(), request, &response).error_code() ==
        Code::INVALID_ARGUMENT);
}

v1::PublishBatch Batch(const std::string& topic, int n, size_t payload_bytes = 8) {
  v1::PublishBatch batch;
  for (int i = 0; i < n; ++i) {
    v1::PublishRequest* request = batch.add_requests();
    request->set_topic(topic);
    request->set_payload(std::string(payload_bytes, 'p'));
  }
  return batch;
}

TEST_CASE("events wire: PublishStream answers each batch in order, an ack per event",
          "[events][rpc]") {
  Wire w;
  auto context = Context("team-a");
  auto stream = w.stub->PublishStream(context.get());
  REQUIRE(stream->Write(Batch("t", 100)));
  v1::PublishBatch mixed = Batch("t", 3);
  mixed.mutable_requests(1)->set_topic("bad topic");  // refused alone
  mixed.mutable_requests(2)->set_id("once");
  REQUIRE(stream->Write(mixed));
  v1::PublishBatch again = Batch("t", 1);
  again.mutable_requests(0)->set_id("once");
  REQUIRE(stream->Write(again));
  REQUIRE(stream->Write(v1::PublishBatch()));  // an empty batch gets an empty answer
  stream->WritesDone();

  v1::PublishAcks acks;
  REQUIRE(stream->Read(&acks));
  REQUIRE(acks.acks_size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(acks.acks(i).code() == 0);
    CHECK(acks.acks(i).sequence() == static_cast<uint64_t>(i + 1));
  }
  REQUIRE(stream->Read(&acks));
  REQUIRE(acks.acks_size() == 3);
  CHECK(acks.acks(0).sequence() == 101);
  CHECK(acks.acks(1).code() == static_cast<int>(Code::INVALID_ARGUMENT));
  CHECK(acks.acks(1).error().find("topic") != std::string::npos);
  CHECK(acks.acks(1).sequence() == 0);
  CHECK(acks.acks(2).sequence() == 102);
  CHECK(acks.acks(2).id() == "once");
  REQUIRE(stream->Read(&acks));
  REQUIRE(acks.acks_size() == 1);
  CHECK(acks.acks(0).duplicate());
  CHECK(acks.acks(0).sequence() == 102);
  REQUIRE(stream->Read(&acks));
  CHECK(acks.acks_size() == 0);
  CHECK_FALSE(stream->Read(&acks));
  CHECK(stream->Finish().ok());

  v1::TopicsResponse topics;
  REQUIRE(w.stub->Topics(Context("team-a").get(), v1::TopicsRequest(), &topics).ok());
  REQUIRE(topics.topics_size() == 1);
  CHECK(topics.topics(0).count() == 102);
  // The slot is freed with the reactor, just after the call ends.
  CHECK(micro::testing::WaitFor([&] { return w.contexts.streams().open() == 0; }, 10s));
  CHECK(w.contexts.stream_bytes().used() == 0);
}

TEST_CASE("events wire: PublishStream keeps the order of pipelined batches", "[events][rpc]") {
  Wire w;
  auto context = Context();
  auto stream = w.stub->PublishStream(context.get());
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i) stream->Write(Batch("t", 5));
    stream->WritesDone();
  });
  uint64_t expected = 1;
  bool ordered = true;
  v1::PublishAcks acks;
  while (stream->Read(&acks)) {
    for (const auto& ack : acks.acks()) ordered = ordered && ack.sequence() == expected++;
  }
  writer.join();
  CHECK(stream->Finish().ok());
  CHECK(ordered);
  CHECK(expected == 1501);
}

TEST_CASE("events wire: PublishStream refuses a batch over the limit, and ends when stopping",
          "[events][rpc]") {
  Wire w;
  SECTION("too many events in one batch") {
    auto context = Context();
    auto stream = w.stub->PublishStream(context.get());
    REQUIRE(stream->Write(Batch("t", 2)));
    stream->Write(Batch("t", EventsService::kMaxBatchEvents + 1));
    v1::PublishAcks acks;
    REQUIRE(stream->Read(&acks));  // the batch before is still answered
    CHECK(acks.acks_size() == 2);
    CHECK_FALSE(stream->Read(&acks));
    auto status = stream->Finish();
    CHECK(status.error_code() == Code::INVALID_ARGUMENT);
    CHECK(status.error_message().find("4096") != std::string::npos);
  }
  SECTION("a batch read while the daemon drains is refused, event by event") {
    auto context = Context("ns");
    auto stream = w.stub->PublishStream(context.get());
    REQUIRE(stream->Write(Batch("t", 1)));
    v1::PublishAcks acks;
    REQUIRE(stream->Read(&acks));
    CHECK(acks.acks(0).code() == 0);
    w.contexts.StartDraining();
    stream->Write(Batch("t", 2));
    REQUIRE(stream->Read(&acks));
    REQUIRE(acks.acks_size() == 2);
    CHECK(acks.acks(0).code() == static_cast<int>(Code::UNAVAILABLE));
    CHECK(stream->Finish().error_code() == Code::UNAVAILABLE);
    CHECK(w.h.ReadAll("t").size() == 1);
  }
  SECTION("no stream slot left") {
    w.contexts.streams().set_max(0);
    auto context = Context();
    auto stream = w.stub->PublishStream(context.get());
    stream->Write(Batch("t", 1));
    v1::PublishAcks acks;
    CHECK_FALSE(stream->Read(&acks));
    CHECK(stream->Finish().error_code() == Code::RESOURCE_EXHAUSTED);
  }
}

TEST_CASE("events wire: a PublishStream client that floods and reads no acks is held back",
          "[events][rpc]") {
  Wire w;
  constexpr int kBatches = 40;
  constexpr int kPerBatch = 16;
  constexpr size_t kPayload = 128 << 10;  // 2 MiB a batch
  auto context = Context("ns");
  auto stream = w.stub->PublishStream(context.get());
  const v1::PublishBatch batch = Batch("flood", kPerBatch, kPayload);
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < kBatches && stream->Write(batch); ++i) ++written;
    stream->WritesDone();
  });
  // Nobody reads the acks: once the stream holds its bound the daemon stops reading it, and the
  // writer blocks in gRPC's flow control.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const size_t held = w.contexts.stream_bytes().used();
  const int before = written;
  CHECK(held <= EventsService::kMaxBytesInFlight + batch.ByteSizeLong());
  CHECK(before < kBatches);
  INFO("held " << held << " bytes with " << before << " batches written");
  // Reading the acks lets it go on to the end.
  int answered = 0;
  v1::PublishAcks acks;
  while (stream->Read(&acks)) answered += acks.acks_size();
  writer.join();
  CHECK(stream->Finish().ok());
  CHECK(written == kBatches);
  CHECK(answered == kBatches * kPerBatch);
  CHECK(w.h.Topic("flood")->count == static_cast<uint64_t>(kBatches * kPerBatch));
  CHECK(w.contexts.stream_bytes().used() == 0);
}

TEST_CASE("events wire: consume delivers, takes acks, and refuses bad streams", "[events][rpc]") {
  Wire w;
  REQUIRE(Publish(w, "t", "one").ok());
  REQUIRE(Publish(w, "t", "two").ok());
  {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    REQUIRE(stream->Write(Subscribe("t", "g")));
    v1::Event event;
    REQUIRE(stream->Read(&event));
    CHECK(event.sequence() == 1);
    CHECK(event.delivery_count() == 1);
    v1::ConsumeRequest ack;
    ack.mutable_ack()->set_id(event.id());
    ack.mutable_ack()->set_success(true);
    REQUIRE(stream->Write(ack));
    REQUIRE(stream->Read(&event));
    CHECK(event.sequence() == 2);
    // A second subscription on the stream ends it.
    REQUIRE(stream->Write(Subscribe("t", "g")));
    while (stream->Read(&event)) {
    }
    CHECK(stream->Finish().error_code() == Code::INVALID_ARGUMENT);
  }
  SECTION("a new group without a start gets what is published once its headers arrive") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    REQUIRE(stream->Write(Subscribe("t", "from-now", 0)));
    stream->WaitForInitialMetadata();
    REQUIRE(Publish(w, "t", "three").ok());
    v1::Event event;
    REQUIRE(stream->Read(&event));
    CHECK(event.sequence() == 3);
    context->TryCancel();
  }
  SECTION("an ack before the subscription") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    v1::ConsumeRequest ack;
    ack.mutable_ack()->set_id("x");
    stream->Write(ack);
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    CHECK(stream->Finish().error_code() == Code::INVALID_ARGUMENT);
  }
  SECTION("an empty message") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    stream->Write(v1::ConsumeRequest());
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    CHECK(stream->Finish().error_code() == Code::INVALID_ARGUMENT);
  }
  SECTION("a stream closed before its subscription") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    stream->WritesDone();
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    CHECK(stream->Finish().error_code() == Code::INVALID_ARGUMENT);
  }
  SECTION("a bad subscription") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    auto sub = Subscribe("t", "g");
    sub.mutable_subscription()->set_start_unix_ms(5);  // and start_sequence 1
    stream->Write(sub);
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    auto status = stream->Finish();
    CHECK(status.error_code() == Code::INVALID_ARGUMENT);
    CHECK(status.error_message().find("start_sequence") != std::string::npos);
  }
  SECTION("no stream slot left") {
    w.contexts.streams().set_max(0);
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    stream->Write(Subscribe("t", "g"));
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    CHECK(stream->Finish().error_code() == Code::RESOURCE_EXHAUSTED);
  }
  SECTION("the service stopping ends consumers with UNAVAILABLE") {
    auto context = Context();
    auto stream = w.stub->Consume(context.get());
    stream->Write(Subscribe("t", "other", 10));
    REQUIRE(micro::testing::WaitFor([&] { return w.contexts.streams().open() == 1; }, 10s));
    w.h.events->CloseConsumers();
    v1::Event event;
    CHECK_FALSE(stream->Read(&event));
    CHECK(stream->Finish().error_code() == Code::UNAVAILABLE);
  }
}

}  // namespace
}  // namespace micro::events::testing
