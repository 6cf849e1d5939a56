#pragma once

#include <grpcpp/client_context.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

// Ctrl-C for CLI commands that stream until the user stops them (`micro logs -f`,
// `micro events consume`).

namespace micro::cli {

// Blocks SIGINT and SIGTERM in this thread and in every thread it starts later (gRPC's too):
// from then on only CancelOnSignal receives them. Call it before the first gRPC object exists.
inline void BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Cancels `context` on SIGINT or SIGTERM (blocked with BlockStopSignals). TryCancel is not
// async-signal-safe, so instead of a signal handler a thread waits for the signals.
class CancelOnSignal {
 public:
  explicit CancelOnSignal(grpc::ClientContext& context)
      : waiter_([this, &context] {
          sigset_t signals;
          sigemptyset(&signals);
          sigaddset(&signals, SIGINT);
          sigaddset(&signals, SIGTERM);
          int signal = 0;
          sigwait(&signals, &signal);
          if (!done_) {
            cancelled_ = true;
            context.TryCancel();
          }
        }) {}
  ~CancelOnSignal() {
    done_ = true;
    pthread_kill(waiter_.native_handle(), SIGTERM);  // wakes the waiter if no signal came
    waiter_.join();
  }
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;

  bool cancelled() const { return cancelled_; }

 private:
  std::atomic<bool> done_{false};
  std::atomic<bool> cancelled_{false};
  std::thread waiter_;  // last: it starts in the constructor and uses the flags
};

}  // namespace micro::cli
