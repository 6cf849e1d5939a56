#include "cli/stop_signals.h"

#include <pthread.h>
#include <signal.h>

namespace micro::cli {
namespace {

sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

CancelOnSignal::CancelOnSignal(grpc::ClientContext& context)
    : waiter_([this, &context] {
        const sigset_t signals = StopSignals();
        int signal = 0;
        sigwait(&signals, &signal);
        if (!done_) {
          cancelled_ = true;
          context.TryCancel();
        }
      }) {}

CancelOnSignal::~CancelOnSignal() {
  done_ = true;
  pthread_kill(waiter_.native_handle(), SIGTERM);  // wakes the waiter if no signal came
  waiter_.join();
}

}  // namespace micro::cli
