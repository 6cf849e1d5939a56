// The HTTP gateway: boost.beast sessions on the daemon's io_context. Its own translation unit
// because beast is the slowest header set of the build.
#include "server/gateway.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/address.h"
#include "rpc/reflection_client.h"

namespace micro::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace pb = google::protobuf;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 16 << 10;
constexpr std::chrono::seconds kReflectionTimeout{5};
constexpr std::chrono::seconds kDescriptorTtl{30};
constexpr size_t kMaxDescriptors = 1024;
constexpr std::chrono::seconds kMaxCallTimeout{60};
constexpr std::chrono::milliseconds kAcceptRetry{100};

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// {"code": "NOT_FOUND", "grpc_code": 5, "message": "..."}; bytes that are not UTF-8 (a path
// the client sent) are replaced, never thrown on.
std::string ErrorBody(int grpc_code, std::string_view message) {
  nlohmann::json body = {
      {"code", CodeName(grpc_code)}, {"grpc_code", grpc_code}, {"message", message}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// "2.5", "2.5s", "500ms": a duration the client asks its call to take at most.
std::optional<std::chrono::milliseconds> ParseTimeout(std::string_view text) {
  double scale = 1000;
  if (text.size() > 2 && text.substr(text.size() - 2) == "ms") {
    scale = 1;
    text.remove_suffix(2);
  } else if (!text.empty() && text.back() == 's') {
    text.remove_suffix(1);
  }
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value > 0) || value > 1e9) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(value * scale)));
}

// Posts to the io_context while the gateway runs; after Stop, completions from gRPC's and the
// loaders' threads are dropped instead of reaching a stopped (or gone) io_context.
class Loop {
 public:
  explicit Loop(asio::io_context& io) : io_(&io) {}
  template <typename F>
  void Post(F&& f) {
    std::lock_guard lock(mu_);
    if (io_ != nullptr) asio::post(*io_, std::forward<F>(f));
  }
  void Close() {
    std::lock_guard lock(mu_);
    io_ = nullptr;
  }

 private:
  std::mutex mu_;
  asio::io_context* io_;
};

// One forwarded call: what gRPC's callback needs, owned by it.
struct UpstreamCall {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::shared_ptr<grpc::GenericStub> stub;
};

struct Descriptors {
  std::shared_ptr<ReflectionClient> reflection;
  Clock::time_point loaded;
};

}  // namespace

int HttpStatusOf(int grpc_code) {
  switch (static_cast<grpc::StatusCode>(grpc_code)) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
      return 409;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 400;
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    default:
      return 500;  // UNKNOWN, INTERNAL, DATA_LOSS
  }
}

class Session;

class Gateway::Impl : public std::enable_shared_from_this<Gateway::Impl> {
 public:
  Impl(asio::io_context& io, const GatewayConfig& config, Deps deps)
      : io_(io),
        loop_(std::make_shared<Loop>(io)),
        acceptor_(io),
        retry_(io),
        config_(config),
        deps_(std::move(deps)) {}

  Status Listen();
  void Accept();
  void Stop();

  // The sessions reading a request, oldest first: the first to go when connections run out.
  std::list<Session*>::iterator Waiting(Session* session) {
    return waiting_.insert(waiting_.end(), session);
  }

  asio::io_context& io_;
  std::shared_ptr<Loop> loop_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  const GatewayConfig config_;
  Deps deps_;
  asio::thread_pool loaders_{2};  // reflection fetches block: never on the loop
  std::string address_;
  bool stopped_ = false;
  size_t open_ = 0;
  std::list<Session*> waiting_;
  std::set<Session*> sessions_;
  std::map<Session*, std::shared_ptr<Session>> busy_;  // sessions with a call in flight
  std::map<std::string, Descriptors> descriptors_;     // by namespace, service, gRPC service
  uint64_t next_node_ = 0;
};

namespace {

// What a call needs between its steps.
struct CallPlan {
  CallContext call;
  std::string service;       // the registered name
  std::string grpc_service;  // as the path gave it: short or full
  std::string method;
  std::string address;  // the node's
  std::chrono::system_clock::time_point deadline;
};

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Gateway::Impl> gateway, tcp::socket socket)
      : gateway_(std::move(gateway)), stream_(std::move(socket)) {
    gateway_->sessions_.insert(this);
    ++gateway_->open_;
  }
  ~Session() { Close(); }

  void Start() { WaitForRequest(std::chrono::seconds(gateway_->config_.request_timeout_seconds)); }

  // Ends the connection now (eviction, Stop); the pending operation completes with an error.
  void Close() {
    if (closed_) return;
    closed_ = true;
    StopWaiting();
    gateway_->sessions_.erase(this);
    --gateway_->open_;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  void Cancel() {
    if (upstream_) upstream_->context.TryCancel();
  }

 private:
  // Until the first byte of the next request: `wait` (the idle timeout between requests).
  void WaitForRequest(std::chrono::seconds wait) {
    if (closed_) return;
    waiting_ = gateway_->Waiting(this);
    is_waiting_ = true;
    if (buffer_.size() > 0) {  // pipelined: the next request is here already
      ReadRequest();
      return;
    }
    stream_.expires_after(wait);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) {  // idle too long, the client left, or evicted
                                self->Close();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->ReadRequest();
                            });
  }

  // The whole request within the request timeout, so a client that trickles bytes cannot
  // hold the connection.
  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(gateway_->config_.max_body_bytes);
    parser_->header_limit(kMaxHeaderBytes);
    stream_.expires_after(std::chrono::seconds(gateway_->config_.request_timeout_seconds));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void StopWaiting() {
    if (!is_waiting_) return;
    gateway_->waiting_.erase(waiting_);
    is_waiting_ = false;
  }

  void OnRead(beast::error_code ec) {
    StopWaiting();
    if (closed_) return;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      Close();  // a client too slow to send its request is cut off; nothing to answer
      return;
    }
    started_ = Clock::now();
    route_ = "other";
    if (ec == http::error::body_limit) {
      Fail(413, grpc::StatusCode::RESOURCE_EXHAUSTED,
           fmt::format("the request body is larger than {} bytes (gateway.max_body_bytes)",
                       gateway_->config_.max_body_bytes),
           /*close=*/true);
      return;
    }
    if (ec == http::error::header_limit) {
      Fail(431, grpc::StatusCode::RESOURCE_EXHAUSTED,
           fmt::format("the request headers are larger than {} bytes", kMaxHeaderBytes), true);
      return;
    }
    if (ec) {
      Fail(400, grpc::StatusCode::INVALID_ARGUMENT, "malformed HTTP request: " + ec.message(),
           true);
      return;
    }
    request_ = parser_->release();
    Handle();
  }

  void Handle() {
    std::string_view target(request_.target().data(), request_.target().size());
    target = target.substr(0, target.find('?'));
    const auto origin = request_[http::field::origin];
    origin_.assign(origin.data(), origin.size());
    if (request_.method() == http::verb::options) {
      Preflight();
      return;
    }
    if (target == "/health") {
      route_ = "health";
      if (!IsGet()) return NotAllowed("GET");
      const bool serving = !gateway_->deps_.contexts.draining();
      Reply(serving ? 200 : 503, "application/json",
            serving ? "{\"status\":\"SERVING\"}\n" : "{\"status\":\"NOT_SERVING\"}\n");
      return;
    }
    if (target == "/metrics") {
      route_ = "metrics";
      if (!IsGet()) return NotAllowed("GET");
      Metrics();
      return;
    }
    route_ = "call";
    if (request_.method() != http::verb::post) return NotAllowed("POST");
    Call(target);
  }

  bool IsGet() const {
    return request_.method() == http::verb::get || request_.method() == http::verb::head;
  }

  // The caller's context from its headers: token, namespace, identity.
  Status Identify(CallContext* call) {
    std::multimap<grpc::string_ref, grpc::string_ref> metadata;
    const auto authorization = request_[http::field::authorization];
    const auto ns = request_["Micro-Namespace"];
    if (!authorization.empty()) {
      metadata.emplace("authorization",
                       grpc::string_ref(authorization.data(), authorization.size()));
    }
    if (!ns.empty()) metadata.emplace("micro-namespace", grpc::string_ref(ns.data(), ns.size()));
    *call = ResolveCallContext(metadata);
    if (!call->error.ok()) return call->error;
    if (gateway_->deps_.contexts.draining()) {
      return absl::UnavailableError("the server is shutting down; retry shortly");
    }
    if (gateway_->deps_.guard == nullptr) return absl::OkStatus();
    return gateway_->deps_.guard->Identify(call);
  }

  void Metrics() {
    if (!gateway_->config_.metrics_public && gateway_->deps_.guard != nullptr) {
      CallContext call;
      if (Status s = Identify(&call); !s.ok()) return Fail(s);
      if (!call.identity.admin) {
        return Fail(absl::PermissionDeniedError(
            "/metrics needs a token of an admin of the namespace micro (or "
            "gateway.metrics_public: true)"));
      }
    }
    Reply(200, "text/plain; version=0.0.4; charset=utf-8", gateway_->deps_.render_metrics());
  }

  // POST /{service}/{Service}/{Method} or /{service}/{method}.
  void Call(std::string_view target) {
    std::vector<std::string> parts;
    size_t start = 1;
    while (start <= target.size()) {
      const size_t slash = std::min(target.find('/', start), target.size());
      parts.emplace_back(target.substr(start, slash - start));
      start = slash + 1;
    }
    if ((parts.size() != 2 && parts.size() != 3) ||
        std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
      return Fail(404, grpc::StatusCode::NOT_FOUND,
                  "no such route: call POST /{service}/{Service}/{Method} or "
                  "/{service}/{method}; GET /health, GET /metrics");
    }
    CallPlan plan;
    if (Status s = Identify(&plan.call); !s.ok()) return Fail(s);
    plan.service = parts[0];
    auto versions = gateway_->deps_.registry.GetService(plan.call.ns, plan.service, "");
    if (!versions.ok()) return Fail(versions.status());
    if (parts.size() == 3) {
      plan.grpc_service = parts[1];
      plan.method = parts[2];
    } else {
      // micro's short path: the one registered endpoint whose method is `parts[1]`.
      std::set<std::string> matches;
      std::set<std::string> all;
      for (const registry::Service& version : *versions) {
        for (const registry::Endpoint& e : version.endpoints) {
          const size_t dot = e.name.rfind('.');
          if (dot == std::string::npos) continue;
          if (EqualsIgnoreCase(std::string_view(e.name).substr(dot + 1), parts[1])) {
            matches.insert(e.name);
          }
          all.insert(e.name);
        }
      }
      if (matches.empty()) {
        return Fail(absl::NotFoundError(
            fmt::format("service {} registered no endpoint named {} (it has: {}); the full path is "
                        "/{{service}}/{{Service}}/{{Method}}",
                        plan.service, parts[1],
                        all.empty() ? "none" : fmt::format("{}", fmt::join(all, ", ")))));
      }
      if (matches.size() > 1) {
        return Fail(absl::InvalidArgumentError(
            fmt::format("several endpoints of service {} are named {} ({}); use the full path "
                        "/{{service}}/{{Service}}/{{Method}}",
                        plan.service, parts[1], fmt::join(matches, ", "))));
      }
      const std::string& endpoint = *matches.begin();
      const size_t dot = endpoint.rfind('.');
      plan.grpc_service = endpoint.substr(0, dot);
      plan.method = endpoint.substr(dot + 1);
    }
    std::vector<const registry::Node*> nodes;
    for (const registry::Service& version : *versions) {
      for (const registry::Node& node : version.nodes) nodes.push_back(&node);
    }
    if (nodes.empty()) {
      return Fail(absl::UnavailableError(
          fmt::format("service {} has no node to take the call", plan.service)));
    }
    plan.address = nodes[gateway_->next_node_++ % nodes.size()]->address;
    auto timeout =
        std::chrono::milliseconds(std::chrono::seconds(gateway_->config_.call_timeout_seconds));
    if (const auto asked = request_["Micro-Timeout"]; !asked.empty()) {
      auto parsed = ParseTimeout(std::string_view(asked.data(), asked.size()));
      if (!parsed) {
        return Fail(absl::InvalidArgumentError(
            "the header Micro-Timeout must be a duration such as 2.5, 2.5s or 500ms"));
      }
      timeout = std::min<std::chrono::milliseconds>(*parsed, kMaxCallTimeout);
    }
    plan.deadline = std::chrono::system_clock::now() + timeout;

    const std::string key = plan.call.ns + '\n' + plan.service + '\n' + plan.grpc_service;
    auto& cache = gateway_->descriptors_;
    if (auto it = cache.find(key);
        it != cache.end() && Clock::now() - it->second.loaded < kDescriptorTtl) {
      Forward(std::move(plan), it->second.reflection);
      return;
    }
    Load(std::move(plan), key);
  }

  // The service's descriptors from its reflection, on a loader thread.
  void Load(CallPlan plan, std::string key) {
    Busy();
    auto reflection =
        std::make_shared<ReflectionClient>(gateway_->deps_.proxy.ChannelFor(plan.address));
    auto shared_plan = std::make_shared<CallPlan>(std::move(plan));
    asio::post(gateway_->loaders_, [reflection, shared_plan, key = std::move(key),
                                    loop = gateway_->loop_, weak = weak_from_this()]() mutable {
      grpc::ClientContext context;
      context.set_deadline(
          std::min(shared_plan->deadline, std::chrono::system_clock::now() + kReflectionTimeout));
      if (!shared_plan->call.token.empty()) {
        context.AddMetadata("authorization", "Bearer " + shared_plan->call.token);
      }
      context.AddMetadata("micro-namespace", shared_plan->call.ns);
      Status loaded = reflection->Load(shared_plan->grpc_service, context);
      loop->Post([weak, reflection, shared_plan, key = std::move(key),
                  loaded = std::move(loaded)]() mutable {
        auto self = weak.lock();
        if (!self || self->closed_) return;
        self->Idle();
        if (!loaded.ok()) return self->Fail(loaded);
        auto& cache = self->gateway_->descriptors_;
        if (cache.size() >= kMaxDescriptors) cache.clear();
        cache[key] = {reflection, Clock::now()};
        self->Forward(std::move(*shared_plan), reflection);
      });
    });
  }

  void Forward(CallPlan plan, const std::shared_ptr<ReflectionClient>& reflection) {
    const pb::ServiceDescriptor* service = reflection->service();
    const pb::MethodDescriptor* method = service->FindMethodByName(plan.method);
    for (int i = 0; method == nullptr && i < service->method_count(); ++i) {
      if (EqualsIgnoreCase(service->method(i)->name(), plan.method)) method = service->method(i);
    }
    if (method == nullptr) {
      std::string methods;
      for (int i = 0; i < service->method_count(); ++i) {
        methods += (i ? ", " : "") + service->method(i)->name();
      }
      return Fail(absl::NotFoundError(fmt::format("{} has no method {}; it has {}",
                                                  service->full_name(), plan.method, methods)));
    }
    if (method->client_streaming() || method->server_streaming()) {
      return Fail(absl::UnimplementedError(
          fmt::format("{}.{} streams; the HTTP gateway calls unary methods (use micro stream)",
                      service->full_name(), method->name())));
    }
    const std::string path = "/" + service->full_name() + "/" + method->name();
    if (gateway_->deps_.guard != nullptr) {
      if (Status s = gateway_->deps_.guard->Check(path, &plan.call); !s.ok()) return Fail(s);
    }
    std::unique_ptr<pb::Message> request = reflection->New(method->input_type());
    const std::string& body = request_.body();
    const bool blank = body.find_first_not_of(" \t\r\n") == std::string::npos;
    if (auto parsed = pb::util::JsonStringToMessage(blank ? "{}" : body, request.get());
        !parsed.ok()) {
      return Fail(absl::InvalidArgumentError(fmt::format("the body is not a {} in JSON: {}",
                                                         method->input_type()->full_name(),
                                                         std::string(parsed.message()))));
    }
    auto upstream = std::make_shared<UpstreamCall>();
    std::string bytes;
    request->SerializeToString(&bytes);
    grpc::Slice slice(std::move(bytes));
    upstream->request = grpc::ByteBuffer(&slice, 1);
    if (!plan.call.token.empty()) {
      upstream->context.AddMetadata("authorization", "Bearer " + plan.call.token);
    }
    upstream->context.AddMetadata("micro-namespace", plan.call.ns);
    upstream->context.set_deadline(plan.deadline);
    upstream->stub = gateway_->deps_.proxy.StubFor(plan.address);
    upstream_ = upstream;
    Busy();
    upstream->stub->UnaryCall(
        &upstream->context, path, grpc::StubOptions(), &upstream->request, &upstream->response,
        [upstream, reflection, method, loop = gateway_->loop_,
         weak = weak_from_this()](grpc::Status status) {
          loop->Post([upstream, reflection, method, weak, status = std::move(status)] {
            auto self = weak.lock();
            if (!self || self->closed_) return;
            self->upstream_.reset();
            self->Idle();
            self->Answer(status, *upstream, *reflection, method);
          });
        });
  }

  void Answer(const grpc::Status& status, UpstreamCall& upstream, ReflectionClient& reflection,
              const pb::MethodDescriptor* method) {
    if (!status.ok()) {
      return Fail(HttpStatusOf(status.error_code()), status.error_code(), status.error_message());
    }
    std::unique_ptr<pb::Message> response = reflection.New(method->output_type());
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (upstream.response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    if (!response->ParseFromString(bytes)) {
      return Fail(absl::InternalError(
          fmt::format("the service's response is not a {}", method->output_type()->full_name())));
    }
    pb::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    std::string json;
    if (auto printed = pb::util::MessageToJsonString(*response, &json, print); !printed.ok()) {
      return Fail(absl::InternalError("cannot print the response as JSON: " +
                                      std::string(printed.message())));
    }
    json += "\n";
    Reply(200, "application/json", std::move(json));
  }

  // While a call is in flight the gateway holds the session (no read is pending).
  void Busy() { gateway_->busy_[this] = shared_from_this(); }
  void Idle() { gateway_->busy_.erase(this); }

  void Preflight() {
    route_ = "other";
    if (!AllowedOrigin()) {
      return Fail(403, grpc::StatusCode::PERMISSION_DENIED,
                  "origin '" + origin_ + "' may not call the gateway (gateway.cors_origins)");
    }
    Response response{http::status::no_content, request_.version()};
    response.set(http::field::access_control_allow_methods, "POST, GET, OPTIONS");
    response.set(http::field::access_control_allow_headers,
                 "Authorization, Content-Type, Micro-Namespace, Micro-Timeout");
    response.set(http::field::access_control_max_age, "600");
    Send(std::move(response), false);
  }

  bool AllowedOrigin() const {
    const auto& origins = gateway_->config_.cors_origins;
    return !origin_.empty() && std::any_of(origins.begin(), origins.end(),
                                           [&](const auto& o) { return o == "*" || o == origin_; });
  }

  void NotAllowed(const char* allow) {
    Response response{http::status::method_not_allowed, request_.version()};
    response.set(http::field::allow, allow);
    response.set(http::field::content_type, "application/json");
    response.body() = ErrorBody(static_cast<int>(grpc::StatusCode::UNIMPLEMENTED),
                                fmt::format("use {} here", allow));
    Send(std::move(response), false);
  }

  void Fail(const Status& status) {
    const int code = static_cast<int>(status.code());
    Fail(HttpStatusOf(code), static_cast<grpc::StatusCode>(code), std::string(status.message()));
  }

  void Fail(int http_status, grpc::StatusCode code, std::string_view message, bool close = false) {
    Response response{static_cast<http::status>(http_status), request_.version()};
    response.set(http::field::content_type, "application/json");
    if (code == grpc::StatusCode::UNAUTHENTICATED) {
      response.set(http::field::www_authenticate, "Bearer");
    }
    response.body() = ErrorBody(static_cast<int>(code), message);
    Send(std::move(response), close);
  }

  void Reply(int http_status, const char* type, std::string body) {
    Response response{static_cast<http::status>(http_status), request_.version()};
    response.set(http::field::content_type, type);
    response.body() = std::move(body);
    Send(std::move(response), false);
  }

  void Send(Response response, bool close) {
    if (AllowedOrigin()) {
      const bool any =
          std::find(gateway_->config_.cors_origins.begin(), gateway_->config_.cors_origins.end(),
                    "*") != gateway_->config_.cors_origins.end();
      response.set(http::field::access_control_allow_origin, any ? "*" : origin_);
      response.set(http::field::vary, "Origin");
    }
    response.keep_alive(!close && request_.keep_alive() && !gateway_->stopped_);
    if (request_.method() == http::verb::head) {
      const size_t size = response.body().size();
      response.body().clear();
      response.content_length(size);
    } else {
      response.prepare_payload();
    }
    const int status = response.result_int();
    if (gateway_->deps_.observe) {
      gateway_->deps_.observe(route_, status, Clock::now() - started_);
    }
    response_ = std::move(response);
    stream_.expires_after(std::chrono::seconds(gateway_->config_.request_timeout_seconds));
    http::async_write(
        stream_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec || !self->response_.keep_alive()) {
            self->Close();
            return;
          }
          self->request_ = {};
          self->WaitForRequest(std::chrono::seconds(self->gateway_->config_.idle_timeout_seconds));
        });
  }

  std::shared_ptr<Gateway::Impl> gateway_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
  Response response_;
  std::string origin_;
  const char* route_ = "other";
  Clock::time_point started_;
  std::shared_ptr<UpstreamCall> upstream_;
  std::list<Session*>::iterator waiting_;
  bool is_waiting_ = false;
  bool closed_ = false;
};

Status Gateway::Impl::Listen() {
  std::string host = HostOf(config_.address);
  const std::string port = config_.address.substr(config_.address.rfind(':') + 1);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  beast::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  const auto fail = [&](const std::string& why) {
    return absl::UnavailableError(fmt::format(
        "cannot listen on {} for HTTP: {}; choose another with --http-address (port 0 picks a "
        "free one, off turns the gateway off)",
        config_.address, why));
  };
  if (ec) return fail("'" + host + "' is not an IP address");
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(std::stoi(port)));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec.message());
  const tcp::endpoint bound = acceptor_.local_endpoint(ec);
  address_ = fmt::format("{}:{}", HostOf(config_.address), bound.port());
  return absl::OkStatus();
}

void Gateway::Impl::Accept() {
  acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->stopped_) return;
    if (ec) {
      // Out of descriptors (EMFILE) and the like: try again shortly instead of spinning.
      spdlog::warn("gateway: cannot accept a connection: {}", ec.message());
      self->retry_.expires_after(kAcceptRetry);
      self->retry_.async_wait([self](beast::error_code e) {
        if (!e) self->Accept();
      });
      return;
    }
    if (self->open_ >= self->config_.max_connections && !self->waiting_.empty()) {
      self->waiting_.front()->Close();  // the connection that waited longest for a request
    }
    if (self->open_ >= self->config_.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);  // every connection has a call in flight: no room
    } else {
      std::make_shared<Session>(self, std::move(socket))->Start();
    }
    self->Accept();
  });
}

void Gateway::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  loop_->Close();
  beast::error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
  for (auto& [session, held] : busy_) held->Cancel();
  std::vector<Session*> open(sessions_.begin(), sessions_.end());
  for (Session* session : open) session->Close();
  busy_.clear();
  loaders_.join();  // fetches end within kReflectionTimeout
}

Result<std::unique_ptr<Gateway>> Gateway::Start(asio::io_context& io, const GatewayConfig& config,
                                                Deps deps) {
  auto impl = std::make_shared<Impl>(io, config, std::move(deps));
  if (Status s = impl->Listen(); !s.ok()) return s;
  impl->Accept();
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Gateway::~Gateway() { Stop(); }

const std::string& Gateway::address() const { return impl_->address_; }

size_t Gateway::InFlight() const { return impl_->busy_.size(); }

void Gateway::Stop() { impl_->Stop(); }

}  // namespace micro::server
