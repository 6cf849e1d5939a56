#include "runtime/container/docker_client.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

namespace micro::runtime {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using Json = nlohmann::json;
using Socket = boost::asio::local::stream_protocol::socket;
using SteadyTime = std::chrono::steady_clock::time_point;

// Waits until `fd` is ready for `events` or `deadline` passes (asio::error::timed_out).
bool AwaitReady(int fd, short events, SteadyTime deadline, beast::error_code& ec) {
  if (deadline == SteadyTime::max()) return true;
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ec = boost::asio::error::timed_out;
      return false;
    }
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) {
      ec = beast::error_code(errno, boost::system::system_category());
      return false;
    }
  }
}

// The socket as Beast's synchronous reads and writes see it, every operation bounded by the
// connection's deadline: a blocking socket read would wait for a silent engine forever (and
// SO_RCVTIMEO does not help: asio's synchronous read polls again after EAGAIN).
class DeadlineStream {
 public:
  DeadlineStream(Socket& socket, const SteadyTime& deadline)
      : socket_(socket), deadline_(deadline) {}

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    if (!AwaitReady(socket_.native_handle(), POLLIN, deadline_, ec)) return 0;
    return socket_.read_some(buffers, ec);
  }
  template <typename Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec) {
    if (!AwaitReady(socket_.native_handle(), POLLOUT, deadline_, ec)) return 0;
    return socket_.write_some(buffers, ec);
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers) {
    beast::error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Socket& socket_;
  const SteadyTime& deadline_;
};

// Piece size for streamed bodies: log frames are usually one line, so small is fine.
constexpr size_t kPieceSize = 16 * 1024;
// Error bodies of streamed responses are short JSON; more is not worth keeping.
constexpr size_t kMaxErrorBody = 64 * 1024;

std::string UrlEncode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof(escaped), "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

// "1.41" -> {1, 41}; anything unreadable sorts first.
std::pair<int, int> ParseVersion(const std::string& version) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return {0, 0};
  return {major, minor};
}

// The engine puts its reason in {"message": ...}; fall back to the raw body or the status line.
std::string EngineMessage(unsigned status, const std::string& body) {
  Json json = Json::parse(body, nullptr, false);
  if (json.is_object() && json.contains("message") && json["message"].is_string()) {
    return json["message"].get<std::string>();
  }
  std::string text = body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty()) return text;
  return fmt::format("HTTP {}", status);
}

absl::StatusCode CodeForHttpStatus(unsigned status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 500:
      return absl::StatusCode::kInternal;
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// 304 is the engine's "already in that state" (start of a running container, stop of a stopped
// one): the caller got what it asked for.
bool IsSuccess(unsigned status) { return (status >= 200 && status < 300) || status == 304; }

Status ErrorForResponse(std::string_view operation, unsigned status, const std::string& body) {
  return Status(CodeForHttpStatus(status),
                fmt::format("docker {}: {}", operation, EngineMessage(status, body)));
}

Result<Json> ParseJson(std::string_view operation, const std::string& body) {
  Json json = Json::parse(body, nullptr, false);
  if (json.is_discarded()) {
    return absl::InternalError(fmt::format("docker {}: the engine sent unreadable JSON: {}",
                                           operation, body.substr(0, 200)));
  }
  return json;
}

std::string StringOr(const Json& json, const char* key, std::string fallback = "") {
  auto it = json.find(key);
  return it != json.end() && it->is_string() ? it->get<std::string>() : fallback;
}

int64_t IntOr(const Json& json, const char* key, int64_t fallback = 0) {
  auto it = json.find(key);
  return it != json.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

std::map<std::string, std::string> Labels(const Json& json) {
  std::map<std::string, std::string> labels;
  auto it = json.find("Labels");
  if (it == json.end() || !it->is_object()) return labels;
  for (const auto& [key, value] : it->items()) {
    if (value.is_string()) labels[key] = value.get<std::string>();
  }
  return labels;
}

std::string WithoutSlash(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

}  // namespace

void MultiplexedStreamDecoder::Feed(std::string_view data) {
  while (!data.empty()) {
    if (remaining_ == 0) {
      size_t take = std::min(data.size(), sizeof(header_) - header_size_);
      std::copy_n(data.data(), take, header_ + header_size_);
      header_size_ += take;
      data.remove_prefix(take);
      if (header_size_ < sizeof(header_)) return;
      header_size_ = 0;
      // 0 is stdin, which the engine never echoes here; anything not stderr goes to stdout.
      stream_ = header_[0] == 2 ? OutputStream::kStderr : OutputStream::kStdout;
      remaining_ = (uint32_t{header_[4]} << 24) | (uint32_t{header_[5]} << 16) |
                   (uint32_t{header_[6]} << 8) | uint32_t{header_[7]};
      continue;
    }
    size_t take = std::min<size_t>(data.size(), remaining_);
    sink_(stream_, data.substr(0, take));
    remaining_ -= static_cast<uint32_t>(take);
    data.remove_prefix(take);
  }
}

struct DockerClient::Response {
  unsigned status = 0;
  std::string body;
};

// One HTTP/1.1 exchange on its own connection. Blocking: it runs on the caller's thread, and
// its socket is registered with the client so that Shutdown can interrupt it.
class DockerClient::Connection {
 public:
  // The whole exchange must be over within `timeout` (from now), until NoDeadline.
  Connection(DockerClient& client, std::string_view operation, std::chrono::milliseconds timeout)
      : client_(client),
        operation_(operation),
        timeout_(timeout),
        deadline_(std::chrono::steady_clock::now() + timeout) {}
  ~Connection() {
    if (fd_ >= 0) client_.Unregister(fd_);
    beast::error_code ignored;
    socket_.close(ignored);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Status Open() {
    if (client_.shut_down()) return Cancelled();
    const std::string& path = client_.socket_path();
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      return absl::InvalidArgumentError(
          fmt::format("cannot reach the Docker engine at {}: the path is too long", path));
    }
    beast::error_code ec;
    if (Connect(path, ec); ec) {
      if (ec == boost::asio::error::timed_out) return Lost(ec);
      return absl::UnavailableError(
          fmt::format("cannot reach the Docker engine at {}: {}", path, ec.message()));
    }
    fd_ = socket_.native_handle();
    if (!client_.Register(fd_)) {
      fd_ = -1;
      return Cancelled();
    }
    return absl::OkStatus();
  }

  Status Send(http::verb method, const std::string& target, const std::string& body) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "docker");
    request.set(http::field::user_agent, "micro");
    request.keep_alive(false);
    if (!body.empty()) {
      request.set(http::field::content_type, "application/json");
      request.body() = body;
    }
    request.prepare_payload();
    beast::error_code ec;
    http::write(stream_, request, ec);
    return ec ? Lost(ec) : absl::OkStatus();
  }

  template <typename Parser>
  Status ReadHeader(Parser& parser) {
    beast::error_code ec;
    http::read_header(stream_, buffer_, parser, ec);
    return ec ? Lost(ec) : absl::OkStatus();
  }

  template <typename Parser>
  Status ReadRest(Parser& parser) {
    beast::error_code ec;
    http::read(stream_, buffer_, parser, ec);
    return ec ? Lost(ec) : absl::OkStatus();
  }

  // From now on the exchange may take as long as it needs: a wait for an exit, a log stream.
  // Shutdown still ends it.
  void NoDeadline() { deadline_ = SteadyTime::max(); }

  // Reads the body of a buffer_body response piece by piece (chunked or not) until it ends.
  Status ReadPieces(http::response_parser<http::buffer_body>& parser,
                    const std::function<void(std::string_view)>& piece) {
    char buffer[kPieceSize];
    while (!parser.is_done()) {
      parser.get().body().data = buffer;
      parser.get().body().size = sizeof(buffer);
      beast::error_code ec;
      // read_some, not read: read would wait for the whole piece, and a quiet container's
      // last line would sit in it.
      http::read_some(stream_, buffer_, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return Lost(ec);
      size_t size = sizeof(buffer) - parser.get().body().size;
      if (size > 0) piece(std::string_view(buffer, size));
    }
    return absl::OkStatus();
  }

 private:
  Status Cancelled() const {
    return absl::CancelledError(fmt::format("docker {}: the client was shut down", operation_));
  }

  // Connects without blocking: a listener that never accepts fills its backlog, and then a
  // blocking connect (asio's too) would wait forever. On a unix socket a full backlog is EAGAIN.
  void Connect(const std::string& path, beast::error_code& ec) {
    const boost::asio::local::stream_protocol::endpoint endpoint(path);
    socket_.open(endpoint.protocol(), ec);
    if (ec) return;
    socket_.non_blocking(true, ec);
    if (ec) return;
    const int fd = socket_.native_handle();
    if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
      if (errno != EINPROGRESS) {
        ec = beast::error_code(errno, boost::system::system_category());
        return;
      }
      if (!AwaitReady(fd, POLLOUT, deadline_, ec)) return;
      int error = 0;
      socklen_t len = sizeof error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0) {
        ec = beast::error_code(error, boost::system::system_category());
        return;
      }
    }
    socket_.non_blocking(false, ec);
  }

  Status Lost(const beast::error_code& ec) const {
    if (client_.shut_down()) return Cancelled();
    if (ec == boost::asio::error::timed_out) {
      return absl::DeadlineExceededError(fmt::format(
          "docker {}: the Docker engine at {} did not answer within {} ms; check that it runs "
          "('docker version'), or point runtime.docker_socket at one that does, or raise "
          "runtime.docker_timeout_seconds",
          operation_, client_.socket_path(), timeout_.count()));
    }
    return absl::UnavailableError(
        fmt::format("docker {}: lost the connection to the Docker engine at {}: {}", operation_,
                    client_.socket_path(), ec.message()));
  }

  DockerClient& client_;
  const std::string operation_;
  const std::chrono::milliseconds timeout_;
  SteadyTime deadline_;
  boost::asio::io_context io_;  // never run: the socket is only used synchronously
  Socket socket_{io_};
  DeadlineStream stream_{socket_, deadline_};
  beast::flat_buffer buffer_;
  int fd_ = -1;
};

class DockerClient::Wait final : public PendingWait {
 public:
  explicit Wait(std::unique_ptr<Connection> connection,
                std::unique_ptr<http::response_parser<http::string_body>> parser)
      : connection_(std::move(connection)), parser_(std::move(parser)) {}

  Result<ContainerExit> Finish() override {
    connection_->NoDeadline();
    if (Status read = connection_->ReadRest(*parser_); !read.ok()) return read;
    Result<Json> json = ParseJson("wait", parser_->get().body());
    if (!json.ok()) return json.status();
    ContainerExit exit;
    exit.status_code = static_cast<int>(IntOr(*json, "StatusCode", -1));
    auto error = json->find("Error");
    if (error != json->end() && error->is_object()) exit.error = StringOr(*error, "Message");
    return exit;
  }

 private:
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<http::response_parser<http::string_body>> parser_;
};

DockerClient::DockerClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

DockerClient::~DockerClient() = default;

bool DockerClient::Register(int fd) {
  std::lock_guard lock(mu_);
  if (shut_down_) return false;
  open_fds_.insert(fd);
  return true;
}

void DockerClient::Unregister(int fd) {
  std::lock_guard lock(mu_);
  open_fds_.erase(fd);
}

bool DockerClient::shut_down() const {
  std::lock_guard lock(mu_);
  return shut_down_;
}

void DockerClient::Shutdown() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  // Under the lock, so no fd is closed (and reused) between here and its Unregister.
  for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
}

Status DockerClient::Negotiate(std::chrono::milliseconds timeout) {
  Connection connection(*this, "version", timeout);
  if (Status open = connection.Open(); !open.ok()) return open;
  if (Status sent = connection.Send(http::verb::get, "/version", ""); !sent.ok()) return sent;
  http::response_parser<http::string_body> parser;
  if (Status read = connection.ReadRest(parser); !read.ok()) return read;
  const auto& response = parser.get();
  if (!IsSuccess(response.result_int())) {
    return ErrorForResponse("version", response.result_int(), response.body());
  }
  Result<Json> json = ParseJson("version", response.body());
  if (!json.ok()) return json.status();
  std::string engine = StringOr(*json, "ApiVersion");
  if (engine.empty()) {
    return absl::InternalError("docker version: the engine reported no ApiVersion");
  }
  std::string ours = kApiVersion;
  std::lock_guard lock(mu_);
  api_version_ = ParseVersion(engine) < ParseVersion(ours) ? engine : ours;
  return absl::OkStatus();
}

Status DockerClient::Ping() { return Negotiate(std::min(timeout_, kPingTimeout)); }

Result<std::string> DockerClient::ApiVersion() {
  {
    std::lock_guard lock(mu_);
    if (!api_version_.empty()) return api_version_;
  }
  if (Status negotiated = Negotiate(timeout_); !negotiated.ok()) return negotiated;
  std::lock_guard lock(mu_);
  return api_version_;
}

Result<std::string> DockerClient::VersionedPath(const std::string& path) {
  Result<std::string> version = ApiVersion();
  if (!version.ok()) return version.status();
  return fmt::format("/v{}{}", *version, path);
}

Result<DockerClient::Response> DockerClient::Call(std::string_view operation,
                                                  std::string_view method, const std::string& path,
                                                  const std::string& body,
                                                  std::chrono::milliseconds extra_time) {
  Result<std::string> target = VersionedPath(path);
  if (!target.ok()) return target.status();
  Connection connection(*this, operation, timeout_ + extra_time);
  if (Status open = connection.Open(); !open.ok()) return open;
  Status sent = connection.Send(
      http::string_to_verb(beast::string_view(method.data(), method.size())), *target, body);
  if (!sent.ok()) return sent;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);  // a list of many containers; anything bigger is not the engine
  if (Status read = connection.ReadRest(parser); !read.ok()) return read;
  return Response{parser.get().result_int(), std::move(parser.get().body())};
}

Result<std::string> DockerClient::Create(const ContainerConfig& config) {
  Json host_config = {{"NetworkMode", config.network_mode}};
  if (config.memory_bytes > 0) host_config["Memory"] = config.memory_bytes;
  if (config.pids_limit > 0) host_config["PidsLimit"] = config.pids_limit;
  if (config.init) host_config["Init"] = true;
  Json request = {{"Image", config.image},
                  {"Env", config.env},
                  {"Labels", config.labels},
                  {"HostConfig", host_config}};
  if (!config.cmd.empty()) request["Cmd"] = config.cmd;
  if (!config.working_dir.empty()) request["WorkingDir"] = config.working_dir;
  Result<Response> response =
      Call("create", "POST", "/containers/create?name=" + UrlEncode(config.name), request.dump());
  if (!response.ok()) return response.status();
  if (response->status == 409) {
    return absl::AlreadyExistsError("docker create: " +
                                    EngineMessage(response->status, response->body));
  }
  if (!IsSuccess(response->status)) {
    return ErrorForResponse("create", response->status, response->body);
  }
  Result<Json> json = ParseJson("create", response->body);
  if (!json.ok()) return json.status();
  std::string id = StringOr(*json, "Id");
  if (id.empty()) return absl::InternalError("docker create: the engine returned no Id");
  return id;
}

Status DockerClient::CallForStatus(std::string_view operation, std::string_view method,
                                   const std::string& path, std::chrono::milliseconds extra_time) {
  Result<Response> response = Call(operation, method, path, "", extra_time);
  if (!response.ok()) return response.status();
  if (!IsSuccess(response->status)) {
    return ErrorForResponse(operation, response->status, response->body);
  }
  return absl::OkStatus();
}

Status DockerClient::Start(const std::string& id) {
  return CallForStatus("start", "POST", "/containers/" + UrlEncode(id) + "/start");
}

Status DockerClient::Stop(const std::string& id, int grace_seconds) {
  // The engine answers once the container stopped: give it the grace period on top.
  return CallForStatus("stop", "POST",
                       fmt::format("/containers/{}/stop?t={}", UrlEncode(id), grace_seconds),
                       std::chrono::seconds(grace_seconds));
}

Status DockerClient::Kill(const std::string& id, int signal) {
  return CallForStatus("kill", "POST",
                       fmt::format("/containers/{}/kill?signal={}", UrlEncode(id), signal));
}

Status DockerClient::Remove(const std::string& id, bool force) {
  return CallForStatus("remove", "DELETE",
                       fmt::format("/containers/{}?force={}", UrlEncode(id), force ? 1 : 0));
}

Result<ContainerState> DockerClient::Inspect(const std::string& id) {
  Result<Response> response = Call("inspect", "GET", "/containers/" + UrlEncode(id) + "/json", "");
  if (!response.ok()) return response.status();
  if (!IsSuccess(response->status)) {
    return ErrorForResponse("inspect", response->status, response->body);
  }
  Result<Json> json = ParseJson("inspect", response->body);
  if (!json.ok()) return json.status();
  static const Json kEmpty = Json::object();
  const Json& state = json->contains("State") ? (*json)["State"] : kEmpty;
  const Json& host = json->contains("HostConfig") ? (*json)["HostConfig"] : kEmpty;
  const Json& config = json->contains("Config") ? (*json)["Config"] : kEmpty;
  ContainerState result;
  result.id = StringOr(*json, "Id");
  result.name = WithoutSlash(StringOr(*json, "Name"));
  result.pid = static_cast<int>(IntOr(state, "Pid"));
  result.running = state.value("Running", false);
  result.exit_code = static_cast<int>(IntOr(state, "ExitCode"));
  result.oom_killed = state.value("OOMKilled", false);
  result.memory_bytes = IntOr(host, "Memory");
  result.pids_limit = IntOr(host, "PidsLimit");
  result.network_mode = StringOr(host, "NetworkMode");
  if (auto env = config.find("Env"); env != config.end() && env->is_array()) {
    for (const Json& entry : *env) {
      if (entry.is_string()) result.env.push_back(entry.get<std::string>());
    }
  }
  result.labels = Labels(config);
  return result;
}

Result<std::unique_ptr<PendingWait>> DockerClient::BeginWait(const std::string& id) {
  Result<std::string> target =
      VersionedPath("/containers/" + UrlEncode(id) + "/wait?condition=next-exit");
  if (!target.ok()) return target.status();
  auto connection = std::make_unique<Connection>(*this, "wait", timeout_);
  if (Status open = connection->Open(); !open.ok()) return open;
  if (Status sent = connection->Send(http::verb::post, *target, ""); !sent.ok()) return sent;
  auto parser = std::make_unique<http::response_parser<http::string_body>>();
  // The engine sends the headers once the wait is registered, and the body when it ends.
  if (Status read = connection->ReadHeader(*parser); !read.ok()) return read;
  unsigned status = parser->get().result_int();
  if (!IsSuccess(status)) {
    if (Status read = connection->ReadRest(*parser); !read.ok()) return read;
    return ErrorForResponse("wait", status, parser->get().body());
  }
  return std::unique_ptr<PendingWait>(new Wait(std::move(connection), std::move(parser)));
}

Status DockerClient::FollowLogs(const std::string& id,
                                const std::function<void(OutputStream, std::string_view)>& sink,
                                int64_t since_unix_ms) {
  std::string query = "/logs?follow=1&stdout=1&stderr=1";
  if (since_unix_ms > 0) {
    // Seconds with a fraction, as the engine takes them.
    query += "&since=" + std::to_string(since_unix_ms / 1000) + "." +
             std::to_string(1000 + since_unix_ms % 1000).substr(1) + "000000";
  }
  Result<std::string> target = VersionedPath("/containers/" + UrlEncode(id) + query);
  if (!target.ok()) return target.status();
  Connection connection(*this, "logs", timeout_);
  if (Status open = connection.Open(); !open.ok()) return open;
  if (Status sent = connection.Send(http::verb::get, *target, ""); !sent.ok()) return sent;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a log stream is as long as the container lives
  if (Status read = connection.ReadHeader(parser); !read.ok()) return read;
  connection.NoDeadline();
  unsigned status = parser.get().result_int();
  if (!IsSuccess(status)) {
    std::string body;
    Status read = connection.ReadPieces(parser, [&body](std::string_view piece) {
      if (body.size() < kMaxErrorBody) body.append(piece);
    });
    if (!read.ok()) return read;
    return ErrorForResponse("logs", status, body);
  }
  MultiplexedStreamDecoder decoder(sink);
  return connection.ReadPieces(parser, [&decoder](std::string_view piece) { decoder.Feed(piece); });
}

Result<std::vector<ContainerSummary>> DockerClient::ListByLabel(const std::string& key,
                                                                const std::string& value) {
  Json filters = {{"label", {key + "=" + value}}};
  Result<Response> response =
      Call("list", "GET", "/containers/json?all=1&filters=" + UrlEncode(filters.dump()), "");
  if (!response.ok()) return response.status();
  if (!IsSuccess(response->status)) {
    return ErrorForResponse("list", response->status, response->body);
  }
  Result<Json> json = ParseJson("list", response->body);
  if (!json.ok()) return json.status();
  std::vector<ContainerSummary> containers;
  if (!json->is_array()) return containers;
  for (const Json& entry : *json) {
    ContainerSummary summary;
    summary.id = StringOr(entry, "Id");
    if (auto names = entry.find("Names"); names != entry.end() && names->is_array() &&
                                          !names->empty() && names->front().is_string()) {
      summary.name = WithoutSlash(names->front().get<std::string>());
    }
    summary.labels = Labels(entry);
    containers.push_back(std::move(summary));
  }
  return containers;
}

}  // namespace micro::runtime
