#include "cli/credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/address.h"
#include "micro/auth/v1/auth.grpc.pb.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::cli {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Home(const std::map<std::string, std::string>& env) {
  auto it = env.find("HOME");
  return it != env.end() && !it->second.empty() ? it->second : "/root";
}

// `address` as a file name.
std::string FileName(const std::string& address) {
  std::string name = address;
  for (char& c : name) {
    if (c == ':' || c == '/' || c == '[' || c == ']') c = '_';
  }
  return name;
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string CredentialsPath(const std::map<std::string, std::string>& env,
                            const std::string& address) {
  return Home(env) + "/.micro/tokens/" + FileName(address) + ".json";
}

std::string CaPath(const std::map<std::string, std::string>& env, const std::string& address) {
  return Home(env) + "/.micro/ca/" + FileName(address) + ".pem";
}

Status ResolveTls(ClientOptions* options, const ParsedArgs& flags,
                  const std::map<std::string, std::string>& env) {
  std::string file;
  if (flags.Has("tls-ca")) {
    file = flags.Get("tls-ca");
  } else if (auto it = env.find("MICRO_TLS_CA"); it != env.end() && !it->second.empty()) {
    file = it->second;
  }
  if (!file.empty()) {
    auto pem = ReadText(file);
    if (!pem.ok() || pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError("--tls-ca / MICRO_TLS_CA: " + file +
                                        " is not a readable PEM certificate");
    }
    options->tls = true;
    options->tls_ca_pem = *pem;
    return absl::OkStatus();
  }
  if (auto kept = ReadText(CaPath(env, options->address)); kept.ok()) {
    options->tls = true;
    options->tls_ca_pem = *kept;
    return absl::OkStatus();
  }
  // The daemon found through its server.json names its own CA (automatic TLS).
  if (!options->discovered_ca_file.empty()) {
    if (auto ca = ReadText(options->discovered_ca_file); ca.ok()) {
      options->tls = true;
      options->tls_ca_pem = *ca;
      return absl::OkStatus();
    }
  }
  options->tls = !IsLoopbackAddress(options->address);
  return absl::OkStatus();
}

Result<Credentials> LoadCredentials(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("not logged in to this daemon");
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::FailedPreconditionError(path + " is corrupt; run 'micro login' again");
  }
  Credentials c;
  try {
    c.account = json.value("account", "");
    c.ns = json.value("namespace", "");
    c.access_token = json.value("access_token", "");
    c.refresh_token = json.value("refresh_token", "");
    c.expiry_unix_ms = json.value("expiry_unix_ms", int64_t{0});
  } catch (const nlohmann::json::exception&) {
    return absl::FailedPreconditionError(path + " is corrupt; run 'micro login' again");
  }
  return c;
}

Status SaveCredentials(const std::string& path, const Credentials& c) {
  const std::string dir = path.substr(0, path.rfind('/'));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);  // the tokens are as good as the secret for their lifetime
  const nlohmann::json json = {{"account", c.account},
                               {"namespace", c.ns},
                               {"access_token", c.access_token},
                               {"refresh_token", c.refresh_token},
                               {"expiry_unix_ms", c.expiry_unix_ms}};
  return auth::WriteSecretFile(path, json.dump(2) + "\n");
}

Status AttachToken(ClientOptions* options, const std::map<std::string, std::string>& env) {
  if (auto it = env.find("MICRO_TOKEN"); it != env.end() && !it->second.empty()) {
    options->token = it->second;
    return absl::OkStatus();
  }
  const std::string path = CredentialsPath(env, options->address);
  auto stored = LoadCredentials(path);
  if (!stored.ok()) return absl::IsNotFound(stored.status()) ? absl::OkStatus() : stored.status();
  if (stored->expiry_unix_ms > NowMs() + 60'000 || stored->refresh_token.empty()) {
    options->token = stored->access_token;
    return absl::OkStatus();
  }
  auto stub = micro::auth::v1::Auth::NewStub(Connect(*options));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(options->timeout_seconds));
  micro::auth::v1::TokenRequest request;
  request.set_refresh_token(stored->refresh_token);
  micro::auth::v1::TokenResponse response;
  grpc::Status status = stub->Token(&context, request, &response);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      // Expired or revoked: forget it; the command's call then says how to log in.
      std::cerr << "warning: the stored login for " << options->address << " no longer works ("
                << status.error_message() << ")\n";
      ::unlink(path.c_str());
      return absl::OkStatus();
    }
    // The daemon is down or busy: the command itself will say so.
    options->token = stored->access_token;
    return absl::OkStatus();
  }
  stored->access_token = response.token().access_token();
  stored->refresh_token = response.token().refresh_token();
  stored->expiry_unix_ms = response.token().expiry_unix_ms();
  if (Status s = SaveCredentials(path, *stored); !s.ok()) return s;
  options->token = stored->access_token;
  return absl::OkStatus();
}

}  // namespace micro::cli
