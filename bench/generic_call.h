#ifndef MICRO_BENCH_GENERIC_CALL_H_
#define MICRO_BENCH_GENERIC_CALL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace micro::bench {

// One unary call as raw bytes, so any server can be called without its protos.
struct CallSpec {
  std::string method;   // "/pkg.Service/Method"
  std::string request;  // serialized request message
  std::vector<std::pair<std::string, std::string>> metadata;
  int deadline_ms = 5000;
  // Offsets of the call-number fields in `request` (see request_builder.h): a run writes each
  // call's number there, modulo number_modulo when that is not 0.
  std::vector<size_t> number_fields;
  uint64_t number_modulo = 0;
};

// A channel with a connection of its own: `index` makes its arguments unique, and a local
// subchannel pool keeps gRPC from sharing one HTTP/2 connection between equal channels.
// `fast_reconnect` retries a refused connection within milliseconds instead of gRPC's 1 s
// backoff, for polling a server that is still starting.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int index,
                                           bool fast_reconnect);

// A context for one call of `spec`: its metadata added and its deadline counted from now.
std::unique_ptr<grpc::ClientContext> MakeContext(const CallSpec& spec);

grpc::ByteBuffer ToByteBuffer(const std::string& bytes);
std::string ToString(const grpc::ByteBuffer& buffer);

// Makes one call and blocks until it completes; the response bytes go to *response.
grpc::Status CallOnce(grpc::GenericStub& stub, const CallSpec& spec, bool wait_for_ready,
                      std::string* response);

// "UNAVAILABLE: failed to connect ..." for logs and reports.
std::string DescribeStatus(const grpc::Status& status);

}  // namespace micro::bench

#endif  // MICRO_BENCH_GENERIC_CALL_H_
