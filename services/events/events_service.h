#pragma once

#include "core/serial_executor.h"
#include "micro/events/v1/events.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/events/events.h"

namespace micro::events {

// micro.events.v1.Events over gRPC: converts between proto and domain types and calls Events in
// the caller's namespace. Read and Topics walk the database, so they run on the service's own
// thread, one at a time; Publish answers from the backend's thread once the event is durable;
// each Consume stream holds a slot of the daemon's max_streams and its queued events count
// against max_stream_bytes.
class EventsService final : public v1::Events::CallbackService {
 public:
  // PublishStream's bounds: events in one batch; batches and request bytes a stream may have
  // unanswered before the daemon stops reading it.
  static constexpr int kMaxBatchEvents = 4096;
  static constexpr size_t kMaxBatchesInFlight = 64;
  static constexpr size_t kMaxBytesInFlight = size_t{16} << 20;

  // Both must outlive the service.
  EventsService(Events& events, const CallContexts& contexts)
      : events_(events), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<v1::PublishBatch, v1::PublishAcks>* PublishStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<v1::ConsumeRequest, v1::Event>* Consume(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request,
                                 v1::ReadResponse* response) override;
  grpc::ServerUnaryReactor* Topics(grpc::CallbackServerContext* context,
                                   const v1::TopicsRequest* request,
                                   v1::TopicsResponse* response) override;
  grpc::ServerUnaryReactor* Configure(grpc::CallbackServerContext* context,
                                      const v1::ConfigureRequest* request,
                                      v1::ConfigureResponse* response) override;

 private:
  Events& events_;
  const CallContexts& contexts_;
  SerialExecutor readers_{"events-read"};  // last: drains before the members above go
};

}  // namespace micro::events
