// `micro config` against a real daemon: set, get, merge, secrets, delete, errors.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

TEST_CASE("micro config sets, merges, gets and deletes values by path", "[e2e][config]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  CHECK(daemon.Cli({"config", "set", "db", R"({"host":"a","port":5432})"}).exit_code == 0);
  CHECK(daemon.Cli({"config", "set", "db", R"({"port":6432})"}).exit_code == 0);
  ProgramResult db = daemon.Cli({"config", "get", "db"});
  CHECK(db.exit_code == 0);
  CHECK(db.out == "{\"host\":\"a\",\"port\":6432}\n");
  CHECK(daemon.Cli({"config", "get", "db.port"}).out == "6432\n");

  ProgramResult bad = daemon.Cli({"config", "set", "db.host", "not-json"});
  CHECK(bad.exit_code == 2);  // usage
  CHECK(bad.err.rfind("error: INVALID_ARGUMENT: the value is not valid JSON", 0) == 0);
  ProgramResult huge = daemon.Cli({"config", "set", "x", "1e999"});
  CHECK(huge.exit_code == 2);  // usage
  CHECK(huge.err.rfind("error: INVALID_ARGUMENT: the value has a number out of range", 0) == 0);
  ProgramResult deep =
      daemon.Cli({"config", "set", "x", std::string(65, '[') + std::string(65, ']')});
  CHECK(deep.exit_code == 2);  // usage
  CHECK(deep.err.find("INVALID_ARGUMENT: the value nests arrays and objects 65 levels deep; the "
                      "limit is 64") != std::string::npos);

  CHECK(daemon.Cli({"config", "del", "db.host"}).exit_code == 0);
  ProgramResult gone = daemon.Cli({"config", "get", "db.host"});
  CHECK(gone.exit_code == 3);  // not found
  CHECK(gone.err == "error: NOT_FOUND: config path 'db.host' is not set in namespace 'micro'\n");
  CHECK(daemon.Cli({"config", "get", "db", "-n", "team-b"}).exit_code == 3);  // not found
}

TEST_CASE("secret config values are masked, revealed on request, and never on disk in clear",
          "[e2e][config]") {
  MicroDaemon daemon({"--log-level", "debug"});
  REQUIRE(daemon.WaitUntilServing());
  const std::string secret = "correct-horse-battery-staple";
  CHECK(daemon.Cli({"config", "set", "api.token", "\"" + secret + "\"", "--secret"}).exit_code ==
        0);
  CHECK(daemon.Cli({"config", "get", "api.token"}).out == "\"[secret]\"\n");
  CHECK(daemon.Cli({"config", "get", "api.token", "--secret"}).out == "\"" + secret + "\"\n");
  REQUIRE(daemon.process().Stop(SIGTERM) == 0);

  CHECK(daemon.process().Stderr().find(secret) == std::string::npos);  // not in the logs
  // Nor anywhere in the data dir: the database files, the WAL, the key file.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(daemon.data_dir())) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(entry.path());
    CHECK(bytes.find(secret) == std::string::npos);
  }
  const auto key = std::filesystem::status(daemon.data_dir() + "/config.key").permissions();
  CHECK((key & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
}

TEST_CASE("the daemon refuses a key file others can read, and takes no key as a flag",
          "[e2e][config]") {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::filesystem::create_directories(data);
  const std::string key_file = data + "/config.key";
  std::ofstream(key_file) << "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\n";
  std::filesystem::permissions(
      key_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                    std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  ProgramResult refused =
      RunProgram({MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir", data});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("config.key has mode 0644") != std::string::npos);
  CHECK(refused.err.find("chmod 600") != std::string::npos);

  ProgramResult flag =
      RunProgram({MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir", data,
                  "--config-secret-key", "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="});
  CHECK(flag.exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "server", "--help"}).out.find("secret") == std::string::npos);
}

TEST_CASE("micro config has help and usage errors", "[e2e][config]") {
  for (const char* sub : {"get", "set", "del"}) {
    ProgramResult help = RunProgram({MicroBinary(), "config", sub, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.rfind(std::string("Usage: micro config ") + sub, 0) == 0);
  }
  CHECK(RunProgram({MicroBinary(), "config", "--help"}).exit_code == 0);
  CHECK(RunProgram({MicroBinary(), "config"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "config", "frob"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "config", "set", "only-path"}).exit_code == 2);
}

TEST_CASE("a secret value is read from stdin, never from argv", "[e2e][config]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const auto piped = [&](const std::string& input, const std::string& args) {
    return RunProgram({"/bin/sh", "-c",
                       "printf '%s' '" + input + "' | '" + MicroBinary() + "' config set " + args +
                           " --address " + daemon.address()},
                      daemon.CliEnv());
  };
  // Plain text is taken as a string; JSON as JSON; no VALUE with --secret reads stdin too.
  CHECK(piped("hunter22", "db.password - --secret").exit_code == 0);
  CHECK(daemon.Cli({"config", "get", "db.password", "--secret"}).out == "\"hunter22\"\n");
  CHECK(daemon.Cli({"config", "get", "db.password"}).out.find("hunter22") == std::string::npos);
  CHECK(piped("{\"user\":\"u\"}", "db.login --secret").exit_code == 0);
  CHECK(daemon.Cli({"config", "get", "db.login.user", "--secret"}).out == "\"u\"\n");
  CHECK(daemon.Cli({"config", "set", "db.port"}).exit_code == 2);  // no VALUE, not secret
}

}  // namespace
}  // namespace micro::testing
