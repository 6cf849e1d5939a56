#pragma once

#include <grpcpp/support/server_callback.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "core/status.h"
#include "core/watch_queue.h"
#include "rpc/grpc_status.h"

namespace micro {

// Streams a service's watch events to one caller. `WatcherT` is a subscription with
// `std::optional<Event> Next()` and `Status status()`; its notify callback and gRPC's write
// completions both pump it, and `writing_` keeps one write in flight at a time. The stream ends
// with the watcher's status once it has one (RESOURCE_EXHAUSTED, UNAVAILABLE at shutdown; OK for
// EndOfStream), or CANCELLED when the client goes.
template <typename WatcherT, typename Event, typename Message>
class WatchStream final : public grpc::ServerWriteReactor<Message> {
 public:
  using Subscribe = std::function<Result<std::unique_ptr<WatcherT>>(std::function<void()>)>;
  using Convert = std::function<void(const Event&, Message*)>;

  // Subscribes; on failure finishes the call with the subscription's error.
  WatchStream(const Subscribe& subscribe, Convert convert) : convert_(std::move(convert)) {
    auto watcher = subscribe([this] { Pump(); });
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
  void Pump() {
    std::lock_guard lock(mu_);
    if (!watcher_ || writing_ || finished_) return;
    if (std::optional<Event> event = watcher_->Next()) {
      message_.Clear();
      convert_(*event, &message_);
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
  std::mutex mu_;
  std::unique_ptr<WatcherT> watcher_;
  Message message_;
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace micro
