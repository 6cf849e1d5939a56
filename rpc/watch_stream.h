#pragma once

#include <grpcpp/support/server_callback.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "core/status.h"
#include "core/watch_queue.h"
#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"
#include "rpc/stream_slots.h"

namespace micro {

// Streams a service's watch events to one caller. `WatcherT` is a subscription with
// `std::optional<Event> Next()` and `Status status()`; its notify callback and gRPC's write
// completions both pump it, and `writing_` keeps one write in flight at a time. The stream ends
// with the watcher's status once it has one (RESOURCE_EXHAUSTED, UNAVAILABLE at shutdown; OK for
// EndOfStream), or CANCELLED when the client goes. Each open stream holds a slot of the daemon's
// StreamSlots; with none left the call is refused with RESOURCE_EXHAUSTED. An exception from
// `subscribe` or `convert` ends the stream with StatusOfCurrentException, never leaves it.
template <typename WatcherT, typename Event, typename Message>
class WatchStream final : public grpc::ServerWriteReactor<Message> {
 public:
  using Subscribe = std::function<Result<std::unique_ptr<WatcherT>>(std::function<void()>)>;
  using Convert = std::function<void(const Event&, Message*)>;

  // Takes a slot of `slots` and subscribes; on failure finishes the call with the error.
  WatchStream(StreamSlots& slots, const Subscribe& subscribe, Convert convert)
      : convert_(std::move(convert)) {
    auto watcher = Subscribed(slots, subscribe);
    std::lock_guard lock(mu_);
    if (!watcher.ok()) {
      FinishLocked(ToGrpc(watcher.status()));
      return;
    }
    watcher_ = std::move(*watcher);
    // Headers tell the client the watch is live: nothing after this point can be missed.
    this->StartSendInitialMetadata();
  }

  // Refuses the call with `error`.
  explicit WatchStream(const Status& error) {
    std::lock_guard lock(mu_);
    FinishLocked(ToGrpc(error));
  }

  void OnSendInitialMetadataDone(bool ok) override {
    if (ok) Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      // The client is gone. The call still has to be finished for OnDone to come.
      if (!ok) FinishLocked(grpc::Status::CANCELLED);
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    // Unsubscribe before freeing: after the watcher's destructor no notify can reach us.
    std::unique_ptr<WatcherT> watcher;
    {
      std::lock_guard lock(mu_);
      watcher = std::move(watcher_);
    }
    watcher.reset();
    delete this;
  }

 private:
  Result<std::unique_ptr<WatcherT>> Subscribed(StreamSlots& slots, const Subscribe& subscribe) {
    auto slot = slots.Acquire();
    if (!slot.ok()) return slot.status();
    slot_ = std::move(*slot);
    try {
      return subscribe([this] { Pump(); });
    } catch (...) {
      return StatusOfCurrentException();
    }
  }

  void Pump() {
    std::lock_guard lock(mu_);
    if (!watcher_ || writing_ || finished_) return;
    std::optional<Event> event;
    const Status converted = Guarded([&] {
      event = watcher_->Next();
      if (event) {
        message_.Clear();
        convert_(*event, &message_);
      }
      return absl::OkStatus();
    });
    if (!converted.ok()) {
      FinishLocked(ToGrpc(converted));
      return;
    }
    if (event) {
      writing_ = true;
      this->StartWrite(&message_);
      return;
    }
    if (Status status = watcher_->status(); !status.ok()) {
      FinishLocked(status == EndOfStream() ? grpc::Status::OK : ToGrpc(status));
    }
  }

  // Finish may be called once per call; every path that ends the stream comes through here.
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }

  Convert convert_;
  StreamSlots::Slot slot_;  // freed with the stream
  std::mutex mu_;
  std::unique_ptr<WatcherT> watcher_;
  Message message_;
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace micro
