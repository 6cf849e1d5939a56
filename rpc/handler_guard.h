#pragma once

#include <grpcpp/support/server_callback.h>

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "core/status.h"
#include "rpc/grpc_status.h"

// No exception leaves a gRPC handler: one that did would end the call with a code that says
// nothing (UNKNOWN or UNIMPLEMENTED, empty message) or end the process. Every handler is a
// function-try-block whose catch returns one of the reactors below:
//
//   grpc::ServerUnaryReactor* FooService::Get(...) try {
//     ...
//   } catch (...) {
//     return FailedUnary();
//   }
//
// The reactors are new ones, so a handler that had already taken its context's DefaultReactor
// (to hand it to a callback) can still be ended this way.

namespace micro {

// The status a handler that threw ends its call with: RESOURCE_EXHAUSTED for std::bad_alloc,
// INTERNAL with the exception's what() for any other std::exception, INTERNAL for anything else.
// Call it only inside a catch block.
inline Status StatusOfCurrentException() {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "the server ran out of memory serving this call; try again later or with less data");
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("the server failed serving this call: ") + e.what());
  } catch (...) {
    return absl::InternalError("the server failed serving this call (unknown exception)");
  }
}

// Runs `body` (returning Status) and returns its status, or StatusOfCurrentException if it
// throws. For code a reactor runs outside its handler (writes of a stream, ...).
template <typename Body>
Status Guarded(Body&& body) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (...) {
    return StatusOfCurrentException();
  }
}

// A unary reactor that ends its call with one status, then deletes itself.
class FinishedUnary final : public grpc::ServerUnaryReactor {
 public:
  explicit FinishedUnary(const Status& status) { Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

// For the catch of a unary handler: the call ends with StatusOfCurrentException.
inline grpc::ServerUnaryReactor* FailedUnary() {
  return new FinishedUnary(StatusOfCurrentException());
}

// For the catch of a streaming handler whose `Reactor` has a constructor that refuses the call
// with a Status: the call ends with StatusOfCurrentException.
template <typename Reactor>
Reactor* FailedStream() {
  return new Reactor(StatusOfCurrentException());
}

}  // namespace micro
