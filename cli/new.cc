// `micro new NAME`: a service to start from (CMakeLists, proto, handler, micro.yaml, README)
// that builds against the installed SDK and deploys with `micro run`.
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli/client.h"
#include "cli/commands.h"
#include "core/flags.h"

namespace micro::cli {
namespace {

namespace fs = std::filesystem;

// "my-svc" -> "MySvc".
std::string Camel(const std::string& name) {
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '-' || c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

// Replaces every {{KEY}} of `text`.
std::string Fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string mark = "{{" + key + "}}";
    for (size_t at = text.find(mark); at != std::string::npos; at = text.find(mark, at)) {
      text.replace(at, mark.size(), value);
      at += value.size();
    }
  }
  return text;
}

// Where the running micro is installed, if its SDK package is beside it (PREFIX/bin/micro,
// PREFIX/lib/cmake/micro); empty otherwise.
std::string InstallPrefix() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path prefix = self.parent_path().parent_path();
  for (const char* lib : {"lib", "lib64", "lib/x86_64-linux-gnu"}) {
    if (fs::exists(prefix / lib / "cmake/micro/microConfig.cmake", ec)) return prefix.string();
  }
  return "";
}

const char kCMakeLists[] = R"(cmake_minimum_required(VERSION 3.18)
project({{NAME}} CXX)
set(CMAKE_CXX_STANDARD 17)

find_package(micro REQUIRED)  # the SDK: -DCMAKE_PREFIX_PATH=<where micro is installed>

set(GEN ${CMAKE_CURRENT_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${GEN})
set(PROTO ${CMAKE_CURRENT_SOURCE_DIR}/proto/{{PACKAGE}}/v1/{{PACKAGE}}.proto)
set(GENERATED ${GEN}/{{PACKAGE}}/v1/{{PACKAGE}}.pb.cc ${GEN}/{{PACKAGE}}/v1/{{PACKAGE}}.grpc.pb.cc)
add_custom_command(
  OUTPUT ${GENERATED}
  COMMAND $<TARGET_FILE:protobuf::protoc> --proto_path=${CMAKE_CURRENT_SOURCE_DIR}/proto
          --cpp_out=${GEN} --grpc_out=${GEN}
          --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin> ${PROTO}
  DEPENDS ${PROTO}
  VERBATIM)
add_executable({{NAME}} main.cc ${GENERATED})
target_include_directories({{NAME}} SYSTEM PRIVATE ${GEN})
target_link_libraries({{NAME}} PRIVATE micro::sdk)
)";

const char kProto[] = R"(syntax = "proto3";

package {{PACKAGE}}.v1;

service {{SERVICE}} {
  rpc Hello(HelloRequest) returns (HelloReply);
}

message HelloRequest {
  string name = 1;
}

message HelloReply {
  string message = 1;
}
)";

const char kMain[] = R"(// {{NAME}}: a service of the micro platform. Deploy: micro run .   Call:
//   micro call {{NAME}} {{SERVICE}}.Hello '{"name": "you"}'
#include <micro/service.h>

#include "{{PACKAGE}}/v1/{{PACKAGE}}.grpc.pb.h"

namespace {

class Handler final : public {{PACKAGE}}::v1::{{SERVICE}}::Service {
 public:
  grpc::Status Hello(grpc::ServerContext*, const {{PACKAGE}}::v1::HelloRequest* request,
                     {{PACKAGE}}::v1::HelloReply* reply) override {
    if (request->name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name is required");
    }
    reply->set_message("Hello " + request->name());
    return grpc::Status::OK;
  }
};

}  // namespace

int main() {
  micro::Service service;  // name, address and daemon from the environment micro run sets
  Handler handler;
  service.Handle(&handler);
  return service.Run();
}
)";

const char kManifest[] = R"(# Deploy with: micro run .
name: {{NAME}}
version: 0.1.0
build: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release{{PREFIX_FLAG}} && cmake --build build
command: ./build/{{NAME}}
instances: 1
health_check:
  type: grpc
)";

const char kReadme[] = R"(# {{NAME}}

A service of the micro platform, made by `micro new {{NAME}}`.

    micro run .                                        # builds (see micro.yaml), then starts it
    micro status {{NAME}}
    micro call {{NAME}} {{SERVICE}}.Hello '{"name": "you"}'
    micro logs {{NAME}}

Build by hand: `cmake -S . -B build -DCMAKE_PREFIX_PATH=<where micro is installed> &&
cmake --build build`. The API is in proto/{{PACKAGE}}/v1/{{PACKAGE}}.proto, the handler in
main.cc. The SDK: docs/sdk.md of micro.
)";

}  // namespace

int NewCommand(const std::vector<std::string>& args, const Env&) {
  const CommandSpec spec{
      "micro new NAME [flags]",
      "Creates the folder NAME with a service to start from: CMakeLists.txt (builds against the\n"
      "installed SDK with find_package(micro)), a proto with one method, its handler in\n"
      "main.cc, micro.yaml (micro run . builds and deploys it) and a README. NAME is the\n"
      "service's name: lowercase letters, digits and '-', starting with a letter, at most 63.\n\n"
      "Example:\n"
      "  micro new greeter && cd greeter && micro run .",
      {{"dir", 0, "DIR", "create the folder in DIR (default: here)"}},
      1};
  auto parsed = ParseCommandLine(spec, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const ParsedArgs& flags = std::get<ParsedArgs>(parsed);
  if (flags.positionals.empty()) {
    std::cerr << "error: give the service's NAME; see 'micro new --help'\n";
    return 2;
  }
  const std::string name = flags.positionals[0];
  bool valid =
      !name.empty() && name.size() <= 63 && std::islower(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    valid = valid && (std::islower(static_cast<unsigned char>(c)) ||
                      std::isdigit(static_cast<unsigned char>(c)) || c == '-');
  }
  if (!valid || name.back() == '-') {
    std::cerr << "error: '" << name << "' is not a service name: use lowercase letters, digits "
              << "and '-', starting with a letter, at most 63\n";
    return 2;
  }
  const fs::path dir = fs::path(flags.Has("dir") ? flags.Get("dir") : ".") / name;
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    std::cerr << "error: " << dir.string() << " exists; choose another name or --dir\n";
    return kExitConflict;
  }
  std::string package = name;
  for (char& c : package) c = c == '-' ? '_' : c;
  const std::string prefix = InstallPrefix();
  const std::map<std::string, std::string> values = {
      {"NAME", name},
      {"PACKAGE", package},
      {"SERVICE", Camel(name)},
      {"PREFIX_FLAG", prefix.empty() ? "" : " -DCMAKE_PREFIX_PATH=" + prefix}};
  const std::vector<std::pair<std::string, const char*>> files = {
      {"CMakeLists.txt", kCMakeLists},
      {"proto/" + package + "/v1/" + package + ".proto", kProto},
      {"main.cc", kMain},
      {"micro.yaml", kManifest},
      {"README.md", kReadme}};
  for (const auto& [path, text] : files) {
    const fs::path file = dir / path;
    fs::create_directories(file.parent_path(), ec);
    std::ofstream out(file);
    out << Fill(text, values);
    if (!out) {
      std::cerr << "error: cannot write " << file.string() << "\n";
      return 1;
    }
  }
  std::cout << "created " << dir.string() << "/ (" << Camel(name) << ".Hello in proto/" << package
            << "/v1)\n"
            << "next: cd " << dir.string() << " && micro run .\n";
  if (prefix.empty()) {
    std::cout << "note: the SDK's CMake package was not found beside this micro binary; give "
                 "its prefix with -DCMAKE_PREFIX_PATH in micro.yaml's build line\n";
  }
  return 0;
}

}  // namespace micro::cli
