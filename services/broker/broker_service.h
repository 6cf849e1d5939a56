#pragma once

#include "micro/broker/v1/broker.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/broker/broker.h"

namespace micro::broker {

// micro.broker.v1.Broker over gRPC: converts between proto and domain types and calls the
// Broker, in the caller's namespace. Subscribe, SubscribeBatches and PublishStream each hold a
// slot of the daemon's max_streams while open; what a subscriber has not read yet counts against
// max_stream_bytes (through the broker's Limits::stream_bytes).
class BrokerService final : public v1::Broker::CallbackService {
 public:
  // The most messages in one SubscribeBatches batch, and the default.
  static constexpr uint32_t kMaxBatchMessages = 4096;
  static constexpr uint32_t kDefaultBatchMessages = 256;
  // A batch stops before the message that would take it past this many bytes (as MessageBytes
  // counts them), so batches stay well under gRPC's 4 MiB default receive limit.
  static constexpr size_t kBatchBytes = size_t{1} << 20;

  // Both must outlive the service.
  BrokerService(Broker& broker, const CallContexts& contexts)
      : broker_(broker), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerWriteReactor<v1::Message>* Subscribe(grpc::CallbackServerContext* context,
                                                   const v1::SubscribeRequest* request) override;
  grpc::ServerReadReactor<v1::PublishBatch>* PublishStream(
      grpc::CallbackServerContext* context, v1::PublishStreamResponse* response) override;
  grpc::ServerWriteReactor<v1::MessageBatch>* SubscribeBatches(
      grpc::CallbackServerContext* context, const v1::SubscribeBatchesRequest* request) override;

 private:
  Broker& broker_;
  const CallContexts& contexts_;
};

}  // namespace micro::broker
