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
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.rfind("error: INVALID_ARGUMENT: the value is not valid JSON", 0) == 0);

  CHECK(daemon.Cli({"config", "del", "db.host"}).exit_code == 0);
  ProgramResult gone = daemon.Cli({"config", "get", "db.host"});
  CHECK(gone.exit_code == 1);
  CHECK(gone.err == "error: NOT_FOUND: config path 'db.host' is not set in namespace 'micro'\n");
  CHECK(daemon.Cli({"config", "get", "db", "-n", "team-b"}).exit_code == 1);
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

}  // namespace
}  // namespace micro::testing
