#include "micro/service.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

namespace micro {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// The services a server was built with, caught while ServerBuilder::BuildAndStart initializes
// its plugins on this thread (grpc::Server keeps the list to itself).
thread_local std::vector<std::string>* g_capture = nullptr;

class ServiceListPlugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "micro_service_list"; }
  void InitServer(grpc::ServerInitializer* si) override {
    if (g_capture != nullptr) *g_capture = *si->GetServiceList();
  }
  void Finish(grpc::ServerInitializer*) override {}
  void ChangeArguments(const std::string&, void*) override {}
  bool has_async_methods() const override { return false; }
  bool has_sync_methods() const override { return false; }
};

std::unique_ptr<grpc::ServerBuilderPlugin> MakeServiceListPlugin() {
  return std::make_unique<ServiceListPlugin>();
}

// SIGINT and SIGTERM end Run: their handler writes a byte to this pipe, which Run's waiter
// reads. A handler (not a blocked mask) so that child processes the service starts get the
// default dispositions back at exec, and any thread may take the signal.
int g_stop_pipe[2] = {-1, -1};

extern "C" void OnStopSignal(int) {
  const int saved = errno;
  const char byte = 's';
  [[maybe_unused]] ssize_t n = ::write(g_stop_pipe[1], &byte, 1);
  errno = saved;
}

// Before any member is built: the stop signals' handler, and the server plugins (the
// ServerBuilder takes the plugin factories at its construction).
const ServiceOptions& Prepare(const ServiceOptions& options) {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(g_stop_pipe, O_CLOEXEC) == 0) {
      struct sigaction action {};
      action.sa_handler = OnStopSignal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART;
      ::sigaction(SIGINT, &action, nullptr);
      ::sigaction(SIGTERM, &action, nullptr);
    }
    grpc::ServerBuilder::InternalAddPluginFactory(&MakeServiceListPlugin);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  return options;
}

std::string RandomSuffix() {
  std::random_device device;
  std::uniform_int_distribution<uint32_t> pick;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", pick(device));
  return text;
}

}  // namespace

Service::Service(ServiceOptions options)
    : options_(std::move(options)), client_(Prepare(options_).client) {
  if (options_.name.empty()) options_.name = Env("MICRO_SERVICE_NAME");
  if (options_.version.empty()) options_.version = Env("MICRO_SERVICE_VERSION");
  if (options_.version.empty()) options_.version = "latest";
  if (options_.address.empty()) options_.address = Env("MICRO_SERVICE_ADDRESS");
  if (options_.address.empty()) options_.address = "127.0.0.1:0";
  if (const std::string instance = Env("MICRO_INSTANCE_ID"); !instance.empty()) {
    node_id_ = instance;  // unique under the daemon, stable across restarts
  } else {
    node_id_ = options_.name + "-" + RandomSuffix();
  }
  grpc::EnableDefaultHealthCheckService(true);
}

Service::~Service() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

void Service::Handle(grpc::Service* service) { builder_.RegisterService(service); }

std::string Service::address() const {
  std::lock_guard lock(mu_);
  return bound_;
}

void Service::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
}

int Service::Run() {
  if (options_.name.empty()) {
    std::cerr << "micro: the service has no name: set ServiceOptions::name, or run it with "
                 "'micro run' (MICRO_SERVICE_NAME)\n";
    return 1;
  }
  int port = 0;
  builder_.AddListeningPort(options_.address, grpc::InsecureServerCredentials(), &port);
  std::vector<std::string> services;
  g_capture = &services;
  server_ = builder_.BuildAndStart();
  g_capture = nullptr;
  if (!server_ || port == 0) {
    std::cerr << "micro: cannot listen on " << options_.address << " (in use, or not an address "
              << "of this machine)\n";
    return 1;
  }
  {
    std::lock_guard lock(mu_);
    std::string host = options_.address.substr(0, options_.address.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host.empty()) host = "127.0.0.1";
    bound_ = host + ":" + std::to_string(port);
  }
  for (const std::string& name : services) {
    if (name.rfind("grpc.", 0) == 0) continue;  // health, reflection
    const auto* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (descriptor == nullptr) continue;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      endpoints_.push_back(descriptor->name() + "." + descriptor->method(i)->name());
    }
  }
  if (grpc::Status s = Register(); !s.ok()) {
    std::cerr << "micro: cannot register " << options_.name << " with the daemon at "
              << client_.options().daemon << ": " << s.error_message() << "\n";
    server_->Shutdown(std::chrono::system_clock::now());
    return 1;
  }
  std::cerr << "micro: " << options_.name << " serving on " << address() << " (node " << node_id_
            << ")\n";

  std::thread waiter([this] {
    char byte = 0;
    while (::read(g_stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    Stop();
  });
  {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (cv_.wait_for(lock, options_.heartbeat, [&] { return stop_; })) break;
      lock.unlock();
      if (grpc::Status s = Register(); !s.ok()) {
        std::cerr << "micro: heartbeat failed, trying again in " << options_.heartbeat.count()
                  << " s: " << s.error_message() << "\n";
      }
      lock.lock();
    }
  }
  // Deregistered first, so callers stop picking this node; calls of callers that picked it just
  // before are still taken for a moment; then the calls in flight finish.
  Deregister();
  std::this_thread::sleep_for(options_.linger);
  server_->Shutdown(std::chrono::system_clock::now() + options_.drain);
  server_->Wait();
  server_.reset();
  // Wakes the waiter when Stop() came from elsewhere (a signal's byte may already be there).
  OnStopSignal(0);
  waiter.join();
  char drain[16];
  while (true) {  // leave the pipe empty for a next Run
    pollfd p{g_stop_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || ::read(g_stop_pipe[0], drain, sizeof drain) <= 0) break;
  }
  return 0;
}

grpc::Status Service::Register() {
  micro::registry::v1::RegisterRequest request;
  micro::registry::v1::Service* service = request.mutable_service();
  service->set_name(options_.name);
  service->set_version(options_.version);
  service->mutable_metadata()->insert(options_.metadata.begin(), options_.metadata.end());
  for (const std::string& name : endpoints_) service->add_endpoints()->set_name(name);
  micro::registry::v1::Node* node = service->add_nodes();
  node->set_id(node_id_);
  node->set_address(address());
  request.set_ttl_seconds(options_.ttl.count());
  grpc::ClientContext context;
  if (grpc::Status s = client_.Prepare(context, std::chrono::seconds(5)); !s.ok()) return s;
  micro::registry::v1::RegisterResponse response;
  return client_.registry().Register(&context, request, &response);
}

void Service::Deregister() {
  micro::registry::v1::DeregisterRequest request;
  request.mutable_service()->set_name(options_.name);
  request.mutable_service()->set_version(options_.version);
  request.mutable_service()->add_nodes()->set_id(node_id_);
  grpc::ClientContext context;
  if (!client_.Prepare(context, std::chrono::seconds(5)).ok()) return;
  micro::registry::v1::DeregisterResponse response;
  grpc::Status s = client_.registry().Deregister(&context, request, &response);
  if (!s.ok()) {
    std::cerr << "micro: cannot deregister (the registry drops the node after its TTL): "
              << s.error_message() << "\n";
  }
}

}  // namespace micro
