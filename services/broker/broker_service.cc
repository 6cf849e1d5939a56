#include "services/broker/broker_service.h"

#include <fmt/format.h>

#include <optional>
#include <string>

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"
#include "rpc/watch_stream.h"

namespace micro::broker {
namespace {

// The topic of a publish is the request's; a client that set only message.topic means that one.
Message FromProto(const v1::PublishRequest& request) {
  Message message;
  message.topic = request.topic().empty() ? request.message().topic() : request.topic();
  for (const auto& [key, value] : request.message().header()) message.header.emplace(key, value);
  message.body = request.message().body();
  return message;
}

// The same, taking the strings out of a request that is not needed afterwards.
Message FromProto(v1::PublishRequest* request) {
  Message message;
  message.topic = std::move(request->topic().empty() ? *request->mutable_message()->mutable_topic()
                                                     : *request->mutable_topic());
  for (const auto& [key, value] : request->message().header()) message.header.emplace(key, value);
  message.body = std::move(*request->mutable_message()->mutable_body());
  return message;
}

void ToProto(const Message& message, v1::Message* out) {
  out->set_topic(message.topic);
  for (const auto& [key, value] : message.header) (*out->mutable_header())[key] = value;
  out->set_body(message.body);
}

// A subscription as WatchStream pumps it: each Next() is what one gRPC message carries.
class Deliveries {
 public:
  Deliveries(std::unique_ptr<Subscription> subscription, size_t max_messages)
      : subscription_(std::move(subscription)), max_messages_(max_messages) {}

  std::optional<Delivery> Next() {
    Delivery delivery;
    if (!subscription_->Take(max_messages_, BrokerService::kBatchBytes, &delivery)) {
      return std::nullopt;
    }
    return delivery;
  }
  Status status() const { return subscription_->status(); }

 private:
  std::unique_ptr<Subscription> subscription_;
  const size_t max_messages_;
};

using MessageStream = WatchStream<Deliveries, Delivery, v1::Message>;
using BatchStream = WatchStream<Deliveries, Delivery, v1::MessageBatch>;

// Reads PublishStream's batches and publishes each message in order. The first message the
// broker refuses ends the call with its error, naming its place in the stream; a client that
// half-closes gets the count.
class PublishReader final : public grpc::ServerReadReactor<v1::PublishBatch> {
 public:
  PublishReader(Broker& broker, const CallContexts& contexts, std::string ns,
                StreamSlots::Slot slot, v1::PublishStreamResponse* response)
      : broker_(&broker),
        contexts_(&contexts),
        ns_(std::move(ns)),
        slot_(std::move(slot)),
        response_(response) {
    StartRead(&batch_);
  }

  // Refuses the call with `error`.
  explicit PublishReader(const Status& error) { Finish(ToGrpc(error)); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away): the count is the answer
      response_->set_published(published_);
      Finish(grpc::Status::OK);
      return;
    }
    const Status published = Guarded([&] { return PublishBatch(); });
    if (!published.ok()) {
      Finish(ToGrpc(published));
      return;
    }
    batch_.Clear();
    StartRead(&batch_);
  }

  void OnDone() override { delete this; }

 private:
  Status PublishBatch() {
    if (contexts_->draining()) {
      return absl::UnavailableError(fmt::format(
          "the server is shutting down after {} messages of this stream; publish the rest to "
          "the next server",
          published_));
    }
    messages_.clear();
    messages_.reserve(static_cast<size_t>(batch_.requests_size()));
    for (v1::PublishRequest& request : *batch_.mutable_requests()) {
      messages_.push_back(FromProto(&request));
    }
    size_t published = 0;
    const Status s = broker_->PublishMany(ns_, messages_, &published);
    published_ += published;
    if (!s.ok()) {
      return Status(s.code(), fmt::format("message {} of the stream: {} (the {} before it were "
                                          "published)",
                                          published_ + 1, std::string(s.message()), published_));
    }
    return absl::OkStatus();
  }

  Broker* broker_ = nullptr;
  const CallContexts* contexts_ = nullptr;
  std::string ns_;
  StreamSlots::Slot slot_;  // freed with the reactor
  v1::PublishStreamResponse* response_ = nullptr;
  v1::PublishBatch batch_;
  std::vector<Message> messages_;  // the batch's messages, reused
  uint64_t published_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse*) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  return FinishUnary(context, broker_.Publish(call.ns, FromProto(*request)));
} catch (...) {
  return FailedUnary();
}

grpc::ServerWriteReactor<v1::Message>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new MessageStream(call.error);
  return new MessageStream(
      contexts_.streams(),
      [&](std::function<void()> notify) -> Result<std::unique_ptr<Deliveries>> {
        auto subscription =
            broker_.Subscribe(call.ns, request->topic(), request->queue(), std::move(notify));
        if (!subscription.ok()) return subscription.status();
        return std::make_unique<Deliveries>(std::move(*subscription), 1);
      },
      [](const Delivery& delivery, v1::Message* out) {
        ToProto(*delivery.messages.front(), out);
        if (delivery.dropped > 0) {
          (*out->mutable_header())[kDroppedHeader] = std::to_string(delivery.dropped);
        }
      });
} catch (...) {
  return FailedStream<MessageStream>();
}

grpc::ServerReadReactor<v1::PublishBatch>* BrokerService::PublishStream(
    grpc::CallbackServerContext* context, v1::PublishStreamResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new PublishReader(call.error);
  auto slot = contexts_.streams().Acquire();
  if (!slot.ok()) return new PublishReader(slot.status());
  return new PublishReader(broker_, contexts_, call.ns, std::move(*slot), response);
} catch (...) {
  return FailedStream<PublishReader>();
}

grpc::ServerWriteReactor<v1::MessageBatch>* BrokerService::SubscribeBatches(
    grpc::CallbackServerContext* context, const v1::SubscribeBatchesRequest* request) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new BatchStream(call.error);
  if (request->max_messages() > kMaxBatchMessages) {
    return new BatchStream(absl::InvalidArgumentError(
        fmt::format("max_messages is {}; use 1 to {} (0: {})", request->max_messages(),
                    kMaxBatchMessages, kDefaultBatchMessages)));
  }
  const size_t max_messages =
      request->max_messages() == 0 ? kDefaultBatchMessages : request->max_messages();
  return new BatchStream(
      contexts_.streams(),
      [&](std::function<void()> notify) -> Result<std::unique_ptr<Deliveries>> {
        auto subscription =
            broker_.Subscribe(call.ns, request->topic(), request->queue(), std::move(notify));
        if (!subscription.ok()) return subscription.status();
        return std::make_unique<Deliveries>(std::move(*subscription), max_messages);
      },
      [](const Delivery& delivery, v1::MessageBatch* out) {
        for (const auto& message : delivery.messages) ToProto(*message, out->add_messages());
        out->set_dropped(delivery.dropped);
      });
} catch (...) {
  return FailedStream<BatchStream>();
}

}  // namespace micro::broker
