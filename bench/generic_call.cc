#include "bench/generic_call.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <future>

#include "bench/bench_auth.h"
#include "rpc/grpc_status.h"

namespace micro::bench {
namespace {}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int index,
                                           bool fast_reconnect) {
  grpc::ChannelArguments args;
  args.SetInt("micro.bench.channel_index", index);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  if (fast_reconnect) {
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 2);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 10);
  }
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> MakeContext(const CallSpec& spec) {
  auto context = std::make_unique<grpc::ClientContext>();
  for (const auto& [key, value] : spec.metadata) context->AddMetadata(key, value);
  AddBenchToken(*context);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(spec.deadline_ms));
  return context;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

grpc::Status CallOnce(grpc::GenericStub& stub, const CallSpec& spec, bool wait_for_ready,
                      std::string* response) {
  std::unique_ptr<grpc::ClientContext> context = MakeContext(spec);
  context->set_wait_for_ready(wait_for_ready);
  const grpc::ByteBuffer request = ToByteBuffer(spec.request);
  grpc::ByteBuffer reply;
  std::promise<grpc::Status> done;
  stub.UnaryCall(context.get(), spec.method, grpc::StubOptions(), &request, &reply,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = done.get_future().get();
  if (status.ok()) *response = ToString(reply);
  return status;
}

std::string DescribeStatus(const grpc::Status& status) {
  const std::string_view name = StatusCodeName(status.error_code());
  std::string text = name.empty() ? "UNKNOWN_CODE" : std::string(name);
  if (!status.error_message().empty()) text += ": " + status.error_message();
  return text;
}

}  // namespace micro::bench
