#include "services/registry/registry_service.h"

#include <mutex>

#include "server/grpc_status.h"
#include "services/registry/registry_proto.h"

namespace micro::registry {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

// Streams registry events to one Watch caller. The registry's notify callback and gRPC's write
// completions both pump the queue; `writing_` makes sure one write is in flight at a time.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  // Subscribes; on failure finishes the call with the registry's error.
  WatchReactor(Registry& registry, const std::string& ns, const std::string& name) {
    auto watcher = registry.Watch(ns, name, [this] { Pump(); });
    std::lock_guard lock(mu_);
    if (!watcher.ok()) {
      FinishLocked(ToGrpc(watcher.status()));
      return;
    }
    watcher_ = std::move(*watcher);
    // The notify callback may have fired before watcher_ was set; send headers now so the
    // client knows the watch is live, then look for events.
    StartSendInitialMetadata();
  }

  // Refuses the call with `error`.
  explicit WatchReactor(const Status& error) {
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
    std::unique_ptr<Watcher> watcher;
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
      event_.Clear();
      ToProto(*event, &event_);
      writing_ = true;
      StartWrite(&event_);
      return;
    }
    if (Status status = watcher_->status(); !status.ok()) FinishLocked(ToGrpc(status));
  }

  // Finish may be called once per call; every path that ends the stream comes through here.
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  std::mutex mu_;
  std::unique_ptr<Watcher> watcher_;
  v1::WatchEvent event_;
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* RegistryService::Register(grpc::CallbackServerContext* context,
                                                    const v1::RegisterRequest* request,
                                                    v1::RegisterResponse*) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return Done(context, call.error);
  return Done(context, registry_.Register(call.ns, FromProto(request->service()),
                                          request->ttl_seconds()));
}

grpc::ServerUnaryReactor* RegistryService::Deregister(grpc::CallbackServerContext* context,
                                                      const v1::DeregisterRequest* request,
                                                      v1::DeregisterResponse*) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return Done(context, call.error);
  return Done(context, registry_.Deregister(call.ns, FromProto(request->service())));
}

grpc::ServerUnaryReactor* RegistryService::GetService(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request_bytes,
                                                      grpc::ByteBuffer* response) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return Done(context, call.error);
  v1::GetServiceRequest request;
  grpc::Slice flat;
  if (!request_bytes->DumpToSingleSlice(&flat).ok() ||
      !request.ParseFromArray(flat.begin(), static_cast<int>(flat.size()))) {
    return Done(context, absl::InvalidArgumentError("GetServiceRequest could not be parsed"));
  }
  std::string key = call.ns;
  key.append(1, '\0').append(request.name()).append(1, '\0').append(request.version());
  const Freshness freshness = registry_.CurrentFreshness();
  if (auto kept = cache_.Find(key, freshness, clock_.Now())) {
    *response = grpc::ByteBuffer(&*kept, 1);
    return Done(context, absl::OkStatus());
  }

  auto services = registry_.GetService(call.ns, request.name(), request.version());
  if (!services.ok()) return Done(context, services.status());
  v1::GetServiceResponse message;
  for (const registry::Service& s : *services) ToProto(s, message.add_services());
  grpc::Slice bytes(message.ByteSizeLong());
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(bytes.begin()));
  cache_.Store(key, freshness, bytes);
  *response = grpc::ByteBuffer(&bytes, 1);
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RegistryService::ListServices(grpc::CallbackServerContext* context,
                                                        const v1::ListServicesRequest*,
                                                        v1::ListServicesResponse* response) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return Done(context, call.error);
  auto services = registry_.ListServices(call.ns);
  if (!services.ok()) return Done(context, services.status());
  for (const registry::Service& s : *services) ToProto(s, response->add_services());
  return Done(context, absl::OkStatus());
}

grpc::ServerWriteReactor<v1::WatchEvent>* RegistryService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new WatchReactor(call.error);
  return new WatchReactor(registry_, call.ns, request->name());
}

}  // namespace micro::registry
