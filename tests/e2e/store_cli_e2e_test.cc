// `micro store` against a real daemon: records, scans, databases, snapshot and offline restore.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

// `micro store <args> --address <daemon>`.
ProgramResult Store(const MicroDaemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), "store");
  return daemon.Cli(std::move(args));
}

// Runs `command` with /bin/sh in `dir`, for a pipe or a working directory, logged in as the
// daemon's CLI is.
ProgramResult Shell(const MicroDaemon& daemon, const std::string& command,
                    const std::string& dir = ".") {
  return RunProgram({"/bin/sh", "-c", "cd '" + dir + "' && " + command}, daemon.CliEnv());
}

TEST_CASE("a record written through the CLI reads back as a table and as JSON", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult write = Store(daemon, {"write", "greeting", "hello", "--metadata", "lang=en,b=2"});
  CHECK(write.exit_code == 0);
  CHECK(write.out == "revision 1\n");

  ProgramResult table = Store(daemon, {"read", "greeting"});
  CHECK(table.exit_code == 0);
  CHECK(table.out ==
        "KEY       VALUE  TTL  REVISION  METADATA\n"
        "greeting  hello  -    1         b=2,lang=en\n");

  ProgramResult json = Store(daemon, {"read", "greeting", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  REQUIRE(parsed["records"].size() == 1);
  CHECK(parsed["records"][0]["key"] == "greeting");
  CHECK(parsed["records"][0]["value"] == "aGVsbG8=");  // proto JSON writes bytes as base64
  CHECK(parsed["records"][0]["revision"] == "1");
  CHECK(parsed["records"][0]["metadata"]["lang"] == "en");

  ProgramResult json_write = Store(daemon, {"write", "greeting", "hi", "-o", "json"});
  REQUIRE(json_write.exit_code == 0);
  CHECK(nlohmann::json::parse(json_write.out)["revision"] == "2");
}

TEST_CASE("a value from stdin and a binary value survive the round trip", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult piped = Shell(daemon, "printf 'line one\\nline two' | '" + MicroBinary() +
                                          "' store write doc - --address " + daemon.address());
  CHECK(piped.exit_code == 0);
  ProgramResult json = Store(daemon, {"read", "doc", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  CHECK(nlohmann::json::parse(json.out)["records"][0]["value"] == "bGluZSBvbmUKbGluZSB0d28=");
  // A newline would break the table, so the value is shown as base64 there.
  CHECK(Store(daemon, {"read", "doc"}).out.find("base64:bGluZSBvbmUKbGluZSB0d28=") !=
        std::string::npos);

  REQUIRE(Store(daemon, {"write", "word", "héllo wörld"}).exit_code == 0);
  CHECK(Store(daemon, {"read", "word"}).out.find("héllo wörld  -") != std::string::npos);
}

TEST_CASE("a write whose --if-absent or --if-revision condition is false is refused",
          "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  CHECK(Store(daemon, {"write", "lock", "me", "--if-absent"}).exit_code == 0);
  ProgramResult again = Store(daemon, {"write", "lock", "you", "--if-absent"});
  CHECK(again.exit_code == 4);  // conflict
  CHECK(again.err.rfind("error: FAILED_PRECONDITION: ", 0) == 0);

  ProgramResult stale = Store(daemon, {"write", "lock", "you", "--if-revision", "7"});
  CHECK(stale.exit_code == 4);  // conflict
  CHECK(stale.err.rfind("error: FAILED_PRECONDITION: ", 0) == 0);
  ProgramResult current = Store(daemon, {"write", "lock", "you", "--if-revision", "1"});
  CHECK(current.exit_code == 0);
  CHECK(current.out == "revision 2\n");
  CHECK(Store(daemon, {"read", "lock"}).out.find("lock  you") != std::string::npos);
}

TEST_CASE("a record written with --ttl shows the seconds it has left", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(Store(daemon, {"write", "session", "abc", "--ttl", "300"}).exit_code == 0);
  ProgramResult json = Store(daemon, {"read", "session", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  const int64_t left =
      std::stoll(nlohmann::json::parse(json.out)["records"][0]["ttl_seconds"].get<std::string>());
  CHECK(left > 250);
  CHECK(left <= 300);
  ProgramResult table = Store(daemon, {"read", "session"});
  CHECK(std::regex_search(table.out, std::regex("\nsession  abc    [0-9]+s  1 ")));
}

TEST_CASE("scans and list honour --prefix, --suffix, --limit, --offset and --order",
          "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  for (const char* key : {"user/1", "user/2", "user/3", "user/4", "group/1.json"}) {
    REQUIRE(Store(daemon, {"write", key, std::string("v-") + key}).exit_code == 0);
  }
  ProgramResult scan =
      Store(daemon, {"read", "user/", "--prefix", "--order", "desc", "--limit", "2"});
  CHECK(scan.exit_code == 0);
  CHECK(scan.out ==
        "KEY     VALUE     TTL  REVISION  METADATA\n"
        "user/4  v-user/4  -    4         -\n"
        "user/3  v-user/3  -    3         -\n");
  ProgramResult suffix = Store(daemon, {"read", ".json", "--suffix", "-o", "json"});
  REQUIRE(suffix.exit_code == 0);
  auto records = nlohmann::json::parse(suffix.out)["records"];
  REQUIRE(records.size() == 1);
  CHECK(records[0]["key"] == "group/1.json");
  CHECK(Store(daemon, {"read", "nothing/", "--prefix"}).out == "no records\n");

  CHECK(Store(daemon, {"list"}).out == "group/1.json\nuser/1\nuser/2\nuser/3\nuser/4\n");
  CHECK(Store(daemon, {"list", "--prefix", "user/", "--offset", "1", "--limit", "2"}).out ==
        "user/2\nuser/3\n");
  ProgramResult json =
      Store(daemon, {"list", "--prefix", "user/", "--order", "desc", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  CHECK(nlohmann::json::parse(json.out) ==
        nlohmann::json::array({"user/4", "user/3", "user/2", "user/1"}));
  CHECK(nlohmann::json::parse(Store(daemon, {"list", "-t", "empty", "-o", "json"}).out) ==
        nlohmann::json::array());
}

TEST_CASE("a deleted record reads as NOT_FOUND", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(Store(daemon, {"write", "tmp", "x", "-d", "scratch", "-t", "t1"}).exit_code == 0);
  ProgramResult deleted = Store(daemon, {"delete", "tmp", "-d", "scratch", "-t", "t1"});
  CHECK(deleted.exit_code == 0);
  CHECK(deleted.out == "deleted tmp\n");
  ProgramResult read = Store(daemon, {"read", "tmp", "-d", "scratch", "-t", "t1"});
  CHECK(read.exit_code == 3);  // not found
  CHECK(read.err.rfind("error: NOT_FOUND: ", 0) == 0);
  CHECK(read.out.empty());
  // Deleting a missing key is not an error.
  CHECK(Store(daemon, {"delete", "tmp", "-d", "scratch", "-t", "t1"}).exit_code == 0);
}

TEST_CASE("databases and tables list what holds records, and the namespace is the default database",
          "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(Store(daemon, {"write", "sku-1", "3", "-d", "inventory", "-t", "items"}).exit_code == 0);
  REQUIRE(Store(daemon, {"write", "sku-2", "4", "-d", "inventory", "-t", "prices"}).exit_code == 0);
  REQUIRE(Store(daemon, {"write", "k", "v", "-n", "team-a"}).exit_code == 0);

  CHECK(Store(daemon, {"databases"}).out == "inventory\nteam-a\n");
  ProgramResult json = Store(daemon, {"databases", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  CHECK(nlohmann::json::parse(json.out)["databases"] ==
        nlohmann::json::array({"inventory", "team-a"}));
  CHECK(Store(daemon, {"tables", "-d", "inventory"}).out == "items\nprices\n");
  CHECK(Store(daemon, {"tables", "-n", "team-a"}).out == "default\n");
  CHECK(Store(daemon, {"read", "k", "-d", "team-a"}).exit_code == 0);
  CHECK(Store(daemon, {"read", "k"}).exit_code == 3);  // another namespace, another database
}

TEST_CASE("a snapshot restored offline brings the store back to the snapshot's state",
          "[e2e][store]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  const std::string snapshot = data_dir + "/snapshots/snap";
  uint64_t daemon_pid = 0;
  {
    MicroDaemon daemon({"--data-dir", data_dir});
    REQUIRE(daemon.WaitUntilServing());
    daemon_pid = static_cast<uint64_t>(daemon.process().pid());
    REQUIRE(Store(daemon, {"write", "colour", "blue"}).exit_code == 0);
    // A name goes into the daemon's snapshot folder, whatever the CLI's working directory.
    ProgramResult snap =
        Shell(daemon, "'" + MicroBinary() + "' store snapshot snap --address " + daemon.address(),
              dir.path());
    CHECK(snap.exit_code == 0);
    CHECK(snap.out == "snapshot written to " + snapshot + " (revision 1)\n");
    CHECK(std::filesystem::exists(snapshot + "/CURRENT"));
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/snap"));
    ProgramResult exists = Store(daemon, {"snapshot", snapshot});
    CHECK(exists.exit_code == 2);  // usage
    CHECK(exists.err.rfind("error: INVALID_ARGUMENT: ", 0) == 0);

    REQUIRE(Store(daemon, {"write", "colour", "red"}).exit_code == 0);
    REQUIRE(Store(daemon, {"write", "shape", "square"}).exit_code == 0);
    REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  }
  CHECK(daemon_pid != 0);

  // By name: looked up in the snapshot folder.
  ProgramResult restore =
      RunProgram({MicroBinary(), "store", "restore", "snap", "--data-dir", data_dir});
  CHECK(restore.exit_code == 0);
  INFO(restore.err);
  const std::string kept_prefix = data_dir + "/db.before-restore-";
  CHECK(restore.out.rfind("restored " + data_dir + "/db from " + snapshot +
                              "; the previous database was kept at " + kept_prefix,
                          0) == 0);
  const std::string kept = restore.out.substr(restore.out.find(kept_prefix));
  CHECK(std::filesystem::is_directory(kept.substr(0, kept.size() - 1)));  // without the newline

  MicroDaemon restarted({"--data-dir", data_dir});
  REQUIRE(restarted.WaitUntilServing());
  ProgramResult colour = Store(restarted, {"read", "colour", "-o", "json"});
  REQUIRE(colour.exit_code == 0);
  CHECK(nlohmann::json::parse(colour.out)["records"][0]["value"] == "Ymx1ZQ==");  // "blue"
  ProgramResult shape = Store(restarted, {"read", "shape"});
  CHECK(shape.exit_code == 3);  // not found
  CHECK(shape.err.rfind("error: NOT_FOUND: ", 0) == 0);
  // Revisions go on increasing from the snapshot's.
  ProgramResult write = Store(restarted, {"write", "shape", "circle", "-o", "json"});
  REQUIRE(write.exit_code == 0);
  CHECK(std::stoull(nlohmann::json::parse(write.out)["revision"].get<std::string>()) > 1);
}

TEST_CASE("restore is refused while a daemon holds the data dir", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(Store(daemon, {"write", "k", "v"}).exit_code == 0);
  TempDir dir;
  const std::string snapshot = daemon.data_dir() + "/snapshots/snap";
  REQUIRE(Store(daemon, {"snapshot", "snap"}).exit_code == 0);

  ProgramResult restore =
      RunProgram({MicroBinary(), "store", "restore", snapshot, "--data-dir", daemon.data_dir()});
  CHECK(restore.exit_code == 4);  // conflict
  CHECK(restore.err.rfind("error: FAILED_PRECONDITION: ", 0) == 0);
  CHECK(restore.err.find("(pid " + std::to_string(daemon.process().pid()) + ")") !=
        std::string::npos);
  CHECK(restore.out.empty());
  CHECK(daemon.process().running());
  CHECK(Store(daemon, {"read", "k"}).exit_code == 0);

  ProgramResult missing = RunProgram({MicroBinary(), "store", "restore", dir.path() + "/nothing",
                                      "--data-dir", dir.path() + "/data"});
  CHECK(missing.exit_code == 2);  // usage
  CHECK(missing.err.rfind("error: INVALID_ARGUMENT: ", 0) == 0);
}

TEST_CASE("a snapshot outside the snapshot folder is refused and writes nothing", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(Store(daemon, {"write", "secret", "v"}).exit_code == 0);
  TempDir dir;
  const std::string folder = daemon.data_dir() + "/snapshots";
  for (const std::string& target : std::vector<std::string>{
           dir.path() + "/stolen", "/tmp/.." + dir.path() + "/x", "../escape"}) {
    INFO(target);
    ProgramResult refused = Store(daemon, {"snapshot", target});
    CHECK((refused.exit_code == 5 || refused.exit_code == 2));  // denied or usage, by the code
    CHECK((refused.err.rfind("error: PERMISSION_DENIED: ", 0) == 0 ||
           refused.err.rfind("error: INVALID_ARGUMENT: ", 0) == 0));
    CHECK(refused.err.find(folder) != std::string::npos);
  }
  std::filesystem::create_directory_symlink(dir.path(), folder + "/out");
  ProgramResult linked = Store(daemon, {"snapshot", "out/x"});
  CHECK(linked.err.rfind("error: PERMISSION_DENIED: ", 0) == 0);
  CHECK(std::filesystem::is_empty(dir.path()));
  CHECK(daemon.process().running());
}

TEST_CASE("the daemon refuses a data dir whose database went missing, and says how to recover",
          "[e2e][store]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  {
    MicroDaemon daemon({"--data-dir", data_dir});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(Store(daemon, {"write", "k", "v"}).exit_code == 0);
    REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  }
  std::filesystem::rename(data_dir + "/db", dir.path() + "/db.elsewhere");
  ProgramResult refused =
      RunProgram({MicroBinary(), "server", "--data-dir", data_dir, "--address", "127.0.0.1:0"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("database " + data_dir + "/db is missing") != std::string::npos);
  CHECK(refused.err.find("micro store restore") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(data_dir + "/db"));

  std::filesystem::rename(dir.path() + "/db.elsewhere", data_dir + "/db");
  MicroDaemon back({"--data-dir", data_dir});
  REQUIRE(back.WaitUntilServing());
  CHECK(Store(back, {"read", "k"}).exit_code == 0);
}

TEST_CASE("a daemon started after a restore was interrupted between its renames completes it",
          "[e2e][store]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  const std::string db = data_dir + "/db";
  {
    MicroDaemon daemon({"--data-dir", data_dir});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(Store(daemon, {"write", "colour", "blue"}).exit_code == 0);
    REQUIRE(Store(daemon, {"snapshot", "snap"}).exit_code == 0);
    REQUIRE(Store(daemon, {"write", "colour", "red"}).exit_code == 0);
    REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  }
  // The files as `micro store restore` leaves them when killed after moving the old database
  // aside and before moving the copy in: the state that used to start an empty store.
  namespace fs = std::filesystem;
  fs::copy(data_dir + "/snapshots/snap", db + ".restoring", fs::copy_options::recursive);
  const std::string backup = db + ".before-restore-1";
  { std::ofstream(db + ".restore-journal") << backup << "\n"; }
  fs::rename(db, backup);

  MicroDaemon restarted({"--data-dir", data_dir});
  REQUIRE(restarted.WaitUntilServing());
  ProgramResult colour = Store(restarted, {"read", "colour", "-o", "json"});
  REQUIRE(colour.exit_code == 0);
  CHECK(nlohmann::json::parse(colour.out)["records"][0]["value"] == "Ymx1ZQ==");  // "blue"
  CHECK(fs::is_directory(backup));
  CHECK_FALSE(fs::exists(db + ".restore-journal"));
  CHECK_FALSE(fs::exists(db + ".restoring"));
  REQUIRE(restarted.process().Stop(SIGTERM) == 0);
  CHECK(restarted.process().Stderr().find("completed an interrupted restore") != std::string::npos);
}

TEST_CASE("a scan larger than one response comes in pages with a continuation", "[e2e][store]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  for (int i = 0; i < 5; ++i) {
    ProgramResult write =
        RunProgram({"/bin/sh", "-c",
                    "head -c 921600 /dev/zero | tr '\\0' v | '" + MicroBinary() +
                        "' store write k" + std::to_string(i) + " - --address " + daemon.address()},
                   daemon.CliEnv());
    REQUIRE(write.exit_code == 0);
  }
  ProgramResult page = Store(daemon, {"read", "k", "--prefix", "-o", "json"});
  REQUIRE(page.exit_code == 0);
  auto json = nlohmann::json::parse(page.out);
  CHECK(json["records"].size() == 3);  // 3 MiB of records per response
  CHECK(json["more"] == true);
  CHECK(json["next_offset"] == 3);
  ProgramResult rest = Store(daemon, {"read", "k", "--prefix", "--offset", "3"});
  REQUIRE(rest.exit_code == 0);
  CHECK(rest.err.empty());  // the last page: nothing more
  ProgramResult table = Store(daemon, {"read", "k", "--prefix"});
  CHECK(table.err == "more records match: add --offset 3 for the next page\n");
}

TEST_CASE("every store command has --help, and bad arguments are usage errors", "[e2e][store]") {
  for (const char* command :
       {"read", "write", "delete", "list", "databases", "tables", "snapshot", "restore"}) {
    INFO(command);
    ProgramResult help = RunProgram({MicroBinary(), "store", command, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.rfind(std::string("Usage: micro store ") + command, 0) == 0);
    CHECK(help.out.find("--help") != std::string::npos);
  }
  ProgramResult top = RunProgram({MicroBinary(), "store", "--help"});
  CHECK(top.exit_code == 0);
  for (const char* command : {"read", "write", "delete", "list", "snapshot", "restore"}) {
    CHECK(top.out.find(std::string("\n  ") + command + " ") != std::string::npos);
  }
  CHECK(RunProgram({MicroBinary(), "--help"}).out.find("store") != std::string::npos);
  CHECK(RunProgram({MicroBinary(), "store"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "store", "upsert"}).exit_code == 2);

  const std::vector<std::vector<std::string>> usage_errors = {
      {"read"},
      {"read", "k", "--limit", "2"},  // not a scan
      {"read", "k", "--prefix", "--limit", "ten"},
      {"read", "k", "--prefix", "--order", "sideways"},
      {"list", "--offset", "-1"},
      {"list", "--limit", "99999999999"},
      {"write", "k"},
      {"write", "k", "v", "--ttl", "-5"},
      {"write", "k", "v", "--if-revision", "0"},
      {"write", "k", "v", "--metadata", "novalue"},
      {"write", "k", "v", "w"},
      {"snapshot"},
      {"restore"},
  };
  for (std::vector<std::string> args : usage_errors) {
    args.insert(args.begin(), {MicroBinary(), "store"});
    ProgramResult result = RunProgram(args);
    INFO(args[2] + " " + (args.size() > 3 ? args[3] : ""));
    CHECK(result.exit_code == 2);
    CHECK(result.err.rfind("error: ", 0) == 0);
  }
}

}  // namespace
}  // namespace micro::testing
