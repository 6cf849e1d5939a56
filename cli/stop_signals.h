#pragma once

#include <grpcpp/client_context.h>

#include <atomic>
#include <thread>

namespace micro::cli {

// Blocks SIGINT and SIGTERM in this thread and in every thread it starts later (gRPC's too):
// from then on only CancelOnSignal receives them. Call it before the first gRPC object exists.
void BlockStopSignals();

// Cancels `context` on SIGINT or SIGTERM (blocked with BlockStopSignals). TryCancel is not
// async-signal-safe, so instead of a signal handler a thread waits for the signals. For
// commands that stream until Ctrl-C (`micro logs -f`, `micro broker subscribe`,
// `micro events consume`).
class CancelOnSignal {
 public:
  explicit CancelOnSignal(grpc::ClientContext& context);
  ~CancelOnSignal();
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;

  bool cancelled() const { return cancelled_; }

 private:
  std::atomic<bool> done_{false};
  std::atomic<bool> cancelled_{false};
  std::thread waiter_;  // last: it starts in the constructor and uses the flags
};

}  // namespace micro::cli
