#include "services/events/events_service.h"

#include <fmt/format.h>

#include <deque>
#include <memory>
#include <mutex>

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"

namespace micro::events {
namespace {

void ToProto(const Event& in, v1::Event* out) {
  out->set_id(in.id);
  out->set_topic(in.topic);
  out->set_sequence(in.sequence);
  out->set_payload(in.payload);
  for (const auto& [k, v] : in.metadata) (*out->mutable_metadata())[k] = v;
  out->set_timestamp_unix_ms(in.timestamp_unix_ms);
  out->set_delivery_count(in.delivery_count);
}

void ToProto(const Retention& in, v1::Retention* out) {
  out->set_max_age_ms(in.max_age_ms);
  out->set_max_events(in.max_events);
  out->set_max_bytes(in.max_bytes);
}

void ToProto(const TopicRetention& in, v1::Retention* out) {
  if (in.max_age_ms) out->set_max_age_ms(*in.max_age_ms);
  if (in.max_events) out->set_max_events(*in.max_events);
  if (in.max_bytes) out->set_max_bytes(*in.max_bytes);
}

TopicRetention FromProto(const v1::Retention& in) {
  TopicRetention out;
  if (in.has_max_age_ms()) out.max_age_ms = in.max_age_ms();
  if (in.has_max_events()) out.max_events = in.max_events();
  if (in.has_max_bytes()) out.max_bytes = in.max_bytes();
  return out;
}

Subscription FromProto(const v1::Subscription& in) {
  Subscription out;
  out.topic = in.topic();
  out.group = in.group();
  out.start_sequence = in.start_sequence();
  out.start_unix_ms = in.start_unix_ms();
  out.auto_ack = in.auto_ack();
  out.ack_wait_ms = in.ack_wait_ms();
  out.retry_limit = in.retry_limit();
  out.dead_letter_topic = in.dead_letter_topic();
  out.max_in_flight = in.max_in_flight();
  return out;
}

// One consumer on a bidirectional stream: the first message subscribes, the next ones
// acknowledge. Events are written one at a time, each taken from the consumer when the previous
// write is done, so a client that stops reading holds at most the consumer's bounded queue.
class ConsumeReactor final : public grpc::ServerBidiReactor<v1::ConsumeRequest, v1::Event> {
 public:
  ConsumeReactor(Events& events, const CallContexts& contexts, grpc::CallbackServerContext* context)
      : events_(&events), slots_(&contexts.streams()) {
    call_ = contexts.Get(context);
    if (!call_.error.ok()) {
      std::lock_guard lock(mu_);
      FinishLocked(ToGrpc(call_.error));
      return;
    }
    StartRead(&request_);
  }

  // Refuses the call with `error`.
  explicit ConsumeReactor(const Status& error) {
    std::lock_guard lock(mu_);
    FinishLocked(ToGrpc(error));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side: the consumer is done (every ack it sent is processed, so
      // a client that waits for the end knows its acks arrived), or it went away.
      std::lock_guard lock(mu_);
      FinishLocked(consumer_ ? grpc::Status::OK
                             : ToGrpc(absl::InvalidArgumentError(
                                   "the stream ended before its first message, the subscription")));
      return;
    }
    const Status handled = Guarded([&] { return Handle(); });
    std::lock_guard lock(mu_);
    if (!handled.ok()) {
      FinishLocked(ToGrpc(handled));
      return;
    }
    if (!finished_) StartRead(&request_);
  }

  void OnSendInitialMetadataDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      live_ = ok;
    }
    if (ok) Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) FinishLocked(grpc::Status::CANCELLED);
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    std::unique_ptr<Consumer> consumer;  // leaves the group outside our lock
    {
      std::lock_guard lock(mu_);
      consumer = std::move(consumer_);
    }
    consumer.reset();
    delete this;
  }

 private:
  Status Handle() {
    if (request_.has_subscription()) {
      {
        std::lock_guard lock(mu_);
        if (subscribed_) {
          return absl::InvalidArgumentError(
              "a second subscription on one stream; only the first message subscribes");
        }
        subscribed_ = true;
      }
      auto slot = slots_->Acquire();
      if (!slot.ok()) return slot.status();
      auto consumer =
          events_->Consume(call_.ns, FromProto(request_.subscription()), [this] { Pump(); });
      if (!consumer.ok()) return consumer.status();
      std::lock_guard lock(mu_);
      slot_ = std::move(*slot);
      consumer_ = std::move(*consumer);
      SendHeadersIfAttachedLocked();
      return absl::OkStatus();
    }
    if (request_.has_ack()) {
      std::lock_guard lock(mu_);
      if (!consumer_) {
        return absl::InvalidArgumentError("the first message must be the subscription");
      }
      consumer_->Ack(request_.ack().id(), request_.ack().success());
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError("an empty message: send a subscription first, then acks");
  }

  // The headers tell the client its group has its start: events published after they arrive
  // reach the group (a new group without a start begins there).
  void SendHeadersIfAttachedLocked() {
    if (headers_ || finished_ || !consumer_->attached()) return;
    headers_ = true;
    StartSendInitialMetadata();
  }

  void Pump() {
    std::lock_guard lock(mu_);
    if (!consumer_ || finished_) return;
    if (!headers_) {
      SendHeadersIfAttachedLocked();
      if (!headers_) {
        if (Status status = consumer_->status(); !status.ok()) FinishLocked(ToGrpc(status));
        return;
      }
    }
    if (!live_ || writing_) return;
    std::optional<Event> event;
    const Status converted = Guarded([&] {
      event = consumer_->Next();
      if (event) {
        message_.Clear();
        ToProto(*event, &message_);
      }
      return absl::OkStatus();
    });
    if (!converted.ok()) {
      FinishLocked(ToGrpc(converted));
      return;
    }
    if (event) {
      writing_ = true;
      StartWrite(&message_);
      return;
    }
    if (Status status = consumer_->status(); !status.ok()) FinishLocked(ToGrpc(status));
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Events* events_ = nullptr;
  StreamSlots* slots_ = nullptr;
  CallContext call_;
  StreamSlots::Slot slot_;
  std::mutex mu_;
  std::unique_ptr<Consumer> consumer_;
  v1::ConsumeRequest request_;
  v1::Event message_;
  bool subscribed_ = false;
  bool headers_ = false;  // initial metadata started: the group is attached
  bool live_ = false;
  bool writing_ = false;
  bool finished_ = false;
};

// PublishStream: reads batches of events, hands every event to the backend at once (so the
// group commit takes many of them in one synced write), and writes each batch's acks once all
// of its events are answered, in the order of the batches. It reads the next batch only while
// the stream has room (kMaxBatches and kMaxBytes unanswered, and the daemon's stream byte
// budget not spent), so a client that floods, or stops reading its acks, holds a bounded amount.
// The reactor outlives OnDone until the backend has answered every event it was given.
class PublishStreamReactor final
    : public grpc::ServerBidiReactor<v1::PublishBatch, v1::PublishAcks> {
 public:
  PublishStreamReactor(Events& events, const CallContexts& contexts, std::string ns,
                       StreamSlots::Slot slot)
      : events_(&events), contexts_(&contexts), ns_(std::move(ns)), slot_(std::move(slot)) {
    std::lock_guard lock(mu_);
    reading_ = true;
    StartRead(&batch_);
  }

  // Refuses the call with `error`.
  explicit PublishStreamReactor(const Status& error) {
    std::lock_guard lock(mu_);
    finished_ = true;
    Finish(ToGrpc(error));
  }

  ~PublishStreamReactor() override {
    if (contexts_ != nullptr) contexts_->stream_bytes().Refund(bytes_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side (or went away): end after the last ack
      std::lock_guard lock(mu_);
      reading_ = false;
      EndLocked(grpc::Status::OK);
      return;
    }
    // The batch is taken out of batch_ under the lock; the next read starts once its events
    // are queued in the backend (submitting_), so sequences follow the order of the batches.
    v1::PublishBatch batch;
    auto pending = std::make_shared<Pending>();
    const bool draining = contexts_->draining();
    {
      std::lock_guard lock(mu_);
      batch.Swap(&batch_);
      reading_ = false;
      if (batch.requests_size() > EventsService::kMaxBatchEvents) {
        EndLocked(ToGrpc(absl::InvalidArgumentError(
            fmt::format("a batch of {} events; send at most {} per PublishBatch",
                        batch.requests_size(), EventsService::kMaxBatchEvents))));
        return;
      }
      pending->bytes = batch.ByteSizeLong();
      pending->remaining = batch.requests_size();
      for (int i = 0; i < batch.requests_size(); ++i) pending->acks.add_acks();
      queue_.push_back(pending);
      bytes_ += pending->bytes;
      contexts_->stream_bytes().Charge(pending->bytes);
      if (draining) {
        for (v1::PublishAck& ack : *pending->acks.mutable_acks()) {
          ack.set_code(static_cast<int>(absl::StatusCode::kUnavailable));
          ack.set_error("the server is shutting down; publish this event to the next server");
        }
        pending->remaining = 0;
        EndLocked(ToGrpc(absl::UnavailableError(
            "the server is shutting down; the events of the last batch were not stored")));
        WriteLocked();
        return;
      }
      outstanding_ += batch.requests_size();
      submitting_ = true;  // the next batch is read once this one is queued: order holds
    }
    for (int i = 0; i < batch.requests_size(); ++i) {
      v1::PublishRequest& request = *batch.mutable_requests(i);
      events_->Publish(ns_, request.topic(), std::move(*request.mutable_payload()),
                       Metadata(request.metadata().begin(), request.metadata().end()), request.id(),
                       [this, pending, i](Result<Published> published) {
                         Answered(*pending, i, std::move(published));
                       });
    }
    std::lock_guard lock(mu_);
    submitting_ = false;
    ReadMoreLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    const size_t bytes = queue_.front()->bytes;
    queue_.pop_front();
    bytes_ -= bytes;
    contexts_->stream_bytes().Refund(bytes);
    ReadMoreLocked();
    WriteLocked();
    if (ending_) EndLocked(end_status_);  // ends now if every ack is written
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    bool last;
    {
      std::lock_guard lock(mu_);
      done_ = true;
      last = outstanding_ == 0;
    }
    if (last) delete this;
  }

 private:
  struct Pending {
    v1::PublishAcks acks;
    int remaining = 0;  // events of the batch the backend has not answered yet
    size_t bytes = 0;
  };

  // The backend's answer for event `i` of a batch (on a backend thread, or inline when the
  // event is refused before it is queued).
  void Answered(Pending& pending, int i, Result<Published> published) {
    bool last;
    {
      std::lock_guard lock(mu_);
      v1::PublishAck& ack = *pending.acks.mutable_acks(i);
      if (published.ok()) {
        ack.set_id(published->id);
        ack.set_sequence(published->sequence);
        ack.set_duplicate(published->duplicate);
      } else {
        ack.set_code(static_cast<int>(published.status().code()));
        ack.set_error(std::string(published.status().message()));
      }
      --pending.remaining;
      --outstanding_;
      WriteLocked();
      last = done_ && outstanding_ == 0;
    }
    if (last) delete this;
  }

  bool RoomLocked() const {
    if (queue_.empty()) return true;  // one batch always: a stream is never stuck
    const StreamBytes& budget = contexts_->stream_bytes();
    return queue_.size() < EventsService::kMaxBatchesInFlight &&
           bytes_ < EventsService::kMaxBytesInFlight && budget.used() < budget.max();
  }

  void ReadMoreLocked() {
    if (reading_ || submitting_ || ending_ || finished_ || !RoomLocked()) return;
    reading_ = true;
    StartRead(&batch_);
  }

  void WriteLocked() {
    if (writing_ || finished_ || queue_.empty() || queue_.front()->remaining > 0) return;
    writing_ = true;
    StartWrite(&queue_.front()->acks);
  }

  // The stream ends with `status` once no read is pending and every ack is written.
  void EndLocked(const grpc::Status& status) {
    if (!ending_) {
      ending_ = true;
      end_status_ = status;
    }
    if (!reading_ && !writing_ && queue_.empty()) FinishLocked(end_status_);
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Events* events_ = nullptr;
  const CallContexts* contexts_ = nullptr;
  std::string ns_;
  StreamSlots::Slot slot_;
  v1::PublishBatch batch_;
  std::mutex mu_;
  std::deque<std::shared_ptr<Pending>> queue_;  // batches not yet acknowledged, in order
  size_t bytes_ = 0;                            // their request bytes
  int64_t outstanding_ = 0;                     // events the backend has not answered
  grpc::Status end_status_;
  bool reading_ = false;
  bool submitting_ = false;  // OnReadDone hands a batch's events to the backend
  bool writing_ = false;
  bool ending_ = false;
  bool finished_ = false;
  bool done_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* EventsService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  events_.Publish(call.ns, request->topic(), request->payload(),
                  Metadata(request->metadata().begin(), request->metadata().end()), request->id(),
                  [reactor, response](Result<Published> published) {
                    if (published.ok()) {
                      response->set_id(published->id);
                      response->set_sequence(published->sequence);
                      response->set_duplicate(published->duplicate);
                    }
                    reactor->Finish(ToGrpc(published.status()));
                  });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerBidiReactor<v1::PublishBatch, v1::PublishAcks>* EventsService::PublishStream(
    grpc::CallbackServerContext* context) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new PublishStreamReactor(call.error);
  auto slot = contexts_.streams().Acquire();
  if (!slot.ok()) return new PublishStreamReactor(slot.status());
  return new PublishStreamReactor(events_, contexts_, call.ns, std::move(*slot));
} catch (...) {
  return FailedStream<PublishStreamReactor>();
}

grpc::ServerBidiReactor<v1::ConsumeRequest, v1::Event>* EventsService::Consume(
    grpc::CallbackServerContext* context) try {
  return new ConsumeReactor(events_, contexts_, context);
} catch (...) {
  return FailedStream<ConsumeReactor>();
}

grpc::ServerUnaryReactor* EventsService::Read(grpc::CallbackServerContext* context,
                                              const v1::ReadRequest* request,
                                              v1::ReadResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  readers_.Submit([this, reactor, request, response, ns = call.ns] {
    const Status status = Guarded([&]() -> Status {
      auto events = events_.Read(ns, request->topic(), request->start_sequence(), request->limit());
      if (!events.ok()) return events.status();
      for (const Event& event : *events) ToProto(event, response->add_events());
      return absl::OkStatus();
    });
    reactor->Finish(ToGrpc(status));
  });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* EventsService::Topics(grpc::CallbackServerContext* context,
                                                const v1::TopicsRequest*,
                                                v1::TopicsResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  readers_.Submit([this, reactor, response, ns = call.ns] {
    const Status status = Guarded([&]() -> Status {
      auto topics = events_.Topics(ns);
      if (!topics.ok()) return topics.status();
      for (const TopicInfo& info : *topics) {
        v1::Topic* out = response->add_topics();
        out->set_name(info.name);
        out->set_first_sequence(info.first_sequence);
        out->set_last_sequence(info.last_sequence);
        out->set_count(info.count);
        out->set_bytes(info.bytes);
        ToProto(info.retention, out->mutable_retention());
        ToProto(info.own, out->mutable_configured());
      }
      return absl::OkStatus();
    });
    reactor->Finish(ToGrpc(status));
  });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* EventsService::Configure(grpc::CallbackServerContext* context,
                                                   const v1::ConfigureRequest* request,
                                                   v1::ConfigureResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  events_.Configure(call.ns, request->topic(), FromProto(request->retention()), request->reset(),
                    [reactor, response](Result<TopicInfo> info) {
                      if (info.ok()) {
                        ToProto(info->retention, response->mutable_retention());
                        ToProto(info->own, response->mutable_configured());
                      }
                      reactor->Finish(ToGrpc(info.status()));
                    });
  return reactor;
} catch (...) {
  return FailedUnary();
}

}  // namespace micro::events
